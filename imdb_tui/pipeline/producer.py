"""The producing half: reads the source at the target rate (or a replay's pace) into the queue.

The controls that shape the stream (pause, resume, a new rate, stop) act here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Final

from imdb_tui.clock import Clock
from imdb_tui.events import RawRecord, event_seconds
from imdb_tui.pipeline.pacer import Pacer
from imdb_tui.pipeline.settings import MAX_RATE, MIN_RATE, PipelineSettings, checked_rate
from imdb_tui.pipeline.stats import Stats
from imdb_tui.replay import ReplayClock
from imdb_tui.sources import Source, SourceError
from imdb_tui.store import SourcePosition


class Chunk:
    """Records read together, when they were queued, and where the source then stood."""

    __slots__ = ("positions", "queued_at", "records")

    def __init__(
        self, records: list[RawRecord], queued_at: float, positions: Sequence[SourcePosition]
    ) -> None:
        self.records = records
        self.queued_at = queued_at
        self.positions = positions


END: Final = None
"""The producer's last word on the queue."""


class Producer:
    def __init__(
        self,
        source: Source,
        clock: Clock,
        settings: PipelineSettings,
        queue: asyncio.Queue[Chunk | None],
        stats: Stats,
    ) -> None:
        self.source = source
        self._clock = clock
        self._settings = settings
        self._queue = queue
        self._stats = stats
        self.rate = checked_rate(settings.rate)
        self._pacer = Pacer(self.rate or MAX_RATE, clock.monotonic())
        self.replay = ReplayClock(settings.replay_speed, clock) if settings.replay_speed else None
        self._running = asyncio.Event()
        self._running.set()
        self.stopping = False
        self._read_rest = False
        self.done = False
        """The source ended, failed, or --count was reached."""
        self.input_error: str | None = None

    # Controls ----------------------------------------------------------------

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def pause(self) -> None:
        self._running.clear()
        if self.replay is not None:
            self.replay.hold()

    def resume(self) -> None:
        self._pacer.restart(self._pacer.rate, self._clock.monotonic())
        if self.replay is not None:
            self.replay.go()
        self._running.set()

    def set_rate(self, rate: float | None) -> None:
        """A new target in events per second (clamped to 1..1,000,000); None: unthrottled."""
        self.rate = None if rate is None else min(max(rate, MIN_RATE), MAX_RATE)
        self._pacer.restart(self.rate or MAX_RATE, self._clock.monotonic())

    def stop(self, read_rest: bool = True) -> None:
        """Stop reading; with `read_rest`, what the source holds that nobody could
        read later (see Source.rest) is read and queued first."""
        self.stopping = True
        self._read_rest = read_rest
        self._running.set()
        self.source.stop()

    def restart_pacing(self) -> None:
        self._pacer.restart(self._pacer.rate, self._clock.monotonic())

    # Running -----------------------------------------------------------------

    async def run(self) -> None:
        clock = self._clock
        while not self.stopping:
            if self.paused:
                await self._running.wait()
                continue
            limit = self._next_limit()
            if limit <= 0:
                break
            if self.rate is not None:
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
            except SourceError as error:  # what was read before is still drained and stored
                self.input_error = str(error)
                break
            if not records:
                break
            self._pacer.sent(len(records))
            positions = self.source.positions()
            if self.replay is None:
                await self._put(records, positions)
            else:
                await self._release(records, positions, self.replay)
            if self.rate is None:
                await asyncio.sleep(0)  # let the consumer in between chunks
        if self.stopping and self._read_rest:
            await self._rest()
        self.done = True
        self.source.stop()  # read no more (at its end, --count, an input error): let go
        # Only on the way out in order: when cancelled, the consumer is cancelled too.
        await self._queue.put(END)

    async def _rest(self) -> None:
        """Stopped: what the source has that nobody could read later (a pipe's lines
        already written to it) is queued before the end, unpaced."""
        while (limit := self._next_limit()) > 0:
            try:
                records = await self.source.rest(limit)
            except SourceError as error:
                self.input_error = str(error)
                return
            if not records:
                return
            await self._put(records, self.source.positions())

    def _next_limit(self) -> int:
        """The records to read next at most: a chunk, or what --count leaves."""
        limit = self._settings.chunk_size
        if self._settings.count is not None:
            limit = min(limit, self._settings.count - self._stats.emitted)
        return limit

    async def _put(self, records: list[RawRecord], positions: Sequence[SourcePosition]) -> None:
        if records:
            self._stats.emitted += len(records)
            self._stats.queued += len(records)
            await self._queue.put(Chunk(records, self._clock.monotonic(), positions))

    async def _release(
        self, records: list[RawRecord], positions: Sequence[SourcePosition], replay: ReplayClock
    ) -> None:
        """Queue records as the replay clock reaches their event times: what is due
        goes before each wait. Stopping releases the rest at once (it was read).
        The chunk's positions go with its last piece."""
        released = 0
        for at, record in enumerate(records):
            event_time = event_seconds(record)
            if event_time is None:
                continue  # no usable time: released with the others, to be rejected
            while not self.stopping:
                if self.paused:
                    await self._put(records[released:at], ())
                    released = at
                    await self._running.wait()
                    continue
                wait = replay.wait(event_time)
                if wait <= 0:
                    break
                await self._put(records[released:at], ())
                released = at
                await self._clock.sleep(min(wait, 0.05))  # short naps: pause and stop act
        await self._put(records[released:], positions)
