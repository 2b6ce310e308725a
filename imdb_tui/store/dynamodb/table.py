"""The one DynamoDB table a store keeps everything in, and the calls made on it.

Every item has a partition key `p` and a sort key `s` (strings). Values are plain
Python (str, int, float, bool, None, lists and dicts of them) on this side, and
DynamoDB's typed values on the wire; numbers come back as int or float.

A call that fails for a passing reason (throttling, the service's own errors, the
endpoint away) is tried again with a growing pause, up to `patience` seconds in
all, then raised as a StoreError in one line; other failures are raised at once.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any, Final, TypeVar

from imdb_tui import aws
from imdb_tui.store import StoreError

T = TypeVar("T")

Item = dict[str, Any]

Expiry = Callable[[str, str, "str | None"], "float | None"]
"""When an item goes (epoch seconds), from its keys and its event time `t` if any;
None: never."""

TTL_ATTRIBUTE: Final = "x"
"""Epoch seconds after which an item is past its time (DynamoDB's TTL deletes it, up
to two days late, and a local endpoint never: readers ignore it from then on)."""
TOP_INDEX: Final = "top"
"""A global secondary index on (`g`, `view`): a day's movies by views, for top-N."""
_TYPES: Final = {str: "S", bool: "BOOL", int: "N", float: "N"}


class Conflict(Exception):
    """A write's condition did not hold; `item` is the item as it was, if asked for."""

    def __init__(self, item: Item | None = None) -> None:
        super().__init__()
        self.item = item


class Cancelled(Exception):
    """A transaction's condition did not hold: the index of each item whose did not."""

    def __init__(self, failed: list[int]) -> None:
        super().__init__(failed)
        self.failed = failed


def wire(value: object) -> dict[str, Any]:
    """A Python value as DynamoDB's typed value."""
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | float | Decimal):
        return {"N": repr(value) if isinstance(value, float) else str(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, Mapping):
        return {"M": {k: wire(v) for k, v in value.items()}}
    if isinstance(value, list | tuple):
        return {"L": [wire(v) for v in value]}
    raise TypeError(f"no DynamoDB type for {type(value).__name__}")


def plain(value: Mapping[str, Any]) -> Any:
    """DynamoDB's typed value as a Python value."""
    ((kind, inner),) = value.items()
    if kind == "S":
        return inner
    if kind == "N":
        return int(inner) if inner.lstrip("-").isdigit() else float(inner)
    if kind == "BOOL":
        return bool(inner)
    if kind == "NULL":
        return None
    if kind == "M":
        return {k: plain(v) for k, v in inner.items()}
    if kind == "L":
        return [plain(v) for v in inner]
    raise TypeError(f"unexpected DynamoDB type {kind}")


def wire_item(item: Mapping[str, object]) -> dict[str, Any]:
    return {name: wire(value) for name, value in item.items()}


def plain_item(item: Mapping[str, Any]) -> Item:
    return {name: plain(value) for name, value in item.items()}


def key(p: str, s: str) -> dict[str, Any]:
    return {"p": {"S": p}, "s": {"S": s}}


class Table:
    """The store's table, through one boto3 client (safe to share between threads)."""

    def __init__(
        self, client: Any, name: str, patience: float = 60.0, *, hides_expired: bool = True
    ) -> None:
        self.client = client
        self.name = name
        self.patience = patience
        self.waiting: Callable[[str | None], None] = lambda reason: None
        """Told why calls wait (throttled, unreachable), and None when they go through."""
        self.expiry: Expiry | None = None
        """If set, what this table writes is given its time to go (TTL_ATTRIBUTE)."""
        self.hides_expired = hides_expired
        """Reads leave out items past their time (what figures read). Off for a batch's
        writes, which reason about every item there is, gone or not."""

    def twin(self, *, hides_expired: bool) -> Table:
        """The same table through the same client, for another job."""
        return Table(self.client, self.name, self.patience, hides_expired=hides_expired)

    # Calls, retried while the reason passes ---------------------------------------

    def call(self, operation: str, **arguments: Any) -> Any:
        """client.<operation>(**arguments), tried again while it fails for a passing
        reason; ConditionalCheckFailed raises Conflict, a cancelled transaction
        Cancelled, anything else a StoreError."""
        method = getattr(self.client, operation)
        if self.expiry is not None and operation in _STAMPED:
            arguments = _STAMPED[operation](arguments, self.expiry)  # in place, once
        pause, started = 0.05, time.monotonic()
        while True:
            try:
                answer = method(**arguments)
            except Exception as error:  # botocore's errors are made at run time
                code = aws.error_code(error)
                if code == "ConditionalCheckFailedException":
                    old = getattr(error, "response", {}).get("Item")
                    raise Conflict(plain_item(old) if old else None) from None
                if code == "TransactionCanceledException":
                    failed = _cancelled(error)
                    if failed is not None:
                        raise Cancelled(failed) from None
                if not aws.is_passing(error) and code != "TransactionCanceledException":
                    raise StoreError(self.describe(error)) from None
                if time.monotonic() - started > self.patience:
                    raise StoreError(self.describe(error)) from None
                self.waiting(self.describe(error))
                time.sleep(pause * random.uniform(0.5, 1.0))
                pause = min(pause * 2, 2.0)
                continue
            self.waiting(None)
            return answer

    def describe(self, error: BaseException) -> str:
        return aws.describe(
            error, f"dynamodb://{self.name}", "no such table (create it, or use --create-tables)"
        )

    # Items -------------------------------------------------------------------------

    def get(self, p: str, s: str) -> Item | None:
        answer = self.call("get_item", TableName=self.name, Key=key(p, s), ConsistentRead=True)
        item = answer.get("Item")
        return plain_item(item) if item and self._live(item) else None

    def get_many(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Item]:
        """The items of these keys that exist (consistent reads, 100 a call)."""
        found: dict[tuple[str, str], Item] = {}
        wanted = list(dict.fromkeys(keys))
        for start in range(0, len(wanted), 100):
            pending: dict[str, Any] = {
                self.name: {
                    "Keys": [key(p, s) for p, s in wanted[start : start + 100]],
                    "ConsistentRead": True,
                }
            }
            while pending:
                answer = self.call("batch_get_item", RequestItems=pending)
                for raw in answer.get("Responses", {}).get(self.name, []):
                    if not self._live(raw):
                        continue
                    item = plain_item(raw)
                    found[item["p"], item["s"]] = item
                pending = answer.get("UnprocessedKeys") or {}
        return found

    def put(
        self,
        item: Mapping[str, object],
        condition: str | None = None,
        names: Mapping[str, str] | None = None,
        **values: object,
    ) -> None:
        """Put an item, if `condition` holds (Conflict carries the item as it was)."""
        arguments: dict[str, Any] = {"TableName": self.name, "Item": wire_item(item)}
        if condition is not None:
            arguments |= _condition(condition, values, names)
            arguments["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        self.call("put_item", **arguments)

    def update(
        self,
        p: str,
        s: str,
        expression: str,
        condition: str | None = None,
        names: Mapping[str, str] | None = None,
        **values: object,
    ) -> None:
        """Update an item (made if absent), if `condition` holds."""
        arguments: dict[str, Any] = {
            "TableName": self.name,
            "Key": key(p, s),
            "UpdateExpression": expression,
        }
        arguments |= _condition(condition, values, names)
        if condition is not None:
            arguments["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        self.call("update_item", **arguments)

    def delete(self, p: str, s: str, condition: str | None = None, **values: object) -> None:
        arguments: dict[str, Any] = {"TableName": self.name, "Key": key(p, s)}
        arguments |= _condition(condition, values)
        self.call("delete_item", **arguments)

    def put_many(self, items: Sequence[Mapping[str, object]]) -> None:
        """Put items without conditions, 25 a call (their keys are their own: a put made
        twice leaves the same item)."""
        for start in range(0, len(items), 25):
            pending: dict[str, Any] = {
                self.name: [
                    {"PutRequest": {"Item": wire_item(item)}} for item in items[start : start + 25]
                ]
            }
            while pending:
                answer = self.call("batch_write_item", RequestItems=pending)
                pending = answer.get("UnprocessedItems") or {}

    def transact(self, actions: Sequence[dict[str, Any]]) -> None:
        """Write up to 100 actions at once, all or none (Cancelled: whose condition
        failed). Each action is {"Put"|"Update"|"Delete"|"ConditionCheck": {...}}
        without its TableName."""
        items = [
            {kind: {"TableName": self.name, **body} for kind, body in action.items()}
            for action in actions
        ]
        self.call("transact_write_items", TransactItems=items)

    def transact_each(self, actions: Sequence[dict[str, Any]]) -> list[int]:
        """Make each action whose condition holds, in transactions: one whose condition
        fails is left out and the rest made again. The indexes of those left out."""
        left = list(range(len(actions)))
        refused: list[int] = []
        while left:
            try:
                self.transact([actions[i] for i in left])
                break
            except Cancelled as cancelled:
                failed = {left[i] for i in cancelled.failed}
            refused += failed
            left = [i for i in left if i not in failed]
        return sorted(refused)

    def query(
        self,
        p: str,
        *,
        after: str | None = None,
        start: str | None = None,
        before: str | None = None,
        prefix: str | None = None,
        newest_first: bool = False,
        limit: int | None = None,
        page: int | None = None,
        index: str | None = None,
        index_key: tuple[str, str] = ("p", "s"),
    ) -> Iterator[Item]:
        """The items of partition `p` in sort-key order: sort keys > `after`, >= `start`,
        < `before`, or starting with `prefix` (one of them); at most `limit`, read page
        by page, `page` items a call if given (a caller that stops early reads no more:
        a top ten, not every movie of the day)."""
        hash_name, range_name = index_key
        condition = "#h = :p"
        values: dict[str, object] = {":p": p}
        names = {"#h": hash_name}
        bounds = {"after": (">", after), "start": (">=", start), "before": ("<", before)}
        for name, (operator, bound) in bounds.items():
            if bound is not None:
                condition += f" AND #r {operator} :{name}"
                values[f":{name}"] = bound
        if prefix is not None:
            condition += " AND begins_with(#r, :prefix)"
            values[":prefix"] = prefix
        if len(values) > 2:
            raise ValueError("a Query takes one condition on its sort key")
        if len(values) == 2:
            names["#r"] = range_name
        arguments: dict[str, Any] = {
            "TableName": self.name,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": {k: wire(v) for k, v in values.items()},
            "ExpressionAttributeNames": names,
            "ScanIndexForward": not newest_first,
        }
        if index is None:
            arguments["ConsistentRead"] = True
        else:
            arguments["IndexName"] = index
        given = 0
        while True:
            sizes = [n for n in (page, None if limit is None else limit - given) if n is not None]
            if sizes:
                arguments["Limit"] = min(sizes)
            answer = self.call("query", **arguments)
            for raw in answer.get("Items", []):
                if not self._live(raw):
                    continue
                item = plain_item(raw)
                yield item
                given += 1
                if limit is not None and given >= limit:
                    return
            last = answer.get("LastEvaluatedKey")
            if not last:
                return
            arguments["ExclusiveStartKey"] = last

    def count(self, p: str) -> int:
        """How many items partition `p` holds (read, not returned)."""
        arguments: dict[str, Any] = {
            "TableName": self.name,
            "KeyConditionExpression": "p = :p",
            "ExpressionAttributeValues": {":p": wire(p)},
            "Select": "COUNT",
            "ConsistentRead": True,
        }
        if self.hides_expired:
            arguments |= {
                "FilterExpression": "attribute_not_exists(#x) OR #x > :now",
                "ExpressionAttributeNames": {"#x": TTL_ATTRIBUTE},
            }
            arguments["ExpressionAttributeValues"][":now"] = wire(int(time.time()))
        total = 0
        while True:
            answer = self.call("query", **arguments)
            total += int(answer.get("Count", 0))
            last = answer.get("LastEvaluatedKey")
            if not last:
                return total
            arguments["ExclusiveStartKey"] = last

    def _live(self, raw: Mapping[str, Any]) -> bool:
        """Whether an item read (typed) is to be seen: not past its time, if hidden."""
        expires = raw.get(TTL_ATTRIBUTE)
        return not (self.hides_expired and expires and float(expires["N"]) <= time.time())

    # The table itself ----------------------------------------------------------------

    def exists(self) -> bool:
        """Whether the table is there; any other failure (no credentials, access denied,
        the endpoint away) is raised as what it is."""
        try:
            self.client.describe_table(TableName=self.name)
        except Exception as error:  # botocore's errors are made at run time
            if aws.error_code(error) == "ResourceNotFoundException":
                return False
            # Asked again the usual way: retried while it passes, else said in one line.
            self.call("describe_table", TableName=self.name)
        return True

    def create(self) -> None:
        """Make the table (on-demand capacity), with its index and TTL, and wait for it."""
        self.call(
            "create_table",
            TableName=self.name,
            KeySchema=[
                {"AttributeName": "p", "KeyType": "HASH"},
                {"AttributeName": "s", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "p", "AttributeType": "S"},
                {"AttributeName": "s", "AttributeType": "S"},
                {"AttributeName": "g", "AttributeType": "S"},
                {"AttributeName": "view", "AttributeType": "N"},
            ],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": TOP_INDEX,
                    "KeySchema": [
                        {"AttributeName": "g", "KeyType": "HASH"},
                        {"AttributeName": "view", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "ALL"},
                }
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        self.client.get_waiter("table_exists").wait(
            TableName=self.name, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
        )
        self.call(
            "update_time_to_live",
            TableName=self.name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
        )


def _condition(
    condition: str | None, values: Mapping[str, object], names: Mapping[str, str] | None = None
) -> dict[str, Any]:
    arguments: dict[str, Any] = {}
    if condition is not None:
        arguments["ConditionExpression"] = condition
    if values:
        arguments["ExpressionAttributeValues"] = {f":{k}": wire(v) for k, v in values.items()}
    if names:
        arguments["ExpressionAttributeNames"] = dict(names)
    return arguments


def _cancelled(error: BaseException) -> list[int] | None:
    """The items whose condition failed in a cancelled transaction; None: it was
    cancelled for another reason (a conflict with another transaction: passing)."""
    reasons = getattr(error, "response", {}).get("CancellationReasons") or []
    codes = [reason.get("Code", "None") for reason in reasons]
    if codes and all(code in ("None", "ConditionalCheckFailed") for code in codes):
        return [i for i, code in enumerate(codes) if code == "ConditionalCheckFailed"]
    return None


# Each item written is given its time to go (Table.expiry) -------------------------

_SET: Final = re.compile(r"\bSET\b")


def _stamp_item(item: dict[str, Any], expiry: Expiry) -> dict[str, Any]:
    event_time = item.get("t", {}).get("S")
    expires = expiry(item["p"]["S"], item["s"]["S"], event_time)
    if expires is not None:
        item[TTL_ATTRIBUTE] = {"N": str(int(expires))}
    return item


def _stamp_update(update: dict[str, Any], expiry: Expiry) -> dict[str, Any]:
    """An update that also sets the item's time to go (counts' items: their keys say);
    one stamped already (an action made again) is left as it is."""
    expires = expiry(update["Key"]["p"]["S"], update["Key"]["s"]["S"], None)
    expression = update["UpdateExpression"]
    if expires is None or "#xx = :xx" in expression:
        return update
    found = _SET.search(expression)
    if found is None:
        expression += " SET #xx = :xx"
    else:
        expression = f"{expression[: found.end()]} #xx = :xx,{expression[found.end() :]}"
    update["UpdateExpression"] = expression
    update.setdefault("ExpressionAttributeNames", {})["#xx"] = TTL_ATTRIBUTE
    update.setdefault("ExpressionAttributeValues", {})[":xx"] = {"N": str(int(expires))}
    return update


def _stamp_put(arguments: dict[str, Any], expiry: Expiry) -> dict[str, Any]:
    arguments["Item"] = _stamp_item(arguments["Item"], expiry)
    return arguments


def _stamp_transaction(arguments: dict[str, Any], expiry: Expiry) -> dict[str, Any]:
    for action in arguments["TransactItems"]:
        if "Put" in action:
            _stamp_item(action["Put"]["Item"], expiry)
        elif "Update" in action:
            _stamp_update(action["Update"], expiry)
    return arguments


def _stamp_batch(arguments: dict[str, Any], expiry: Expiry) -> dict[str, Any]:
    for requests in arguments["RequestItems"].values():
        for request in requests:
            if "PutRequest" in request:
                _stamp_item(request["PutRequest"]["Item"], expiry)
    return arguments


_STAMPED: Final[dict[str, Callable[[dict[str, Any], Expiry], dict[str, Any]]]] = {
    "put_item": _stamp_put,
    "update_item": _stamp_update,
    "transact_write_items": _stamp_transaction,
    "batch_write_item": _stamp_batch,
}
