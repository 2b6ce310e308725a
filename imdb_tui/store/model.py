"""Every table of the store, declared once, and the schema's history.

A table is its columns (each with a logical kind: an instant, a minute, a day, a
count, an id, text, ...), its key, how a batch changes it (adds to its counts,
replaces a row, inserts a row if its key is absent, appends), and what retention
prunes it by. Each SQL backend makes its DDL from this (`dialect.py`); a store
that is not SQL applies a batch from the same declarations: keyed counters to add
to, rows to insert if absent, positions to record.

One schema version for every backend: version N is the model as the N-th named
migration left it. A table or column says which migration brought it (`since`),
so the same list creates a new database and upgrades an old one, in each dialect.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Final


class Kind(Enum):
    """What a column holds; each dialect picks its type for it."""

    SEQ = "seq"  # a row number the store hands out, in insert order
    INSTANT = "instant"  # a moment, UTC, to the millisecond
    MILLIS = "millis"  # an instant kept as whole milliseconds where times are not typed
    UUID = "uuid"  # an identifier, a UUID more often than not: kept in 16 bytes if one
    MINUTE = "minute"  # the start of a UTC minute (or of a period of minutes)
    DAY = "day"  # a local calendar day
    COUNT = "count"  # a number of things, that batches add to
    INT = "int"  # a small whole number (a rating, a year, a pid)
    REAL = "real"  # a measure (a rate, milliseconds, epoch seconds)
    FLAG = "flag"  # yes or no
    ID = "id"  # an identifier (a movie, a user, a source)
    TEXT = "text"  # words, as given


class Change(Enum):
    """How a batch changes a table's rows."""

    ADD = "add"  # adds to the counts of a key (a new key starts at zero)
    REPLACE = "replace"  # a key's row is replaced
    INSERT = "insert"  # a row is inserted if its key is absent
    APPEND = "append"  # rows are only added (the store numbers them)


class Keep(Enum):
    """What retention prunes a table by (its `kept_by` column)."""

    FOREVER = "forever"
    RAW = "raw"  # raw rows: older than the cutoff, a bounded number at a time
    DAYS = "days"  # days before the cutoff's
    MINUTES = "minutes"  # whole minutes before the cutoff's
    RECENT = "recent"  # the last hours behind the newest period (trending)
    OLDER = "older"  # older than the cutoff, to the millisecond


SQLITE: Final = "sqlite"
POSTGRES: Final = "postgres"


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    kind: Kind
    null: bool = False
    note: str = ""
    since: int = 1
    only: str | None = None
    """The one backend that has it (its own write path needs it), else every one."""


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    note: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    change: Change
    since: int
    kept_by: str | None = None
    keep: Keep = Keep.FOREVER
    unique: tuple[str, ...] = ()
    indexes: tuple[tuple[str, str, int], ...] = ()
    """(name, column, since)"""
    only: str | None = None
    single_row: bool = False
    """A table of one row (its key is always 1)."""

    def held_at(self, version: int, backend: str) -> bool:
        """Whether a database of this version and backend has the table."""
        return self.since <= version and self.only in (None, backend)

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    def columns_at(self, version: int, backend: str) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.since <= version and c.only in (None, backend))

    @property
    def values(self) -> tuple[str, ...]:
        """The columns that are not the key."""
        return tuple(c.name for c in self.columns if c.name not in self.key)


def _c(name: str, kind: Kind, note: str = "", **more: object) -> Column:
    return Column(name, kind, note=note, **more)  # type: ignore[arg-type]


_I, _M, _D, _N, _ID, _T = Kind.INSTANT, Kind.MINUTE, Kind.DAY, Kind.COUNT, Kind.ID, Kind.TEXT

TABLES: Final = (
    Table(
        "events",
        "every valid event stored, once",
        (
            _c("seq", Kind.SEQ, "ingest order"),
            _c("event_id", Kind.UUID, "16 bytes when a canonical UUID (SQLite)"),
            _c("event_time", Kind.MILLIS, "when it happened (SQLite: ms since 1970)"),
            _c("user_id", _ID),
            _c("session_id", _ID),
            _c("movie_id", _ID),
            _c("event_type", _ID, "view, click, rate, watchlist_add"),
            _c("rating", Kind.INT, "1 to 10, rate events only", null=True),
        ),
        key=("seq",),
        change=Change.INSERT,
        since=1,
        kept_by="event_time",
        keep=Keep.RAW,
        unique=("event_id",),
        indexes=(("events_by_time", "event_time", 1),),
    ),
    Table(
        "dead_letters",
        "records that were not events, with the reason",
        (
            _c("id", Kind.SEQ),
            _c("received_at", _I),
            _c("reason", _T),
            _c("raw", _T, "cut to 4096 characters"),
            _c("raw_size", Kind.INT, "length before the cut"),
        ),
        key=("id",),
        change=Change.APPEND,
        since=1,
        kept_by="received_at",
        keep=Keep.RAW,
        indexes=(("dead_letters_by_time", "received_at", 1),),
    ),
    Table(
        "movies",
        "the catalogue: titles for the ids",
        (
            _c("movie_id", _ID),
            _c("title", _T),
            _c("year", Kind.INT, null=True),
            _c("genres", _T, "comma-separated"),
            _c("popularity", Kind.REAL, "set for the kept IMDb catalogue", null=True, since=2),
        ),
        key=("movie_id",),
        change=Change.REPLACE,
        since=1,
    ),
    Table(
        "events_per_minute",
        "events by UTC minute and type",
        (_c("minute", _M), _c("event_type", _ID), _c("events", _N)),
        key=("minute", "event_type"),
        change=Change.ADD,
        since=1,
        kept_by="minute",
        keep=Keep.MINUTES,
    ),
    Table(
        "events_per_quarter_hour",
        "events by UTC quarter hour and type (local hours and days add up from it)",
        (_c("quarter", _M), _c("event_type", _ID), _c("events", _N)),
        key=("quarter", "event_type"),
        change=Change.ADD,
        since=1,
        kept_by="quarter",
        keep=Keep.MINUTES,
    ),
    Table(
        "movie_views_daily",
        "views by local day and movie (top movies)",
        (_c("day", _D), _c("movie_id", _ID), _c("views", _N)),
        key=("day", "movie_id"),
        change=Change.ADD,
        since=1,
        kept_by="day",
        keep=Keep.DAYS,
    ),
    Table(
        "user_activity",
        "each user's newest event time (active users)",
        (
            _c("user_id", _ID),
            _c("last_seen", _I),
            _c("previous_seen", _I, "last_seen before the last write", null=True, only=POSTGRES),
        ),
        key=("user_id",),
        change=Change.REPLACE,
        since=1,
        kept_by="last_seen",
        keep=Keep.MINUTES,
        indexes=(("user_activity_by_time", "last_seen", 4),),
    ),
    Table(
        "counters",
        "events_total, duplicates, dead_letters, pruned_events, ...",
        (_c("name", _ID), _c("value", _N)),
        key=("name",),
        change=Change.ADD,
        since=1,
    ),
    Table(
        "catalog_source",
        "the IMDb files the kept catalogue was read from",
        (
            _c("id", Kind.INT, "always 1"),
            _c("files", _T, "each file's path, size and mtime"),
            _c("skipped", Kind.INT, "malformed rows left out"),
            _c("rated", Kind.INT, "movies with a numVotes"),
        ),
        key=("id",),
        change=Change.REPLACE,
        since=2,
        single_row=True,
    ),
    Table(
        "source_positions",
        "where each source had been read to, committed with its batch",
        (
            _c("source", _ID, "file:/abs/path, kinesis:stream/shard"),
            _c("position", _T, "the source's own (JSON)"),
            _c("updated_at", _I),
        ),
        key=("source",),
        change=Change.REPLACE,
        since=3,
    ),
    Table(
        "pipelines",
        "each pipeline's health, written with its batches and as a heartbeat",
        (
            _c("id", _ID, "host:pid:start"),
            _c("host", _T),
            _c("pid", Kind.INT),
            _c("state", _ID, "running, paused, draining, finished, ..."),
            _c("source", _T),
            _c("target_rate", Kind.REAL, "events a second; NULL: unthrottled", null=True),
            _c("ingest_rate", Kind.REAL),
            _c("emitted", _N),
            _c("stored", _N),
            _c("queue", _N),
            _c("lag_p50_ms", Kind.REAL, null=True),
            _c("lag_p99_ms", Kind.REAL, null=True),
            _c("error", _T, null=True),
            _c("stream_time", Kind.FLAG, "metrics read at the newest event"),
            _c("replay_speed", Kind.REAL, null=True),
            _c("as_of", Kind.REAL, "where its metrics clock stands", null=True),
            _c("started_at", _I),
            _c("last_seen", _I),
            _c("source_behind_ms", Kind.REAL, "a stream's MillisBehindLatest", null=True, since=6),
            _c("alerts", _T, "its alert rules: firing and recent (JSON)", null=True, since=15),
        ),
        key=("id",),
        change=Change.REPLACE,
        since=3,
    ),
    Table(
        "users_per_last_minute",
        "users by the minute of their newest event (active users add up from it)",
        (_c("minute", _M), _c("users", _N)),
        key=("minute",),
        change=Change.ADD,
        since=4,
        kept_by="minute",
        keep=Keep.MINUTES,
    ),
    Table(
        "leases",
        "one reader a shard in a consumer group",
        (
            _c("grp", _ID, "the consumer group"),
            _c("key", _ID, "kinesis:stream/shard"),
            _c("owner", _ID, "host:pid:start of the pipeline"),
            _c("expires", Kind.REAL, "epoch seconds"),
        ),
        key=("grp", "key"),
        change=Change.REPLACE,
        since=5,
    ),
    Table(
        "ratings_daily",
        "rate events by local day and rating",
        (_c("day", _D), _c("rating", Kind.INT, "1 to 10"), _c("ratings", _N)),
        key=("day", "rating"),
        change=Change.ADD,
        since=7,
        kept_by="day",
        keep=Keep.DAYS,
    ),
    Table(
        "movie_ratings_daily",
        "rate events by local day, movie and rating",
        (_c("day", _D), _c("movie_id", _ID), _c("rating", Kind.INT), _c("ratings", _N)),
        key=("day", "movie_id", "rating"),
        change=Change.ADD,
        since=7,
        kept_by="day",
        keep=Keep.DAYS,
    ),
    Table(
        "recent_views",
        "views by five-minute period and movie (trending; kept two hours)",
        (_c("period", _M, "UTC start, minutes 00, 05, ..."), _c("movie_id", _ID), _c("views", _N)),
        key=("period", "movie_id"),
        change=Change.ADD,
        since=8,
        kept_by="period",
        keep=Keep.RECENT,
    ),
    Table(
        "movie_events_daily",
        "events by local day, movie and type (a movie's day)",
        (_c("day", _D), _c("movie_id", _ID), _c("event_type", _ID), _c("events", _N)),
        key=("day", "movie_id", "event_type"),
        change=Change.ADD,
        since=9,
        kept_by="day",
        keep=Keep.DAYS,
    ),
    Table(
        "movie_users_daily",
        "who had an event of a movie on a local day",
        (_c("day", _D), _c("movie_id", _ID), _c("user_id", _ID)),
        key=("day", "movie_id", "user_id"),
        change=Change.INSERT,
        since=9,
        kept_by="day",
        keep=Keep.DAYS,
    ),
    Table(
        "movie_user_counts",
        "movie_users_daily's rows, counted",
        (_c("day", _D), _c("movie_id", _ID), _c("users", _N)),
        key=("day", "movie_id"),
        change=Change.ADD,
        since=9,
        kept_by="day",
        keep=Keep.DAYS,
    ),
    Table(
        "movie_views_per_minute",
        "views by movie and UTC minute (a movie's last hours)",
        (_c("movie_id", _ID), _c("minute", _M), _c("views", _N)),
        key=("movie_id", "minute"),
        change=Change.ADD,
        since=9,
        kept_by="minute",
        keep=Keep.RECENT,
    ),
    Table(
        "users_daily",
        "users with an event on each local day, counted as their events came",
        (_c("day", _D), _c("users", _N)),
        key=("day",),
        change=Change.ADD,
        since=10,
        kept_by="day",
        keep=Keep.DAYS,
    ),
    Table(
        "movie_users_pending",
        "movie users new to movie_users_daily, folded into it in bulk",
        (_c("day", _D), _c("movie_id", _ID), _c("user_id", _ID)),
        key=("day", "movie_id", "user_id"),
        change=Change.INSERT,
        since=11,
        kept_by="day",
        keep=Keep.DAYS,
        only=SQLITE,
    ),
    Table(
        "batch_marks",
        "the batches committed, so one sent again is never stored twice",
        (
            _c("writer", _ID, "one run's writer"),
            _c("number", _N, "its batches, numbered in commit order"),
            _c("stored", _N, "what the batch did: new events,"),
            _c("duplicates", _N, "events already stored,"),
            _c("rejected", _N, "dead letters"),
            _c("written_at", _I),
        ),
        key=("writer", "number"),
        change=Change.INSERT,
        since=12,
        kept_by="written_at",
        keep=Keep.OLDER,
    ),
)
BY_NAME: Final = {table.name: table for table in TABLES}


Readable = Callable[[Kind, str], str]
"""A column's expression as people querying the store read it (see Dialect.readable)."""


@dataclass(frozen=True, slots=True)
class View:
    """A view for people who query the store (sqlite3, psql, datasette, a BI tool),
    the same name and query on every backend: its SQL, given how each backend shows
    a column of a kind it keeps packed (a time, an id) to people."""

    name: str
    note: str
    sql: Callable[[Readable], str]
    since: int
    remade: tuple[int, ...] = ()
    """Versions whose migration makes it again (its query or its table changed)."""


_TYPE_COLUMNS: Final = (
    ("view", "views"),
    ("click", "clicks"),
    ("rate", "ratings"),
    ("watchlist_add", "watchlist_adds"),
)
VIEWS: Final = (
    View(
        "events_with_titles",
        "each stored event with its movie's title and year",
        lambda read: (
            f"SELECT e.seq, {read(Kind.UUID, 'e.event_id')} AS event_id,"  # noqa: S608
            f" {read(Kind.MILLIS, 'e.event_time')} AS event_time, e.user_id, e.session_id,"
            " e.movie_id, m.title, m.year, e.event_type, e.rating"
            " FROM events AS e LEFT JOIN movies AS m ON m.movie_id = e.movie_id"
        ),
        since=14,
        remade=(16,),
    ),
    View(
        "top_movies_today",
        "the newest day's views by movie, with titles, most viewed first",
        lambda read: (
            "SELECT v.day, v.movie_id, m.title, m.year, v.views"
            " FROM movie_views_daily AS v LEFT JOIN movies AS m ON m.movie_id = v.movie_id"
            " WHERE v.day = (SELECT max(day) FROM movie_views_daily)"
            " ORDER BY v.views DESC, v.movie_id"
        ),
        since=14,
    ),
    View(
        "events_per_minute_by_type",
        "events by UTC minute, a column a type and their total",
        lambda read: (
            "SELECT minute, "  # noqa: S608 (constants)
            + "".join(
                f"CAST(sum(CASE WHEN event_type = '{kind}' THEN events ELSE 0 END) AS BIGINT)"
                f" AS {name}, "
                for kind, name in _TYPE_COLUMNS
            )
            + "CAST(sum(events) AS BIGINT) AS events"
            " FROM events_per_minute GROUP BY minute"
        ),
        since=14,
    ),
)


@dataclass(frozen=True, slots=True)
class Migration:
    name: str
    data: tuple[str, ...] = ()
    """Statements run after the tables and columns it brings are made (shared SQL)."""
    only: str | None = None
    retype: bool = False
    """Times and days take the dialect's types (PostgreSQL: timestamptz and date)."""
    rebuild: tuple[str, ...] = ()
    """Tables made again in the model's types, their rows copied over (SQLite cannot
    change a column's type in place)."""

    def applies_to(self, backend: str) -> bool:
        """Whether its own work (data, retype, rebuild) is done on this backend."""
        return self.only in (None, backend)


MIGRATIONS: Final = (
    Migration("events, dead letters, the catalogue and the first aggregates"),
    Migration("IMDb's catalogue kept once parsed"),
    Migration("source positions and pipelines' health"),
    Migration(
        "users by their newest minute",
        data=(
            "INSERT INTO users_per_last_minute"
            " SELECT substr(last_seen, 1, 16) || 'Z', count(*) FROM user_activity GROUP BY 1",
        ),
        only=SQLITE,
    ),
    Migration("leases on a stream's shards"),
    Migration("how far behind its source a pipeline reads"),
    Migration("ratings by day, and by movie and day"),
    Migration("views by five-minute period, for trending"),
    Migration("each movie's day and its views by minute"),
    Migration("each day's users"),
    Migration("movie users pending a fold (SQLite)"),
    Migration("batch marks"),
    Migration(
        "one schema version for every backend; times and days typed (PostgreSQL)",
        only=POSTGRES,
        retype=True,
    ),
    Migration("views for people who query the store"),
    Migration("alerts in pipelines' health"),
    Migration(
        "events in fewer bytes: UUIDs in 16, times in whole milliseconds (SQLite)",
        only=SQLITE,
        rebuild=("events",),
    ),
)
VERSION: Final = len(MIGRATIONS)
"""The schema version this program writes, the same on every backend."""
TIMES_TYPED: Final = 13
"""From this version on, PostgreSQL keeps times as timestamptz and days as date."""
EVENTS_PACKED: Final = 16
"""From this version on, SQLite keeps event ids that are UUIDs in 16 bytes and event
times as whole milliseconds since 1970."""

POSTGRES_BEFORE: Final = {0: 0, 1: 4, 2: 5, 3: 6, 4: 7, 5: 8, 6: 9, 7: 10, 8: 12}
"""PostgreSQL schemas were numbered apart before version 13: the version each of
those numbers holds the same tables as."""


def tables_at(version: int, backend: str) -> Iterator[Table]:
    """The tables a database of this version has, in the model's order."""
    for table in TABLES:
        if table.held_at(version, backend):
            yield table


def has(table: str, version: int, backend: str) -> bool:
    return BY_NAME[table].held_at(version, backend)
