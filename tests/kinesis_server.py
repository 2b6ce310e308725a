"""An AWS endpoint on 127.0.0.1 for the tests (Kinesis, DynamoDB): moto's server mode.

The same boto3 calls as against AWS reach it through AWS_ENDPOINT_URL; it runs
in this process, on a free loopback port, and is stopped when the session ends.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

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
    backs a transaction up by deep-copying its table once for each of its (up to
    100) items, the same table each time with nothing changed between: copied once
    a call instead. The same backup, so the same all-or-nothing."""
    import copy
    import threading

    from moto.dynamodb import models

    if getattr(models, "_copied_once", False):
        return
    memo = threading.local()
    real = copy.deepcopy

    class Once:
        @staticmethod
        def deepcopy(value: object) -> object:
            copies = getattr(memo, "copies", None)
            if copies is None or not isinstance(value, models.Table):
                return real(value)
            if id(value) not in copies:
                copies[id(value)] = real(value)
            return copies[id(value)]

    backend = models.DynamoDBBackend
    transact = backend.transact_write_items

    def once(self: object, *args: object, **kwargs: object) -> object:
        memo.copies = {}
        try:
            return transact(self, *args, **kwargs)  # type: ignore[arg-type]
        finally:
            memo.copies = None

    # moto's server answers requests on threads of its own, and its tables are plain
    # dicts: two writes at once can lose one another (a cancelled transaction puts
    # back the copy it took, over what others wrote meanwhile). DynamoDB's calls are
    # each atomic; so are they here, one at a time.
    from moto.dynamodb.responses import DynamoHandler

    lock = threading.Lock()
    call_action = DynamoHandler.call_action

    def one_at_a_time(self: object) -> object:
        with lock:
            return call_action(self)  # type: ignore[arg-type]

    DynamoHandler.call_action = one_at_a_time  # type: ignore[method-assign,assignment]
    models.copy = Once  # type: ignore[attr-defined]
    backend.transact_write_items = once  # type: ignore[method-assign,assignment]
    models._copied_once = True  # type: ignore[attr-defined]


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
