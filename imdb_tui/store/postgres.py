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
import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import tzinfo
from typing import TYPE_CHECKING, Any, Final, TypeVar

from imdb_tui.aggregates import AggregateFn, Aggregates
from imdb_tui.events import Event, Rejection
from imdb_tui.health import PipelineHealth
from imdb_tui.store import BatchMark, SourcePosition, StoreError, Writer, marks
from imdb_tui.store.dialect import POSTGRES_BEFORE_TYPES, POSTGRES_DIALECT
from imdb_tui.store.model import POSTGRES_BEFORE, TIMES_TYPED, VERSION
from imdb_tui.store.sql import Run, SqlStore, first_of_each, older_kind
from imdb_tui.store.writer import ProcessWriter, ThreadWriter

if TYPE_CHECKING:
    import psycopg

DEFAULT_SCHEMA: Final = "imdb_tui"
RETRIES: Final = 20
"""Times a transaction is run again after a deadlock or serialization failure."""
SCHEMA_VERSION: Final = VERSION
_URL: Final = re.compile(r"postgres(?:ql)?://", re.IGNORECASE)
_KEYWORDS: Final = re.compile(r"^\s*[a-z_]+\s*=", re.IGNORECASE)
_SCHEMA_NAME: Final = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_READ_ONLY: Final = "SET default_transaction_read_only = on"
_LOCK: Final = 0x494D4442  # advisory lock held while the schema is created or migrated

# Events are COPYed into a staging table (the fastest way in), then moved into
# `events`, skipping the ids already there: the unique index settles races.
_STAGE_EVENTS: Final = (
    "CREATE TEMPORARY TABLE IF NOT EXISTS staged_events (event_id text, event_time timestamptz,"
    " user_id text, session_id text, movie_id text, event_type text, rating integer)"
    " ON COMMIT DELETE ROWS"
)
_COPY_EVENTS: Final = "COPY staged_events FROM STDIN"
_NULL: Final = "\\N"  # COPY's NULL
_MOVE_EVENTS: Final = (
    "INSERT INTO events (event_id, event_time, user_id, session_id, movie_id, event_type,"
    " rating) SELECT * FROM staged_events ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
)
# The rows new to the table are counted: the unique key settles a race between
# two writers adding the same user, so each is counted once.
_ADD_MOVIE_USERS: Final = (
    "WITH added AS (INSERT INTO movie_users_daily (day, movie_id, user_id)"
    " SELECT * FROM unnest(?::date[], ?::text[], ?::text[]) ON CONFLICT DO NOTHING"
    " RETURNING day, movie_id)"
    " INSERT INTO movie_user_counts AS t (day, movie_id, users)"
    " SELECT day, movie_id, count(*) FROM added GROUP BY day, movie_id ORDER BY day, movie_id"
    " ON CONFLICT (day, movie_id) DO UPDATE SET users = t.users + excluded.users"
)
# A batch's users take their new times; each one whose newest minute moved on
# leaves its old minute's count for the new one's. previous_seen says what the
# row held before this write (NULL: a new user), under the row's lock, so a race
# between two writers over one user moves it once.
_SEE_USERS: Final = """
    WITH seen AS (
        INSERT INTO user_activity AS u (user_id, last_seen, previous_seen)
        SELECT user_id, last_seen, NULL FROM unnest(?::text[], ?::timestamptz[])
            AS b (user_id, last_seen)
        ON CONFLICT (user_id) DO UPDATE SET previous_seen = u.last_seen,
            last_seen = greatest(u.last_seen, excluded.last_seen)
        RETURNING date_trunc('minute', last_seen) AS new,
            date_trunc('minute', previous_seen) AS old
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
    "INSERT INTO users_daily AS t (day, users) SELECT ?, count(*)"
    " FROM unnest(?::text[]) AS b (user_id) LEFT JOIN user_activity AS u USING (user_id)"
    " WHERE u.last_seen IS NULL OR u.last_seen < ?"
    " ON CONFLICT (day) DO UPDATE SET users = t.users + excluded.users"
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


class PostgresStore(SqlStore):
    """One connection to a PostgreSQL database. Use it from one thread at a time."""

    dialect = POSTGRES_DIALECT
    skip_locked = " FOR UPDATE SKIP LOCKED"  # a row another writer holds waits for a next round

    def __init__(
        self, conninfo: str, schema: str, connection: psycopg.Connection[Any], version: int
    ) -> None:
        self._conninfo = conninfo
        self._schema = schema
        self._db: psycopg.Connection[Any] | None = connection
        self._staged: psycopg.Connection[Any] | None = None  # has the staging table
        self._version = version
        if version < TIMES_TYPED:  # an older schema read as it is
            self.dialect = POSTGRES_BEFORE_TYPES
        self._read_only = False
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
                for step in range(version + 1, SCHEMA_VERSION + 1):
                    for statement in POSTGRES_DIALECT.migration(step):
                        db.execute(statement)
                db.execute("UPDATE meta SET version = %s", (SCHEMA_VERSION,))
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
            db.execute(_READ_ONLY)
            return version

        store = cls(conninfo, schema, *_prepared(conninfo, schema, prepare))
        store._read_only = True
        return store

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
            if self._read_only:  # a reader's new connection is as read-only as its first
                db.execute(_READ_ONLY)
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

    def _query(self, sql: str, parameters: Sequence[object] = ()) -> list[Any]:
        statement = self.dialect.sql(sql)
        return self._run(lambda db: db.execute(statement, parameters).fetchall(), False)

    def _transact(self, work: Callable[[Run], T]) -> T:
        return self._run(lambda db: work(_runner(db)))

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
        retention: float | None = None,  # old rows are deleted by prune
    ) -> list[Event]:
        """See BatchWriter.write_batch."""

        def write(db: psycopg.Connection[Any]) -> list[Event]:
            run = _runner(db)
            if mark is not None:
                # Claimed first: a commit of the same mark under way (a writer that died
                # as it committed) is waited for, then seen.
                claimed = run(marks.CLAIM, (mark.writer, mark.number, received_at)).rowcount
                marks.check(lambda sql, args: run(sql, args).fetchone(), mark, this_one=not claimed)
            stored: Sequence[Event] = events
            sums = aggregates
            if events:
                new = self._insert_events(db, events)
                if len(new) != len(events):
                    stored = first_of_each(events, new)
                    sums = None
            if sums is None:
                sums = aggregate(stored)
            with db.pipeline():  # the rest sent at once, the answers read at the end
                self._put_rest(run, rejections, received_at, positions, health)
                # Last, just before the commit: the rows every writer adds to (this
                # minute's counts, the counters), so each is locked for as short a
                # time as can be, in the same order by every writer.
                self._add_aggregates(run, sums)
                self._count_batch(run, len(events), len(stored), len(rejections))
                if mark is not None:
                    done = (len(stored), len(events) - len(stored), len(rejections))
                    run(marks.SETTLE, (*done, mark.writer, mark.number))
                    run(*marks.trim(mark))
            if mark is not None:
                marks.written(mark)  # after the pipeline's answers are read
            return list(stored)

        return self._run(write)

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

    def _add_movie_users(self, run: Run, movie_users: set[tuple[str, str, str]]) -> None:
        rows = sorted(movie_users)
        run(_ADD_MOVIE_USERS, [list(column) for column in zip(*rows, strict=True)])

    def _add_day_users(self, run: Run, day: str, start: str, users: list[str]) -> None:
        run(_ADD_DAY_USERS, (day, users, start))

    def _see_users(self, run: Run, last_seen: dict[str, str]) -> None:
        users = sorted(last_seen.items())
        run(_SEE_USERS, [[u for u, _ in users], [t for _, t in users]])

    def hold_size(self, limit: int) -> int:
        """PostgreSQL frees a deleted row's space only once vacuumed, so the size seen
        drops later: one round a call, sized by the excess (about 200 bytes an event)."""
        size = self.size_bytes()
        if size <= limit:
            return 0

        def hold(run: Run) -> int:
            kind = older_kind(*self._oldest_heads(run))
            if kind is None:
                return 0
            return self._delete_oldest(run, kind, min(max(2_000, (size - limit) // 200), 200_000))

        return self._transact(hold)

    def size_bytes(self) -> int:
        """The tables of this schema with their indexes, as PostgreSQL counts them."""
        size = self._query(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = ? AND c.relkind = 'r'",
            (self._schema,),
        )[0][0]
        return int(size)


def _runner(db: psycopg.Connection[Any]) -> Run:
    """A Run for statements written with `?` placeholders, on this connection."""

    def run(sql: str, parameters: Sequence[object] = ()) -> Any:
        return db.execute(POSTGRES_DIALECT.sql(sql), parameters)

    return run


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
    version = int(found[0]) if found else 0
    # Numbered apart before the one schema version: the version that number holds.
    return POSTGRES_BEFORE.get(version, version) if version <= max(POSTGRES_BEFORE) else version


def _use(db: psycopg.Connection[Any], schema: str, create: bool = False) -> None:
    """Make `schema` the connection's search path (creating it first, if told)."""
    from psycopg import sql

    name = sql.Identifier(schema)
    if create:
        db.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(name))
    db.execute(sql.SQL("SET search_path TO {}").format(name))
    # Times are written and read as canonical UTC text (see Dialect.out).
    db.execute("SET TIME ZONE 'UTC'")


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
