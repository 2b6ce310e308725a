"""The SQLite store: schema versions, foreign files, dedupe and retention."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from imdb_tui.catalog import Movie
from imdb_tui.clock import ManualClock
from imdb_tui.events import Event, validate
from imdb_tui.health import PipelineHealth
from imdb_tui.metrics import Aggregator
from imdb_tui.store import SourcePosition, Store, StoreError, open_store
from imdb_tui.store.sqlite import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION, SqliteStore
from tests.conftest import NOW, event
from tests.helpers import query


def events(ids: range, **changes: object) -> list[Event]:
    out = [validate(event(n, **changes), NOW) for n in ids]
    assert all(isinstance(e, Event) for e in out)
    return out  # type: ignore[return-value]


def write(store: Store, batch: list[Event]) -> list[Event]:
    return store.write_batch(batch, [], "2026-11-23T10:00:00.000Z", Aggregator(None))


def test_a_new_file_gets_the_current_schema_in_wal_mode(db_path: Path) -> None:
    open_store(db_path).close()
    assert query(db_path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert query(db_path, "PRAGMA application_id") == [(APPLICATION_ID,)]
    assert query(db_path, "PRAGMA journal_mode") == [("wal",)]


@pytest.mark.parametrize("version", range(SCHEMA_VERSION))
def test_an_older_file_is_upgraded_and_keeps_its_data(db_path: Path, version: int) -> None:
    with sqlite3.connect(db_path) as old:
        for step in MIGRATIONS[:version]:
            old.executescript(step)
        old.execute(f"PRAGMA user_version = {version}")
    store = open_store(db_path)
    assert write(store, events(range(3))) and store.counters()["events_total"] == 3
    store.close()
    assert query(db_path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]


def test_a_newer_file_is_refused(db_path: Path) -> None:
    open_store(db_path).close()
    with sqlite3.connect(db_path) as newer:
        newer.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer than this imdb-tui"):
        open_store(db_path)


def test_files_that_are_not_ours_are_refused(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello, not a database\n" * 100)
    with pytest.raises(StoreError, match="is not an SQLite database"):
        open_store(text)
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE invoices (id)")
    with pytest.raises(StoreError, match="of another program"):
        open_store(other)
    assert query(other, "SELECT name FROM sqlite_master") == [("invoices",)]


def test_memory_databases_work() -> None:
    store = open_store(":memory:")
    assert len(write(store, events(range(5)))) == 5
    assert store.reader() is store


def test_an_event_is_stored_once_and_counted_as_a_duplicate_after(db_path: Path) -> None:
    store = open_store(db_path)
    assert len(write(store, events(range(0, 10)))) == 10
    again = events(range(5, 15)) + events(range(14, 16))  # 5-9 stored, 14 twice in the batch
    new = write(store, again)
    assert [e.event_id for e in new] == [f"evt-{n:08d}" for n in range(10, 16)]
    assert store.counters() == {"events_total": 16, "duplicates": 6}
    assert store.count_events() == 16
    store.close()


def test_aggregates_count_only_new_events(db_path: Path) -> None:
    store = open_store(db_path)
    write(store, events(range(4)))
    write(store, events(range(4)))
    assert query(db_path, "SELECT sum(events) FROM events_per_minute") == [(4,)]
    assert query(db_path, "SELECT sum(views) FROM movie_views_daily") == [(4,)]


def test_big_batches_are_split_into_statements_sqlite_accepts(db_path: Path) -> None:
    store = open_store(db_path)
    assert len(write(store, events(range(40_000)))) == 40_000
    assert store.count_events() == 40_000


def test_retention_deletes_old_events_in_steps(db_path: Path) -> None:
    store = open_store(db_path)
    write(store, events(range(10), event_time="2026-11-01T10:00:00.000Z"))
    write(store, events(range(10, 15)))
    assert store.prune("2026-11-20T00:00:00.000Z", limit=4) == 4
    assert store.prune("2026-11-20T00:00:00.000Z", limit=4) == 4
    assert store.prune("2026-11-20T00:00:00.000Z", limit=4) == 2
    assert store.prune("2026-11-20T00:00:00.000Z", limit=4) == 0
    assert store.count_events() == 5
    assert store.counters()["events_total"] == 15  # all time, not what is kept


def test_the_catalogue_is_saved_and_refreshed(db_path: Path) -> None:
    store = open_store(db_path)
    store.save_movies([Movie("tt0000001", "First", 1999, ("Drama",))])
    store.save_movies([Movie("tt0000001", "First (restored)", 1999, ("Drama", "War"))])
    assert query(db_path, "SELECT movie_id, title, year, genres FROM movies") == [
        ("tt0000001", "First (restored)", 1999, "Drama,War")
    ]


def keep(store: Store, files: str, movies: list[Movie], weights: list[float]) -> None:
    """A catalogue read and kept the way the CLI does it."""
    store.forget_catalog()
    store.add_catalog_movies(movies)
    store.weigh_catalog_movies(zip((m.movie_id for m in movies), weights, strict=True))
    store.keep_catalog(files, skipped=len(movies), rated=1)


def test_a_kept_catalogue_comes_back_only_for_the_same_files(db_path: Path) -> None:
    store = open_store(db_path)
    store.save_movies([Movie("tt0000009", "Made up", 2000, ("Drama",))])  # not IMDb's
    movies = [
        Movie("tt10000001", "Eight digits", 2020, ()),
        Movie("tt0000002", "Two", None, ()),
        Movie("tt0000001", "One", 1999, ("Drama", "War")),
    ]
    keep(store, "a|1|2", movies, [7.0, 1.0, 5.0])
    assert store.kept_catalog("a|1|3") is None
    assert store.kept_catalog("a|1|2") == (3, 1)
    # Shorter ids first, then in order: tt9999999 comes before tt10000000, as in IMDb's files.
    assert list(store.catalog_weights()) == [
        ("tt0000001", 5.0),
        ("tt0000002", 1.0),
        ("tt10000001", 7.0),
    ]
    assert query(db_path, "SELECT title, genres FROM movies WHERE movie_id = 'tt0000001'") == [
        ("One", "Drama,War")
    ]
    keep(store, "b|1|2", movies[1:2], [2.0])  # another file: the first catalogue is gone
    assert store.kept_catalog("a|1|2") is None
    assert list(store.catalog_weights()) == [("tt0000002", 2.0)]
    store.close()


def test_a_catalogue_cut_short_is_not_kept(db_path: Path) -> None:
    store = open_store(db_path)
    keep(store, "a|1|2", [Movie("tt0000001", "One", 1999, ())], [5.0])
    store.forget_catalog()  # a new file was being read when the power went
    store.add_catalog_movies([Movie("tt0000002", "Two", 2000, ())])
    assert store.kept_catalog("a|1|2") is None  # so the next start reads it again
    store.close()


def test_a_read_only_database_is_reported(tmp_path: Path, clock: ManualClock) -> None:
    path = tmp_path / "ro.db"
    open_store(path).close()
    uri = f"file:{path}?mode=ro"
    store = SqliteStore(sqlite3.connect(uri, uri=True, isolation_level=None), str(path), 3)
    with pytest.raises(StoreError, match="not writable"):
        write(store, events(range(1)))


def health(state: str, last_seen: str) -> PipelineHealth:
    return PipelineHealth(
        state=state,
        target_rate=None,
        ingest_rate=10.0,
        queue_depth=0,
        lag_p50_ms=1.0,
        lag_p99_ms=2.0,
        emitted=3,
        stored=3,
        error=None,
        pipeline_id=f"host:1:{state}",
        host="host",
        pid=1,
        source="s.jsonl",
        started_at="2026-11-23T09:00:00.000Z",
        last_seen=last_seen,
    )


def test_positions_and_health_are_written_with_their_batch(db_path: Path) -> None:
    store = open_store(db_path)
    where = SourcePosition("file:/data/a.jsonl", '{"offset": 120}')
    store.write_batch(
        events(range(3)),
        [],
        "2026-11-23T10:00:00.000Z",
        Aggregator(None),
        positions=[where],
        health=health("running", "2026-11-23T10:00:00.000Z"),
    )
    assert store.position("file:/data/a.jsonl") == '{"offset": 120}'
    assert store.position("file:/other") is None
    assert store.positions() == [
        SourcePosition("file:/data/a.jsonl", '{"offset": 120}', "2026-11-23T10:00:00.000Z")
    ]
    store.put_health(health("stopped", "2026-11-23T10:00:01.000Z"))
    (running, stopped) = sorted(store.pipelines(NOW), key=lambda h: h.state)
    assert running.live and running.stored == 3 and running.source == "s.jsonl"
    assert not stopped.live  # ended
    assert not store.pipelines(NOW + 60)[0].live  # not heard from for a minute: gone
    store.close()


def test_a_batch_and_its_positions_are_stored_together_or_not_at_all(db_path: Path) -> None:
    store = open_store(db_path)
    broken = SourcePosition("file:/a", None)  # type: ignore[arg-type]  # NOT NULL fails
    with pytest.raises(StoreError):
        store.write_batch(
            events(range(5)),
            [],
            "2026-11-23T10:00:00.000Z",
            Aggregator(None),
            positions=[SourcePosition("file:/b", "7"), broken],
        )
    assert store.position("file:/b") is None and store.counters() == {}
    assert query(db_path, "SELECT count(*) FROM events") == [(0,)]
    store.close()


def test_read_only_opens_change_nothing_and_read_an_older_schema_as_it_is(
    db_path: Path,
) -> None:
    with sqlite3.connect(db_path) as old:
        for step in MIGRATIONS[:2]:
            old.executescript(step)
        old.execute("PRAGMA user_version = 2")
        old.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    reader = open_store(db_path, read_only=True)
    assert reader.pipelines(NOW) == [] and reader.positions() == []
    assert reader.counters() == {}
    reader.close()
    assert query(db_path, "PRAGMA user_version") == [(2,)]  # not migrated
