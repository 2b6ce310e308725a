"""Running the real pipeline in tests, fed from a list and driven by a manual clock."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

from imdb_tui.aggregates import Aggregator
from imdb_tui.clock import ManualClock
from imdb_tui.events import Event, RawRecord, validate
from imdb_tui.metrics import MetricsSnapshot, read_snapshot
from imdb_tui.pipeline import Pipeline, PipelineSettings, RunSummary
from imdb_tui.sources import Lookup
from imdb_tui.store import SourcePosition, Store, open_store
from imdb_tui.store.dialect import SQLITE_BEFORE_PACKED, SQLITE_DIALECT
from imdb_tui.store.model import EVENTS_PACKED
from imdb_tui.store.sqlite import APPLICATION_ID
from tests.conftest import Database, event


class ListSource:
    """Hands out the given raw records, then ends. Its position is how many it has
    handed out; it resumes from a stored one."""

    name = "list"

    trouble: str | None = None  # reading never waits on a passing problem
    behind_ms: float | None = None  # no newest data to be behind

    def __init__(self, records: Sequence[RawRecord]) -> None:
        self._records = list(records)
        self.key = f"list:{records[0]!r}" if records else "list:"  # known by its first
        self._next = 0

    async def start(self, stored: Lookup) -> str | None:
        position = stored(self.key)
        self._next = 0 if position is None else int(position)
        return None if position is None else f"record {position}"

    async def read(self, limit: int) -> list[RawRecord]:
        chunk = self._records[self._next : self._next + limit]
        self._next += len(chunk)
        return chunk

    def positions(self) -> Sequence[SourcePosition]:
        return (SourcePosition(self.key, str(self._next)),)

    def committed(self, positions: Sequence[SourcePosition]) -> None:
        pass

    def stop(self) -> None:
        pass

    async def rest(self, limit: int) -> list[RawRecord]:
        return []  # read on from its position next time


def _open(db: Database | Path | str, create: bool = True) -> Store:
    return db.open(create=create) if isinstance(db, Database) else open_store(db, create=create)


async def ingest(
    db: Database | Path | str, records: Sequence[RawRecord], clock: ManualClock, **settings: object
) -> RunSummary:
    """Run the pipeline over `records` into `db` until the source ends."""
    store = _open(db)
    try:
        options = {"rate": None, **settings}
        pipeline = Pipeline(ListSource(records), store, clock, PipelineSettings(**options))  # type: ignore[arg-type]
        return await pipeline.run()
    finally:
        store.close()


def snapshot(db: Database | Path | str, clock: ManualClock, window: int = 5) -> MetricsSnapshot:
    store = _open(db, create=False)
    try:
        return read_snapshot(store, clock.now(), clock.tz, window)
    finally:
        store.close()


def query(db: Path | str, sql: str) -> list[tuple[object, ...]]:
    import sqlite3

    with sqlite3.connect(db) as connection:
        return connection.execute(sql).fetchall()


def events(ids: range, **changes: object) -> list[Event]:
    """Valid events made from `conftest.event(n)` for each n, with `changes`."""
    out = [validate(event(n, **changes)) for n in ids]
    assert all(isinstance(e, Event) for e in out)
    return out  # type: ignore[return-value]


def write(store: Store, batch: list[Event]) -> list[Event]:
    """A batch written as the pipeline writes it (no positions, no health)."""
    return store.write_batch(batch, [], "2026-11-23T10:00:00.000Z", Aggregator(None))


def older_file(path: Path | str, version: int) -> sqlite3.Connection:
    """An imdb-tui SQLite file at an older schema `version`, open for rows to be added
    (`with older_file(...) as old:` commits them)."""
    old = sqlite3.connect(path)
    for statement in schema_at(version):
        old.execute(statement)
    old.execute(f"PRAGMA user_version = {version}")
    old.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    return old


def schema_at(version: int) -> list[str]:
    """The statements making an SQLite file of schema `version`."""
    dialect = SQLITE_DIALECT if version >= EVENTS_PACKED else SQLITE_BEFORE_PACKED
    return [s for step in range(1, version + 1) for s in dialect.migration(step)]
