from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path

import pytest

from imdb_tui.clock import ManualClock
from imdb_tui.store import Store, open_store
from tests.postgres_server import GIVEN, throwaway_server

pytest_plugins = ["tests.kinesis_server"]  # its fixtures: kinesis_env, aws

# pytest-xdist's workers export COLUMNS=80 and LINES=24, which a program on a
# pseudo-terminal of a test's would take over the terminal's own size (as
# shutil.get_terminal_size does): the programs the tests start see no such variables,
# as under a person's shell.
for _variable in ("COLUMNS", "LINES"):
    os.environ.pop(_variable, None)

# 2026-11-23 10:00:00 UTC: a fixed "now" for tests that need one.
NOW = 1795428000.0


# The modules whose tests take tens of seconds each (subprocesses, live streams,
# moto's endpoint): started first, so that the parallel workers (pytest-xdist) are
# not left waiting on one of them at the end.
SLOW_FIRST = ("test_readme", "test_kinesis", "test_crashes", "test_dynamodb", "test_export")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        module = item.path.stem
        return SLOW_FIRST.index(module) if module in SLOW_FIRST else len(SLOW_FIRST)

    items.sort(key=rank)  # stable: each module's own order kept


@pytest.fixture(autouse=True)
def quick_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pilot's keys at a person's pace, not a second or two each. After each key,
    Textual waits until the process uses no CPU for 20 ms, for up to a second, twice: a
    monitor whose pipeline runs on threads of its own never looks idle, so each key
    took 2 s (typing `amelie 2001` took 22). Here a key is followed by what a person's
    next key finds done: the app, its screen and every widget of it have handled all
    that was sent to them (Pilot's own wait for the screen), then a short idle wait."""
    import textual._wait
    import textual.app
    import textual.pilot
    from textual._context import active_app

    async def wait_for_idle(min_sleep: float = 0.0, max_sleep: float = 1.0) -> None:
        try:
            app = active_app.get()
        except LookupError:
            app = None
        if app is not None and app.is_running:
            await textual.pilot.Pilot(app)._wait_for_screen()
        await textual._wait.wait_for_idle(min_sleep, min(max_sleep, 0.05))

    monkeypatch.setattr(textual.app, "wait_for_idle", wait_for_idle)
    monkeypatch.setattr(textual.pilot, "wait_for_idle", wait_for_idle)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW, tz=UTC)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "events.db"


def event(n: int = 0, **changes: object) -> dict[str, object]:
    """A valid raw event record, at NOW unless told otherwise."""
    record: dict[str, object] = {
        "event_id": f"evt-{n:08d}",
        "event_time": "2026-11-23T10:00:00.000Z",
        "user_id": f"u{n % 7:07d}",
        "session_id": f"s{n % 11:012x}",
        "movie_id": f"tt{1000000 + n % 5:07d}",
        "event_type": "view",
    }
    record.update(changes)
    return {k: v for k, v in record.items() if v is not DROP}


DROP = object()


# Backends ----------------------------------------------------------------------
# Shared store behaviour is tested once, over every backend: a test asks for
# `database` and runs on an SQLite file, on a schema of its own in PostgreSQL (a
# throwaway server for the session, or IMDB_TUI_TEST_POSTGRES) and on a table of its
# own in DynamoDB (moto's server, tests/kinesis_server.py).


@dataclass(frozen=True)
class Database:
    """A store for one test: what --db and --pg-schema say, and how to open it."""

    backend: str
    name: str
    schema: str | None = None

    def open(self, *, create: bool = True, read_only: bool = False) -> Store:
        return open_store(self.name, create=create, read_only=read_only, pg_schema=self.schema)

    def another(self) -> Database:
        """An empty database of the same backend, beside this one."""
        tag = uuid.uuid4().hex[:16]
        if self.backend == "dynamodb":
            return dynamodb_table()
        if self.schema is not None:
            return Database(self.backend, self.name, f"t_{tag}")
        return Database(self.backend, str(Path(self.name).with_name(f"{tag}.db")))

    @property
    def args(self) -> list[str]:
        """The command-line options naming it."""
        return ["--db", self.name] + (["--pg-schema", self.schema] if self.schema else [])


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    given = os.environ.get(GIVEN)
    if given:
        yield given
        return
    with throwaway_server() as server:
        yield server.url()


@pytest.fixture
def postgres_database(request: pytest.FixtureRequest) -> Database:
    url = request.getfixturevalue("postgres_url")
    return Database("postgres", url, f"t_{uuid.uuid4().hex[:16]}")


def dynamodb_table() -> Database:
    """A new DynamoDB table on the test endpoint (made here: --create-tables's job)."""
    name = f"dynamodb://t-{uuid.uuid4().hex[:16]}"
    open_store(name, create_tables=True).close()
    return Database("dynamodb", name)


@pytest.fixture
def dynamodb_database(aws: dict[str, str]) -> Database:
    return dynamodb_table()


def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    if request.param == "sqlite":
        return Database("sqlite", str(tmp_path / "events.db"))
    database: Database = request.getfixturevalue(f"{request.param}_database")
    return database


@pytest.fixture(params=["sqlite", "postgres", "dynamodb"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    """Every backend: an SQLite file, a PostgreSQL schema, a DynamoDB table."""
    return backend(request, tmp_path)


@pytest.fixture(params=["sqlite", "postgres"])
def sql_database(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    """Each SQL backend, for what is about SQL (views, schemas, sqlite3 and psql)."""
    return backend(request, tmp_path)


def scaled(database: Database, count: int) -> int:
    """How many events a test of hours of history writes to this backend: a fifth on
    DynamoDB, whose test endpoint (moto) takes a few hundred calls a second, and
    where events spread over hours each add to counts of their own minute."""
    return count // 5 if database.backend == "dynamodb" else count
