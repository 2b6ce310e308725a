"""Whatever dies, whenever: `imdb-tui run --source FILE` killed at a chosen step of a
batch's write (the writer child, the parent, both; with and without a stop signal
arriving as the next child starts), then the same command again, stores each valid
line once and counts it once, and never stores a position past an unstored line."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from imdb_tui.store import Store
from imdb_tui.store.writer import FAULT
from tests.conftest import Database
from tests.test_cli import COMMAND

GARBAGE_EVERY = 997  # a line in so many is not an event: dead letters are exact too


def produce(path: Path, count: int, seed: int) -> tuple[int, int]:
    """`count` produced events, with a garbage line now and then; (valid, garbage)."""
    made = subprocess.run(
        [COMMAND, "produce", "--count", str(count), "--seed", str(seed)],
        capture_output=True,
        check=True,
        timeout=300,
    ).stdout.splitlines(keepends=True)
    garbage = 0
    with path.open("wb") as out:
        for n, line in enumerate(made):
            if n % GARBAGE_EVERY == 5:
                out.write(b'{"event_id": "not an event %d"\n' % n)
                garbage += 1
            out.write(line)
    return len(made), garbage


@pytest.fixture(scope="module")
def lines(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, int]:
    path = tmp_path_factory.mktemp("crash") / "events.jsonl"
    valid, garbage = produce(path, 60_000, seed=11)
    return path, valid, garbage


def run(
    database: Database, source: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [COMMAND, "run", "--source", str(source), *database.args],
        capture_output=True,
        text=True,
        timeout=240,  # a hang guard: on DynamoDB's test endpoint, on 2 loaded cores, a minute
        env={**os.environ, **(env or {})},
    )


def stored_prefix(store: Store, source: Path) -> tuple[int, int]:
    """(valid, garbage) lines of the file before the stored position."""
    kept = [p for p in store.positions() if p.source == f"file:{source.resolve()}"]
    if not kept:  # killed before its first commit
        return 0, 0
    (position,) = kept
    offset = int(json.loads(position.position)["offset"])
    prefix = source.read_bytes()[:offset]
    assert not prefix or prefix.endswith(b"\n")
    garbage = prefix.count(b"not an event")
    return prefix.count(b"\n") - garbage, garbage


def assert_exact(database: Database, source: Path, valid: int, garbage: int) -> None:
    """Stored: exactly `valid` events and `garbage` dead letters, each counted once."""
    store = database.open(read_only=True)
    try:
        counters = store.counters()
        assert store.count_events() == valid  # type: ignore[attr-defined]
        assert counters.get("events_total", 0) == valid
        assert counters.get("duplicates", 0) == 0  # the file has none
        assert counters.get("dead_letters", 0) == garbage
    finally:
        store.close()


def assert_no_hole(database: Database, source: Path) -> None:
    """What is stored is exactly the lines before the stored position: nothing past it,
    nothing missing before it."""
    if not _made(database):
        return  # killed before it made the database (a loaded machine starts slowly)
    store = database.open(read_only=True)
    try:
        valid, garbage = stored_prefix(store, source)
        assert store.count_events() == valid  # type: ignore[attr-defined]
        assert store.counters().get("dead_letters", 0) == garbage
        assert store.counters().get("duplicates", 0) == 0
    finally:
        store.close()


def _made(database: Database) -> bool:
    """Whether the database was made: a kill may land before the file is created, or
    after, before its schema is committed (the next run makes it then)."""
    if database.backend != "sqlite":
        return True
    path = Path(database.name)
    if not path.exists():
        return False
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as connection:
        return int(connection.execute("PRAGMA user_version").fetchone()[0]) > 0


SQLITE_FAULTS = [
    f"{who}:{step}@2{term}"
    for who in ("child", "parent", "both")
    for step in ("received", "committing", "committed")
    for term in ("",)
] + ["child:received@2+term", "child:committed@2+term", "child:committing@3+term"]
POSTGRES_FAULTS = ["child:committing@2", "child:committed@2+term", "parent:committed@2"]
# A batch is written to DynamoDB in steps (store/dynamodb/batch.py): killed in one,
# it is sent again by the next child, or finished or undone by the next run, once the
# dead writer's time is up (cut short here: IMDB_TUI_DYNAMODB_LIVE_FOR). The file is
# one batch on moto's endpoint, a few hundred events a second.
DYNAMODB_FAULTS = [
    "child:apply@1",
    "child:committing@1",
    "child:committed@1",
    "parent:claim@1",
    "parent:plan@1",
    "parent:apply@1",
]


def faults() -> Iterator[object]:
    for fault in SQLITE_FAULTS:
        yield pytest.param("sqlite", fault, id=f"sqlite-{fault}")
    for fault in POSTGRES_FAULTS:
        yield pytest.param("postgres", fault, id=f"postgres-{fault}")
    for fault in DYNAMODB_FAULTS:
        yield pytest.param("dynamodb", fault, id=f"dynamodb-{fault}")


@pytest.fixture(scope="module")
def few_lines(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, int]:
    path = tmp_path_factory.mktemp("crash") / "events.jsonl"
    valid, garbage = produce(path, 600, seed=12)
    return path, valid, garbage


@pytest.mark.timeout(600)  # two runs
@pytest.mark.parametrize(("backend", "fault"), list(faults()))
def test_a_crash_at_any_step_of_a_write_loses_and_doubles_nothing(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    backend: str,
    fault: str,
) -> None:
    if backend == "sqlite":
        database = Database("sqlite", str(tmp_path / "events.db"))
    else:
        database = request.getfixturevalue(f"{backend}_database")
    source, valid, garbage = request.getfixturevalue(
        "few_lines" if backend == "dynamodb" else "lines"
    )
    if backend == "dynamodb":
        monkeypatch.setenv("IMDB_TUI_DYNAMODB_LIVE_FOR", "2")
    first = run(database, source, {FAULT: fault})
    who = fault.partition(":")[0]
    if who == "child":
        # The run goes on with a new writer child and ends as if nothing happened.
        assert "the writer process was killed by SIGKILL; a new one takes" in first.stderr
        if "+term" in fault:  # stopped part way: what it read is stored, nothing more
            assert first.returncode == 0, first.stderr
            assert_no_hole(database, source)
        else:
            assert first.returncode == 0, first.stderr
            assert "could not be stored" not in first.stderr
            assert_exact(database, source, valid, garbage)
    else:
        assert first.returncode == -signal.SIGKILL, first.stderr
        assert_no_hole(database, source)
    again = run(database, source)
    assert again.returncode == 0, again.stderr
    assert " 0 duplicates," in again.stdout, again.stdout
    assert_exact(database, source, valid, garbage)


def burn(seconds: float) -> subprocess.Popen[bytes]:
    """A process keeping a core busy, so that the machine is loaded: at the lowest
    priority, so that it takes a core only from idleness, not from the other tests
    running beside it."""
    return subprocess.Popen(
        [
            "nice",
            "-n",
            "19",
            sys.executable,
            "-c",
            f"import time\nend = time.time() + {seconds}\nwhile time.time() < end: pass",
        ]
    )


@pytest.mark.timeout(600)  # 21 runs: two minutes beside the other workers' tests
def test_a_storm_of_kills_with_resume_ends_exact(tmp_path: Path) -> None:
    """20 rounds of kill -9 at seeded moments (the child, the parent or both), each
    followed by the same command, on a loaded machine: exact at the end."""
    source = tmp_path / "storm.jsonl"
    valid, garbage = produce(source, 600_000, seed=12)
    database = Database("sqlite", str(tmp_path / "events.db"))
    chance = random.Random(2026)
    burner = burn(600)
    try:
        for _ in range(20):
            process = subprocess.Popen(
                [COMMAND, "run", "--source", str(source), *database.args],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
            try:
                time.sleep(chance.uniform(0.4, 1.4))  # a random moment: before or while storing
                children = _children(process.pid)
                target = chance.choice(["child", "parent", "both"])
                if target in ("child", "both") and children:
                    for pid in children:
                        os.kill(pid, signal.SIGKILL)
                if target in ("parent", "both") or not children:
                    process.kill()
                else:  # the run goes on with a new child: stop it as a person would
                    time.sleep(chance.uniform(0.1, 0.5))
                    process.send_signal(signal.SIGINT)
                process.wait(timeout=120)
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()
            assert_no_hole(database, source)
        last = run(database, source)
        assert last.returncode == 0, last.stderr
    finally:
        burner.kill()
        burner.wait()
    assert_exact(database, source, valid, garbage)


def _children(pid: int) -> list[int]:
    """The process's writer children (not multiprocessing's resource tracker)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            try:
                command = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue
            if b"spawn_main" in command:
                found.append(int(child))
    return found
