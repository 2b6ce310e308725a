"""The imdb-tui command against a stream on the tests' endpoint (tests/kinesis_server.py):
produce into it, consume it into a SQLite file, wait for what is stored, stop."""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

COMMAND = str(Path(sys.executable).with_name("imdb-tui"))


def stream() -> str:
    return f"clicks-{uuid.uuid4().hex[:8]}"


def produce(env: dict[str, str], name: str, count: int, *extra: str) -> str:
    result = subprocess.run(
        [COMMAND, "produce", "--to", f"kinesis://{name}", "--count", str(count), *extra],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stderr


def consume(env: dict[str, str], name: str, db: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [COMMAND, "run", "--source", f"kinesis://{name}", "--db", str(db), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


def stored(db: Path) -> int:
    if not db.exists():
        return 0
    with contextlib.closing(sqlite3.connect(db)) as connection:
        try:
            row = connection.execute(
                "SELECT value FROM counters WHERE name = 'events_total'"
            ).fetchone()
        except sqlite3.OperationalError:  # not made yet
            return 0
    return int(row[0]) if row else 0


def until_stored(db: Path, count: int, process: subprocess.Popen[str]) -> None:
    """Wait until `count` events are stored (the process must not end before)."""
    deadline = time.monotonic() + 120
    while stored(db) < count:
        assert process.poll() is None, process.communicate()[0]
        assert time.monotonic() < deadline, f"only {stored(db)} of {count} stored"
        time.sleep(0.1)


def finish(process: subprocess.Popen[str]) -> str:
    """Stop a consumer as Ctrl-C does, and return what it printed."""
    process.send_signal(signal.SIGINT)
    output = process.communicate(timeout=60)[0]
    assert process.returncode == 0, output
    return output


def query(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(db)) as connection:
        return connection.execute(sql).fetchall()


def one_shard_stream() -> tuple[str, Any]:
    """A new stream of one shard, made and active: its name and a Kinesis client."""
    import boto3

    name = stream()
    kinesis = boto3.client("kinesis")
    kinesis.create_stream(StreamName=name, ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 1})
    return name, kinesis


def until_dead_letters(db: Path, count: int) -> None:
    """Wait until `count` dead letters are stored."""
    deadline = time.monotonic() + 60
    while query(db, "SELECT count(*) FROM dead_letters") != [(count,)]:
        assert time.monotonic() < deadline, query(db, "SELECT reason FROM dead_letters")
        time.sleep(0.1)


def report(env: dict[str, str], db: Path, *args: str) -> str:
    """What `imdb-tui report --db DB ARGS` prints."""
    result = subprocess.run(
        [COMMAND, "report", "--db", str(db), *args],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return result.stdout
