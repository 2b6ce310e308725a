"""The PostgreSQL store: one database shared by many pipelines and many viewers.

Every statement PostgreSQL runs is here. The tables live in a schema of their own
(`imdb_tui` unless told otherwise), so they can share a database; they hold what
SQLite's do, with times as the same canonical UTC text, so the same events give
the same figures on either backend.

Many writers at once: an event id is stored once (the unique index settles a
race between two writers: the second waits for the first to commit, then skips
it), every aggregate is an upsert adding to the stored value, rows are locked in
sorted order, and a transaction that still meets a deadlock or a serialization
failure is run again, whole, here. A lost connection fails the call with a
StoreError and is opened again at the next one: the pipeline retries the batch,
and the unique event ids make a batch that did commit before the line dropped
count once.

psycopg 3 is imported only when a PostgreSQL URL is used (`pip install
'imdb-tui[postgres]'`).
"""

from __future__ import annotations

import functools
import itertools
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import tzinfo
from typing import TYPE_CHECKING, Any, Final, TypeVar

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

if TYPE_CHECKING:
    import psycopg

DEFAULT_SCHEMA: Final = "imdb_tui"
RETRIES: Final = 20
"""Times a transaction is run again after a deadlock or serialization failure."""
_URL: Final = re.compile(r"postgres(?:ql)?://", re.IGNORECASE)
_KEYWORDS: Final = re.compile(r"^\s*[a-z_]+\s*=", re.IGNORECASE)
_SCHEMA_NAME: Final = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_LOCK: Final = 0x494D4442  # advisory lock held while the schema is created or migrated

# Migration N takes a schema from version N to N + 1 (kept in the table `meta`).
MIGRATIONS: Final = (
    """
    CREATE TABLE events (
        seq         bigserial PRIMARY KEY,       -- ingest order
        event_id    text NOT NULL UNIQUE,
        event_time  text NOT NULL,               -- UTC, ISO-8601, milliseconds, Z
        user_id     text NOT NULL,
        session_id  text NOT NULL,
        movie_id    text NOT NULL,
        event_type  text NOT NULL,
        rating      integer
    );
    CREATE INDEX events_by_time ON events (event_time);
    CREATE TABLE dead_letters (
        id          bigserial PRIMARY KEY,
        received_at text NOT NULL,
        reason      text NOT NULL,
        raw         text NOT NULL,               -- cut to 4096 characters
        raw_size    integer NOT NULL             -- length before the cut
    );
    CREATE INDEX dead_letters_by_time ON dead_letters (received_at);
    CREATE TABLE movies (
        movie_id    text PRIMARY KEY,
        title       text NOT NULL,
        year        integer,
        genres      text NOT NULL,               -- comma-separated
        popularity  double precision             -- set for the kept IMDb catalogue
    );
    CREATE TABLE catalog_source (
        id          integer PRIMARY KEY CHECK (id = 1),
        files       text NOT NULL,
        skipped     integer NOT NULL,
        rated       integer NOT NULL
    );
    CREATE TABLE events_per_minute (
        minute      text NOT NULL,               -- UTC, YYYY-MM-DDTHH:MMZ
        event_type  text NOT NULL,
        events      bigint NOT NULL,
        PRIMARY KEY (minute, event_type)
    );
    CREATE TABLE events_per_quarter_hour (
        quarter     text NOT NULL,
        event_type  text NOT NULL,
        events      bigint NOT NULL,
        PRIMARY KEY (quarter, event_type)
    );
    CREATE TABLE movie_views_daily (
        day         text NOT NULL,               -- local calendar day, YYYY-MM-DD
        movie_id    text NOT NULL,
        views       bigint NOT NULL,
        PRIMARY KEY (day, movie_id)
    );
    CREATE TABLE user_activity (
        user_id     text PRIMARY KEY,
        last_seen   text NOT NULL,               -- newest event_time of the user
        previous_seen text                       -- what last_seen was before the last write
    );
    CREATE INDEX user_activity_by_time ON user_activity (last_seen);
    CREATE TABLE users_per_last_minute (
        minute      text PRIMARY KEY,            -- UTC, YYYY-MM-DDTHH:MMZ
        users       bigint NOT NULL              -- users whose newest event is in it
    );
    CREATE TABLE counters (
        name        text PRIMARY KEY,            -- events_total, duplicates, dead_letters
        value       bigint NOT NULL
    );
    CREATE TABLE source_positions (
        source      text PRIMARY KEY,
        position    text NOT NULL,
        updated_at  text NOT NULL
    );
    CREATE TABLE pipelines (
        id          text PRIMARY KEY,            -- host:pid:start
        host        text NOT NULL,
        pid         integer NOT NULL,
        state       text NOT NULL,
        source      text NOT NULL,
        target_rate double precision,
        ingest_rate double precision NOT NULL,
        emitted     bigint NOT NULL,
        stored      bigint NOT NULL,
        queue       bigint NOT NULL,
        lag_p50_ms  double precision,
        lag_p99_ms  double precision,
        error       text,
        stream_time boolean NOT NULL,
        replay_speed double precision,
        as_of       double precision,
        started_at  text NOT NULL,
        last_seen   text NOT NULL
    );
    """,
    # 2: leases on a stream's shards, for the pipelines of a consumer group.
    """
    CREATE TABLE leases (
        grp         text NOT NULL,               -- the consumer group
        key         text NOT NULL,               -- kinesis:stream/shard
        owner       text NOT NULL,               -- host:pid:start of the pipeline
        expires     double precision NOT NULL,   -- epoch seconds
        PRIMARY KEY (grp, key)
    );
    """,
    # 3: how far behind its source a pipeline reads (a stream's MillisBehindLatest).
    """
    ALTER TABLE pipelines ADD COLUMN source_behind_ms double precision;
    """,
    # 4: ratings by local day, and by movie and day (counted from this version on).
    """
    CREATE TABLE ratings_daily (
        day         text NOT NULL,               -- local calendar day, YYYY-MM-DD
        rating      integer NOT NULL,            -- 1 to 10
        ratings     bigint NOT NULL,
        PRIMARY KEY (day, rating)
    );
    CREATE TABLE movie_ratings_daily (
        day         text NOT NULL,
        movie_id    text NOT NULL,
        rating      integer NOT NULL,
        ratings     bigint NOT NULL,
        PRIMARY KEY (day, movie_id, rating)
    );
    """,
    # 5: views by movie and five-minute period, for trending (kept two hours).
    """
    CREATE TABLE recent_views (
        period      text NOT NULL,               -- UTC start, YYYY-MM-DDTHH:MMZ (MM: 00, 05, ...)
        movie_id    text NOT NULL,
        views       bigint NOT NULL,
        PRIMARY KEY (period, movie_id)
    );
    """,
    # 6: each movie's day (events by type, its users) and its views by minute.
    """
    CREATE TABLE movie_events_daily (
        day         text NOT NULL,               -- local calendar day, YYYY-MM-DD
        movie_id    text NOT NULL,
        event_type  text NOT NULL,
        events      bigint NOT NULL,
        PRIMARY KEY (day, movie_id, event_type)
    );
    CREATE TABLE movie_users_daily (
        day         text NOT NULL,               -- local calendar day, YYYY-MM-DD
        movie_id    text NOT NULL,
        user_id     text NOT NULL,
        PRIMARY KEY (day, movie_id, user_id)
    );
    CREATE TABLE movie_user_counts (             -- the rows above, counted
        day         text NOT NULL,
        movie_id    text NOT NULL,
        users       bigint NOT NULL,
        PRIMARY KEY (day, movie_id)
    );
    CREATE TABLE movie_views_per_minute (
        movie_id    text NOT NULL,
        minute      text NOT NULL,               -- UTC, YYYY-MM-DDTHH:MMZ
        views       bigint NOT NULL,
        PRIMARY KEY (movie_id, minute)
    );
    """,
    # 7: each local day's users, counted as their events come (for past days).
    """
    CREATE TABLE users_daily (
        day         text PRIMARY KEY,            -- local calendar day, YYYY-MM-DD
        users       bigint NOT NULL              -- users with an event that day
    );
    """,
    # 8: the marks of the batches committed, so a batch sent again after its writer
    # died is known and never stored twice (see store/marks.py).
    marks.TABLE,
)
SCHEMA_VERSION: Final = len(MIGRATIONS)

_PUT_HEALTH: Final = (
    f"INSERT INTO pipelines ({HEALTH_COLUMNS})"  # noqa: S608 (constants)
    f" VALUES ({', '.join(['%s'] * len(HEALTH_FIELDS))}) ON CONFLICT (id) DO UPDATE SET "
    + ", ".join(f"{column} = excluded.{column}" for column, _ in HEALTH_FIELDS[1:])
)
# Events are COPYed into a staging table (the fastest way in), then moved into
# `events`, skipping the ids already there: the unique index settles races.
_STAGE_EVENTS: Final = (
    "CREATE TEMPORARY TABLE IF NOT EXISTS staged_events (event_id text, event_time text,"
    " user_id text, session_id text, movie_id text, event_type text, rating integer)"
    " ON COMMIT DELETE ROWS"
)
_COPY_EVENTS: Final = "COPY staged_events FROM STDIN"
_NULL: Final = "\\N"  # COPY's NULL
_MOVE_EVENTS: Final = (
    "INSERT INTO events (event_id, event_time, user_id, session_id, movie_id, event_type,"
    " rating) SELECT * FROM staged_events ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
)
# Each aggregate upsert takes its rows as arrays, sorted by key: writers lock the
# rows they add to in one order, so two of them wait for each other, never deadlock.
_ADD_PER_MINUTE: Final = (
    "INSERT INTO events_per_minute AS t (minute, event_type, events)"
    " SELECT * FROM unnest(%s::text[], %s::text[], %s::bigint[])"
    " ON CONFLICT (minute, event_type) DO UPDATE SET events = t.events + excluded.events"
)
_ADD_PER_QUARTER_HOUR: Final = (
    "INSERT INTO events_per_quarter_hour AS t (quarter, event_type, events)"
    " SELECT * FROM unnest(%s::text[], %s::text[], %s::bigint[])"
    " ON CONFLICT (quarter, event_type) DO UPDATE SET events = t.events + excluded.events"
)
_ADD_MOVIE_VIEWS: Final = (
    "INSERT INTO movie_views_daily AS t (day, movie_id, views)"
    " SELECT * FROM unnest(%s::text[], %s::text[], %s::bigint[])"
    " ON CONFLICT (day, movie_id) DO UPDATE SET views = t.views + excluded.views"
)
_ADD_RECENT_VIEWS: Final = (
    "INSERT INTO recent_views AS t (period, movie_id, views)"
    " SELECT * FROM unnest(%s::text[], %s::text[], %s::bigint[])"
    " ON CONFLICT (period, movie_id) DO UPDATE SET views = t.views + excluded.views"
)
_ADD_MOVIE_EVENTS: Final = (
    "INSERT INTO movie_events_daily AS t (day, movie_id, event_type, events)"
    " SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::bigint[])"
    " ON CONFLICT (day, movie_id, event_type) DO UPDATE SET events = t.events + excluded.events"
)
# The rows new to the table are counted: the unique key settles a race between
# two writers adding the same user, so each is counted once.
_ADD_MOVIE_USERS: Final = (
    "WITH added AS (INSERT INTO movie_users_daily (day, movie_id, user_id)"
    " SELECT * FROM unnest(%s::text[], %s::text[], %s::text[]) ON CONFLICT DO NOTHING"
    " RETURNING day, movie_id)"
    " INSERT INTO movie_user_counts AS t (day, movie_id, users)"
    " SELECT day, movie_id, count(*) FROM added GROUP BY day, movie_id ORDER BY day, movie_id"
    " ON CONFLICT (day, movie_id) DO UPDATE SET users = t.users + excluded.users"
)
_ADD_MOVIE_MINUTES: Final = (
    "INSERT INTO movie_views_per_minute AS t (movie_id, minute, views)"
    " SELECT * FROM unnest(%s::text[], %s::text[], %s::bigint[])"
    " ON CONFLICT (movie_id, minute) DO UPDATE SET views = t.views + excluded.views"
)
_ADD_RATINGS: Final = (
    "INSERT INTO ratings_daily AS t (day, rating, ratings)"
    " SELECT * FROM unnest(%s::text[], %s::integer[], %s::bigint[])"
    " ON CONFLICT (day, rating) DO UPDATE SET ratings = t.ratings + excluded.ratings"
)
_ADD_MOVIE_RATINGS: Final = (
    "INSERT INTO movie_ratings_daily AS t (day, movie_id, rating, ratings)"
    " SELECT * FROM unnest(%s::text[], %s::text[], %s::integer[], %s::bigint[])"
    " ON CONFLICT (day, movie_id, rating) DO UPDATE SET ratings = t.ratings + excluded.ratings"
)
# A batch's users take their new times; each one whose newest minute moved on
# leaves its old minute's count for the new one's. previous_seen says what the
# row held before this write (NULL: a new user), under the row's lock, so a race
# between two writers over one user moves it once.
_SEE_USERS: Final = """
    WITH seen AS (
        INSERT INTO user_activity AS u (user_id, last_seen, previous_seen)
        SELECT user_id, last_seen, NULL FROM unnest(%s::text[], %s::text[])
            AS b (user_id, last_seen)
        ON CONFLICT (user_id) DO UPDATE SET previous_seen = u.last_seen,
            last_seen = greatest(u.last_seen, excluded.last_seen)
        RETURNING left(last_seen, 16) || 'Z' AS new, left(previous_seen, 16) || 'Z' AS old
    ), steps AS (
        SELECT new AS minute, 1 AS step FROM seen WHERE old IS NULL OR new <> old
        UNION ALL SELECT old, -1 FROM seen WHERE old IS NOT NULL AND new <> old
    )
    INSERT INTO users_per_last_minute AS t (minute, users)
    SELECT minute, sum(step) FROM steps GROUP BY minute ORDER BY minute
    ON CONFLICT (minute) DO UPDATE SET users = t.users + excluded.users
"""
# A day's users in the batch: those not seen since the day's start are new to it
# (run before user_activity takes the batch). A stream's records go to a shard by
# user, so one user's events come through one writer: none counts another's user.
_ADD_DAY_USERS: Final = (
    "INSERT INTO users_daily AS t (day, users) SELECT %s, count(*)"
    " FROM unnest(%s::text[]) AS b (user_id) LEFT JOIN user_activity AS u USING (user_id)"
    " WHERE u.last_seen IS NULL OR u.last_seen < %s"
    " ON CONFLICT (day) DO UPDATE SET users = t.users + excluded.users"
)
_ADD_COUNTERS: Final = (
    "INSERT INTO counters AS t (name, value) SELECT * FROM unnest(%s::text[], %s::bigint[])"
    " ON CONFLICT (name) DO UPDATE SET value = t.value + excluded.value"
)
_ADD_DEAD_LETTERS: Final = (
    "INSERT INTO dead_letters (received_at, reason, raw, raw_size)"
    " SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::integer[])"
)
_PUT_POSITIONS: Final = (
    "INSERT INTO source_positions (source, position, updated_at)"
    " SELECT * FROM unnest(%s::text[], %s::text[], %s::text[])"
    " ON CONFLICT (source) DO UPDATE SET position = excluded.position,"
    " updated_at = excluded.updated_at"
)
_PUT_MOVIES: Final = (
    "INSERT INTO movies (movie_id, title, year, genres, popularity)"
    " SELECT * FROM unnest(%s::text[], %s::text[], %s::integer[], %s::text[],"
    " %s::double precision[]) ON CONFLICT (movie_id) DO UPDATE SET title = excluded.title,"
    " year = excluded.year, genres = excluded.genres,"
    " popularity = coalesce(excluded.popularity, movies.popularity)"
)

T = TypeVar("T")


def is_postgres(name: str) -> bool:
    """Whether --db names a PostgreSQL database (a URL or a libpq keyword string)."""
    return bool(_URL.match(name) or _KEYWORDS.match(name))


def shown(conninfo: str) -> str:
    """The connection string as it may be shown: never with its password."""
    try:
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:  # shown before the driver is known to be there
        return _URL.sub("postgresql://", re.sub(r"(//[^/:@]*):[^@/]*@", r"\1@", conninfo))
    try:
        parts = conninfo_to_dict(conninfo)
    except Exception:  # a malformed string: show only its kind
        return "postgresql://(unparsable connection string)"
    user = parts.get("user")
    host = parts.get("host") or parts.get("hostaddr") or ""
    port = parts.get("port")
    db = parts.get("dbname") or ""
    where = f"{user}@" if user else ""
    where += f"{host}:{port}" if port else str(host)
    return f"postgresql://{where}/{db}"


class PostgresStore:
    """One connection to a PostgreSQL database. Use it from one thread at a time."""

    def __init__(
        self, conninfo: str, schema: str, connection: psycopg.Connection[Any], version: int
    ) -> None:
        self._conninfo = conninfo
        self._schema = schema
        self._db: psycopg.Connection[Any] | None = connection
        self._staged: psycopg.Connection[Any] | None = None  # has the staging table
        self._version = version
        self.name = shown(conninfo) + ("" if schema == DEFAULT_SCHEMA else f" ({schema})")
        self.path = self.name

    # Opening -----------------------------------------------------------------

    @classmethod
    def open(
        cls, conninfo: str, schema: str = DEFAULT_SCHEMA, *, create: bool = True
    ) -> PostgresStore:
        """Connect, creating or migrating this schema's tables (one process at a time)."""

        def prepare(db: psycopg.Connection[Any]) -> int:
            with db.transaction():
                db.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
                version = _schema_version(db, schema)
                if version is None:
                    if not create:
                        raise StoreError(f"{shown(conninfo)} holds no imdb-tui tables")
                    _use(db, schema, create=True)
                    db.execute("CREATE TABLE meta (version integer NOT NULL)")
                    db.execute("INSERT INTO meta VALUES (0)")
                    version = 0
                _use(db, schema)
                if version > SCHEMA_VERSION:
                    raise StoreError(_newer(conninfo, version))
                for step in range(version, SCHEMA_VERSION):
                    db.execute(MIGRATIONS[step])
                    db.execute("UPDATE meta SET version = %s", (step + 1,))
            return SCHEMA_VERSION

        return cls(conninfo, schema, *_prepared(conninfo, schema, prepare))

    @classmethod
    def open_read_only(cls, conninfo: str, schema: str = DEFAULT_SCHEMA) -> PostgresStore:
        """Connect to read: nothing is created or migrated, and the session is read-only."""

        def prepare(db: psycopg.Connection[Any]) -> int:
            version = _schema_version(db, schema)
            if version is None:
                raise StoreError(f"{shown(conninfo)} holds no imdb-tui tables (schema {schema})")
            if version > SCHEMA_VERSION:
                raise StoreError(_newer(conninfo, version))
            _use(db, schema)
            db.execute("SET default_transaction_read_only = on")
            return version

        return cls(conninfo, schema, *_prepared(conninfo, schema, prepare))

    def another(self) -> PostgresStore:
        return PostgresStore.open(self._conninfo, self._schema)

    def reader(self) -> PostgresStore:
        """A second connection, for reading while this one writes."""
        return PostgresStore.open_read_only(self._conninfo, self._schema)

    def writer(
        self,
        tz: tzinfo | None,
        separate_process: bool = True,
        thread: ThreadPoolExecutor | None = None,
    ) -> Writer:
        """A child process with its own connection (if asked), else a thread on this one."""
        if separate_process:
            return ProcessWriter(
                functools.partial(type(self).open, self._conninfo, self._schema), tz
            )
        return ThreadWriter(self, tz, thread)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _connection(self) -> psycopg.Connection[Any]:
        """The connection, opened again if it was lost."""
        if self._db is None or self._db.closed or self._db.broken:
            if self._db is not None:
                self._db.close()
            self._db = None
            db = _connect(self._conninfo)
            _use(db, self._schema)
            self._db = db
        return self._db

    def _run(self, work: Callable[[psycopg.Connection[Any]], T], transaction: bool = True) -> T:
        """`work` in one transaction (or one statement, for a read), run again after a
        deadlock or serialization failure; any other failure is a StoreError, and a lost
        connection is opened again at the next call."""
        import psycopg.errors

        delay = 0.01
        for attempt in range(RETRIES + 1):
            try:
                try:
                    db = self._connection()
                    if not transaction:
                        return work(db)
                    with db.transaction():
                        return work(db)
                except BaseException:
                    self._staged = None  # made in a transaction rolled back, it is gone
                    raise
            except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure):
                if attempt == RETRIES:
                    raise StoreError(f"{self.name}: gave up after {RETRIES} retries") from None
                time.sleep(delay)
                delay = min(delay * 2, 0.5)
            except StoreError:
                raise
            except psycopg.Error as error:
                broken = self._db is not None and self._db.broken
                if broken:
                    self._db.close()  # type: ignore[union-attr]
                if broken and attempt == 0 and isinstance(error, psycopg.OperationalError):
                    # A connection the server dropped while it sat idle (a restart, an
                    # idle timeout) is only found out at its next use: once more, anew.
                    # A write that did commit before the line dropped is stored once
                    # all the same: its events are known by their ids.
                    continue
                raise StoreError(_describe(error, self._conninfo)) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _query(
        self, sql: str, parameters: Sequence[object] | Mapping[str, object] = ()
    ) -> list[Any]:
        return self._run(lambda db: db.execute(sql, parameters).fetchall(), transaction=False)

    # Writing -----------------------------------------------------------------

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
        max_bytes: int | None = None,  # held by hold_size: see there
    ) -> list[Event]:
        """See BatchWriter.write_batch."""

        def write(db: psycopg.Connection[Any]) -> list[Event]:
            def find(sql: str, args: Sequence[object]) -> Any:
                return db.execute(_pg(sql), args).fetchone()

            if mark is not None:
                # Claimed first: a commit of the same mark under way (a writer that died
                # as it committed) is waited for, then seen.
                claim = (mark.writer, mark.number, received_at)
                claimed = db.execute(_pg(marks.CLAIM), claim).rowcount == 1
                marks.check(find, mark, this_one=not claimed)
            stored: Sequence[Event] = events
            sums = aggregates
            if events:
                new = self._insert_events(db, events)
                if len(new) != len(events):
                    stored = _first_of_each(events, new)
                    sums = None
            if sums is None:
                sums = aggregate(stored)
            with db.pipeline():  # the rest sent at once, the answers read at the end
                if rejections:
                    db.execute(
                        _ADD_DEAD_LETTERS,
                        [
                            [received_at] * len(rejections),
                            [_text(r.reason) for r in rejections],
                            [_text(r.raw) for r in rejections],
                            [r.raw_size for r in rejections],
                        ],
                    )
                if positions:
                    ordered = sorted(positions, key=lambda p: p.source)
                    db.execute(
                        _PUT_POSITIONS,
                        [
                            [p.source for p in ordered],
                            [p.position for p in ordered],
                            [received_at] * len(ordered),
                        ],
                    )
                if health is not None:
                    db.execute(_PUT_HEALTH, _health_row(health))
                # Last, just before the commit: the rows every writer adds to (this
                # minute's counts, the counters), so each is locked for as short a
                # time as can be, in the same order by every writer.
                _add_aggregates(db, sums)
                _add_counters(
                    db,
                    events_total=len(stored),
                    duplicates=len(events) - len(stored),
                    dead_letters=len(rejections),
                )
                if mark is not None:
                    done = (len(stored), len(events) - len(stored), len(rejections))
                    db.execute(_pg(marks.SETTLE), (*done, mark.writer, mark.number))
                    trim, old = marks.trim(mark)
                    db.execute(_pg(trim), old)
            if mark is not None:
                marks.written(mark)  # after the pipeline's answers are read
            return list(stored)

        return self._run(write)

    def forget_writer(self, writer: str) -> None:
        self._run(lambda db: db.execute(_pg(marks.FORGET), (writer,)))

    def _insert_events(self, db: psycopg.Connection[Any], events: Sequence[Event]) -> set[str]:
        """Insert the events whose ids are new; return those ids.

        Validation leaves no tab, newline or backslash in any field of an event (ids
        are letters, digits and _.:@-, times canonical), so the rows go to COPY as
        text as they are, in one write, into a staging table made once a connection.
        """
        if self._staged is not db:
            db.execute(_STAGE_EVENTS)
            self._staged = db
        text = "".join(
            f"{e[0]}\t{e[1]}\t{e[2]}\t{e[3]}\t{e[4]}\t{e[5]}\t{_NULL if e[6] is None else e[6]}\n"
            for e in events
        )
        with db.cursor().copy(_COPY_EVENTS) as copy:
            copy.write(text)
        return {row[0] for row in db.execute(_MOVE_EVENTS).fetchall()}

    def put_health(self, health: PipelineHealth) -> None:
        self._run(lambda db: db.execute(_PUT_HEALTH, _health_row(health)))

    def prune(self, before: str, limit: int) -> int:
        def prune(db: psycopg.Connection[Any]) -> int:
            deleted = db.execute(
                "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE event_time < %s"
                " ORDER BY event_time LIMIT %s FOR UPDATE SKIP LOCKED)",
                (before, limit),
            ).rowcount
            deleted += db.execute(
                "DELETE FROM dead_letters WHERE id IN (SELECT id FROM dead_letters"
                " WHERE received_at < %s ORDER BY received_at LIMIT %s FOR UPDATE SKIP LOCKED)",
                (before, limit),
            ).rowcount
            return deleted

        return self._run(prune)

    def hold_size(self, limit: int) -> int:
        """PostgreSQL frees a deleted row's space only once vacuumed, so the size seen
        drops later: one round a call, sized by the excess (about 200 bytes an event)."""
        size = self.size_bytes()
        if size <= limit:
            return 0

        def hold(db: psycopg.Connection[Any]) -> int:
            heads = db.execute(OLDEST_HEADS).fetchone()
            kind = None if heads is None else older_kind(*heads)
            if kind is None:
                return 0
            rows = min(max(2_000, (size - limit) // 200), 200_000)
            if kind == "events":
                sql = (
                    "DELETE FROM events WHERE seq IN (SELECT seq FROM events"
                    " ORDER BY event_time LIMIT %s FOR UPDATE SKIP LOCKED)"
                )
            else:
                sql = (
                    "DELETE FROM dead_letters WHERE id IN (SELECT id FROM dead_letters"
                    " ORDER BY received_at, id LIMIT %s FOR UPDATE SKIP LOCKED)"
                )
            gone = int(db.execute(sql, (rows,)).rowcount)
            _add_counters(db, **{f"pruned_{kind}": gone})
            return gone

        return self._run(hold)

    def prune_aggregates(self, before: str) -> None:
        minute = before[:16]

        def prune(db: psycopg.Connection[Any]) -> None:
            db.execute("DELETE FROM events_per_minute WHERE minute < %s", (minute,))
            db.execute("DELETE FROM events_per_quarter_hour WHERE quarter < %s", (minute,))
            db.execute("DELETE FROM movie_views_daily WHERE day < %s", (before[:10],))
            db.execute("DELETE FROM ratings_daily WHERE day < %s", (before[:10],))
            db.execute("DELETE FROM movie_ratings_daily WHERE day < %s", (before[:10],))
            newest = db.execute("SELECT max(period) FROM recent_views").fetchone()
            if newest is not None and newest[0] is not None:
                kept = recent_cutoff(newest[0], before)
                db.execute("DELETE FROM recent_views WHERE period < %s", (kept,))
                if self._version >= 6:
                    db.execute("DELETE FROM movie_views_per_minute WHERE minute < %s", (kept,))
            if self._version >= 6:
                db.execute("DELETE FROM movie_events_daily WHERE day < %s", (before[:10],))
                db.execute("DELETE FROM movie_users_daily WHERE day < %s", (before[:10],))
                db.execute("DELETE FROM movie_user_counts WHERE day < %s", (before[:10],))
            if self._version >= 7:
                db.execute("DELETE FROM users_daily WHERE day < %s", (before[:10],))
            if self._version >= 8:  # marks a killed run left behind
                db.execute(_pg(marks.EXPIRE), (before,))
            # Users first, then their minutes' counts: whole minutes, so the counts
            # stay their sums (a writer moving a user holds its row until it commits).
            db.execute("DELETE FROM user_activity WHERE last_seen < %s", (minute,))
            db.execute("DELETE FROM users_per_last_minute WHERE minute < %s", (minute + "Z",))

        self._run(prune)

    # Leases --------------------------------------------------------------------

    def lease_holders(self, group: str, now: float) -> dict[str, str]:
        rows = self._query(
            "SELECT key, owner FROM leases WHERE grp = %s AND expires > %s", (group, now)
        )
        return dict(rows)

    def take_lease(self, group: str, key: str, owner: str, until: float, now: float) -> bool:
        return bool(
            self._run(
                lambda db: (
                    db.execute(
                        "INSERT INTO leases AS l (grp, key, owner, expires) VALUES (%s, %s, %s, %s)"
                        " ON CONFLICT (grp, key) DO UPDATE SET owner = excluded.owner,"
                        " expires = excluded.expires"
                        " WHERE l.owner = excluded.owner OR l.expires <= %s",
                        (group, key, owner, until, now),
                    ).rowcount
                )
            )
        )

    def release_leases(self, group: str, owner: str, keys: Sequence[str]) -> None:
        self._run(
            lambda db: db.execute(
                "UPDATE leases SET expires = 0 WHERE grp = %s AND owner = %s AND key = ANY(%s)",
                (group, owner, list(keys)),
            )
        )

    # The catalogue -------------------------------------------------------------

    def save_movies(self, movies: Iterable[Movie]) -> None:
        rows = [(m.movie_id, m.title, m.year, ",".join(m.genres), None) for m in movies]
        self._run(lambda db: _put_movies(db, rows))

    def forget_catalog(self) -> None:
        def forget(db: psycopg.Connection[Any]) -> None:
            db.execute("DELETE FROM catalog_source")
            db.execute("UPDATE movies SET popularity = NULL WHERE popularity IS NOT NULL")

        self._run(forget)

    def add_catalog_movies(self, movies: Sequence[Movie]) -> None:
        rows = [(m.movie_id, m.title, m.year, ",".join(m.genres), 0.0) for m in movies]
        self._run(lambda db: _put_movies(db, rows))

    def weigh_catalog_movies(self, weights: Iterable[tuple[str, float]]) -> None:
        pairs = sorted(weights)
        self._run(
            lambda db: db.execute(
                "UPDATE movies SET popularity = w.weight FROM unnest(%s::text[],"
                " %s::double precision[]) AS w (movie_id, weight)"
                " WHERE movies.movie_id = w.movie_id",
                [[p[0] for p in pairs], [p[1] for p in pairs]],
            )
        )

    def keep_catalog(self, files: str, skipped: int, rated: int) -> None:
        self._run(
            lambda db: db.execute(
                "INSERT INTO catalog_source (id, files, skipped, rated) VALUES (1, %s, %s, %s)"
                " ON CONFLICT (id) DO UPDATE SET files = excluded.files,"
                " skipped = excluded.skipped, rated = excluded.rated",
                (files, skipped, rated),
            )
        )

    def kept_catalog(self, files: str) -> tuple[int, int] | None:
        kept = self._query("SELECT skipped, rated FROM catalog_source WHERE files = %s", (files,))
        return (kept[0][0], kept[0][1]) if kept else None

    def catalog_weights(self) -> Iterator[tuple[str, float]]:
        rows = self._query(
            "SELECT movie_id, popularity FROM movies WHERE popularity IS NOT NULL"
            " ORDER BY length(movie_id), movie_id"
        )
        yield from rows

    # Reading -----------------------------------------------------------------

    def counters(self) -> dict[str, int]:
        return dict(self._query("SELECT name, value FROM counters"))

    def events_per_minute(self, since: str) -> list[tuple[str, int]]:
        return self._query(
            "SELECT minute, sum(events)::bigint FROM events_per_minute WHERE minute >= %s"
            " GROUP BY minute",
            (since,),
        )

    def events_per_period(self, bounds: Sequence[str]) -> list[tuple[int, str, int]]:
        return self._query(
            "SELECT p.period - 1, q.event_type, sum(q.events)::bigint"
            " FROM unnest(%s::text[], %s::text[]) WITH ORDINALITY AS p (start, stop, period)"
            " JOIN events_per_quarter_hour AS q ON q.quarter >= p.start AND q.quarter < p.stop"
            " GROUP BY p.period, q.event_type",
            (list(bounds[:-1]), list(bounds[1:])),
        )

    def top_movies(self, day: str, limit: int) -> list[TopMovie]:
        rows = self._query(
            "SELECT v.movie_id, m.title, m.year, v.views FROM movie_views_daily AS v"
            " LEFT JOIN movies AS m ON m.movie_id = v.movie_id"
            " WHERE v.day = %s ORDER BY v.views DESC, v.movie_id LIMIT %s",
            (day, limit),
        )
        return [TopMovie(*row) for row in rows]

    def ratings(self, day: str) -> dict[int, int]:
        if self._version < 4:
            return {}
        rows = self._query("SELECT rating, ratings FROM ratings_daily WHERE day = %s", (day,))
        return dict(rows)

    def movie_ratings(self, day: str, movie_ids: Sequence[str]) -> dict[str, dict[int, int]]:
        if self._version < 4 or not movie_ids:
            return {}
        found: dict[str, dict[int, int]] = {}
        for movie_id, rating, count in self._query(
            "SELECT movie_id, rating, ratings FROM movie_ratings_daily"
            " WHERE day = %s AND movie_id = ANY(%s)",
            (day, list(movie_ids)),
        ):
            found.setdefault(movie_id, {})[rating] = count
        return found

    def views_per_period(self, bounds: Sequence[str]) -> list[tuple[int, str, int]]:
        if self._version < 5:
            return []
        ranges = " UNION ALL ".join(
            f"SELECT {i}, movie_id, sum(views)::bigint FROM recent_views"  # noqa: S608 (numbers)
            " WHERE period >= %s AND period < %s GROUP BY movie_id"
            for i in range(len(bounds) - 1)
        )
        return self._query(ranges, [b for pair in itertools.pairwise(bounds) for b in pair])

    def titles(self, movie_ids: Sequence[str]) -> dict[str, tuple[str, int | None]]:
        rows = self._query(
            "SELECT movie_id, title, year FROM movies WHERE movie_id = ANY(%s)",
            (list(movie_ids),),
        )
        return {movie_id: (title, year) for movie_id, title, year in rows}

    def movie(self, movie_id: str) -> Movie | None:
        rows = self._query(
            "SELECT movie_id, title, year, genres FROM movies WHERE movie_id = %s", (movie_id,)
        )
        if not rows:
            return None
        return movie_of(*rows[0])

    def movie_events(self, day: str, movie_id: str) -> dict[str, int]:
        if self._version < 6:  # an older database read as it is: its views only
            return dict(
                self._query(
                    "SELECT 'view', views FROM movie_views_daily WHERE day = %s AND movie_id = %s",
                    (day, movie_id),
                )
            )
        return dict(
            self._query(
                "SELECT event_type, events FROM movie_events_daily"
                " WHERE day = %s AND movie_id = %s",
                (day, movie_id),
            )
        )

    def movie_users(self, day: str, movie_id: str) -> int:
        if self._version < 6:
            return 0
        return int(
            self._query(
                "SELECT coalesce(sum(users), 0) FROM movie_user_counts"
                " WHERE day = %s AND movie_id = %s",
                (day, movie_id),
            )[0][0]
        )

    def movie_views_per_minute(self, movie_id: str, since: str) -> list[tuple[str, int]]:
        if self._version < 6:
            return []
        return self._query(
            "SELECT minute, views FROM movie_views_per_minute WHERE movie_id = %s AND minute >= %s",
            (movie_id, since),
        )

    def newest_events(self, match: EventMatch, after: int, limit: int) -> Tail:
        newest = self._query("SELECT coalesce(max(seq), 0) FROM events")[0][0]
        rows = self._query(
            "SELECT e.seq, e.event_time, e.event_type, e.movie_id, m.title, e.user_id, e.rating"
            " FROM events AS e LEFT JOIN movies AS m ON m.movie_id = e.movie_id"
            " WHERE e.seq > %(after)s"
            " AND (%(type)s::text IS NULL OR e.event_type = %(type)s)"
            " AND (%(movie)s::text IS NULL OR e.movie_id = %(movie)s)"
            " AND (%(user)s::text IS NULL OR e.user_id = %(user)s)"
            " AND NOT EXISTS (SELECT 1 FROM unnest(%(words)s::text[]) AS w (word)"
            "  WHERE strpos(lower(coalesce(m.title, e.movie_id)), w.word) = 0)"
            " ORDER BY e.seq DESC LIMIT %(limit)s",
            {
                "after": max(after, newest - TAIL_SCAN),
                "type": match.event_type,
                "movie": match.movie_id,
                "user": match.user_id,
                "words": list(match.words),
                "limit": limit,
            },
        )
        return Tail(int(newest), tuple(TailEvent(*row) for row in rows))

    def users_seen_since(self, *moments: str) -> list[int]:
        """As SQLite's: the per-minute counts after each moment's minute, and the users of
        its own minute found by index."""
        return [
            self._query(
                "SELECT ((SELECT coalesce(sum(users), 0) FROM users_per_last_minute"
                " WHERE minute > %s) + (SELECT count(*) FROM user_activity"
                " WHERE last_seen >= %s AND last_seen < %s))::bigint",
                (moment[:16] + "Z", moment, next_minute(moment)),
            )[0][0]
            for moment in moments
        ]

    def users_on(self, day: str) -> int | None:
        if self._version < 7:
            return None
        rows = self._query("SELECT users FROM users_daily WHERE day = %s", (day,))
        return int(rows[0][0]) if rows else None

    def first_quarter_hour(self) -> str | None:
        rows = self._query("SELECT min(quarter) FROM events_per_quarter_hour")
        return rows[0][0] if rows else None

    def dead_letters(self, limit: int) -> list[DeadLetter]:
        rows = self._query(
            "SELECT received_at, reason, raw, raw_size FROM dead_letters ORDER BY id DESC LIMIT %s",
            (limit,),
        )
        return [DeadLetter(*row) for row in rows]

    def newest_event_time(self) -> str | None:
        rows = self._query("SELECT max(event_time) FROM events")
        return rows[0][0] if rows else None

    def newest_minute(self) -> str | None:
        newest = self._query(NEWEST_MINUTE)[0][0]
        return None if newest is None else str(newest)

    def events_after(self, moment: str, limit: int) -> int:
        return int(self._query(_pg(EVENTS_AFTER), (moment, limit))[0][0])

    def count_events(self) -> int:
        count: int = self._query("SELECT count(*) FROM events")[0][0]
        return count

    def size_bytes(self) -> int:
        """The tables of this schema with their indexes, as PostgreSQL counts them."""
        size = self._query(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND c.relkind = 'r'",
            (self._schema,),
        )[0][0]
        return int(size)

    def pipelines(self, now: float) -> list[PipelineHealth]:
        columns = HEALTH_COLUMNS if self._version >= 3 else HEALTH_COLUMNS_BEFORE_LAG
        rows = self._query(
            f"SELECT {columns} FROM pipelines ORDER BY last_seen DESC, id"  # noqa: S608
        )
        return health_from_rows(rows, now)

    def positions(self) -> list[SourcePosition]:
        rows = self._query(
            "SELECT source, position, updated_at FROM source_positions ORDER BY source"
        )
        return [SourcePosition(*row) for row in rows]

    def position(self, source: str) -> str | None:
        rows = self._query("SELECT position FROM source_positions WHERE source = %s", (source,))
        return rows[0][0] if rows else None


def _add_aggregates(db: psycopg.Connection[Any], aggregates: Aggregates) -> None:
    """The aggregate upserts, the least shared rows first (the same order in every writer)."""
    if aggregates.movie_views:
        _add_counts(db, _ADD_MOVIE_VIEWS, aggregates.movie_views)
    if aggregates.movie_ratings:
        _add_counts(db, _ADD_MOVIE_RATINGS, aggregates.movie_ratings)
    if aggregates.recent_views:
        _add_counts(db, _ADD_RECENT_VIEWS, aggregates.recent_views)
    if aggregates.movie_events:
        _add_counts(db, _ADD_MOVIE_EVENTS, aggregates.movie_events)
    if aggregates.movie_users:
        pairs = sorted(aggregates.movie_users)
        db.execute(_ADD_MOVIE_USERS, [list(column) for column in zip(*pairs, strict=True)])
    if aggregates.movie_minutes:
        _add_counts(db, _ADD_MOVIE_MINUTES, aggregates.movie_minutes)
    for day, (start, day_users) in sorted(aggregates.user_days.items()):
        db.execute(_ADD_DAY_USERS, (day, day_users, start))
    if aggregates.last_seen:
        users = sorted(aggregates.last_seen.items())
        db.execute(_SEE_USERS, [[u for u, _ in users], [t for _, t in users]])
    for sql, table in (
        (_ADD_PER_MINUTE, aggregates.per_minute),
        (_ADD_PER_QUARTER_HOUR, aggregates.per_quarter_hour),
        (_ADD_RATINGS, aggregates.ratings),
    ):
        if table:
            _add_counts(db, sql, table)


def _add_counts(
    db: psycopg.Connection[Any], sql: str, table: Mapping[tuple[Any, ...], int]
) -> None:
    """Counts keyed by tuples, as one array a column (the keys' columns, then the count)."""
    rows = sorted(table.items())
    columns = [list(column) for column in zip(*(key for key, _ in rows), strict=True)]
    db.execute(sql, [*columns, [n for _, n in rows]])


def _add_counters(db: psycopg.Connection[Any], **deltas: int) -> None:
    rows = sorted((name, n) for name, n in deltas.items() if n)
    if rows:
        db.execute(_ADD_COUNTERS, [[name for name, _ in rows], [n for _, n in rows]])


def _put_movies(db: psycopg.Connection[Any], rows: list[tuple[Any, ...]]) -> None:
    if rows:
        rows = sorted(dict((row[0], row) for row in rows).values())
        db.execute(_PUT_MOVIES, [list(column) for column in zip(*rows, strict=True)])


def _first_of_each(events: Sequence[Event], new: set[str]) -> list[Event]:
    """The events whose id was inserted, each id once (the first of a batch is stored)."""
    stored = []
    for event in events:
        if event.event_id in new:
            new.discard(event.event_id)
            stored.append(event)
    return stored


def _health_row(health: PipelineHealth) -> tuple[object, ...]:
    return tuple(_text(value) if isinstance(value, str) else value for value in health_row(health))


def _pg(sql: str) -> str:
    """A statement written once for every backend (`?` placeholders) in psycopg's form."""
    return sql.replace("?", "%s")


def _text(value: str) -> str:
    """PostgreSQL's text holds no NUL: it is kept visible, as a rejection's raw text is."""
    return value.replace("\x00", "\\x00")


def _prepared(
    conninfo: str, schema: str, prepare: Callable[[psycopg.Connection[Any]], int]
) -> tuple[psycopg.Connection[Any], int]:
    """A new connection and the schema version `prepare` found (or made) with it;
    whatever fails closes the connection and is said in one line."""
    _check_schema(schema)
    db = _connect(conninfo)
    try:
        return db, prepare(db)
    except StoreError:
        db.close()
        raise
    except Exception as error:
        db.close()
        raise StoreError(_describe(error, conninfo)) from None


def _check_schema(schema: str) -> None:
    if not _SCHEMA_NAME.fullmatch(schema):
        raise StoreError(
            f"--pg-schema {schema!r}: use lower-case letters, digits and _ (a letter first)"
        )


def _schema_version(db: psycopg.Connection[Any], schema: str) -> int | None:
    """The schema's version, or None if imdb-tui has no tables there."""
    found = db.execute(
        "SELECT 1 FROM pg_tables WHERE schemaname = %s AND tablename = 'meta'", (schema,)
    ).fetchone()
    if found is None:
        return None
    from psycopg import sql

    row = db.execute(sql.SQL("SELECT version FROM {}.meta").format(sql.Identifier(schema)))
    found = row.fetchone()
    return int(found[0]) if found else 0


def _use(db: psycopg.Connection[Any], schema: str, create: bool = False) -> None:
    """Make `schema` the connection's search path (creating it first, if told)."""
    from psycopg import sql

    name = sql.Identifier(schema)
    if create:
        db.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(name))
    db.execute(sql.SQL("SET search_path TO {}").format(name))


def _connect(conninfo: str) -> psycopg.Connection[Any]:
    try:
        import psycopg
    except ImportError:
        raise StoreError(
            "PostgreSQL needs the psycopg driver: pip install 'imdb-tui[postgres]'"
        ) from None
    try:
        return psycopg.connect(
            conninfo, autocommit=True, application_name="imdb-tui", connect_timeout=10
        )
    except Exception as error:
        raise StoreError(_describe(error, conninfo)) from None


def _scrub(text: str, conninfo: str) -> str:
    """`text` with the connection string's password, wherever it appears, hidden."""
    secrets = set(re.findall(r"//[^/:@]*:([^@/]+)@", conninfo))
    secrets.update(re.findall(r"password\s*=\s*'?([^'\s]+)", conninfo))
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def _newer(conninfo: str, version: int) -> str:
    return (
        f"{shown(conninfo)} has imdb-tui tables of version {version}, newer than this"
        f" imdb-tui understands ({SCHEMA_VERSION}): upgrade imdb-tui"
    )


def _describe(error: BaseException, conninfo: str) -> str:
    """One line saying what went wrong, naming the database without its password."""
    where = shown(conninfo)
    text = _scrub(str(error).strip(), conninfo)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    detail = lines[0] if lines else type(error).__name__
    # libpq's "connection failed: connection to server at "h", port p failed: FATAL: ..."
    detail = re.sub(r"^(connection failed: )?(connection to server .*? failed: )?", "", detail)
    detail = detail.removeprefix("FATAL:").strip()
    if "password authentication failed" in text or "no password supplied" in text:
        return f"{where}: authentication failed ({detail})"
    if "does not exist" in text and "database" in text:
        return f"{where}: {detail} (create it first, e.g. createdb)"
    if any(
        sign in text for sign in ("Connection refused", "could not connect", "timeout", "resolve")
    ):
        return f"cannot reach PostgreSQL at {where}: {detail.lower()}"
    if "permission denied" in text:
        return f"{where}: {detail} (the user needs the right to create tables there)"
    if "invalid connection option" in text or "invalid dsn" in text.lower():
        return f"{where}: not a valid connection string ({detail})"
    return f"{where}: {detail}"
