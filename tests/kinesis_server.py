"""An AWS endpoint on 127.0.0.1 for the tests (Kinesis, DynamoDB): moto's server mode.

The same boto3 calls as against AWS reach it through AWS_ENDPOINT_URL; it runs
in this process, on a free loopback port, and is stopped when the session ends.
"""

from __future__ import annotations

import contextlib
import copy
import os
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
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield {**CREDENTIALS, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
    finally:
        server.stop()


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
            return call_action(self)  # type: ignore[arg-type]

    DynamoHandler.call_action = one_at_a_time  # type: ignore[method-assign,assignment]
    models.DynamoDBBackend.transact_write_items = transact  # type: ignore[method-assign,assignment]
    models._patched_for_tests = True  # type: ignore[attr-defined]


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
