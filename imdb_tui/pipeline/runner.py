"""The pipeline: a paced producer and a batching consumer joined by a bounded queue.

    source --(pacer)--> asyncio.Queue of chunks --> validate, dedupe, batch --> store

Both halves are asyncio tasks on the caller's loop; the store's writer (a thread,
or a process of its own) commits a batch while the next one is produced and
validated. Beside them, a retention chore prunes old events and a heartbeat keeps
the pipeline's health row fresh in the store. The controls (pause, resume,
set_rate, stop) are plain methods called from the loop's thread.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import tzinfo
from typing import Final, TypeVar

from imdb_tui.alerts import AlertChange, Alerts
from imdb_tui.catalog import Catalog
from imdb_tui.clock import Clock, local_day, utc_iso
from imdb_tui.display import size_text
from imdb_tui.events import seconds
from imdb_tui.health import HEARTBEAT_SECONDS, PipelineHealth
from imdb_tui.metrics import MetricsSnapshot, MovieDay, Trending, read_movie, read_snapshot
from imdb_tui.pipeline.consumer import Consumer
from imdb_tui.pipeline.producer import Chunk, Producer
from imdb_tui.pipeline.settings import PipelineSettings, RunSummary
from imdb_tui.pipeline.stats import Stats
from imdb_tui.search import TitleIndex, read_index
from imdb_tui.sources import Source
from imdb_tui.store import DeadLetter, Store, StoreError, Writer
from imdb_tui.tail import EventMatch, Tail

log = logging.getLogger(__name__)

WRITER_SWITCH_INTERVAL: Final = 0.001
ALERT_SECONDS: Final = 1.0
"""Seconds between evaluations of the alert rules, on the pipeline's clock."""
HEALTH_WITH_COMMITS: Final = 1.0
"""Seconds between health rows written with commits, at most one each."""
T = TypeVar("T")


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
        self.alerts: Alerts | None = None
        """Alert rules, evaluated every ALERT_SECONDS of the pipeline's clock."""
        self.store = store
        self.settings = settings
        self.window_minutes = settings.window_minutes
        self._clock = clock
        self.catalog = catalog
        self.on_error = on_error
        self._stats = Stats(clock.monotonic())
        queue: asyncio.Queue[Chunk | None] = asyncio.Queue(settings.queue_chunks)
        self._producer = Producer(source, clock, settings, queue, self._stats)
        self._consumer = Consumer(
            source, clock, settings, queue, self._stats, self._storage_error, self._health_due
        )
        self._writer: Writer | None = None  # opened by run()
        # Snapshots are read on a thread of their own, on a connection of their own,
        # unless the store has one connection only (in memory): then the writer's,
        # on the writer's thread (see run), so that reads and writes take turns.
        self._reader_store = store.reader()
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="imdb-tui-reader")
        self._trends = Trending()  # read on the reader's thread only
        self._finished = False
        self._error: str | None = None
        self._started_at = utc_iso(clock.now())
        self._host = socket.gethostname()
        self.pipeline_id = f"{self._host}:{os.getpid()}:{self._started_at}"
        self._health_written = float("-inf")
        self._said_over = False  # that --max-size cannot hold: said once
        self.resumed: str | None = None
        """Where the source carried on from a stored position, once run has started."""

    # Controls ----------------------------------------------------------------

    @property
    def paused(self) -> bool:
        return self._producer.paused

    @property
    def target_rate(self) -> float | None:
        return self._producer.rate

    @property
    def tz(self) -> tzinfo | None:
        """The zone of the metrics' "today"."""
        return self._clock.tz

    @property
    def replay_speed(self) -> float | None:
        replay = self._producer.replay
        return None if replay is None else replay.speed

    def pause(self) -> None:
        self._producer.pause()

    def resume(self) -> None:
        self._producer.resume()

    def set_rate(self, rate: float | None) -> None:
        """A new target in events per second (clamped to 1..1,000,000); None: unthrottled."""
        self._producer.set_rate(rate)

    def stop(self, read_rest: bool = True) -> None:
        """Stop producing; run() returns once the queue is drained and committed.
        With `read_rest` (a signal, which most likely stopped a pipe's writer too),
        what a pipe still holds is read first (see Source.rest); without it (a key
        pressed to quit: the writer goes on), reading stops at once."""
        self._consumer.stopping = True
        self._producer.stop(read_rest)

    def now(self) -> float:
        """The pipeline's clock: the present, or at stream time the newest event time
        seen (the present until an event comes)."""
        newest = self._consumer.newest
        if not self.settings.stream_time or not newest:
            return self._clock.now()
        return seconds(newest)

    def read_time(self) -> float:
        """When the figures are read: `now`, but at stream time the newest event time
        stored once one is (read at the newest seen, a fast replay's newest minute
        showed 0: its events were still on their way to the store)."""
        stored = self._consumer.newest_stored
        return seconds(stored) if self.settings.stream_time and stored else self.now()

    @property
    def error(self) -> str | None:
        """What is wrong, said for a person: the input error the source failed with,
        else the storage error not yet recovered from (a storage error recovered
        from does not clear an input error)."""
        if self.input_error is not None:
            return f"input error: {self.input_error}"
        if self._error is None:
            trouble = self.source.trouble
            return None if trouble is None or self._finished else f"input: {trouble}, retrying"
        return f"storage error: {self._error}" + ("" if self._finished else ", retrying")

    @property
    def input_error(self) -> str | None:
        return self._producer.input_error

    @property
    def state(self) -> str:
        if self._finished:
            if self.input_error is not None:
                return "failed"
            return "stopped" if self._producer.stopping else "finished"
        if self._error is not None or self.source.trouble is not None:
            return "waiting"  # on the store (the batch is retried) or on the source
        if self._producer.stopping or self._producer.done:
            return "draining"
        return "paused" if self.paused else "running"

    # Running -----------------------------------------------------------------

    async def run(self) -> RunSummary:
        """Produce and consume until stopped, the source ends or --count is reached."""
        # The writer's threads give up the GIL around every call and must wait for the
        # loop's thread to hand it back; at the default 5 ms that wait, many times a
        # batch, costs more than the work.
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(switch_interval, WRITER_SWITCH_INTERVAL))
        shared = self._reader if self._reader_store is self.store else None
        self._writer = writer = self.store.writer(
            self._clock.tz, self.settings.writer_process, shared
        )
        try:
            if self.catalog is not None and self.catalog.movies:
                await writer.save_movies(self.catalog.movies)
            stored = self.store.position
            self.resumed = await self.source.start(
                (lambda _: None) if self.settings.from_start else stored
            )
            self._stats.restart(self._clock.monotonic())  # rates count from the first event
            self._producer.restart_pacing()
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._producer.run())
                consumer = tasks.create_task(self._consumer.run(writer))
                chores = [tasks.create_task(self._retain()), tasks.create_task(self._beat())]
                if self.alerts is not None:
                    chores.append(tasks.create_task(self._watch_alerts(self.alerts)))
                consumer.add_done_callback(lambda _: [chore.cancel() for chore in chores])
            if self.alerts is not None:  # a run shorter than a look still gets one
                await self.check_alerts(self.alerts)
            self._finished = True
            await self._put_health()  # the last word: stopped, finished or failed
        finally:
            sys.setswitchinterval(switch_interval)
            self._finished = True
            await writer.close()
            self._reader.shutdown(wait=True)
            if self._reader_store is not self.store:
                self._reader_store.close()
        stats = self._stats
        return RunSummary(
            emitted=stats.emitted,
            stored=stats.stored,
            duplicates=stats.duplicates,
            rejected=stats.rejected,
            lost=stats.lost,
            elapsed=self._clock.monotonic() - stats.started,
            error=self._error or stats.lost_because,
            input_error=self.input_error,
            resumed=self.resumed,
            blank=stats.blank,
        )

    async def _retain(self) -> None:
        """Prune old events now and then, in steps queued between batch writes.

        Paced by the event loop's own clock: retention is a chore, not pipeline time.
        """
        interval = self.settings.prune_interval
        if self.settings.max_bytes is not None:  # a fast stream outgrows a limit quickly
            interval = min(interval, 1.0)
        while True:
            more = await self._prune()
            await asyncio.sleep(0.05 if more else interval)

    async def _prune(self) -> bool:
        """One small retention step, queued between batch writes; True if there is more to do."""
        assert self._writer is not None
        if self.settings.stream_time and not self._consumer.newest:
            return False  # no event yet to count back from: the database may hold history
        step = self.settings.prune_step
        try:
            cutoff = await self._retention_cutoff()
            deleted = await self._writer.prune(cutoff, step)
            if deleted < step:
                await self._writer.prune_aggregates(cutoff)
            limit = self.settings.max_bytes
            if limit is not None and deleted < step:
                # Each batch holds the size where the store frees space at once (SQLite);
                # this round does it elsewhere, and after retention or a restart.
                deleted += await self._writer.hold_size(limit)
                if not self._said_over:
                    size = await self._writer.size_bytes()
                    if size > limit * 1.1:  # no raw rows left to prune: the figures' own
                        self._said_over = True
                        log.warning(
                            "--max-size %s: the figures' tables alone take %s (the raw"
                            " events and dead letters are pruned); raise --max-size",
                            size_text(limit),
                            size_text(size),
                        )
        except StoreError as error:
            self._storage_error(str(error))
            return False
        return deleted >= step

    async def _retention_cutoff(self) -> str:
        """Events older than this go: those past the retention span of the present, and
        of the newest stored event too, whatever this machine's clock says (a clock ten
        days ahead deletes nothing that a correct one would keep)."""
        span = self.settings.retention_seconds
        newest = await self._read(_newest_event_time)
        cutoff = self.now() - span
        if newest is not None:
            cutoff = min(cutoff, seconds(newest) - span)
        return utc_iso(cutoff)

    async def _beat(self) -> None:
        """Keep the health row fresh while no commit carries it (idle or paused).

        Paced by the event loop's own clock: viewers judge it against real time."""
        loop = asyncio.get_running_loop()
        while True:
            wait = self._health_written + HEARTBEAT_SECONDS - loop.time()
            if wait <= 0:
                await self._put_health()
                wait = HEARTBEAT_SECONDS
            await asyncio.sleep(wait)

    async def _watch_alerts(self, alerts: Alerts) -> None:
        """Evaluate the alert rules every ALERT_SECONDS, on the pipeline's clock."""
        while True:
            await self._clock.sleep(ALERT_SECONDS)
            await self.check_alerts(alerts)

    async def check_alerts(self, alerts: Alerts) -> list[AlertChange]:
        """Evaluate the rules now (against the store's figures if a rule names one,
        else the health alone); their listeners are told what changed."""
        if alerts.needs_store:
            try:
                snapshot = await self.snapshot()
            except StoreError:
                return []  # the store is away: said already, evaluated again next time
        else:
            snapshot = MetricsSnapshot.of_health(self.health())
        return alerts.observe(snapshot, self._clock.monotonic(), utc_iso(self._clock.now()))

    async def _put_health(self) -> None:
        assert self._writer is not None
        self._health_written = asyncio.get_running_loop().time()
        try:
            await self._writer.put_health(self.health())
        except StoreError as error:
            self._storage_error(str(error))

    def _health_due(self) -> PipelineHealth | None:
        """The health row to write with a batch, at most every HEALTH_WITH_COMMITS."""
        now = asyncio.get_running_loop().time()
        if now - self._health_written < HEALTH_WITH_COMMITS:
            return None
        self._health_written = now
        return self.health()

    def _storage_error(self, message: str | None) -> None:
        """A storage error, or None once storing works again."""
        if message is None:
            if self._error is not None:
                log.info("storage recovered")
                self._error = None
            return
        if message != self._error:
            log.warning("storage error: %s", message)
            if self.on_error is not None:
                self.on_error(message)
        self._error = message

    # Observing ---------------------------------------------------------------

    def health(self) -> PipelineHealth:
        stats = self._stats
        p50, p99 = stats.lag_percentiles()
        newest = self._consumer.newest
        return PipelineHealth(
            state=self.state,
            target_rate=self.target_rate,
            ingest_rate=stats.ingest_rate(self._clock.monotonic()),
            queue_depth=stats.queued,
            lag_p50_ms=p50,
            lag_p99_ms=p99,
            emitted=stats.emitted,
            stored=stats.stored,
            source_behind_ms=self.source.behind_ms,
            alerts=None if self.alerts is None else self.alerts.state_json(),
            error=self.error,
            stream_time=self.settings.stream_time,
            replay_speed=self.replay_speed,
            as_of=seconds(newest) if newest else None,
            pipeline_id=self.pipeline_id,
            host=self._host,
            pid=os.getpid(),
            source=self.source.name,
            started_at=self._started_at,
            last_seen=utc_iso(self._clock.now()),
        )

    async def snapshot(
        self, window_minutes: int | None = None, day: str | None = None
    ) -> MetricsSnapshot:
        """The metrics as committed so far (the daily ones of `day`, a past local day,
        if given), read off the event loop's thread."""
        window = window_minutes or self.window_minutes
        now, tz = self.read_time(), self._clock.tz
        health = self.health()
        # Ahead of the newest seen (read_time is never later): not of the newest stored.
        return await self._read(
            read_snapshot, now, tz, window, health, self._trends, day, self.now()
        )

    async def movie(self, movie_id: str, day: str | None = None) -> MovieDay:
        """A movie's figures today (or a past `day`), as committed so far, read off the
        event loop's thread."""
        return await self._read(read_movie, movie_id, self.read_time(), self._clock.tz, day)

    async def titles(self, day: str | None = None) -> TitleIndex:
        """Every movie to find by name, with its views today (or on a past `day`)."""
        when = day or local_day(self.read_time(), self._clock.tz)
        return await self._read(read_index, when)

    async def tail(self, match: EventMatch, after: int, limit: int) -> Tail:
        """The newest stored events that match, read off the event loop's thread."""
        return await self._read(_tail, match, after, limit)

    async def dead_letters(self, limit: int) -> list[DeadLetter]:
        """The newest rejected records, read off the event loop's thread."""
        return await self._read(_dead_letters, limit)

    async def _read(self, query: Callable[..., T], *arguments: object) -> T:
        """`query(store, *arguments)` on the reader's thread and connection."""
        if self._finished:  # the reader thread is gone; the connections are idle
            return query(self.store, *arguments)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._reader, query, self._reader_store, *arguments)


def _newest_event_time(store: Store) -> str | None:
    return store.newest_event_time()


def _tail(store: Store, match: EventMatch, after: int, limit: int) -> Tail:
    return store.newest_events(match, after, limit)


def _dead_letters(store: Store, limit: int) -> list[DeadLetter]:
    return store.dead_letters(limit)
