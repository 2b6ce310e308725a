"""A Kinesis endpoint on 127.0.0.1 for the tests: moto's server mode.

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
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield {**CREDENTIALS, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
    finally:
        server.stop()


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
