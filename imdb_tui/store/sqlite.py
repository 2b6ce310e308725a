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
import logging
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import tzinfo
from pathlib import Path
from typing import Any, Final, TypeVar
from urllib.parse import quote

from imdb_tui.aggregates import AggregateFn, Aggregates
from imdb_tui.events import Event, Rejection
from imdb_tui.health import PipelineHealth
from imdb_tui.store import BatchMark, SourcePosition, StoreError, Writer, marks
from imdb_tui.store.dialect import (
    PACKED_ID,
    SQLITE_BEFORE_PACKED,
    SQLITE_DIALECT,
    millis,
    packed_id,
    packed_ids,
)
from imdb_tui.store.model import EVENTS_PACKED, MIGRATIONS, SQLITE, VERSION, tables_at
from imdb_tui.store.sql import Run, SqlStore, older_kind
from imdb_tui.store.writer import ProcessWriter, ThreadWriter

WRITE_BUSY_SECONDS: Final = 0.5
"""A write waits this long for another program's lock, then fails and is retried by the
pipeline, which shows that it is waiting: at once, rather than after a silent stall."""
APPLICATION_ID: Final = 0x494D4442  # "IMDB", in the file header: this file is ours
MEMORY: Final = ":memory:"
SCHEMA_VERSION: Final = VERSION
T = TypeVar("T")
log = logging.getLogger(__name__)

_OUR_TABLES: Final = frozenset(table.name for table in tables_at(VERSION, SQLITE))
# A batch's events, their ids packed (`packed_id`) and their times made milliseconds here.
_INSERT_EVENT: Final = (
    "INSERT OR IGNORE INTO events (event_id, event_time, user_id, session_id, movie_id,"  # noqa: S608
    f" event_type, rating) SELECT column1, {millis('column2')}, column3, column4, column5,"
    " column6, column7 FROM (VALUES "
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


REWRITE_BYTES: Final = 250
"""About the free disk a rewritten event needs: its row and index entries (about 120
bytes) in the WAL until the upgrade commits, then in the file, which grows by as much
before the WAL is emptied (the old table's pages are freed only at the end)."""
WAL_KEPT: Final = 64 * 1024 * 1024
"""The most of the WAL file kept once a checkpoint has emptied it."""


class SqliteStore(SqlStore):
    """One connection to an SQLite database. Use it from one thread at a time."""

    dialect = SQLITE_DIALECT

    def __init__(self, connection: sqlite3.Connection, path: str, version: int) -> None:
        self._db = connection
        self.path = path
        self.name = path
        self._version = version
        if version < EVENTS_PACKED:  # an older schema read as it is
            self.dialect = SQLITE_BEFORE_PACKED
        self._variables = connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        self._row_bytes = {"events": 200, "dead_letters": 600}  # learned by _hold
        self.fold_rows = FOLD_ROWS
        self.rewriting = 0
        """Rows an upgrade under way rewrites (see _tell_of_rebuilds)."""

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
            message = _describe(error, name)
            if store.rewriting and message.endswith(" is full"):
                message += (
                    f": upgrading it rewrites its events, and needs about"
                    f" {store.rewriting * REWRITE_BYTES / 1e6:,.0f} MB free to do so"
                )
            raise StoreError(message) from None
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
            tables = connection.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0]
        except sqlite3.Error as error:
            raise StoreError(_describe(error, name)) from None
        if application_id != APPLICATION_ID or version < 1:
            connection.close()
            if not tables:  # no table yet (a first run stopped before it made them)
                raise StoreError(f"{name} is empty: no imdb-tui run has made its tables yet")
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
        # Some builds (Debian's) zero every freed page and write it: an upgrade's
        # dropped table, a retention's deleted rows and each fold's pending rows went
        # to the WAL once more, as zeros. FAST zeroes only pages written anyway.
        db.execute("PRAGMA secure_delete = FAST")
        # A reader holding a read transaction (the sqlite3 shell, a BI tool) keeps every
        # checkpoint from getting past it, so the WAL grows while it reads (hundreds of
        # MB at max rate); once it ends, the next checkpoint lets the WAL start again,
        # cut back to this size, instead of staying at its peak until the writer exits.
        db.execute(f"PRAGMA journal_size_limit = {WAL_KEPT}")
        # Taking the write lock now also fails a read-only file here, not at the first batch.
        _retry_busy(lambda: db.execute("BEGIN IMMEDIATE"))
        try:
            self._refuse_foreign()  # another program may have written it meanwhile
            version = db.execute("PRAGMA user_version").fetchone()[0]
            self._tell_of_rebuilds(version)
            for step in range(version + 1, SCHEMA_VERSION + 1):
                for statement in self.dialect.migration(step):
                    db.execute(statement)
            if version < SCHEMA_VERSION:
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            db.execute("COMMIT")
        finally:
            if db.in_transaction:
                db.execute("ROLLBACK")

    def _tell_of_rebuilds(self, version: int) -> None:
        """Say so before an upgrade rewrites a table with rows in it: a minute or more
        for millions of events, when nothing else is on the screen yet."""
        if version < 1:
            return  # a new file
        for step in MIGRATIONS[version:SCHEMA_VERSION]:
            for table in step.rebuild if step.applies_to(SQLITE) else ():
                (rows,) = self._db.execute(f"SELECT count(*) FROM {table}").fetchone()  # noqa: S608
                self.rewriting += rows
                if rows:
                    log.warning(
                        "upgrading %s: %s; rewriting its %s %s once (stopping leaves the"
                        " file as it was)",
                        self.path,
                        step.name,
                        f"{rows:,}",
                        table,
                    )

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
        retention: float | None = None,  # old rows are deleted by prune
    ) -> list[Event]:
        """See BatchWriter.write_batch."""
        db = self._db
        run = db.execute
        with self._transaction():
            if mark is not None:  # under the write lock: no other writer is between
                marks.check(lambda sql, args: db.execute(sql, args).fetchone(), mark)
            stored: Sequence[Event] = events
            ids = packed_ids([event.event_id for event in events])
            if self._insert_packed(events, ids) != len(events):
                # Some ids were already stored, or came twice: undo, keep the new ones, redo.
                # (The events went first in this transaction, so a rollback undoes just them.)
                db.execute("ROLLBACK")
                db.execute("BEGIN IMMEDIATE")
                new = self._new_events(ids)
                stored = [events[i] for i in new]
                self._insert_packed(stored, [ids[i] for i in new])
            if aggregates is None or stored is not events:
                aggregates = aggregate(stored)
            self._put_rest(run, rejections, received_at, positions, health)
            self._add_aggregates(run, aggregates)
            self._count_batch(run, len(events), len(stored), len(rejections))
            if max_bytes is not None:
                self._hold(max_bytes)
            if mark is not None:
                done = (len(stored), len(events) - len(stored), len(rejections))
                db.execute(marks.ADD, (mark.writer, mark.number, *done, received_at))
                db.execute(*marks.trim(mark))
                marks.written(mark)
        return list(stored)

    def _insert_packed(self, events: Sequence[Event], ids: Sequence[str | bytes]) -> int:
        """Insert events (their ids as stored), those whose id is new; return how many."""
        if not events:
            return 0
        width = len(events[0])
        values: list[object] = list(itertools.chain.from_iterable(events))
        values[::width] = ids  # in place of the ids as given: no row made again
        cursors = self._run_flat(_INSERT_EVENT, values, width, ")")
        return sum(cursor.rowcount for cursor in cursors)

    def _new_events(self, ids: Sequence[str | bytes]) -> list[int]:
        """Where the ids (as stored) not stored yet are, each id's first place, in order."""
        seen: set[object] = set()
        most = self._variables
        for start in range(0, len(ids), most):
            some = ids[start : start + most]
            holes = ", ".join("?" * len(some))
            sql = f"SELECT event_id FROM events WHERE event_id IN ({holes})"  # noqa: S608
            seen.update(row[0] for row in self._db.execute(sql, some))
        new = []
        for place, event_id in enumerate(ids):
            if event_id not in seen:
                seen.add(event_id)
                new.append(place)
        return new

    def _add_movie_users(self, run: Run, movie_users: set[tuple[str, str, str]]) -> None:
        added: Counter[tuple[str, str]] = Counter()
        for cursor in self._statements(_ADD_MOVIE_USERS, list(movie_users), _NEW_MOVIE_USERS):
            added.update(cursor.fetchall())
        self._add_counts(run, "movie_user_counts", added)
        (pending,) = run("SELECT count(*) FROM movie_users_pending").fetchone()
        if pending >= self.fold_rows:
            # Into movie_users_daily in its key's order: a page of it written once a
            # fold, not once a batch.
            run(_FOLD_MOVIE_USERS)
            run("DELETE FROM movie_users_pending")

    def _add_day_users(self, run: Run, day: str, start: str, users: list[str]) -> None:
        run(_ADD_DAY_USERS, (day, json.dumps(users, ensure_ascii=False), start))

    def _see_users(self, run: Run, last_seen: dict[str, str]) -> None:
        seen = (json.dumps(list(last_seen.items()), ensure_ascii=False),)
        run(_MOVE_USERS, seen)
        run(_UPSERT_LAST_SEEN, seen)

    def hold_size(self, limit: int) -> int:
        with self._transaction():
            return self._hold(limit)

    def _hold(self, limit: int) -> int:
        """In a transaction: delete the oldest raw rows, a step at a time, until the data
        in use is within `limit`. Freed pages are free at once, in the transaction."""
        run = self._db.execute
        deleted = 0
        size = self.size_bytes()
        for _ in range(64):
            if size <= limit:
                break
            kind = older_kind(*self._oldest_heads(run))
            if kind is None:
                break  # no raw rows left: what remains is aggregates
            per_row = self._row_bytes[kind]
            gone = self._delete_oldest(run, kind, max(32, (size - limit) // per_row))
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
        if rows:
            values = list(itertools.chain.from_iterable(rows))
            yield from self._run_flat(head, values, len(rows[0]), tail)

    def _run_flat(
        self, head: str, values: list[object], width: int, tail: str
    ) -> Iterator[sqlite3.Cursor]:
        """`_statements` over rows given one after another in `values`."""
        rows = len(values) // width
        most = 1 << ((self._variables // width).bit_length() - 1)
        start = 0
        while start < rows:
            size = 1 << (min(rows - start, most).bit_length() - 1)
            piece = values[start * width : (start + size) * width]
            yield self._db.execute(_values_sql(head, width, size) + tail, piece)
            start += size

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db, self.path)

    def _transact(self, work: Callable[[Run], T]) -> T:
        with self._transaction():
            return work(self._db.execute)

    def _query(self, sql: str, parameters: Sequence[object] = ()) -> list[Any]:
        try:
            return self._db.execute(sql, parameters).fetchall()
        except sqlite3.Error as error:
            raise StoreError(_describe(error, self.path)) from None

    def _stream(self, sql: str) -> Iterator[Any]:
        try:
            yield from self._db.execute(sql)
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
    connection = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=busy, cached_statements=256
    )
    connection.create_function(PACKED_ID, 1, packed_id, deterministic=True)  # for migrations
    return connection


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
