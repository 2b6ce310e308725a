"""The pipeline: a paced producer and a batching consumer joined by a bounded queue.

    source --(pacer)--> asyncio.Queue of chunks --> validate, dedupe, batch --> Store

Both halves are asyncio tasks on the caller's loop; SQLite work runs on one
writer thread so that producing and validating go on while a batch commits.
The controls (pause, resume, set_rate, stop) are plain methods the CLI and the
monitor call from the loop's thread.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import tzinfo
from operator import itemgetter
from typing import Final, TypeVar

from imdb_tui.catalog import Catalog
from imdb_tui.clock import Clock, utc_iso
from imdb_tui.events import Event, RawRecord, Rejection, event_seconds, seconds, validate_many
from imdb_tui.metrics import Aggregator, MetricsSnapshot, PipelineHealth, read_snapshot
from imdb_tui.replay import ReplayClock
from imdb_tui.sources import Source, SourceError
from imdb_tui.store import Aggregates, DeadLetter, Store, StoreError
from imdb_tui.writer import Writer, open_writer

log = logging.getLogger(__name__)

MIN_RATE: Final = 1.0
MAX_RATE: Final = 1_000_000.0
WRITER_SWITCH_INTERVAL: Final = 0.001
T = TypeVar("T")
_END: Final = None  # the producer's last word on the queue
_EVENT_TIME: Final = itemgetter(Event._fields.index("event_time"))


@dataclass(frozen=True, slots=True)
class PipelineSettings:
    rate: float | None = 200.0
    """Target events per second; None runs unthrottled."""
    count: int | None = None
    """Stop after this many records from the source."""
    window_minutes: int = 5
    retention_seconds: float = 7 * 86400.0
    queue_chunks: int = 16
    """The queue's bound, in chunks of at most chunk_size records."""
    chunk_size: int = 2048
    batch_size: int = 16_384
    """A power of two: a full batch is a few equal insert statements (see Store._insert)."""
    commit_interval: float = 0.25
    """A batch is committed at the latest this long after its first record arrived."""
    prune_interval: float = 5.0
    prune_step: int = 2_000
    writes_in_flight: int = 2
    """Batches handed to the writer and not yet committed, at most."""
    writer_process: bool = True
    """Write a file database from a process of its own (see imdb_tui.writer)."""
    stream_time: bool = False
    """Read the metrics at stream time, the newest event time seen, instead of the
    present: for events from files and pipes, which may be history."""
    replay_speed: float = 0.0
    """Above 0: release events at this many times the pace of their own timestamps."""


@dataclass(frozen=True, slots=True)
class RunSummary:
    emitted: int
    stored: int
    duplicates: int
    rejected: int
    lost: int
    """Events that could not be stored when the run had to end."""
    elapsed: float
    error: str | None


class Pacer:
    """How many events are due at a target rate, without ever falling far behind.

    If the consumer cannot keep up (backpressure), at most a second's worth of
    events is owed: the pacer does not burst to make up for a long stall.
    """

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self._start = now
        self._sent = 0

    def restart(self, rate: float, now: float) -> None:
        self.rate = rate
        self._start = now
        self._sent = 0

    def due(self, now: float) -> int:
        """Events owed by `now`: one at once, then one every 1/rate seconds."""
        owed = (now - self._start) * self.rate + 1 - self._sent
        if owed > self.rate:
            self._start = now - (self._sent + self.rate - 1) / self.rate
            owed = self.rate
        return int(owed)

    def sent(self, count: int) -> None:
        self._sent += count

    def wait(self, now: float) -> float:
        """Seconds until the next event is due."""
        return self._sent / self.rate - (now - self._start)


class Pipeline:
    def __init__(
        self,
        source: Source,
        store: Store,
        clock: Clock,
        settings: PipelineSettings,
        catalog: Catalog | None = None,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self.source = source
        self.store = store
        self.settings = settings
        self.window_minutes = settings.window_minutes
        self._clock = clock
        self.catalog = catalog
        self.on_error = on_error
        self._aggregate = Aggregator(clock.tz)
        # Chunks of records, each with the moment it was queued (monotonic clock).
        self._queue: asyncio.Queue[tuple[list[RawRecord], float] | None]
        self._queue = asyncio.Queue(settings.queue_chunks)
        self._writer: Writer | None = None  # opened by run()
        # Snapshots are read on a thread of their own, on a connection of their own,
        # unless the database is in memory: then the writer's connection, on the
        # writer's thread (see run), so that reads and writes take turns.
        self._reader_store = store.reader()
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="imdb-tui-reader")
        self._rate = _checked_rate(settings.rate)
        self._pacer = Pacer(self._rate or MAX_RATE, clock.monotonic())
        self._replay = ReplayClock(settings.replay_speed, clock) if settings.replay_speed else None
        self._newest = ""  # the newest event time validated (canonical, so it sorts)
        self._running = asyncio.Event()
        self._running.set()
        self._stopping = False
        self._source_done = False
        self._finished = False
        self._queued = 0
        self._emitted = 0
        self._stored = 0
        self._duplicates = 0
        self._rejected = 0
        self._lost = 0
        self._error: str | None = None
        self._started = clock.monotonic()
        self._commits: deque[tuple[float, int]] = deque(maxlen=256)
        self._lags: deque[float] = deque(maxlen=4096)

    # Controls ----------------------------------------------------------------

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    @property
    def target_rate(self) -> float | None:
        return self._rate

    @property
    def tz(self) -> tzinfo | None:
        """The zone of the metrics' "today"."""
        return self._clock.tz

    @property
    def replay_speed(self) -> float | None:
        return None if self._replay is None else self._replay.speed

    def pause(self) -> None:
        self._running.clear()
        if self._replay is not None:
            self._replay.hold()

    def resume(self) -> None:
        self._pacer.restart(self._pacer.rate, self._clock.monotonic())
        if self._replay is not None:
            self._replay.go()
        self._running.set()

    def set_rate(self, rate: float | None) -> None:
        """A new target in events per second (clamped to 1..1,000,000); None: unthrottled."""
        self._rate = None if rate is None else min(max(rate, MIN_RATE), MAX_RATE)
        self._pacer.restart(self._rate or MAX_RATE, self._clock.monotonic())

    def stop(self) -> None:
        """Stop producing; run() returns once the queue is drained and committed."""
        self._stopping = True
        self._running.set()
        self.source.stop()

    def now(self) -> float:
        """The metrics' clock: the present, or at stream time the newest event time
        seen (the present until an event comes)."""
        if not self.settings.stream_time or not self._newest:
            return self._clock.now()
        return seconds(self._newest)

    @property
    def error(self) -> str | None:
        """The storage or source error not yet recovered from, if any."""
        return self._error

    @property
    def state(self) -> str:
        if self._finished:
            return "stopped" if self._stopping else "finished"
        if self._stopping or self._source_done:
            return "draining"
        return "paused" if self.paused else "running"

    # Running -----------------------------------------------------------------

    async def run(self) -> RunSummary:
        """Produce and consume until stopped, the source ends or --count is reached."""
        # The writer's threads (SQLite's on :memory:, the pipe's otherwise) give up the
        # GIL around every call and must wait for the loop's thread to hand it back;
        # at the default 5 ms that wait, many times a batch, costs more than the work.
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(switch_interval, WRITER_SWITCH_INTERVAL))
        shared = self._reader if self._reader_store is self.store else None
        self._writer = writer = open_writer(
            self.store, self._clock.tz, self.settings.writer_process, shared
        )
        try:
            if self.catalog is not None and self.catalog.movies:
                await writer.save_movies(self.catalog.movies)
            self._started = self._clock.monotonic()  # rates count from the first event
            self._pacer.restart(self._pacer.rate, self._started)
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._produce())
                consumer = tasks.create_task(self._consume())
                retention = tasks.create_task(self._retain())
                consumer.add_done_callback(lambda _: retention.cancel())
        finally:
            sys.setswitchinterval(switch_interval)
            await writer.close()
            self._finished = True
            self._reader.shutdown(wait=True)
            if self._reader_store is not self.store:
                self._reader_store.close()
        return RunSummary(
            emitted=self._emitted,
            stored=self._stored,
            duplicates=self._duplicates,
            rejected=self._rejected,
            lost=self._lost,
            elapsed=self._clock.monotonic() - self._started,
            error=self._error,
        )

    async def _produce(self) -> None:
        settings = self.settings
        clock = self._clock
        while not self._stopping:
            if self.paused:
                await self._running.wait()
                continue
            limit = settings.chunk_size
            if settings.count is not None:
                limit = min(limit, settings.count - self._emitted)
                if limit <= 0:
                    self._source_done = True
                    break
            if self._rate is not None:
                now = clock.monotonic()
                due = self._pacer.due(now)
                if due <= 0:
                    # Sleep until the next event is due, in short naps so that a new
                    # rate, a pause or a stop takes effect at once; never a busy wait.
                    await clock.sleep(min(max(self._pacer.wait(now), 0.002), 0.05))
                    continue
                limit = min(limit, due)
            try:
                records = await self.source.read(limit)
            except SourceError as error:  # what was read is still drained and stored
                self._report_error(str(error))
                records = []
            if not records:
                self._source_done = True
                break
            self._pacer.sent(len(records))
            if self._replay is None:
                await self._put(records)
            else:
                await self._release(records, self._replay)
            if self._rate is None:
                await asyncio.sleep(0)  # let the consumer in between chunks
        # Only on the way out in order: when cancelled, the consumer is cancelled too.
        await self._queue.put(_END)

    async def _put(self, records: list[RawRecord]) -> None:
        if records:
            self._emitted += len(records)
            self._queued += len(records)
            await self._queue.put((records, self._clock.monotonic()))

    async def _release(self, records: list[RawRecord], replay: ReplayClock) -> None:
        """Queue records as the replay clock reaches their event times: what is due
        goes before each wait. Stopping releases the rest at once (it was read)."""
        now = self._clock.now()
        released = 0
        for at, record in enumerate(records):
            event_time = event_seconds(record, now)
            if event_time is None:
                continue  # no usable time: released with the others, to be rejected
            while not self._stopping:
                if self.paused:
                    await self._put(records[released:at])
                    released = at
                    await self._running.wait()
                    continue
                wait = replay.wait(event_time)
                if wait <= 0:
                    break
                await self._put(records[released:at])
                released = at
                await self._clock.sleep(min(wait, 0.05))  # short naps: pause and stop act
        await self._put(records[released:])

    async def _consume(self) -> None:
        settings = self.settings
        clock = self._clock
        events: list[Event] = []
        rejections: list[Rejection] = []
        opened: float | None = None  # when the batch being filled got its first record
        queued: list[float] = []  # when each of its chunks was queued
        writing: deque[asyncio.Task[None]] = deque()
        try:
            while True:
                timeout = None if opened is None else opened + settings.commit_interval
                deadline_passed = False
                try:
                    async with asyncio.timeout_at(_loop_time(timeout, clock)):
                        item = await self._queue.get()
                except TimeoutError:
                    item, deadline_passed = ([], 0.0), True
                if item is _END:
                    break
                chunk, queued_at = item
                if chunk:
                    queued.append(queued_at)
                    self._queued -= len(chunk)
                    valid, invalid = validate_many(chunk, clock.now())
                    if valid and self.settings.stream_time:
                        self._newest = max(self._newest, max(map(_EVENT_TIME, valid)))
                    events += valid
                    rejections += invalid
                    if opened is None:
                        opened = clock.monotonic()
                if opened is not None and (
                    deadline_passed
                    or len(events) >= settings.batch_size
                    or clock.monotonic() >= opened + settings.commit_interval
                ):
                    if len(writing) >= settings.writes_in_flight:
                        await writing.popleft()
                    # The aggregates are worked out here, while the writer commits the
                    # previous batch, and go with this one to be written in its transaction.
                    aggregates = self._aggregate(events)
                    batch = self._commit(events, rejections, aggregates, queued)
                    writing.append(asyncio.create_task(batch))
                    events, rejections, opened, queued = [], [], None, []
            for task in writing:
                await task
            if events or rejections:
                await self._commit(events, rejections, self._aggregate(events), queued)
        finally:  # if cancelled, no batch write may outlive the run: the writer closes next
            for task in writing:
                task.cancel()
            await asyncio.gather(*writing, return_exceptions=True)

    async def _commit(
        self,
        events: list[Event],
        rejections: list[Rejection],
        aggregates: Aggregates,
        queued: list[float],
    ) -> None:
        """Write one batch, retrying while the store fails; events are never dropped
        while the pipeline runs (the queue fills and the producer waits instead).

        Lag is how long after they were due events are stored: live events are due at
        their event time; events of a file or pipe (which may be history, or replayed)
        when they were queued.
        """
        assert self._writer is not None
        delay = 0.25
        attempts = 0
        while True:
            attempts += 1
            received = utc_iso(self._clock.now())
            try:
                done = await self._writer.write(events, rejections, received, aggregates)
            except StoreError as error:
                self._report_error(str(error))
                if self._stopping and attempts >= 3:
                    self._lost += len(events)
                    return
                await self._clock.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            if self._error is not None:
                log.info("storage recovered")
                self._error = None
            self._stored += done.stored
            self._duplicates += done.duplicates
            self._rejected += done.rejected
            committed = self._clock.monotonic()
            self._commits.append((committed, self._stored))
            if self.settings.stream_time:
                self._lags.extend(committed - at for at in queued)
            else:
                now = self._clock.now()
                self._lags.extend(now - seconds(when) for when in done.sample_times)
            return

    async def _retain(self) -> None:
        """Prune old events now and then, in steps queued between batch writes.

        Paced by the event loop's own clock: retention is a chore, not pipeline time.
        """
        while True:
            more = await self._prune()
            await asyncio.sleep(0.05 if more else self.settings.prune_interval)

    async def _prune(self) -> bool:
        """One small retention step, queued between batch writes; True if there is more to do."""
        assert self._writer is not None
        if self.settings.stream_time and not self._newest:
            return False  # no event yet to count back from: the database may hold history
        cutoff = utc_iso(self.now() - self.settings.retention_seconds)
        step = self.settings.prune_step
        try:
            deleted = await self._writer.prune(cutoff, step)
            if deleted < step:
                await self._writer.prune_aggregates(cutoff)
        except StoreError as error:
            self._report_error(str(error))
            return False
        return deleted >= step

    def _report_error(self, message: str) -> None:
        if message != self._error:
            log.warning("storage error: %s", message)
            if self.on_error is not None:
                self.on_error(message)
        self._error = message

    # Observing ---------------------------------------------------------------

    def health(self) -> PipelineHealth:
        lags = sorted(self._lags)
        return PipelineHealth(
            state=self.state,
            target_rate=self._rate,
            ingest_rate=self._ingest_rate(),
            queue_depth=self._queued,
            lag_p50_ms=_percentile(lags, 0.50),
            lag_p99_ms=_percentile(lags, 0.99),
            emitted=self._emitted,
            stored=self._stored,
            error=self.error,
            stream_time=self.settings.stream_time,
            replay_speed=self.replay_speed,
        )

    def _ingest_rate(self, span: float = 3.0) -> float:
        """Events stored per second over the last `span` seconds."""
        now = self._clock.monotonic()
        since = max(now - span, self._started)
        if now <= since:
            return 0.0
        before = 0
        for at, total in self._commits:
            if at > since:
                break
            before = total
        else:
            before = self._stored
        return (self._stored - before) / (now - since)

    async def snapshot(self, window_minutes: int | None = None) -> MetricsSnapshot:
        """The metrics as committed so far, read off the event loop's thread."""
        window = window_minutes or self.window_minutes
        now, tz = self.now(), self._clock.tz
        return await self._read(read_snapshot, now, tz, window, self.health())

    async def dead_letters(self, limit: int) -> list[DeadLetter]:
        """The newest rejected records, read off the event loop's thread."""
        return await self._read(Store.dead_letters, limit)

    async def _read(self, query: Callable[..., T], *arguments: object) -> T:
        """`query(store, *arguments)` on the reader's thread and connection."""
        if self._finished:  # the reader thread is gone; the connections are idle
            return query(self.store, *arguments)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._reader, query, self._reader_store, *arguments)


def _checked_rate(rate: float | None) -> float | None:
    if rate is not None and not MIN_RATE <= rate <= MAX_RATE:
        raise ValueError(f"rate must be from {MIN_RATE:g} to {MAX_RATE:,.0f} events per second")
    return rate


def _percentile(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def _loop_time(deadline: float | None, clock: Clock) -> float | None:
    """A monotonic-clock deadline as the event loop's time."""
    if deadline is None:
        return None
    return asyncio.get_running_loop().time() + (deadline - clock.monotonic())
