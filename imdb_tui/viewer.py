"""What a viewer of a pipeline reads and drives, whoever runs the pipeline.

A viewer (the monitor, and later the browser view) reads through one `Reader`
and drives through one `Control`. The default monitor plugs in `LocalPipeline`,
a pipeline it runs on its own event loop, which is both; `imdb-tui watch` plugs
in a `StoreWatcher`, which reads a database some other process writes, and no
control at all.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import tzinfo
from typing import Protocol

from imdb_tui.alerts import AlertChange
from imdb_tui.clock import Clock, local_day
from imdb_tui.health import PipelineHealth
from imdb_tui.metrics import MetricsSnapshot, MovieDay, Trending, read_movie, read_snapshot
from imdb_tui.pipeline import Pipeline, RunSummary
from imdb_tui.search import TitleIndex, read_index
from imdb_tui.store import DeadLetter, Store
from imdb_tui.tail import EventMatch, Tail

NO_WRITER = "no pipeline writing"


@dataclass(frozen=True, slots=True)
class Status:
    """The pipeline's state as a viewer shows it at once (after a key, say)."""

    state: str
    """running, paused, draining, finished, stopped, failed, or NO_WRITER"""
    target_rate: float | None
    error: str | None
    """said for a person: "storage error: ...", "input error: ..." """
    stream_time: bool
    replay_speed: float | None


class Reader(Protocol):
    database: str
    """The database's name as shown (never with a password)."""
    tz: tzinfo | None
    window_minutes: int
    """The active-user window to start with."""
    on_error: Callable[[str], None] | None
    """Told each new storage error as it happens, where the reader can know."""

    def status(self) -> Status: ...

    async def snapshot(self, window_minutes: int, day: str | None = None) -> MetricsSnapshot:
        """The metrics, with the health of the pipeline they come from (None: none
        is writing); the daily figures of `day`, a past local day, if given."""
        ...

    async def dead_letters(self, limit: int) -> list[DeadLetter]: ...

    async def movie(self, movie_id: str, day: str | None = None) -> MovieDay:
        """One movie's figures today (or a past `day`), at the same clock as the snapshots."""
        ...

    async def tail(self, match: EventMatch, after: int, limit: int) -> Tail:
        """The newest stored events that match, after seq `after`, newest first."""
        ...

    async def titles(self, day: str | None = None) -> TitleIndex:
        """Every movie to find by name, with its views today (or on a past `day`)."""
        ...


class Control(Protocol):
    @property
    def paused(self) -> bool: ...

    @property
    def target_rate(self) -> float | None: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def set_rate(self, rate: float | None) -> None: ...

    def stop(self) -> None:
        """Stop producing; `run` returns once what was read is stored."""
        ...

    def listen_to_alerts(self, listener: Callable[[AlertChange], None]) -> None:
        """Tell `listener` each alert of the pipeline's rules that fires or clears."""
        ...

    async def run(self) -> RunSummary: ...


class LocalPipeline:
    """A pipeline run in this process, on the viewer's event loop: Reader and Control."""

    def __init__(self, pipeline: Pipeline, database: str) -> None:
        self.pipeline = pipeline
        self.database = database
        self.tz = pipeline.tz
        self.window_minutes = pipeline.window_minutes

    @property
    def on_error(self) -> Callable[[str], None] | None:
        return self.pipeline.on_error

    @on_error.setter
    def on_error(self, listener: Callable[[str], None] | None) -> None:
        self.pipeline.on_error = listener

    def status(self) -> Status:
        pipeline = self.pipeline
        return Status(
            pipeline.state,
            pipeline.target_rate,
            pipeline.error,
            pipeline.settings.stream_time,
            pipeline.replay_speed,
        )

    async def snapshot(self, window_minutes: int, day: str | None = None) -> MetricsSnapshot:
        return await self.pipeline.snapshot(window_minutes, day)

    async def dead_letters(self, limit: int) -> list[DeadLetter]:
        return await self.pipeline.dead_letters(limit)

    async def movie(self, movie_id: str, day: str | None = None) -> MovieDay:
        return await self.pipeline.movie(movie_id, day)

    async def tail(self, match: EventMatch, after: int, limit: int) -> Tail:
        return await self.pipeline.tail(match, after, limit)

    async def titles(self, day: str | None = None) -> TitleIndex:
        return await self.pipeline.titles(day)

    @property
    def paused(self) -> bool:
        return self.pipeline.paused

    @property
    def target_rate(self) -> float | None:
        return self.pipeline.target_rate

    def pause(self) -> None:
        self.pipeline.pause()

    def listen_to_alerts(self, listener: Callable[[AlertChange], None]) -> None:
        if self.pipeline.alerts is not None:
            self.pipeline.alerts.listeners.append(listener)

    def resume(self) -> None:
        self.pipeline.resume()

    def set_rate(self, rate: float | None) -> None:
        self.pipeline.set_rate(rate)

    def stop(self) -> None:
        self.pipeline.stop(read_rest=False)  # quit with a key: a pipe's writer goes on

    async def run(self) -> RunSummary:
        return await self.pipeline.run()


class StoreWatcher:
    """A database another process writes, read without writing anything: the metrics
    at the writing pipeline's clock, and that pipeline's health row."""

    on_error: Callable[[str], None] | None = None

    def __init__(self, store: Store, clock: Clock, window_minutes: int = 5) -> None:
        self.store = store
        self.database = store.name
        self.tz = clock.tz
        self.window_minutes = window_minutes
        self._clock = clock
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="imdb-tui-watch")
        self._last: PipelineHealth | None = None
        self._trends = Trending()  # read on self._thread only

    def status(self) -> Status:
        health = self._last
        if health is None or not health.live:  # the figures stay at the last one's clock
            stream_time = health is not None and health.stream_time
            return Status(NO_WRITER, None, None, stream_time, None)
        return Status(
            health.state,
            health.target_rate,
            health.error,
            health.stream_time,
            health.replay_speed,
        )

    async def snapshot(self, window_minutes: int, day: str | None = None) -> MetricsSnapshot:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._read, window_minutes, day)

    def _read(self, window_minutes: int, day: str | None) -> MetricsSnapshot:
        now = self._clock.now()
        pipelines = self.store.pipelines(now)
        # The live writer seen last, else the pipeline that wrote last (its row says
        # it is gone): the metrics are read at its clock either way.
        writer = next((p for p in pipelines if p.live), pipelines[0] if pipelines else None)
        self._last = writer
        as_of = self._as_of(now)
        snapshot = read_snapshot(
            self.store, as_of, self.tz, window_minutes, writer, self._trends, day
        )
        return dataclasses.replace(snapshot, pipelines=tuple(pipelines))

    async def dead_letters(self, limit: int) -> list[DeadLetter]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self.store.dead_letters, limit)

    async def movie(self, movie_id: str, day: str | None = None) -> MovieDay:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._read_movie, movie_id, day)

    async def tail(self, match: EventMatch, after: int, limit: int) -> Tail:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._thread, self.store.newest_events, match, after, limit
        )

    async def titles(self, day: str | None = None) -> TitleIndex:
        loop = asyncio.get_running_loop()
        when = day or local_day(self._as_of(self._clock.now()), self.tz)
        return await loop.run_in_executor(self._thread, read_index, self.store, when)

    def _read_movie(self, movie_id: str, day: str | None) -> MovieDay:
        return read_movie(self.store, movie_id, self._as_of(self._clock.now()), self.tz, day)

    def _as_of(self, now: float) -> float:
        """The moment figures are read at: the last writer's stream time when it
        reads history, else now."""
        writer = self._last
        if writer is not None and writer.stream_time and writer.as_of is not None:
            return writer.as_of
        return now

    def close(self) -> None:
        self._thread.shutdown(wait=True)
        self.store.close()


def in_process(pipeline: Pipeline, database: str) -> tuple[LocalPipeline, LocalPipeline]:
    """The reader and control of a pipeline run on the viewer's loop: one object."""
    local = LocalPipeline(pipeline, database)
    return local, local
