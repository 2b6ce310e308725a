"""Where events are kept: small interfaces by job, and one module per backend.

Every backend implements the five jobs below; nothing outside this package knows
SQL or which backend it talks to. `open_store` picks the backend from --db.

- BatchWriter: a batch's events, dead letters and aggregate updates, with the
  positions its sources reached and the pipeline's health, in one transaction.
- MetricsReader: the small aggregate tables the metrics snapshot is read from.
- CatalogueStore: the movies, and IMDb's catalogue kept once parsed.
- HealthBoard: the pipelines' health rows and the sources' stored positions.
- LeaseBoard: leases on a stream's shards, one reader a shard in a consumer group.

A new backend is a new module here (with its SQL) that `open_store` chooses;
the shared behaviour is tested once over every backend (tests/test_store.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, tzinfo
from os import PathLike
from typing import Any, Final, Protocol

from imdb_tui.aggregates import AggregateFn, Aggregates
from imdb_tui.catalog import Movie
from imdb_tui.clock import utc_iso
from imdb_tui.events import Event, Rejection
from imdb_tui.health import ENDED_STATES, LIVE_SECONDS, PipelineHealth
from imdb_tui.tail import EventMatch, Tail


class StoreError(Exception):
    """A storage problem, said in one line a user can act on."""


class OutOfOrder(StoreError):
    """A batch refused because the one before it is not stored yet: write that first."""


@dataclass(frozen=True, slots=True)
class BatchMark:
    """Which write a batch is: the writer's id (one a run) and its batch number, and the
    number of the batch that must be stored before it (None: it is the writer's first).

    The store keeps the marks of the batches it committed, in their transactions, so a
    batch sent again (after a writer process died, or a connection dropped while its
    commit was under way) is recognised and answered with what it did the first time,
    never stored twice, and never stored ahead of an earlier one."""

    writer: str
    number: int
    after: int | None


class AlreadyStored(Exception):
    """The batch was committed before: what it did then (nothing is written again)."""

    def __init__(self, stored: int, duplicates: int, rejected: int) -> None:
        super().__init__(stored, duplicates, rejected)
        self.stored = stored
        self.duplicates = duplicates
        self.rejected = rejected


BATCH_MARKS_KEPT: Final = 64
"""Marks kept a writer (far more than the writes ever in flight at once)."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    received_at: str
    reason: str
    raw: str
    raw_size: int


@dataclass(frozen=True, slots=True)
class TopMovie:
    movie_id: str
    title: str | None
    year: int | None
    views: int


@dataclass(frozen=True, slots=True)
class SourcePosition:
    """Where a source (a file, a shard) had been read to when a batch was committed."""

    source: str
    """The source's key: file:/abs/path, kinesis:stream/shard"""
    position: str
    """The source's own description of the position (JSON text), opaque to the store."""
    updated_at: str = ""
    """UTC ISO-8601, set by the store"""


class BatchWriter(Protocol):
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
        retention: float | None = None,
    ) -> list[Event]:
        """Store a batch in one transaction and return the events that were new.

        An event whose id is already stored, or came earlier in the batch, is a
        duplicate; `aggregate` turns the new events into the metric table updates
        (`aggregates`, if given, is `aggregate(events)` worked out ahead: used when
        every event is new). The positions and the health row go in the same
        transaction, so a stored position never runs ahead of the stored events.

        With a `mark`, the batch is written only once, and only after the batch it
        names: a mark already stored raises AlreadyStored (with what it did then), and
        one whose `after` is not stored raises OutOfOrder. With `max_bytes`, a backend
        that frees space at once (SQLite) deletes the oldest rows in the same
        transaction as needed to stay within it (see hold_size). `retention`, in
        seconds, is for a backend whose items expire by themselves (DynamoDB's
        TTL): each item is written with its time to go; elsewhere `prune` deletes.
        """
        ...

    def forget_writer(self, writer: str) -> None:
        """Drop a writer's batch marks (it closed: none of its batches comes again)."""
        ...

    def put_health(self, health: PipelineHealth) -> None:
        """Write a pipeline's health row (its heartbeat while idle or paused)."""
        ...

    def prune(self, before: str, limit: int) -> int:
        """Delete up to `limit` events and dead letters older than `before`; how many."""
        ...

    def prune_aggregates(self, before: str) -> None: ...

    def hold_size(self, limit: int) -> int:
        """Delete the oldest raw rows until the data in use is within `limit` bytes (for
        --max-size); how many. Oldest first across events (by event time) and dead
        letters (by arrival); the aggregates and counters keep counting them, and the
        rows deleted are counted (`pruned_events`, `pruned_dead_letters`)."""
        ...


class MetricsReader(Protocol):
    def size_bytes(self) -> int:
        """How much of the database its data takes (free space inside it not counted)."""
        ...

    def counters(self) -> dict[str, int]: ...

    def events_per_minute(self, since: str) -> list[tuple[str, int]]:
        """(minute, events of every type) from minute `since` (YYYY-MM-DDTHH:MMZ) on."""
        ...

    def events_per_period(self, bounds: Sequence[str]) -> list[tuple[int, str, int]]:
        """(period, event_type, events), period i running from bounds[i] to bounds[i + 1]."""
        ...

    def top_movies(self, day: str, limit: int) -> list[TopMovie]: ...

    def ratings(self, day: str) -> dict[int, int]:
        """The day's rate events by rating (1 to 10); none before schema 7."""
        ...

    def movie_ratings(self, day: str, movie_ids: Sequence[str]) -> dict[str, dict[int, int]]:
        """For each of these movies rated that day: its rate events by rating."""
        ...

    def views_per_period(self, bounds: Sequence[str]) -> list[tuple[int, str, int]]:
        """(period, movie_id, views), period i running from five-minute period key
        bounds[i] to bounds[i + 1] (the keys in order); none before schema 8."""
        ...

    def titles(self, movie_ids: Sequence[str]) -> dict[str, tuple[str, int | None]]:
        """The catalogue's title and year of each of these movies it knows."""
        ...

    def movie(self, movie_id: str) -> Movie | None:
        """The catalogue's entry for a movie, if it has one."""
        ...

    def movie_events(self, day: str, movie_id: str) -> dict[str, int]:
        """A movie's events that day by type (before schema 9: its views only)."""
        ...

    def movie_users(self, day: str, movie_id: str) -> int:
        """How many users had an event of a movie that day (none before schema 9)."""
        ...

    def movie_views_per_minute(self, movie_id: str, since: str) -> list[tuple[str, int]]:
        """(minute, views) of a movie from minute `since` on (kept two hours)."""
        ...

    def newest_events(self, match: EventMatch, after: int, limit: int) -> Tail:
        """Up to `limit` of the newest events that match, stored after seq `after`
        (and among the newest TAIL_SCAN), newest first."""
        ...

    def users_seen_since(self, *moments: str) -> list[int]:
        """For each moment, how many users have an event at or after it."""
        ...

    def users_on(self, day: str) -> int | None:
        """How many users had an event on a local day, as counted when the events came
        (see Aggregates.user_days); None: the day was not counted (before schema 10)."""
        ...

    def first_quarter_hour(self) -> str | None:
        """The oldest quarter hour with events counted (YYYY-MM-DDTHH:MMZ), if any."""
        ...

    def dead_letters(self, limit: int) -> list[DeadLetter]: ...

    def newest_event_time(self) -> str | None: ...

    def newest_minute(self) -> str | None:
        """The newest minute with events counted (YYYY-MM-DDTHH:MMZ), if any."""
        ...

    def events_after(self, moment: str, limit: int) -> int:
        """How many stored events are later than `moment` (canonical), counted up to
        `limit`: cheap when there are none, bounded when there are many."""
        ...


class CatalogueStore(Protocol):
    def save_movies(self, movies: Iterable[Movie]) -> None: ...

    def forget_catalog(self) -> None: ...

    def add_catalog_movies(self, movies: Sequence[Movie]) -> None: ...

    def weigh_catalog_movies(self, weights: Iterable[tuple[str, float]]) -> None: ...

    def keep_catalog(self, files: str, skipped: int, rated: int) -> None: ...

    def kept_catalog(self, files: str) -> tuple[int, int] | None: ...

    def catalog_weights(self) -> Iterator[tuple[str, float]]: ...

    def catalogue_titles(self) -> Iterator[tuple[str, str, int | None]]:
        """Every movie of the catalogue: its id, title and year (finding one by name)."""
        ...


class HealthBoard(Protocol):
    def pipelines(self, now: float) -> list[PipelineHealth]:
        """Every pipeline's health row, most recently seen first, `live` as of `now`."""
        ...

    def positions(self) -> list[SourcePosition]:
        """The stored position of every source."""
        ...

    def position(self, source: str) -> str | None: ...


@dataclass(frozen=True, slots=True)
class MovieOfDay:
    """A movie's figures of one local day, with what the catalogue knows of it."""

    movie_id: str
    title: str | None
    year: int | None
    genres: tuple[str, ...]
    events: dict[str, int]
    """by event type"""
    users: int
    ratings: dict[int, int]
    """rate events by rating (1 to 10)"""


class EventArchive(Protocol):
    """The stored events themselves, a span of time at a time, and each day's figures
    per movie (what `export` writes)."""

    def movies_on(self, day: str) -> list[MovieOfDay]:
        """Every movie with events on a local day (as the aggregates keep days)."""
        ...

    def events_between(self, start: str, stop: str, chunk: int) -> Iterator[list[Event]]:
        """The events kept with start <= event_time < stop (canonical times), in time
        order, `chunk` or so at a time: memory stays bounded however many there are."""
        ...


class LeaseBoard(Protocol):
    """Leases on a stream's shards, so that pipelines of one consumer group read each
    shard one at a time. Times are the pipelines' clocks (epoch seconds)."""

    def lease_holders(self, group: str, now: float) -> dict[str, str]:
        """The live leases of a group: key -> owner."""
        ...

    def take_lease(self, group: str, key: str, owner: str, until: float, now: float) -> bool:
        """Take (or renew) the lease on `key` until `until`, if it is free, expired (at
        `now`) or already the owner's; whether the owner holds it now."""
        ...

    def release_leases(self, group: str, owner: str, keys: Sequence[str]) -> None:
        """Hand back the owner's leases on these keys, for another to take at once."""
        ...

    def position(self, source: str) -> str | None:
        """A source's stored position (a shard's checkpoint, when its lease is taken)."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Written:
    """What one batch write did."""

    stored: int
    duplicates: int
    rejected: int
    sample_times: list[str]
    """event_time of up to LAG_SAMPLES of the stored events, for the lag figures"""
    again: bool = False
    """The batch had been committed before (by a writer child that died before it
    answered): the counts are what it did then."""


class Writer(Protocol):
    """Where a pipeline's batches are written, in order, several in flight: the
    store on a thread, or on a process of its own (see store/writer.py)."""

    id: str
    """This writer's name in the batch marks: one a run."""
    restarts: int
    """Writer processes started again after one died."""

    async def write(
        self,
        number: int,
        after: int | None,
        events: Sequence[Event],
        rejections: Sequence[Rejection],
        received_at: str,
        aggregates: Aggregates,
        positions: Sequence[SourcePosition] = (),
        health: PipelineHealth | None = None,
        max_bytes: int | None = None,
        retention: float | None = None,
    ) -> Written:
        """Write (or write again) batch `number`, which is stored only once batch
        `after` is (None: it is the first); `max_bytes` and `retention`: see
        BatchWriter.write_batch."""
        ...

    async def put_health(self, health: PipelineHealth) -> None: ...

    async def prune(self, before: str, limit: int) -> int: ...

    async def hold_size(self, limit: int) -> int: ...

    async def size_bytes(self) -> int: ...

    async def prune_aggregates(self, before: str) -> None: ...

    async def save_movies(self, movies: Sequence[Movie]) -> None: ...

    async def forget(self) -> None:
        """Drop this writer's batch marks: called once its last batch is answered."""
        ...

    async def close(self) -> None: ...


class Store(
    BatchWriter, MetricsReader, CatalogueStore, HealthBoard, LeaseBoard, EventArchive, Protocol
):
    """A connection to one backend, doing every job. Use it from one thread at a time."""

    name: str
    """What to call the database on screen and in messages (never with a password)."""

    def another(self) -> Store | None:
        """A new connection of its own to the same database (for a source's leases, used
        from its own thread); None for one that cannot have another (:memory:)."""
        ...

    def reader(self) -> Store:
        """A connection for reading while this one writes (itself where it must be)."""
        ...

    def writer(
        self, tz: tzinfo | None, separate_process: bool, thread: ThreadPoolExecutor | None
    ) -> Writer:
        """Where this store's batches are written: a thread, or a process of its own."""
        ...

    def close(self) -> None: ...


def open_store(
    name: str | PathLike[str],
    *,
    create: bool = True,
    read_only: bool = False,
    pg_schema: str | None = None,
    create_tables: bool = False,
) -> Store:
    """The store --db names: a PostgreSQL URL or keyword string, a DynamoDB table
    (dynamodb://TABLE), else an SQLite file (or :memory:). `pg_schema`: the PostgreSQL
    schema holding the tables; `create_tables`: make a missing DynamoDB table.

    `read_only` never writes to the database: no file, no schema, no migration.
    """
    from imdb_tui.store import dynamodb, postgres

    text = str(name)
    if dynamodb.is_dynamodb(text):
        return dynamodb.DynamoStore.open(text, create=create_tables and not read_only)
    if postgres.is_postgres(text):
        schema = pg_schema or postgres.DEFAULT_SCHEMA
        if read_only:
            return postgres.PostgresStore.open_read_only(text, schema)
        return postgres.PostgresStore.open(text, schema, create=create)
    from imdb_tui.store.sqlite import SqliteStore

    if read_only:
        return SqliteStore.open_read_only(text)
    return SqliteStore.open(text, create=create)


# The pipelines table's columns, and the PipelineHealth field each holds, in one
# order kept here only: every backend writes rows and reads them back by it.
HEALTH_FIELDS: Final = (
    ("id", "pipeline_id"),
    ("host", "host"),
    ("pid", "pid"),
    ("state", "state"),
    ("source", "source"),
    ("target_rate", "target_rate"),
    ("ingest_rate", "ingest_rate"),
    ("emitted", "emitted"),
    ("stored", "stored"),
    ("queue", "queue_depth"),
    ("lag_p50_ms", "lag_p50_ms"),
    ("lag_p99_ms", "lag_p99_ms"),
    ("error", "error"),
    ("stream_time", "stream_time"),
    ("replay_speed", "replay_speed"),
    ("as_of", "as_of"),
    ("started_at", "started_at"),
    ("last_seen", "last_seen"),
    ("source_behind_ms", "source_behind_ms"),
    ("alerts", "alerts"),
)


def health_row(health: PipelineHealth) -> tuple[object, ...]:
    """A health row's values, in HEALTH_FIELDS order."""
    return tuple(getattr(health, field) for _, field in HEALTH_FIELDS)


def health_from_rows(rows: Iterable[Sequence[Any]], now: float) -> list[PipelineHealth]:
    """Health rows read back (HEALTH_FIELDS order), `live` as of `now`: heard from
    within LIVE_SECONDS and not ended."""
    heard = utc_iso(now - LIVE_SECONDS)
    names = [field for _, field in HEALTH_FIELDS]
    read = [dict(zip(names, row, strict=True)) for row in rows]
    return [
        PipelineHealth(
            **{**fields, "stream_time": bool(fields["stream_time"])},
            live=fields["state"] not in ENDED_STATES and fields["last_seen"] >= heard,
        )
        for fields in read
    ]


def next_minute(moment: str) -> str:
    """The start of the minute after a canonical UTC time's, in the same form."""
    start = datetime.fromisoformat(moment[:16] + ":00+00:00").timestamp()
    return utc_iso(start + 60)


RECENT_KEPT_SECONDS: Final = 2 * 3600
"""How long views by five-minute period are kept behind the newest (trending reads 80 min)."""


def recent_cutoff(newest_period: str, before: str) -> str:
    """The oldest five-minute period (or minute) key kept, given the newest period
    stored and retention's cutoff `before`: whichever keeps more."""
    newest = datetime.fromisoformat(newest_period[:16] + ":00+00:00").timestamp()
    return min(before[:16] + "Z", utc_iso(newest - RECENT_KEPT_SECONDS)[:16] + "Z")


def movie_of(movie_id: str, title: str, year: int | None, genres: str) -> Movie:
    """A movies table row as a Movie (genres are kept comma-separated)."""
    return Movie(movie_id, title, year, tuple(g for g in genres.split(",") if g))
