"""The consuming half: validates, batches and commits what the producer queued.

A batch is committed with the positions its records reached at their sources,
in one transaction. Up to `writes_in_flight` batches are written at once, but
they are stored strictly in order: a batch that fails is retried before any later
one may be stored (the writer refuses them until it is).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from operator import itemgetter
from typing import Final

from imdb_tui.aggregates import Aggregates, Aggregator
from imdb_tui.clock import Clock, utc_iso
from imdb_tui.events import Event, Rejection, seconds, validate_many
from imdb_tui.health import PipelineHealth
from imdb_tui.pipeline.producer import END, Chunk
from imdb_tui.pipeline.settings import PipelineSettings
from imdb_tui.pipeline.stats import Stats
from imdb_tui.sources import Source
from imdb_tui.store import OutOfOrder, SourcePosition, StoreError, Writer

log = logging.getLogger(__name__)

_EVENT_TIME: Final = itemgetter(Event._fields.index("event_time"))


class Batch:
    """What is being gathered for one commit."""

    __slots__ = ("events", "newest", "number", "opened", "positions", "queued", "rejections")

    def __init__(self) -> None:
        self.number = 0  # the writer's number for it, in commit order
        self.events: list[Event] = []
        self.rejections: list[Rejection] = []
        self.opened: float | None = None  # when it got its first record
        self.queued: list[float] = []  # when each of its chunks was queued
        self.positions: dict[str, SourcePosition] = {}  # the newest per source
        self.newest = ""  # its newest event time, at stream time


class Consumer:
    def __init__(
        self,
        source: Source,
        clock: Clock,
        settings: PipelineSettings,
        queue: asyncio.Queue[Chunk | None],
        stats: Stats,
        on_error: Callable[[str | None], None],
        health: Callable[[], PipelineHealth | None],
    ) -> None:
        """`on_error` hears each storage error, and None once a commit succeeds again;
        `health` gives the health row to write with a batch (None: not this time)."""
        self._source = source
        self._clock = clock
        self._settings = settings
        self._queue = queue
        self._stats = stats
        self._on_error = on_error
        self._health = health
        self._aggregate = Aggregator(clock.tz)
        self._numbered = 0  # batches given a number so far
        self.newest = ""
        """The newest event time validated (canonical, so it sorts)."""
        self.newest_stored = ""
        """The newest event time committed (see Pipeline.read_time)."""
        self.stopping = False

    async def run(self, writer: Writer) -> None:
        settings = self._settings
        clock = self._clock
        batch = Batch()
        writing: deque[asyncio.Task[None]] = deque()
        try:
            while True:
                opened = batch.opened
                timeout = None if opened is None else opened + settings.commit_interval
                deadline_passed = False
                item: Chunk | None
                try:
                    async with asyncio.timeout_at(_loop_time(timeout, clock)):
                        item = await self._queue.get()
                except TimeoutError:
                    item, deadline_passed = Chunk([], 0.0, ()), True
                if item is END:
                    break
                if item.records:
                    self._add(batch, item)
                if batch.opened is not None and (
                    deadline_passed
                    or len(batch.events) >= settings.batch_size
                    or clock.monotonic() >= batch.opened + settings.commit_interval
                ):
                    if len(writing) >= settings.writes_in_flight:
                        await writing.popleft()
                    writing.append(self._start_commit(writer, batch, writing))
                    batch = Batch()
            if batch.opened is not None:
                writing.append(self._start_commit(writer, batch, writing))
            for task in writing:
                await task
        finally:  # if cancelled, no batch write may outlive the run: the writer closes next
            for task in writing:
                task.cancel()
            await asyncio.gather(*writing, return_exceptions=True)

    def _add(self, batch: Batch, chunk: Chunk) -> None:
        clock = self._clock
        batch.queued.append(chunk.queued_at)
        self._stats.queued -= len(chunk.records)
        valid, invalid, blank = validate_many(chunk.records)
        self._stats.blank += blank
        if valid and self._settings.stream_time:
            batch.newest = max(batch.newest, max(map(_EVENT_TIME, valid)))
            self.newest = max(self.newest, batch.newest)
        batch.events += valid
        batch.rejections += invalid
        for position in chunk.positions:
            batch.positions[position.source] = position
        if batch.opened is None:
            batch.opened = clock.monotonic()

    def _start_commit(
        self, writer: Writer, batch: Batch, writing: deque[asyncio.Task[None]]
    ) -> asyncio.Task[None]:
        # The counts are worked out here, while the writer commits the previous batch,
        # and go with this one to be written in its transaction (the writer adds who).
        aggregates = self._aggregate.counts(batch.events)
        self._numbered += 1
        batch.number = self._numbered
        after = batch.number - 1 if batch.number > 1 else None
        before = writing[-1] if writing else None
        return asyncio.create_task(self._commit(writer, batch, aggregates, after, before))

    async def _commit(
        self,
        writer: Writer,
        batch: Batch,
        aggregates: Aggregates,
        after: int | None,
        before: asyncio.Task[None] | None,
    ) -> None:
        """Write one batch, retrying while the store fails; events are never dropped
        while the pipeline runs (the queue fills and the producer waits instead).

        Lag is how long after they were due events are stored: live events are due at
        their event time; events of a file or pipe (which may be history, or replayed)
        when they were queued.
        """
        delay = 0.25
        attempts = 0
        positions = list(batch.positions.values())
        while True:
            attempts += 1
            if attempts > 1 and before is not None and not before.done():
                await asyncio.shield(before)  # retried in order: the earlier one first
            received = utc_iso(self._clock.now())
            try:
                done = await writer.write(
                    batch.number,
                    after,
                    batch.events,
                    batch.rejections,
                    received,
                    aggregates,
                    positions,
                    self._health(),
                    self._settings.max_bytes,
                    self._settings.retention_seconds,
                )
            except OutOfOrder:  # the batch before failed: it goes again first
                if before is not None and not before.done():
                    continue
                # The batch before was given up (stopping): so is this one, and the
                # stored positions stay before both.
                self._stats.lose(len(batch.events), "an earlier batch could not be stored")
                return
            except StoreError as error:
                self._on_error(str(error))
                if self.stopping and attempts >= 3:
                    self._stats.lose(len(batch.events), str(error))
                    return
                await self._clock.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            break
        if before is not None and not before.done():
            await asyncio.shield(before)  # counted in order
        self._on_error(None)
        self._source.committed(positions)
        self.newest_stored = max(self.newest_stored, batch.newest)
        stats = self._stats
        committed = self._clock.monotonic()
        stats.committed(committed, done.stored, done.duplicates, done.rejected)
        if done.again:
            log.info("batch %d had been committed before its writer died", batch.number)
        if self._settings.stream_time:
            stats.lags([committed - at for at in batch.queued])
        else:
            now = self._clock.now()
            stats.lags([now - seconds(when) for when in done.sample_times])


def _loop_time(deadline: float | None, clock: Clock) -> float | None:
    """A monotonic-clock deadline as the event loop's time."""
    if deadline is None:
        return None
    return asyncio.get_running_loop().time() + (deadline - clock.monotonic())
