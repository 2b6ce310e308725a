"""The SQLite store: every statement the embedded default runs.

Raw events, dead letters and the catalogue are stored as they are; the metrics
read small aggregate tables that each batch updates in the same transaction as
its events, so a snapshot costs the same at 10 million events as at 100. The
sources' positions and the pipeline's health row go in that transaction too.
"""

from __future__ import annotations

import functools
import itertools
import json
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import tzinfo
from pathlib import Path
from typing import Any, Final, TypeVar
from urllib.parse import quote

from imdb_tui.catalog import Movie
from imdb_tui.events import Event, Rejection
from imdb_tui.health import PipelineHealth
from imdb_tui.store import (
    HEALTH_COLUMNS,
    HEALTH_COLUMNS_BEFORE_LAG,
    HEALTH_FIELDS,
    AggregateFn,
    Aggregates,
    BatchMark,
    DeadLetter,
    SourcePosition,
    StoreError,
    TopMovie,
    health_from_rows,
    health_row,
    marks,
    movie_of,
    next_minute,
    recent_cutoff,
)
from imdb_tui.store.queries import EVENTS_AFTER, NEWEST_MINUTE, OLDEST_HEADS, older_kind
from imdb_tui.store.writer import ProcessWriter, ThreadWriter, Writer
from imdb_tui.tail import TAIL_SCAN, EventMatch, Tail, TailEvent

WRITE_BUSY_SECONDS: Final = 0.5
"""A write waits this long for another program's lock, then fails and is retried by the
pipeline, which shows that it is waiting: at once, rather than after a silent stall."""
APPLICATION_ID: Final = 0x494D4442  # "IMDB", in the file header: this file is ours
MEMORY: Final = ":memory:"
T = TypeVar("T")

# Migration N takes a file from schema version N to N + 1 (PRAGMA user_version).
MIGRATIONS: Final = (
    """
    CREATE TABLE events (
        seq         INTEGER PRIMARY KEY,         -- ingest order
        event_id    TEXT NOT NULL UNIQUE,
        event_time  TEXT NOT NULL,               -- UTC, ISO-8601, milliseconds, Z
        user_id     TEXT NOT NULL,
        session_id  TEXT NOT NULL,
        movie_id    TEXT NOT NULL,
        event_type  TEXT NOT NULL,
        rating      INTEGER
    );
    CREATE INDEX events_by_time ON events (event_time);
    CREATE TABLE dead_letters (
        id          INTEGER PRIMARY KEY,
        received_at TEXT NOT NULL,               -- UTC, ISO-8601, milliseconds, Z
        reason      TEXT NOT NULL,
        raw         TEXT NOT NULL,               -- cut to 4096 characters
        raw_size    INTEGER NOT NULL             -- length before the cut
    );
    CREATE INDEX dead_letters_by_time ON dead_letters (received_at);
    CREATE TABLE movies (
        movie_id    TEXT PRIMARY KEY,
        title       TEXT NOT NULL,
        year        INTEGER,
        genres      TEXT NOT NULL                -- comma-separated
    ) WITHOUT ROWID;
    CREATE TABLE events_per_minute (
        minute      TEXT NOT NULL,               -- UTC, YYYY-MM-DDTHH:MMZ
        event_type  TEXT NOT NULL,
        events      INTEGER NOT NULL,
        PRIMARY KEY (minute, event_type)
    ) WITHOUT ROWID;
    CREATE TABLE events_per_quarter_hour (
        quarter     TEXT NOT NULL,               -- UTC start, YYYY-MM-DDTHH:MMZ (MM 00/15/30/45)
        event_type  TEXT NOT NULL,
        events      INTEGER NOT NULL,
        PRIMARY KEY (quarter, event_type)
    ) WITHOUT ROWID;
    CREATE TABLE movie_views_daily (
        day         TEXT NOT NULL,               -- local calendar day, YYYY-MM-DD
        movie_id    TEXT NOT NULL,
        views       INTEGER NOT NULL,
        PRIMARY KEY (day, movie_id)
    ) WITHOUT ROWID;
    CREATE TABLE user_activity (
        user_id     TEXT PRIMARY KEY,
        last_seen   TEXT NOT NULL                -- newest event_time of the user
    ) WITHOUT ROWID;
    CREATE TABLE counters (
        name        TEXT PRIMARY KEY,            -- events_total, duplicates, dead_letters
        value       INTEGER NOT NULL
    ) WITHOUT ROWID;
    """,
    # 2: IMDb's catalogue, kept once parsed: each movie's weight, and which files.
    """
    ALTER TABLE movies ADD COLUMN popularity REAL;   -- set for the kept IMDb catalogue
    CREATE TABLE catalog_source (
        id          INTEGER PRIMARY KEY CHECK (id = 1),
        files       TEXT NOT NULL,               -- each file's path, size and mtime
        skipped     INTEGER NOT NULL,            -- malformed rows left out
        rated       INTEGER NOT NULL             -- movies with a numVotes
    );
    """,
    # 3: where each source had been read to, committed with its batch; pipelines' health.
    """
    CREATE TABLE source_positions (
        source      TEXT PRIMARY KEY,            -- file:/abs/path, kinesis:stream/shard
        position    TEXT NOT NULL,               -- the source's own (JSON)
        updated_at  TEXT NOT NULL                -- UTC, ISO-8601, milliseconds, Z
    ) WITHOUT ROWID;
    CREATE TABLE pipelines (
        id          TEXT PRIMARY KEY,            -- host:pid:start
        host        TEXT NOT NULL,
        pid         INTEGER NOT NULL,
        state       TEXT NOT NULL,               -- running, paused, draining, finished, ...
        source      TEXT NOT NULL,
        target_rate REAL,                        -- NULL: unthrottled
        ingest_rate REAL NOT NULL,
        emitted     INTEGER NOT NULL,
        stored      INTEGER NOT NULL,
        queue       INTEGER NOT NULL,
        lag_p50_ms  REAL,
        lag_p99_ms  REAL,
        error       TEXT,
        stream_time INTEGER NOT NULL,            -- 1: metrics read at the newest event
        replay_speed REAL,
        as_of       REAL,                        -- where its metrics clock stands
        started_at  TEXT NOT NULL,
        last_seen   TEXT NOT NULL
    ) WITHOUT ROWID;
    """,
    # 4: how many users were last seen in each minute, kept with user_activity, so
    # "active users" and "users today" add up at most a day of minutes (not a row per
    # user); the index finds the users of the one minute a window starts inside.
    """
    CREATE INDEX user_activity_by_time ON user_activity (last_seen);
    CREATE TABLE users_per_last_minute (
        minute      TEXT PRIMARY KEY,            -- UTC, YYYY-MM-DDTHH:MMZ
        users       INTEGER NOT NULL             -- users whose newest event is in it
    ) WITHOUT ROWID;
    INSERT INTO users_per_last_minute
        SELECT substr(last_seen, 1, 16) || 'Z', count(*) FROM user_activity GROUP BY 1;
    """,
    # 5: leases on a stream's shards, for the pipelines of a consumer group.
    """
    CREATE TABLE leases (
        grp         TEXT NOT NULL,               -- the consumer group
        key         TEXT NOT NULL,               -- kinesis:stream/shard
        owner       TEXT NOT NULL,               -- host:pid:start of the pipeline
        expires     REAL NOT NULL,               -- epoch seconds
        PRIMARY KEY (grp, key)
    ) WITHOUT ROWID;
    """,
    # 6: how far behind its source a pipeline reads (a stream's MillisBehindLatest).
    """
    ALTER TABLE pipelines ADD COLUMN source_behind_ms REAL;
    """,
    # 7: ratings by local day, and by movie and day (counted from this version on:
    # a local day depends on the time zone of the pipeline that counts it).
    """
    CREATE TABLE ratings_daily (
        day         TEXT NOT NULL,               -- local calendar day, YYYY-MM-DD
        rating      INTEGER NOT NULL,            -- 1 to 10
        ratings     INTEGER NOT NULL,
        PRIMARY KEY (day, rating)
    ) WITHOUT ROWID;
    CREATE TABLE movie_ratings_daily (
        day         TEXT NOT NULL,
        movie_id    TEXT NOT NULL,
        rating      INTEGER NOT NULL,
        ratings     INTEGER NOT NULL,
        PRIMARY KEY (day, movie_id, rating)
    ) WITHOUT ROWID;
    """,
    # 8: views by movie and five-minute period, for trending (kept two hours).
    """
    CREATE TABLE recent_views (
        period      TEXT NOT NULL,               -- UTC start, YYYY-MM-DDTHH:MMZ (MM: 00, 05, ...)
        movie_id    TEXT NOT NULL,
        views       INTEGER NOT NULL,
        PRIMARY KEY (period, movie_id)
    ) WITHOUT ROWID;
    """,
    # 9: each movie's day (events by type, its users) and its views by minute.
    """
    CREATE TABLE movie_events_daily (
        day         TEXT NOT NULL,               -- local calendar day, YYYY-MM-DD
        movie_id    TEXT NOT NULL,
        event_type  TEXT NOT NULL,
        events      INTEGER NOT NULL,
        PRIMARY KEY (day, movie_id, event_type)
    ) WITHOUT ROWID;
    CREATE TABLE movie_users_daily (
        day         TEXT NOT NULL,               -- local calendar day, YYYY-MM-DD
        movie_id    TEXT NOT NULL,
        user_id     TEXT NOT NULL,
        PRIMARY KEY (day, movie_id, user_id)
    ) WITHOUT ROWID;
    CREATE TABLE movie_user_counts (             -- the rows above, counted
        day         TEXT NOT NULL,
        movie_id    TEXT NOT NULL,
        users       INTEGER NOT NULL,
        PRIMARY KEY (day, movie_id)
    ) WITHOUT ROWID;
    CREATE TABLE movie_views_per_minute (
        movie_id    TEXT NOT NULL,
        minute      TEXT NOT NULL,               -- UTC, YYYY-MM-DDTHH:MMZ
        views       INTEGER NOT NULL,
        PRIMARY KEY (movie_id, minute)
    ) WITHOUT ROWID;
    """,
    # 10: each local day's users, counted as their events come (for past days).
    """
    CREATE TABLE users_daily (
        day         TEXT PRIMARY KEY,            -- local calendar day, YYYY-MM-DD
        users       INTEGER NOT NULL             -- users with an event that day
    ) WITHOUT ROWID;
    """,
    # 11: a movie's users new to movie_users_daily wait here, a small table, and are
    # folded into it in bulk (see SqliteStore._fold_movie_users).
    """
    CREATE TABLE movie_users_pending (
        day         TEXT NOT NULL,
        movie_id    TEXT NOT NULL,
        user_id     TEXT NOT NULL,
        PRIMARY KEY (day, movie_id, user_id)
    ) WITHOUT ROWID;
    """,
    # 12: the marks of the batches committed, so a batch sent again after its writer
    # died is known and never stored twice (see store/marks.py).
    marks.TABLE + " WITHOUT ROWID;",
)
SCHEMA_VERSION: Final = len(MIGRATIONS)
_OUR_TABLES: Final = frozenset(
    {
        "events",
        "dead_letters",
        "movies",
        "events_per_minute",
        "events_per_quarter_hour",
        "movie_views_daily",
        "user_activity",
        "counters",
        "catalog_source",
        "source_positions",
        "pipelines",
        "users_per_last_minute",
        "leases",
        "ratings_daily",
        "movie_ratings_daily",
        "recent_views",
        "movie_events_daily",
        "movie_users_daily",
        "movie_user_counts",
        "movie_views_per_minute",
        "users_daily",
        "movie_users_pending",
        "batch_marks",
    }
)

_INSERT_EVENT: Final = (
    "INSERT OR IGNORE INTO events (event_id, event_time, user_id, session_id, movie_id,"
    " event_type, rating) VALUES "
)
# Aggregate upserts take their rows as one JSON array, so each is a single
# statement whatever the number of rows (see SqliteStore._upsert).
_UPSERT_PER_MINUTE: Final = (
    "INSERT INTO events_per_minute (minute, event_type, events)",
    " ON CONFLICT (minute, event_type) DO UPDATE SET events = events + excluded.events",
)
_UPSERT_PER_QUARTER_HOUR: Final = (
    "INSERT INTO events_per_quarter_hour (quarter, event_type, events)",
    " ON CONFLICT (quarter, event_type) DO UPDATE SET events = events + excluded.events",
)
_UPSERT_MOVIE_VIEWS: Final = (
    "INSERT INTO movie_views_daily (day, movie_id, views)",
    " ON CONFLICT (day, movie_id) DO UPDATE SET views = views + excluded.views",
)
_UPSERT_RECENT_VIEWS: Final = (
    "INSERT INTO recent_views (period, movie_id, views)",
    " ON CONFLICT (period, movie_id) DO UPDATE SET views = views + excluded.views",
)
_UPSERT_MOVIE_EVENTS: Final = (
    "INSERT INTO movie_events_daily (day, movie_id, event_type, events)",
    " ON CONFLICT (day, movie_id, event_type) DO UPDATE SET events = events + excluded.events",
)
_UPSERT_MOVIE_MINUTES: Final = (
    "INSERT INTO movie_views_per_minute (movie_id, minute, views)",
    " ON CONFLICT (movie_id, minute) DO UPDATE SET views = views + excluded.views",
)
# A batch's (day, movie, user) rows go in bound, as events do (no JSON to make and
# take apart). Those in neither movie_users_daily (looked up: reading its pages is
# cheap) nor the small movie_users_pending go to the latter and come back, to be
# counted. Written one batch at a time, movie_users_daily's rows would touch its
# pages all over in every commit; folded in bulk, each page is written once a fold.
_ADD_MOVIE_USERS: Final = (
    "INSERT INTO movie_users_pending (day, movie_id, user_id)"
    " SELECT v.column1, v.column2, v.column3 FROM (VALUES "
)
_NEW_MOVIE_USERS: Final = (
    ") AS v WHERE NOT EXISTS (SELECT 1 FROM movie_users_daily AS d WHERE d.day = v.column1"
    " AND d.movie_id = v.column2 AND d.user_id = v.column3)"
    " ON CONFLICT DO NOTHING RETURNING day, movie_id"
)
_FOLD_MOVIE_USERS: Final = (
    "INSERT INTO movie_users_daily (day, movie_id, user_id)"
    " SELECT * FROM movie_users_pending WHERE true ON CONFLICT DO NOTHING"
)
FOLD_ROWS: Final = 50_000
"""Pending movie-user rows folded at once."""
_UPSERT_MOVIE_USER_COUNTS: Final = (
    "INSERT INTO movie_user_counts (day, movie_id, users)",
    " ON CONFLICT (day, movie_id) DO UPDATE SET users = users + excluded.users",
)
_UPSERT_RATINGS: Final = (
    "INSERT INTO ratings_daily (day, rating, ratings)",
    " ON CONFLICT (day, rating) DO UPDATE SET ratings = ratings + excluded.ratings",
)
_UPSERT_MOVIE_RATINGS: Final = (
    "INSERT INTO movie_ratings_daily (day, movie_id, rating, ratings)",
    " ON CONFLICT (day, movie_id, rating) DO UPDATE SET ratings = ratings + excluded.ratings",
)
# A batch's users, [[user_id, newest event_time], ...] in one JSON array: first each
# user whose newest minute moves on leaves its old minute's count for the new one's,
# then user_activity takes the new times.
_SEEN: Final = (
    "WITH seen (user_id, last_seen) AS"
    " (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?))"
)
_MOVE_USERS: Final = (
    f"{_SEEN}, moved (new, old) AS ("  # noqa: S608 (constants)
    " SELECT substr(seen.last_seen, 1, 16) || 'Z', substr(u.last_seen, 1, 16) || 'Z'"
    " FROM seen LEFT JOIN user_activity AS u USING (user_id)"
    " WHERE u.last_seen IS NULL OR substr(seen.last_seen, 1, 16) > substr(u.last_seen, 1, 16))"
    " INSERT INTO users_per_last_minute (minute, users)"
    " SELECT minute, sum(step) FROM (SELECT new AS minute, 1 AS step FROM moved"
    " UNION ALL SELECT old, -1 FROM moved WHERE old IS NOT NULL)"
    " WHERE true GROUP BY minute"
    " ON CONFLICT (minute) DO UPDATE SET users = users + excluded.users"
)
_UPSERT_LAST_SEEN: Final = (
    f"{_SEEN} INSERT INTO user_activity (user_id, last_seen)"  # noqa: S608 (constants)
    " SELECT * FROM seen WHERE true"
    " ON CONFLICT (user_id) DO UPDATE SET last_seen = max(last_seen, excluded.last_seen)"
)
# A day's users in the batch, as one JSON array of ids: those the store has not seen
# since the day's start are new to the day (run before user_activity takes the batch).
_ADD_DAY_USERS: Final = (
    "INSERT INTO users_daily (day, users) SELECT ?, count(*)"
    " FROM json_each(?) AS b LEFT JOIN user_activity AS u ON u.user_id = b.value"
    " WHERE u.last_seen IS NULL OR u.last_seen < ?"
    " ON CONFLICT (day) DO UPDATE SET users = users + excluded.users"
)
_UPSERT_COUNTERS: Final = (
    "INSERT INTO counters (name, value)",
    " ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
)
_UPSERT_MOVIES: Final = (
    "INSERT INTO movies (movie_id, title, year, genres)",
    " ON CONFLICT (movie_id) DO UPDATE SET title = excluded.title, year = excluded.year,"
    " genres = excluded.genres",
)
_UPSERT_WEIGHED_MOVIES: Final = (
    "INSERT INTO movies (movie_id, title, year, genres, popularity)",
    " ON CONFLICT (movie_id) DO UPDATE SET title = excluded.title, year = excluded.year,"
    " genres = excluded.genres, popularity = excluded.popularity",
)
_WEIGH_MOVIES: Final = (
    "UPDATE movies SET popularity = json_extract(w.value, '$[1]') FROM json_each(?) AS w"
    " WHERE movies.movie_id = json_extract(w.value, '$[0]')"
)
_INSERT_DEAD_LETTER: Final = "INSERT INTO dead_letters (received_at, reason, raw, raw_size) VALUES "
_UPSERT_POSITIONS: Final = (
    "INSERT INTO source_positions (source, position, updated_at)",
    " ON CONFLICT (source) DO UPDATE SET position = excluded.position,"
    " updated_at = excluded.updated_at",
)
# The pipelines table's columns and the PipelineHealth field each holds, in one
# order kept here only: rows are written and read back by it.
_PUT_HEALTH: Final = (
    f"INSERT OR REPLACE INTO pipelines ({HEALTH_COLUMNS})"  # noqa: S608 (constants)
    f" VALUES ({', '.join('?' * len(HEALTH_FIELDS))})"
)


class SqliteStore:
    """One connection to an SQLite database. Use it from one thread at a time."""

    def __init__(self, connection: sqlite3.Connection, path: str, version: int) -> None:
        self._db = connection
        self.path = path
        self.name = path
        self._version = version
        self._variables = connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        self._row_bytes = {"events": 200, "dead_letters": 600}  # learned by _hold
        self.fold_rows = FOLD_ROWS

    @classmethod
    def open(cls, path: str | Path, *, create: bool = True) -> SqliteStore:
        """Open (or create) a database, upgrading an older schema to this one."""
        name = str(path)
        if name.startswith("file:"):
            raise StoreError(f"{name}: give --db a file path, not an SQLite URI")
        if name != MEMORY:
            file = Path(name)
            if not create and not file.exists():
                raise StoreError(f"no database at {name}")
            if file.is_dir():
                raise StoreError(f"{name} is a directory, not a database file")
            folder = file.parent
            if not folder.exists():
                raise StoreError(f"cannot create {name}: there is no folder {folder}")
            if not folder.is_dir():
                raise StoreError(f"cannot create {name}: {folder} is not a folder")
        try:
            connection = _connect(name, WRITE_BUSY_SECONDS)
        except sqlite3.Error as error:
            raise StoreError(f"cannot open {name}: {error}") from None
        store = cls(connection, name, SCHEMA_VERSION)
        try:
            store._prepare()
        except sqlite3.Error as error:
            connection.close()
            raise StoreError(_describe(error, name)) from None
        except StoreError:
            connection.close()
            raise
        return store

    @classmethod
    def open_read_only(cls, path: str | Path) -> SqliteStore:
        """Open an imdb-tui database to read it, changing nothing: no file is created,
        no schema written, no migration run (an older schema is read as it is)."""
        name = str(path)
        if name == MEMORY:
            raise StoreError(":memory: holds nothing to read: give the database file")
        file = Path(name)
        if not file.exists():
            raise StoreError(f"no database at {name}")
        if file.is_dir():
            raise StoreError(f"{name} is a directory, not a database file")
        try:
            connection = sqlite3.connect(
                f"file:{quote(str(file.resolve()))}?mode=ro",
                uri=True,
                isolation_level=None,
                check_same_thread=False,
                timeout=5.0,
            )
            application_id = connection.execute("PRAGMA application_id").fetchone()[0]
            version = connection.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.Error as error:
            raise StoreError(_describe(error, name)) from None
        if application_id != APPLICATION_ID or version < 1:
            connection.close()
            raise StoreError(f"{name} is not an imdb-tui database")
        if version > SCHEMA_VERSION:
            connection.close()
            raise StoreError(
                f"{name} has schema version {version}, newer than this imdb-tui"
                f" understands ({SCHEMA_VERSION}): upgrade imdb-tui"
            )
        return cls(connection, name, version)

    def reader(self) -> SqliteStore:
        """A second connection for reading while this one writes (the same one in memory)."""
        if self.path == MEMORY:
            return self
        try:
            connection = _connect(self.path)
            connection.execute("PRAGMA query_only = ON")
        except sqlite3.Error as error:
            raise StoreError(_describe(error, self.path)) from None
        return SqliteStore(connection, self.path, self._version)

    def writer(
        self,
        tz: tzinfo | None,
        separate_process: bool = True,
        thread: ThreadPoolExecutor | None = None,
    ) -> Writer:
        """A child process writing the file (if asked), else a thread writing this
        connection. `thread`, if given, is the thread a thread writer works on: shared
        with the snapshot reads of an in-memory database, whose one connection takes
        them in turn."""
        if separate_process and self.path != MEMORY:
            return ProcessWriter(functools.partial(type(self).open, self.path), tz)
        return ThreadWriter(self, tz, thread)

    def close(self) -> None:
        self._db.close()

    def another(self) -> SqliteStore | None:
        return None if self.path == MEMORY else SqliteStore.open(self.path)

    # Leases --------------------------------------------------------------------

    def lease_holders(self, group: str, now: float) -> dict[str, str]:
        rows = self._query(
            "SELECT key, owner FROM leases WHERE grp = ? AND expires > ?", (group, now)
        )
        return dict(rows)

    def take_lease(self, group: str, key: str, owner: str, until: float, now: float) -> bool:
        with self._transaction():
            changed = self._db.execute(
                "INSERT INTO leases (grp, key, owner, expires) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (grp, key) DO UPDATE SET owner = excluded.owner,"
                " expires = excluded.expires"
                " WHERE leases.owner = excluded.owner OR leases.expires <= ?",
                (group, key, owner, until, now),
            ).rowcount
        return bool(changed)

    def release_leases(self, group: str, owner: str, keys: Sequence[str]) -> None:
        with self._transaction():
            self._db.executemany(
                "UPDATE leases SET expires = 0 WHERE grp = ? AND key = ? AND owner = ?",
                [(group, key, owner) for key in keys],
            )

    def _prepare(self) -> None:
        """Check the file is ours (or new) before anything is written to it, then create
        or migrate the schema under the write lock, the version read again inside it:
        any number of runs started together on a new file all start."""
        db = self._db
        self._refuse_foreign()
        mode = _retry_busy(lambda: db.execute("PRAGMA journal_mode = WAL").fetchone()[0])
        if mode not in ("wal", "memory"):  # pragma: no cover - a file system without WAL
            raise StoreError(f"{self.path}: cannot switch to WAL mode (got {mode})")
        # WAL with synchronous=NORMAL: a crashed program loses nothing committed;
        # a power cut may lose the last few commits but never corrupts the file.
        db.execute("PRAGMA synchronous = NORMAL")
        # Taking the write lock now also fails a read-only file here, not at the first batch.
        _retry_busy(lambda: db.execute("BEGIN IMMEDIATE"))
        try:
            self._refuse_foreign()  # another program may have written it meanwhile
            version = db.execute("PRAGMA user_version").fetchone()[0]
            for step in range(version, SCHEMA_VERSION):
                for statement in _split_sql(MIGRATIONS[step]):
                    db.execute(statement)
            if version < SCHEMA_VERSION:
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            db.execute("COMMIT")
        finally:
            if db.in_transaction:
                db.execute("ROLLBACK")

    def _refuse_foreign(self) -> None:
        """A StoreError, changing nothing, unless the file is new or an imdb-tui database
        this version understands."""
        db = self._db
        application_id = db.execute("PRAGMA application_id").fetchone()[0]
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if application_id not in (0, APPLICATION_ID):
            raise StoreError(f"{self.path} is an SQLite database of another program")
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has schema version {version}, newer than this imdb-tui"
                f" understands ({SCHEMA_VERSION}): upgrade imdb-tui"
            )
        if application_id == 0:  # new, or written by another program (ours carry the id)
            tables = {
                row[0]
                for row in db.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'"
                    " AND name NOT LIKE 'sqlite%'"
                )
            }
            if tables - _OUR_TABLES:
                raise StoreError(f"{self.path} is an SQLite database of another program")

    # Writing -----------------------------------------------------------------

    def forget_catalog(self) -> None:
        """Drop the kept catalogue's marks before a new one is read (see `kept_catalog`);
        until `keep_catalog` is called at the end, no catalogue counts as kept."""
        with self._transaction():
            self._db.execute("DELETE FROM catalog_source")
            self._db.execute("UPDATE movies SET popularity = NULL WHERE popularity IS NOT NULL")

    def add_catalog_movies(self, movies: Sequence[Movie]) -> None:
        """Add a batch of the catalogue being read (its weights come with `weigh_...`)."""
        rows = [(m.movie_id, m.title, m.year, ",".join(m.genres), 0.0) for m in movies]
        with self._transaction():
            self._upsert(_UPSERT_WEIGHED_MOVIES, rows)

    def weigh_catalog_movies(self, weights: Iterable[tuple[str, float]]) -> None:
        """Set the popularity of the catalogue's movies, in one transaction."""
        pairs = iter(weights)
        with self._transaction():
            while rows := list(itertools.islice(pairs, 50_000)):
                self._db.execute(_WEIGH_MOVIES, (json.dumps(rows),))

    def keep_catalog(self, files: str, skipped: int, rated: int) -> None:
        """Mark the catalogue just read as kept, with the files it came from."""
        with self._transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO catalog_source (id, files, skipped, rated)"
                " VALUES (1, ?, ?, ?)",
                (files, skipped, rated),
            )

    def kept_catalog(self, files: str) -> tuple[int, int] | None:
        """If the kept catalogue came from exactly these files: its skipped and rated counts."""
        kept = self._query("SELECT skipped, rated FROM catalog_source WHERE files = ?", (files,))
        return (kept[0][0], kept[0][1]) if kept else None

    def catalog_weights(self) -> Iterator[tuple[str, float]]:
        """The kept catalogue's ids and weights, shortest ids first, then in id order:
        streamed, so a catalogue of a million movies never sits in memory as rows."""
        try:
            yield from self._db.execute(
                "SELECT movie_id, popularity FROM movies WHERE popularity IS NOT NULL"
                " ORDER BY length(movie_id), movie_id"
            )
        except sqlite3.Error as error:
            raise StoreError(_describe(error, self.path)) from None

    def save_movies(self, movies: Iterable[Movie]) -> None:
        """Add or refresh catalogue rows, so reports and queries can show titles."""
        rows = [(m.movie_id, m.title, m.year, ",".join(m.genres)) for m in movies]
        with self._transaction():
            self._upsert(_UPSERT_MOVIES, rows)

    def write_batch(
        self,
        events: Sequence[Event],
        rejections: Sequence[Rejection],
        received_at: str,
        aggregate: AggregateFn,
        aggregates: Aggregates | None = None,
        positions: Sequence[SourcePosition] = (),
        health: PipelineHealth | None = None,
        mark: BatchMark | None = None,
        max_bytes: int | None = None,
    ) -> list[Event]:
        """See BatchWriter.write_batch."""
        db = self._db
        with self._transaction():
            if mark is not None:  # under the write lock: no other writer is between
                marks.check(lambda sql, args: db.execute(sql, args).fetchone(), mark)
            stored: Sequence[Event] = events
            if self._insert(_INSERT_EVENT, events) != len(events):
                # Some ids were already stored, or came twice: undo, keep the new ones, redo.
                # (The events went first in this transaction, so a rollback undoes just them.)
                db.execute("ROLLBACK")
                db.execute("BEGIN IMMEDIATE")
                stored = self._new_events(events)
                self._insert(_INSERT_EVENT, stored)
            if aggregates is None or stored is not events:
                aggregates = aggregate(stored)
            self._add_aggregates(aggregates)
            self._insert(
                _INSERT_DEAD_LETTER,
                [(received_at, r.reason, r.raw, r.raw_size) for r in rejections],
            )
            self._add_counters(
                events_total=len(stored),
                duplicates=len(events) - len(stored),
                dead_letters=len(rejections),
            )
            if positions:
                self._upsert(
                    _UPSERT_POSITIONS, [(p.source, p.position, received_at) for p in positions]
                )
            if health is not None:
                db.execute(_PUT_HEALTH, health_row(health))
            if max_bytes is not None:
                self._hold(max_bytes)
            if mark is not None:
                db.execute(
                    marks.ADD,
                    (
                        mark.writer,
                        mark.number,
                        len(stored),
                        len(events) - len(stored),
                        len(rejections),
                        received_at,
                    ),
                )
                db.execute(*marks.trim(mark))
                marks.written(mark)
        return list(stored)

    def forget_writer(self, writer: str) -> None:
        with self._transaction():
            self._db.execute(marks.FORGET, (writer,))

    def put_health(self, health: PipelineHealth) -> None:
        with self._transaction():
            self._db.execute(_PUT_HEALTH, health_row(health))

    def _new_events(self, events: Sequence[Event]) -> list[Event]:
        """The events whose id is not stored yet, each id once, in order."""
        seen: set[str] = set()
        most = self._variables
        for start in range(0, len(events), most):
            ids = [event.event_id for event in events[start : start + most]]
            marks = ", ".join("?" * len(ids))
            sql = f"SELECT event_id FROM events WHERE event_id IN ({marks})"  # noqa: S608
            seen.update(row[0] for row in self._db.execute(sql, ids))
        new = []
        for event in events:
            if event.event_id not in seen:
                seen.add(event.event_id)
                new.append(event)
        return new

    def prune(self, before: str, limit: int) -> int:
        """Delete up to `limit` events (and dead letters) older than `before`; return how many."""
        db = self._db
        with self._transaction():
            deleted = db.execute(
                "DELETE FROM events WHERE seq IN (SELECT seq FROM events"
                " WHERE event_time < ? ORDER BY event_time LIMIT ?)",
                (before, limit),
            ).rowcount
            deleted += db.execute(
                "DELETE FROM dead_letters WHERE id IN (SELECT id FROM dead_letters"
                " WHERE received_at < ? ORDER BY received_at LIMIT ?)",
                (before, limit),
            ).rowcount
        return deleted

    def hold_size(self, limit: int) -> int:
        with self._transaction():
            return self._hold(limit)

    def _hold(self, limit: int) -> int:
        """In a transaction: delete the oldest raw rows, a step at a time, until the data
        in use is within `limit`. Freed pages are free at once, in the transaction."""
        db = self._db
        deleted = 0
        size = self.size_bytes()
        for _ in range(64):
            if size <= limit:
                break
            kind = older_kind(*db.execute(OLDEST_HEADS).fetchone())
            if kind is None:
                break  # no raw rows left: what remains is aggregates
            per_row = self._row_bytes[kind]
            rows = max(32, (size - limit) // per_row)
            if kind == "events":
                gone = db.execute(
                    "DELETE FROM events WHERE seq IN"
                    " (SELECT seq FROM events ORDER BY event_time LIMIT ?)",
                    (rows,),
                ).rowcount
            else:
                gone = db.execute(
                    "DELETE FROM dead_letters WHERE id IN"
                    " (SELECT id FROM dead_letters ORDER BY received_at, id LIMIT ?)",
                    (rows,),
                ).rowcount
            self._add_counters(**{f"pruned_{kind}": gone})
            deleted += gone
            before, size = size, self.size_bytes()
            if before > size and gone:  # learn the bytes a row frees; pages free in steps
                self._row_bytes[kind] = max(16, min(1 << 20, (before - size) // gone))
            elif gone:
                self._row_bytes[kind] = max(16, per_row // 2)  # none freed yet: larger steps
        return deleted

    def size_bytes(self) -> int:
        """Pages in use (the file's pages less its free list), in bytes: what pruning
        frees is reused, so the file stops growing at about this size."""
        pages, free, size = (
            self._query(f"PRAGMA {name}")[0][0]
            for name in ("page_count", "freelist_count", "page_size")
        )
        return int((pages - free) * size)

    def prune_aggregates(self, before: str) -> None:
        """Drop aggregate rows for times older than `before` (a small, bounded set)."""
        with self._transaction():
            self._db.execute("DELETE FROM events_per_minute WHERE minute < ?", (before[:16],))
            self._db.execute(
                "DELETE FROM events_per_quarter_hour WHERE quarter < ?", (before[:16],)
            )
            self._db.execute("DELETE FROM movie_views_daily WHERE day < ?", (before[:10],))
            self._db.execute("DELETE FROM ratings_daily WHERE day < ?", (before[:10],))
            self._db.execute("DELETE FROM movie_ratings_daily WHERE day < ?", (before[:10],))
            if self._version >= 8:
                newest = self._db.execute("SELECT max(period) FROM recent_views").fetchone()[0]
                if newest is not None:
                    kept = recent_cutoff(newest, before)
                    self._db.execute("DELETE FROM recent_views WHERE period < ?", (kept,))
                    if self._version >= 9:
                        self._db.execute(
                            "DELETE FROM movie_views_per_minute WHERE minute < ?", (kept,)
                        )
            if self._version >= 9:
                self._db.execute("DELETE FROM movie_events_daily WHERE day < ?", (before[:10],))
                self._db.execute("DELETE FROM movie_users_daily WHERE day < ?", (before[:10],))
                self._db.execute("DELETE FROM movie_user_counts WHERE day < ?", (before[:10],))
            if self._version >= 10:
                self._db.execute("DELETE FROM users_daily WHERE day < ?", (before[:10],))
            if self._version >= 11:
                self._db.execute("DELETE FROM movie_users_pending WHERE day < ?", (before[:10],))
            if self._version >= 12:  # marks a killed run left behind
                self._db.execute(marks.EXPIRE, (before,))
            # Whole minutes of users, so the per-minute counts stay their sums.
            self._db.execute("DELETE FROM user_activity WHERE last_seen < ?", (before[:16],))
            self._db.execute(
                "DELETE FROM users_per_last_minute WHERE minute < ?", (before[:16] + "Z",)
            )

    def _add_aggregates(self, aggregates: Aggregates) -> None:
        self._upsert(_UPSERT_PER_MINUTE, [(*key, n) for key, n in aggregates.per_minute.items()])
        self._upsert(
            _UPSERT_PER_QUARTER_HOUR,
            [(*key, n) for key, n in aggregates.per_quarter_hour.items()],
        )
        self._upsert(_UPSERT_MOVIE_VIEWS, [(*key, n) for key, n in aggregates.movie_views.items()])
        self._upsert(_UPSERT_RATINGS, [(*key, n) for key, n in aggregates.ratings.items()])
        self._upsert(
            _UPSERT_RECENT_VIEWS, [(*key, n) for key, n in aggregates.recent_views.items()]
        )
        self._upsert(
            _UPSERT_MOVIE_RATINGS, [(*key, n) for key, n in aggregates.movie_ratings.items()]
        )
        self._upsert(
            _UPSERT_MOVIE_EVENTS, [(*key, n) for key, n in aggregates.movie_events.items()]
        )
        if aggregates.movie_users:
            added: Counter[tuple[str, str]] = Counter()
            pairs = list(aggregates.movie_users)
            for cursor in self._statements(_ADD_MOVIE_USERS, pairs, _NEW_MOVIE_USERS):
                added.update(cursor.fetchall())
            self._upsert(_UPSERT_MOVIE_USER_COUNTS, [(*key, n) for key, n in added.items()])
            (pending,) = self._db.execute("SELECT count(*) FROM movie_users_pending").fetchone()
            if pending >= self.fold_rows:
                self._fold_movie_users()
        self._upsert(
            _UPSERT_MOVIE_MINUTES, [(*key, n) for key, n in aggregates.movie_minutes.items()]
        )
        for day, (start, users) in aggregates.user_days.items():
            self._db.execute(_ADD_DAY_USERS, (day, json.dumps(users, ensure_ascii=False), start))
        if aggregates.last_seen:
            seen = (json.dumps(list(aggregates.last_seen.items()), ensure_ascii=False),)
            self._db.execute(_MOVE_USERS, seen)
            self._db.execute(_UPSERT_LAST_SEEN, seen)

    def _fold_movie_users(self) -> None:
        """Move the pending movie-user rows (counted already) into movie_users_daily, in
        its key's order: a page of it written once a fold, not once a batch."""
        self._db.execute(_FOLD_MOVIE_USERS)
        self._db.execute("DELETE FROM movie_users_pending")

    def _add_counters(self, **deltas: int) -> None:
        self._upsert(_UPSERT_COUNTERS, [(name, n) for name, n in deltas.items() if n])

    def _upsert(self, sql: tuple[str, str], rows: Sequence[Sequence[object]]) -> None:
        """Run `head SELECT ... FROM json_each(?) tail` with all rows as one JSON array.

        One statement and one bound value however many rows: SQLite unpacks them
        with the GIL free. (The events themselves go through `_insert`: there are
        many more of them, and encoding them as JSON would cost more than binding.)
        """
        if rows:
            statement = _json_rows_sql(*sql, len(rows[0]))
            self._db.execute(statement, (json.dumps(rows, ensure_ascii=False),))

    def _insert(self, head: str, rows: Sequence[Sequence[object]]) -> int:
        """Run `head VALUES (...), (...)` over rows; return the rows changed.

        Many rows per statement, not executemany: binding them all at once and
        stepping once keeps the GIL free while SQLite works, which executemany
        (a bind and a step per row) does not. Rows go in statements as large as
        SQLite's limit on bound variables allows, a power of two in size, then
        the rest in power-of-two pieces: few statements (each hands the GIL
        back and forth), and few shapes of them, so the prepared-statement cache
        (a few MB per large statement) stops growing after the first batches.
        """
        return sum(cursor.rowcount for cursor in self._statements(head, rows))

    def _statements(
        self, head: str, rows: Sequence[Sequence[object]], tail: str = ""
    ) -> Iterator[sqlite3.Cursor]:
        """Run `head VALUES (...), (...) tail` over rows in the pieces `_insert` says."""
        if not rows:
            return
        width = len(rows[0])
        most = 1 << ((self._variables // width).bit_length() - 1)
        start = 0
        while start < len(rows):
            size = 1 << (min(len(rows) - start, most).bit_length() - 1)
            values = list(itertools.chain.from_iterable(rows[start : start + size]))
            yield self._db.execute(_values_sql(head, width, size) + tail, values)
            start += size

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db, self.path)

    # Reading -----------------------------------------------------------------

    def counters(self) -> dict[str, int]:
        return dict(self._query("SELECT name, value FROM counters"))

    def events_per_minute(self, since: str) -> list[tuple[str, int]]:
        """(minute, events of every type) from minute `since` (YYYY-MM-DDTHH:MMZ) on."""
        return self._query(
            "SELECT minute, sum(events) FROM events_per_minute WHERE minute >= ? GROUP BY minute",
            (since,),
        )

    def events_per_period(self, bounds: Sequence[str]) -> list[tuple[int, str, int]]:
        """(period, event_type, events), period i running from bounds[i] to bounds[i + 1].

        The bounds are minute keys on quarter hours, in order (a day's local hours:
        25 of them). Every time zone's offset is a whole number of quarter hours,
        so the quarter-hour table adds up to local hours exactly.
        """
        periods = ", ".join("(?, ?, ?)" for _ in bounds[1:])
        parameters = [v for i in range(len(bounds) - 1) for v in (i, bounds[i], bounds[i + 1])]
        return self._query(
            f"WITH periods (period, start, stop) AS (VALUES {periods})"  # noqa: S608
            " SELECT period, event_type, sum(events) FROM periods"
            " JOIN events_per_quarter_hour ON quarter >= start AND quarter < stop"
            " GROUP BY period, event_type",
            parameters,
        )

    def top_movies(self, day: str, limit: int) -> list[TopMovie]:
        rows = self._query(
            "SELECT v.movie_id, m.title, m.year, v.views FROM movie_views_daily AS v"
            " LEFT JOIN movies AS m ON m.movie_id = v.movie_id"
            " WHERE v.day = ? ORDER BY v.views DESC, v.movie_id LIMIT ?",
            (day, limit),
        )
        return [TopMovie(*row) for row in rows]

    def ratings(self, day: str) -> dict[int, int]:
        if self._version < 7:  # an older file read as it is: no ratings counted
            return {}
        return dict(self._query("SELECT rating, ratings FROM ratings_daily WHERE day = ?", (day,)))

    def movie_ratings(self, day: str, movie_ids: Sequence[str]) -> dict[str, dict[int, int]]:
        if self._version < 7 or not movie_ids:
            return {}
        found: dict[str, dict[int, int]] = {}
        for movie_id, rating, count in self._query(
            "SELECT movie_id, rating, ratings FROM movie_ratings_daily"
            " WHERE day = ? AND movie_id IN (SELECT value FROM json_each(?))",
            (day, json.dumps(list(movie_ids))),
        ):
            found.setdefault(movie_id, {})[rating] = count
        return found

    def views_per_period(self, bounds: Sequence[str]) -> list[tuple[int, str, int]]:
        if self._version < 8:
            return []
        # A range of the primary key each (a join on the ranges would scan the table).
        ranges = " UNION ALL ".join(
            f"SELECT {i}, movie_id, sum(views) FROM recent_views"  # noqa: S608 (numbers)
            " WHERE period >= ? AND period < ? GROUP BY movie_id"
            for i in range(len(bounds) - 1)
        )
        return self._query(ranges, [b for pair in itertools.pairwise(bounds) for b in pair])

    def titles(self, movie_ids: Sequence[str]) -> dict[str, tuple[str, int | None]]:
        rows = self._query(
            "SELECT movie_id, title, year FROM movies"
            " WHERE movie_id IN (SELECT value FROM json_each(?))",
            (json.dumps(list(movie_ids)),),
        )
        return {movie_id: (title, year) for movie_id, title, year in rows}

    def movie(self, movie_id: str) -> Movie | None:
        rows = self._query(
            "SELECT movie_id, title, year, genres FROM movies WHERE movie_id = ?", (movie_id,)
        )
        if not rows:
            return None
        return movie_of(*rows[0])

    def movie_events(self, day: str, movie_id: str) -> dict[str, int]:
        if self._version < 9:  # an older database read as it is: its views only
            return dict(
                self._query(
                    "SELECT 'view', views FROM movie_views_daily WHERE day = ? AND movie_id = ?",
                    (day, movie_id),
                )
            )
        return dict(
            self._query(
                "SELECT event_type, events FROM movie_events_daily WHERE day = ? AND movie_id = ?",
                (day, movie_id),
            )
        )

    def movie_users(self, day: str, movie_id: str) -> int:
        if self._version < 9:
            return 0
        return int(
            self._query(
                "SELECT coalesce(sum(users), 0) FROM movie_user_counts"
                " WHERE day = ? AND movie_id = ?",
                (day, movie_id),
            )[0][0]
        )

    def movie_views_per_minute(self, movie_id: str, since: str) -> list[tuple[str, int]]:
        if self._version < 9:
            return []
        return self._query(
            "SELECT minute, views FROM movie_views_per_minute WHERE movie_id = ? AND minute >= ?",
            (movie_id, since),
        )

    def newest_events(self, match: EventMatch, after: int, limit: int) -> Tail:
        newest = self._query("SELECT coalesce(max(seq), 0) FROM events")[0][0]
        rows = self._query(
            "SELECT e.seq, e.event_time, e.event_type, e.movie_id, m.title, e.user_id, e.rating"
            " FROM events AS e LEFT JOIN movies AS m ON m.movie_id = e.movie_id"
            " WHERE e.seq > ? AND (?2 IS NULL OR e.event_type = ?2)"
            " AND (?3 IS NULL OR e.movie_id = ?3) AND (?4 IS NULL OR e.user_id = ?4)"
            " AND NOT EXISTS (SELECT 1 FROM json_each(?5)"
            "  WHERE instr(lower(coalesce(m.title, e.movie_id)), value) = 0)"
            " ORDER BY e.seq DESC LIMIT ?6",
            (
                max(after, newest - TAIL_SCAN),
                match.event_type,
                match.movie_id,
                match.user_id,
                json.dumps(match.words),
                limit,
            ),
        )
        return Tail(newest, tuple(TailEvent(*row) for row in rows))

    def users_seen_since(self, *moments: str) -> list[int]:
        """For each moment, how many users have an event at or after it: the users last
        seen in the minutes after the moment's, and those of its own minute found one
        by one (by index), so the count is exact to the millisecond."""
        if self._version < 4:  # an older file read as it is: one row per user
            columns = ", ".join("count(*) FILTER (WHERE last_seen >= ?)" for _ in moments)
            return list(self._query(f"SELECT {columns} FROM user_activity", moments)[0])  # noqa: S608
        return [
            self._query(
                "SELECT (SELECT coalesce(sum(users), 0) FROM users_per_last_minute"
                " WHERE minute > ?) + (SELECT count(*) FROM user_activity"
                " WHERE last_seen >= ? AND last_seen < ?)",
                (moment[:16] + "Z", moment, next_minute(moment)),
            )[0][0]
            for moment in moments
        ]

    def users_on(self, day: str) -> int | None:
        if self._version < 10:
            return None
        rows = self._query("SELECT users FROM users_daily WHERE day = ?", (day,))
        return int(rows[0][0]) if rows else None

    def first_quarter_hour(self) -> str | None:
        first: str | None = self._query("SELECT min(quarter) FROM events_per_quarter_hour")[0][0]
        return first

    def dead_letters(self, limit: int) -> list[DeadLetter]:
        rows = self._query(
            "SELECT received_at, reason, raw, raw_size FROM dead_letters ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        return [DeadLetter(*row) for row in rows]

    def newest_event_time(self) -> str | None:
        """The latest event_time of the events kept (canonical), if any."""
        rows = self._query("SELECT max(event_time) FROM events")
        return rows[0][0] if rows else None

    def newest_minute(self) -> str | None:
        newest = self._query(NEWEST_MINUTE)[0][0]
        return None if newest is None else str(newest)

    def events_after(self, moment: str, limit: int) -> int:
        return int(self._query(EVENTS_AFTER, (moment, limit))[0][0])

    def count_events(self) -> int:
        """Raw events stored now (after retention), by counting rows: slow on big files."""
        count: int = self._query("SELECT count(*) FROM events")[0][0]
        return count

    def pipelines(self, now: float) -> list[PipelineHealth]:
        if self._version < 3:  # read as it is: an older file has no health rows
            return []
        columns = HEALTH_COLUMNS if self._version >= 6 else HEALTH_COLUMNS_BEFORE_LAG
        rows = self._query(
            f"SELECT {columns} FROM pipelines ORDER BY last_seen DESC, id"  # noqa: S608
        )
        return health_from_rows(rows, now)

    def positions(self) -> list[SourcePosition]:
        if self._version < 3:
            return []
        rows = self._query(
            "SELECT source, position, updated_at FROM source_positions ORDER BY source"
        )
        return [SourcePosition(*row) for row in rows]

    def position(self, source: str) -> str | None:
        if self._version < 3:
            return None
        rows = self._query("SELECT position FROM source_positions WHERE source = ?", (source,))
        return rows[0][0] if rows else None

    def _query(self, sql: str, parameters: Sequence[object] = ()) -> list[Any]:
        try:
            return self._db.execute(sql, parameters).fetchall()
        except sqlite3.Error as error:
            raise StoreError(_describe(error, self.path)) from None


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK and a StoreError."""

    def __init__(self, db: sqlite3.Connection, path: str) -> None:
        self._db = db
        self._path = path

    def __enter__(self) -> None:
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as error:
            raise StoreError(_describe(error, self._path)) from None

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, _: object
    ) -> None:
        if kind is None:
            try:
                self._db.execute("COMMIT")
                return
            except sqlite3.Error as commit_error:
                error = commit_error
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")
        if isinstance(error, sqlite3.Error):
            raise StoreError(_describe(error, self._path)) from None


@functools.cache
def _values_sql(head: str, width: int, rows: int) -> str:
    """`head` followed by `rows` groups of `width` placeholders (a few shapes: see _insert)."""
    row = "(" + ", ".join("?" * width) + ")"
    return head + ", ".join([row] * rows)


@functools.cache
def _json_rows_sql(head: str, tail: str, width: int) -> str:
    """`head SELECT <width columns> FROM json_each(?) tail`: every row in one bound JSON array."""
    columns = ", ".join(f"json_extract(value, '$[{i}]')" for i in range(width))
    # "WHERE true" tells SQLite the ON CONFLICT belongs to the INSERT.
    return f"{head} SELECT {columns} FROM json_each(?) WHERE true{tail}"  # noqa: S608 (constants)


def _split_sql(script: str) -> list[str]:
    """A script's statements, one by one (executescript would commit the transaction)."""
    statements, pending = [], ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                statements.append(pending)
            pending = ""
    return statements


def _retry_busy(work: Callable[[], T], seconds: float = 30.0) -> T:
    """`work`, tried again while another program holds the lock it needs (runs started
    together on a new file take turns), up to `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return work()
        except sqlite3.OperationalError as error:
            text = str(error)
            if ("locked" not in text and "busy" not in text) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _connect(path: str, busy: float = 5.0) -> sqlite3.Connection:
    """`busy`: how long a statement waits for another program's lock before it fails."""
    return sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=busy, cached_statements=256
    )


def _describe(error: sqlite3.Error, path: str) -> str:
    """One line saying what went wrong with the database at `path`."""
    text = str(error)
    if "file is not a database" in text or "file is encrypted" in text:
        return f"{path} is not an SQLite database"
    if "readonly" in text or "read-only" in text:
        return f"{path} is not writable"
    if "unable to open" in text:
        return f"cannot open {path}: check that the folder exists and is writable"
    if "locked" in text or "busy" in text:
        return f"{path} is locked by another program"
    if "disk is full" in text or "database or disk is full" in text:
        return f"the disk holding {path} is full"
    return f"{path}: {text}"
