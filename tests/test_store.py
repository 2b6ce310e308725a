"""The SQLite store: schema versions, foreign files, dedupe and retention."""

from __future__ import annotations

import json
import random
import sqlite3
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from imdb_tui.clock import ManualClock
from imdb_tui.events import Event, validate
from imdb_tui.store import StoreError, open_store
from imdb_tui.store.dialect import (
    SQLITE_DIALECT,
    SqliteDialect,
    millis,
    packed_id,
    packed_ids,
)
from imdb_tui.store.model import Kind
from imdb_tui.store.sqlite import APPLICATION_ID, SCHEMA_VERSION, SqliteStore
from tests.conftest import NOW, event
from tests.helpers import events, older_file, query, schema_at, write


def test_a_new_file_gets_the_current_schema_in_wal_mode(db_path: Path) -> None:
    open_store(db_path).close()
    assert query(db_path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert query(db_path, "PRAGMA application_id") == [(APPLICATION_ID,)]
    assert query(db_path, "PRAGMA journal_mode") == [("wal",)]


@pytest.mark.parametrize("version", range(SCHEMA_VERSION))
def test_an_older_file_is_upgraded_and_keeps_its_data(db_path: Path, version: int) -> None:
    with sqlite3.connect(db_path) as old:
        for statement in schema_at(version):
            old.execute(statement)
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


def test_a_read_only_database_is_reported(tmp_path: Path, clock: ManualClock) -> None:
    path = tmp_path / "ro.db"
    open_store(path).close()
    uri = f"file:{path}?mode=ro"
    store = SqliteStore(sqlite3.connect(uri, uri=True, isolation_level=None), str(path), 3)
    with pytest.raises(StoreError, match="not writable"):
        write(store, events(range(1)))


def test_read_only_opens_change_nothing_and_read_an_older_schema_as_it_is(
    db_path: Path,
) -> None:
    older_file(db_path, 2).close()
    reader = open_store(db_path, read_only=True)
    assert reader.pipelines(NOW) == [] and reader.positions() == []
    assert reader.counters() == {}
    assert reader.ratings("2026-11-23") == {} and reader.movie_ratings("2026-11-23", ["tt1"]) == {}
    assert reader.views_per_period(["2026-11-23T10:00Z", "2026-11-23T10:05Z"]) == []
    assert reader.users_on("2026-11-22") is None  # not counted then: unknown, not 0
    reader.close()
    assert query(db_path, "PRAGMA user_version") == [(2,)]  # not migrated


def test_a_movies_day_in_an_older_file_read_as_it_is_has_its_views(db_path: Path) -> None:
    """Before schema 9 a movie's day was not counted by type, nor its users: its views
    come from the daily views, so they agree with Top movies."""
    with older_file(db_path, 8) as old:
        old.execute("INSERT INTO movie_views_daily VALUES ('2026-11-23', 'tt1', 42)")
    reader = open_store(db_path, read_only=True)
    assert reader.movie_events("2026-11-23", "tt1") == {"view": 42}
    assert reader.movie_users("2026-11-23", "tt1") == 0
    assert reader.movie_views_per_minute("tt1", "2026-11-23T09:00Z") == []
    reader.close()
    assert query(db_path, "PRAGMA user_version") == [(8,)]  # not migrated


def test_an_older_file_read_as_it_is_shows_its_pipelines_without_the_lag(
    db_path: Path,
) -> None:
    with older_file(db_path, 5) as old:
        old.execute(
            "INSERT INTO pipelines VALUES ('h:1:s', 'h', 1, 'stopped', 'a.jsonl', NULL, 1.0,"
            " 3, 3, 0, NULL, NULL, NULL, 0, NULL, NULL, '2026-11-23T09:00:00.000Z',"
            " '2026-11-23T09:00:00.000Z')"
        )
    reader = open_store(db_path, read_only=True)
    (health,) = reader.pipelines(NOW)
    assert health.source == "a.jsonl" and health.source_behind_ms is None
    reader.close()
    assert query(db_path, "PRAGMA user_version") == [(5,)]  # not migrated


def test_a_movies_users_are_the_same_before_and_after_their_rows_are_folded(
    db_path: Path,
) -> None:
    """A movie's users come in appended and are folded into their table now and then:
    read at every commit, folded or not, they are a recount of the events."""
    store = open_store(db_path)
    assert isinstance(store, SqliteStore)
    store.fold_rows = 60  # a fold every few batches
    seen: dict[str, set[str]] = {}
    pending_seen, folded_seen = False, False
    for batch in range(12):
        numbers = range(batch * 40, batch * 40 + 40)
        stored = [
            validate(event(n, user_id=f"u{(n * 7) % 53}", movie_id=f"tt{1 + n % 3:07d}"))
            for n in numbers
        ]
        write(store, stored)  # type: ignore[arg-type]
        for e in stored:
            seen.setdefault(e.movie_id, set()).add(e.user_id)  # type: ignore[union-attr]
        for movie_id, users in seen.items():
            assert store.movie_users("2026-11-23", movie_id) == len(users)
        (pending,) = query(db_path, "SELECT count(*) FROM movie_users_pending")[0]
        (folded,) = query(db_path, "SELECT count(*) FROM movie_users_daily")[0]
        pending_seen |= pending > 0
        folded_seen |= folded > 0
        assert pending < 60 + 40  # folded once past the mark
    assert pending_seen and folded_seen
    store.close()


def test_the_wal_shrinks_back_once_a_long_reader_ends(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader holding a read transaction (the sqlite3 shell, a BI tool) keeps the
    checkpoints from getting past it, and the WAL grows; once it ends, the WAL starts
    again cut back to its kept size, instead of staying at its peak (bench/wal.py:
    508 MB ten seconds after a 15 s reader, then 67 MB)."""
    monkeypatch.setattr("imdb_tui.store.sqlite.WAL_KEPT", 256 * 1024)
    wal = Path(f"{db_path}-wal")
    store = open_store(db_path)
    reader = sqlite3.connect(db_path)
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM events").fetchone()  # a snapshot held
        for start in range(0, 30_000, 2_000):
            write(store, events(range(start, start + 2_000)))
        grown = wal.stat().st_size
        assert grown > 4 * 1024 * 1024  # past the automatic checkpoint's 1,000 pages
        reader.execute("COMMIT")
        for start in range(30_000, 36_000, 2_000):  # a checkpoint, then the WAL anew
            write(store, events(range(start, start + 2_000)))
        assert wal.stat().st_size < grown / 4
    finally:
        reader.close()
        store.close()
    assert query(db_path, "SELECT count(*) FROM events") == [(36_000,)]


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
UUIDS = [f"01a252a8-540a-701e-8e82-6172c34f{n:04x}" for n in range(3)]


def _uuid_events(moment: str = "2026-11-23T10:00:00.042Z") -> list[Event]:
    made = [validate(event(n, event_id=i, event_time=moment)) for n, i in enumerate(UUIDS)]
    return [*made, *events(range(3, 4))]  # type: ignore[list-item]


def _schema_15_with(db_path: Path, stored: list[Event]) -> None:
    """A file of schema 15 (ids and times as text) holding these events."""
    with older_file(db_path, 15) as old:
        old.executemany(
            "INSERT INTO events (event_id, event_time, user_id, session_id, movie_id,"
            " event_type) VALUES (?, ?, ?, ?, ?, ?)",
            [(e.event_id, e.event_time, *e[2:6]) for e in stored],
        )


def test_a_uuid_event_id_takes_16_bytes_and_a_time_an_integer_yet_people_read_text(
    db_path: Path,
) -> None:
    store = open_store(db_path)
    write(store, _uuid_events())
    store.close()
    assert query(
        db_path, "SELECT typeof(event_id), length(event_id), event_time FROM events ORDER BY seq"
    ) == [("blob", 16, 1_795_428_000_042)] * 3 + [("text", 12, 1_795_428_000_000)]
    assert query(db_path, "SELECT event_id, event_time FROM events_with_titles ORDER BY seq") == [
        *((i, "2026-11-23T10:00:00.042Z") for i in UUIDS),
        ("evt-00000003", "2026-11-23T10:00:00.000Z"),
    ]


def test_an_older_files_events_are_packed_when_upgraded_and_still_found_as_duplicates(
    db_path: Path,
) -> None:
    _schema_15_with(db_path, _uuid_events())
    reader = open_store(db_path, read_only=True)  # read as it is
    before = list(reader.events_between("2026-11-23", "2026-11-24", 10))
    reader.close()
    assert (
        query(db_path, "SELECT typeof(event_id), typeof(event_time) FROM events")
        == [("text", "text")] * 4
    )
    store = open_store(db_path)  # upgraded
    assert query(db_path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert list(store.events_between("2026-11-23", "2026-11-24", 10)) == before
    assert sorted(query(db_path, "SELECT typeof(event_id), typeof(event_time) FROM events")) == [
        ("blob", "integer")
    ] * 3 + [("text", "integer")]
    assert write(store, _uuid_events()) == []  # each already stored
    assert store.counters()["duplicates"] == 4
    store.close()


def test_a_run_says_before_it_rewrites_an_older_files_events(db_path: Path) -> None:
    """Millions of events take a minute or more to rewrite: the user is told first."""
    _schema_15_with(db_path, _uuid_events())
    empty = db_path.with_name("empty.jsonl")
    empty.write_text("")
    command = [str(Path(sys.executable).with_name("imdb-tui")), "run", "--source", str(empty)]
    first = subprocess.run([*command, "--db", str(db_path)], capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert f"imdb-tui: upgrading {db_path}: events in fewer bytes" in first.stderr
    assert "rewriting its 4 events once (stopping leaves the file as it was)" in first.stderr
    again = subprocess.run([*command, "--db", str(db_path)], capture_output=True, text=True)
    assert again.returncode == 0 and "upgrading" not in again.stderr
    assert query(db_path, "SELECT count(*) FROM events_with_titles") == [(4,)]


def test_an_upgrade_stopped_after_the_rewrite_leaves_the_file_as_it_was(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rewrite is in the upgrade's one transaction: a failure (as a kill, a full
    disk) after it leaves the older file whole, and the next start upgrades it."""
    _schema_15_with(db_path, _uuid_events())
    migration = SqliteDialect.migration

    def failing(dialect: SqliteDialect, version: int) -> list[str]:
        return [*migration(dialect, version), "SELECT no_such_function()"]

    monkeypatch.setattr(SqliteDialect, "migration", failing)
    with pytest.raises(StoreError):
        open_store(db_path)
    assert query(db_path, "PRAGMA user_version") == [(15,)]
    assert (
        query(db_path, "SELECT typeof(event_id), typeof(event_time) FROM events")
        == [("text", "text")] * 4
    )
    monkeypatch.setattr(SqliteDialect, "migration", migration)
    open_store(db_path).close()
    assert query(db_path, "SELECT count(*) FROM events_with_titles") == [(4,)]


def test_an_upgrade_on_a_full_disk_says_how_much_room_it_needs(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _schema_15_with(db_path, events(range(4000)))
    (pages,) = query(db_path, "PRAGMA page_count")[0]
    migration = SqliteDialect.migration

    def full(dialect: SqliteDialect, version: int) -> list[str]:  # no room for the rewrite
        return [f"PRAGMA max_page_count = {pages + 2}", *migration(dialect, version)]

    monkeypatch.setattr(SqliteDialect, "migration", full)
    with pytest.raises(StoreError) as error:
        open_store(db_path)
    assert str(error.value) == (
        f"the disk holding {db_path} is full: upgrading it rewrites its events, and needs"
        " about 1 MB free to do so"
    )
    assert query(db_path, "PRAGMA user_version") == [(15,)]


def test_every_millisecond_comes_back_as_it_went_in() -> None:
    """Times go in as text, are kept as milliseconds and come back as text: exact,
    through SQLite's own date functions, at every millisecond of a second and over
    a century of random instants."""
    rng = random.Random(7)
    base = datetime(2000, 1, 1, tzinfo=UTC)
    moments = [
        base + timedelta(milliseconds=rng.randrange(100 * 365 * 86_400_000)) for _ in range(5000)
    ]
    moments += [base + timedelta(days=9_000, milliseconds=n) for n in range(1000)]
    texts = [m.strftime("%Y-%m-%dT%H:%M:%S.") + f"{m.microsecond // 1000:03d}Z" for m in moments]
    db = sqlite3.connect(":memory:")
    back = db.execute(
        f"SELECT {SQLITE_DIALECT.out(Kind.MILLIS, millis('value'))} FROM json_each(?)",  # noqa: S608
        (json.dumps(texts),),
    ).fetchall()
    assert [row[0] for row in back] == texts
    kept = db.execute(f"SELECT {millis('value')} FROM json_each(?)", (json.dumps(texts),))  # noqa: S608
    assert [row[0] for row in kept] == [(m - EPOCH) // timedelta(milliseconds=1) for m in moments]


def test_a_batch_of_ids_is_packed_whole_only_when_each_id_is_a_canonical_uuid() -> None:
    """The whole-batch check agrees with the one-id check on every batch, even those
    whose ids, run together, would read as canonical UUIDs."""
    rng = random.Random(3)
    canonical = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(50)]
    a, b = canonical[0], canonical[1]
    hostile = [
        [a + b[0], b[1:]],  # 37 and 35 characters: together, two UUIDs
        [a.upper(), b],
        [a[:8] + "-" + a[9:], b],
        [a.replace("-", "") + "abcd", b],  # 36 characters, no hyphens
        [a[:35] + " ", b],
        [a[:20] + "--" + a[22:], b],
        [a[:35] + "g", b],
        ["evt-1", b],
        [],
    ]
    for batch in [canonical, *hostile]:
        for cut in range(len(batch) + 1):
            ids = batch[:cut] + canonical[:3] + batch[cut:]
            assert packed_ids(ids) == [packed_id(i) for i in ids]
    assert all(len(p) == 16 and isinstance(p, bytes) for p in packed_ids(canonical))
