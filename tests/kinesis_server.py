"""An AWS endpoint on 127.0.0.1 for the tests (Kinesis, DynamoDB): moto's server mode.

The same boto3 calls as against AWS reach it through AWS_ENDPOINT_URL; it runs
in this process, on a free loopback port, and is stopped when the session ends.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import random
from collections.abc import Iterator
from typing import Any

import pytest

from tests.postgres_server import free_port, unavailable

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@contextlib.contextmanager
def kinesis_endpoint() -> Iterator[dict[str, str]]:
    """The environment that points boto3 (and imdb-tui) at the endpoint."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        unavailable("moto is not installed: pip install 'moto[server]'")
        raise AssertionError from None  # unreachable: skip and fail raise
    _copy_tables_once()
    _modules_listed_once()
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield {**CREDENTIALS, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
    finally:
        server.stop()


def _modules_listed_once() -> None:
    """moto's server finds each request's service by listing its package's folders
    (a directory scan and a stat per folder, every call: a tenth of its time under
    the DynamoDB tests). They do not change while it runs: listed once."""
    import functools

    from moto import backends

    if not hasattr(backends.list_of_moto_modules, "cache_info"):
        listed = backends.list_of_moto_modules
        backends.list_of_moto_modules = functools.cache(lambda: tuple(listed()))


def _copy_tables_once() -> None:
    """Two fixes to moto's DynamoDB, for the tests. Its calls run at once on the
    server's threads: they are made one at a time, atomic as DynamoDB's are. And it
    backs a transaction up by deep-copying its whole table (once for each of its up
    to 100 items), so a transaction costs as much as the table holds: instead, every
    condition is checked first, against the items as they are (no two actions touch
    one item, so none sees another's change), and only then are the actions made,
    with the items they touch kept to put back if one fails. The same all or none."""
    import threading

    from moto.dynamodb import models
    from moto.dynamodb.comparisons import get_filter_expression
    from moto.dynamodb.exceptions import (
        ConditionalCheckFailed,
        MockValidationException,
        MultipleTransactionsException,
        TooManyTransactionsException,
        TransactionCanceledException,
        TransactWriteSingleOpException,
    )
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.responses import DynamoHandler

    if getattr(models, "_patched_for_tests", False):
        return

    def transact(backend: Any, transact_items: list[dict[str, Any]]) -> None:
        if len(transact_items) > 100:
            raise TooManyTransactionsException()
        actions: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
        errors: list[tuple[Any, Any, Any]] = []
        seen: set[tuple[str, str]] = set()
        for entry in transact_items:
            if len(entry) > 1:
                raise TransactWriteSingleOpException
            kind, op = next(iter(entry.items()))
            if kind not in {"ConditionCheck", "Put", "Delete", "Update"}:
                raise ValueError("Unsupported transaction operation")
            table = backend.get_table(op["TableName"])
            if kind == "Put":
                key = {
                    name: op["Item"][name]
                    for name in (table.hash_key_attr, table.range_key_attr)
                    if name is not None
                }
            else:
                key = op["Key"]
            unique = (op["TableName"], str(sorted(key.items())))
            if unique in seen:
                raise MultipleTransactionsException()
            seen.add(unique)
            actions.append((kind, op, key))
            try:
                current = backend.get_item(op["TableName"], key)
                condition = op.get("ConditionExpression")
                if condition is not None and not get_filter_expression(
                    condition,
                    op.get("ExpressionAttributeNames"),
                    op.get("ExpressionAttributeValues"),
                ).expr(current):
                    old = None
                    if current and op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD":
                        old = current.to_json()["Attributes"]
                    errors.append(("ConditionalCheckFailed", ConditionalCheckFailed().message, old))
                    continue
            except MockValidationException:
                raise
            except Exception as error:
                errors.append((type(error).__name__, str(error), None))
                continue
            errors.append((None, None, None))
        if any(code is not None for code, _, _ in errors):
            raise TransactionCanceledException(errors)
        kept = [
            (op["TableName"], key, copy.deepcopy(backend.get_item(op["TableName"], key)))
            for _, op, key in actions
        ]
        for i, (kind, op, key) in enumerate(actions):
            names, values = op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
            try:
                if kind == "Put":
                    backend.put_item(op["TableName"], op["Item"])
                elif kind == "Delete":
                    backend.delete_item(op["TableName"], key)
                elif kind == "Update":
                    backend.update_item(
                        op["TableName"],
                        key,
                        update_expression=op["UpdateExpression"],
                        expression_attribute_names=names,
                        expression_attribute_values=values,
                    )
            except Exception as error:
                for table_name, old_key, old in kept:  # put back what was done
                    if old is None:
                        if backend.get_item(table_name, old_key) is not None:
                            backend.delete_item(table_name, old_key)
                    else:
                        backend.put_item(table_name, old.to_json()["Attributes"])
                failed: list[tuple[Any, Any, Any]] = [(None, None, None)] * len(actions)
                failed[i] = (type(error).__name__, str(error), None)
                raise TransactionCanceledException(failed) from None

    # moto's server answers requests on threads of its own, and its tables are plain
    # dicts: two writes at once can lose one another. DynamoDB's calls are each
    # atomic; so are they here, one at a time.
    lock = threading.Lock()
    call_action = DynamoHandler.call_action

    def one_at_a_time(self: object) -> object:
        with lock:
            if THROTTLE.before():
                return THROTTLE.answer()
            answer = call_action(self)  # type: ignore[arg-type]
            if THROTTLE.after():  # done, but its answer lost
                return THROTTLE.answer()
            return answer

    DynamoHandler.call_action = one_at_a_time  # type: ignore[method-assign,assignment]

    # And a Query of a partition reads that partition, not the whole table sorted (as
    # moto's does, for each query: a snapshot's hundred queries on a grown table took
    # most of a minute).
    from moto.dynamodb.models.table import Table

    partition = threading.local()
    query, all_items = Table.query, Table.all_items

    def query_one_partition(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
        conditions = kwargs.get("hash_key_conditions") or []
        if index_name is None:
            partition.key, partition.items = hash_key, None
        elif len(conditions) == 1:  # a global index's partition: its items as kept
            name, value = conditions[0]
            partition.key, partition.items = None, list(_gsi(self).get((name, value), {}).values())
        try:
            return query(self, hash_key, *args, **kwargs)
        finally:
            partition.key = partition.items = None

    def items_of_the_partition(self: Any) -> list[Any]:
        if getattr(partition, "items", None) is not None:
            return partition.items  # type: ignore[no-any-return]
        key = getattr(partition, "key", None)
        if key is None or not self.range_key_attr:
            return all_items(self)  # type: ignore[no-any-return]
        return sorted(self.items.get(key, {}).values(), key=lambda item: item.range_key)

    # The items of each global index's partition are kept as they are written (moto
    # finds them by reading the whole table, for each query: the monitor's top movies
    # cost as much as the table held). Items enter and leave the table by put_item and
    # delete_item; an update changes an item in place, so its key is looked at again.
    def _gsi(table: Any) -> dict[tuple[str, Any], dict[tuple[Any, Any], Any]]:
        if not hasattr(table, "_gsi_partitions"):
            table._gsi_partitions, table._gsi_placed = {}, {}
            for item in all_items(table):
                _place(table, item.hash_key, item.range_key)
        return table._gsi_partitions  # type: ignore[no-any-return]

    def _place(table: Any, hash_key: Any, range_key: Any) -> None:
        partitions, placed = table._gsi_partitions, table._gsi_placed
        key = (hash_key, range_key)
        for where in placed.pop(key, ()):
            partitions[where].pop(key, None)
        item = table.items.get(hash_key, {}).get(range_key) if range_key else None
        if item is None:
            return
        names = [
            entry["AttributeName"]
            for index in table.global_indexes or []
            for entry in index.schema
            if entry["KeyType"] == "HASH"
        ]
        wheres = [(name, item.attrs[name]) for name in names if name in item.attrs]
        for where in wheres:
            partitions.setdefault(where, {})[key] = item
        placed[key] = wheres

    put_item, delete_item = Table.put_item, Table.delete_item
    update_item = models.DynamoDBBackend.update_item

    def put_placed(self: Any, *args: Any, **kwargs: Any) -> Any:
        item = put_item(self, *args, **kwargs)
        if hasattr(self, "_gsi_partitions"):
            _place(self, item.hash_key, item.range_key)
        return item

    def delete_placed(self: Any, hash_key: Any, range_key: Any) -> Any:
        item = delete_item(self, hash_key, range_key)
        if hasattr(self, "_gsi_partitions"):
            _place(self, hash_key, range_key)
        return item

    def update_placed(self: Any, table_name: str, key: dict[str, Any], *a: Any, **k: Any) -> Any:
        answer = update_item(self, table_name, key, *a, **k)
        table = self.get_table(table_name)
        if hasattr(table, "_gsi_partitions") and table.range_key_attr:
            _place(
                table,
                DynamoType(key[table.hash_key_attr]),
                DynamoType(key[table.range_key_attr]),
            )
        return answer

    Table.query = query_one_partition  # type: ignore[method-assign]
    Table.all_items = items_of_the_partition  # type: ignore[method-assign]
    Table.put_item = put_placed  # type: ignore[method-assign]
    Table.delete_item = delete_placed  # type: ignore[method-assign]
    models.DynamoDBBackend.update_item = update_placed  # type: ignore[method-assign]
    models.DynamoDBBackend.transact_write_items = transact  # type: ignore[method-assign,assignment]
    models._patched_for_tests = True  # type: ignore[attr-defined]


class Throttle:
    """Makes the test endpoint answer DynamoDB calls with
    ProvisionedThroughputExceededException: a share of them (seeded), before the call
    is made or after (made, its answer lost), or all of them while `always`."""

    def __init__(self) -> None:
        self.share = 0.0
        self.always = False
        self.refused = 0
        self._random = random.Random(0)

    def set(self, share: float, seed: int = 0) -> None:
        self.share, self.refused, self._random = share, 0, random.Random(seed)

    def before(self) -> bool:
        return self._refuse(self.always or self._random.random() < self.share / 2)

    def after(self) -> bool:
        return self._refuse(self._random.random() < self.share / 2)

    def _refuse(self, refused: bool) -> bool:
        self.refused += refused
        return refused

    @staticmethod
    def answer() -> tuple[int, dict[str, str], str]:
        kind = "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException"
        body = {"__type": kind, "message": "The level of configured provisioned throughput"
                " for the table was exceeded (injected by the test endpoint)"}  # fmt: skip
        return 400, {"Content-Type": "application/x-amz-json-1.0"}, json.dumps(body)


THROTTLE = Throttle()


@pytest.fixture
def throttle() -> Iterator[Throttle]:
    yield THROTTLE
    THROTTLE.set(0.0)
    THROTTLE.always = False


@pytest.fixture(scope="session")
def kinesis_env() -> Iterator[dict[str, str]]:
    with kinesis_endpoint() as env:
        yield env


@pytest.fixture
def aws(kinesis_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """This process's AWS settings pointed at the endpoint; the environment for
    subprocesses."""
    for name, value in kinesis_env.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    return {**os.environ, **kinesis_env, "TZ": "UTC"}


def main() -> None:
    """`python -m tests.kinesis_server [PORT]`: the tests' endpoint on its own, until
    stopped (for trying imdb-tui by hand, and for bench/dynamodb.py)."""
    import signal
    import sys
    import time

    from moto.server import ThreadedMotoServer

    _copy_tables_once()
    port = int(sys.argv[1]) if len(sys.argv) > 1 else free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    print(f"AWS_ENDPOINT_URL=http://127.0.0.1:{port}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while True:
            time.sleep(1)
    except (KeyboardInterrupt, SystemExit):
        server.stop()


if __name__ == "__main__":
    main()
