"""Historical events: replayed at X times their own pace, and read at stream time."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC
from pathlib import Path

import pytest

from imdb_tui.clock import ManualClock, utc_iso
from imdb_tui.events import RawRecord
from imdb_tui.pipeline import Pipeline, PipelineSettings
from imdb_tui.replay import ReplayClock
from imdb_tui.store import open_store
from tests.conftest import NOW, event
from tests.helpers import ListSource, query

MARCH_1 = 1709280000.0  # 2024-03-01 08:00:00 UTC: long before the tests' NOW (2026-11-23)


def history(count: int, spacing: float, users: int = 7) -> list[RawRecord]:
    """`count` events from MARCH_1 on, `spacing` seconds apart."""
    return [
        event(n, event_time=utc_iso(MARCH_1 + n * spacing), user_id=f"u{n % users}")
        for n in range(count)
    ]


class ReleaseClock(ManualClock):
    """Notes, each time the pipeline is about to sleep, how many events it has released."""

    pipeline: Pipeline | None = None

    def __init__(self) -> None:
        super().__init__(NOW, tz=UTC)
        self.seen: list[tuple[float, int]] = []

    async def sleep(self, seconds: float) -> None:
        assert self.pipeline is not None
        self.seen.append((self.monotonic(), self.pipeline.health().emitted))
        await super().sleep(seconds)


def replaying(records: list[RawRecord], clock: ManualClock, **settings: object) -> Pipeline:
    options = {"rate": None, "stream_time": True, "writer_process": False, **settings}
    return Pipeline(
        ListSource(records),
        open_store(":memory:"),
        clock,
        PipelineSettings(**options),  # type: ignore[arg-type]
    )


async def test_a_replay_releases_events_at_x_times_their_own_pace() -> None:
    clock = ReleaseClock()
    records = history(31, spacing=60.0)  # half an hour, one event a minute
    pipeline = clock.pipeline = replaying(records, clock, replay_speed=60.0)  # a minute a second
    start = clock.monotonic()
    summary = await pipeline.run()
    assert summary.stored == 31
    assert 30.0 <= clock.monotonic() - start < 30.1
    # Whenever it waited, event n (due n seconds in) was out exactly if n <= the time.
    assert len(clock.seen) >= 30
    for at, released in clock.seen:
        assert released == sum(1 for n in range(31) if n <= at - start + 1e-9)


async def test_events_out_of_order_or_without_a_time_are_not_held() -> None:
    clock = ReleaseClock()
    records = history(3, spacing=600.0)
    records[1:1] = [event(90, event_time=utc_iso(MARCH_1 - 3600)), b"not json"]
    pipeline = clock.pipeline = replaying(records, clock, replay_speed=60.0)
    summary = await pipeline.run()
    assert (summary.stored, summary.rejected) == (4, 1)
    assert 20.0 <= clock.monotonic() < 20.1  # 1,200 s of event time at 60x


def test_a_held_replay_stands_still_and_carries_on_without_a_burst() -> None:
    clock = ManualClock(NOW)
    replay = ReplayClock(10.0, clock)
    assert replay.position() is None
    assert replay.wait(MARCH_1) == 0.0  # the first event starts it
    clock.advance(1.0)
    assert replay.position() == MARCH_1 + 10.0
    replay.hold()
    clock.advance(100.0)
    assert replay.position() == MARCH_1 + 10.0
    assert replay.wait(MARCH_1 + 20.0) == float("inf")
    replay.go()
    assert replay.wait(MARCH_1 + 20.0) == pytest.approx(1.0)  # not 99 s overdue
    with pytest.raises(ValueError, match="above 0"):
        ReplayClock(0.0, clock)


def test_a_late_replay_carries_on_from_where_it_is_without_catching_up() -> None:
    clock = ManualClock(NOW)
    replay = ReplayClock(10.0, clock)
    replay.wait(MARCH_1)
    clock.advance(100.0)  # held up by a rate cap or a busy store: 990 s of events overdue
    assert replay.wait(MARCH_1 + 10.0) == 0.0
    assert replay.wait(MARCH_1 + 20.0) == pytest.approx(1.0)  # at 10x from here, no burst
    clock.advance(0.5)
    assert replay.wait(MARCH_1 + 5.0) == 0.0  # out of order: at once, and the clock
    assert replay.wait(MARCH_1 - 500.0) == 0.0  # does not move back for it
    assert replay.wait(MARCH_1 + 20.0) == pytest.approx(0.5)


async def test_pause_holds_a_replay_and_stop_releases_what_was_read() -> None:
    clock = ReleaseClock()
    pipeline = clock.pipeline = replaying(history(100, spacing=60.0), clock, replay_speed=60.0)
    running = asyncio.create_task(pipeline.run())
    while clock.monotonic() < 10.0:
        await asyncio.sleep(0)
    pipeline.pause()
    paused_at = pipeline.now()
    held = pipeline.health().emitted
    clock.advance(1_000.0)  # a long pause
    for _ in range(20):
        await asyncio.sleep(0)
    assert pipeline.health().emitted == held and pipeline.now() == paused_at
    pipeline.resume()
    while clock.monotonic() < 1_015.0:
        await asyncio.sleep(0)
    assert held < pipeline.health().emitted <= held + 6  # five seconds later, not a burst
    pipeline.stop()
    summary = await running
    assert summary.stored == summary.emitted == 100  # the chunk in hand was read: stored


async def test_stream_time_shows_the_period_of_the_data(clock: ManualClock) -> None:
    records = history(600, spacing=10.0)  # 100 minutes from 08:00, users u0..u6
    records += [event(1000 + n, event_time=utc_iso(MARCH_1 + 5990), user_id="late") for n in (1, 2)]
    pipeline = replaying(records, clock)
    await pipeline.run()
    assert pipeline.now() == MARCH_1 + 5990  # the newest event time, not the present
    snapshot = await pipeline.snapshot(window_minutes=5)
    assert snapshot.as_of == MARCH_1 + 5990
    assert snapshot.events_today == snapshot.events_total == 602
    assert sum(m.events for m in snapshot.last_hour) == 6 * 60 + 2  # the data's last hour
    assert snapshot.active_users.count == 8  # the last 5 minutes of the data
    assert snapshot.top_movies and sum(snapshot.per_hour[8:10]) == 602
    assert query_count(pipeline) == 602  # history is not pruned as older than 7 days


async def test_the_present_is_the_clock_of_a_live_source(clock: ManualClock) -> None:
    pipeline = replaying(history(10, spacing=1.0), clock, stream_time=False)
    await pipeline.run()
    snapshot = await pipeline.snapshot()
    assert snapshot.as_of == NOW and snapshot.events_today == 0


async def test_history_already_stored_is_not_pruned_before_an_event_comes(
    tmp_path: Path, clock: ManualClock
) -> None:
    db = tmp_path / "events.db"
    store = open_store(db)
    settings = PipelineSettings(rate=None, stream_time=True, writer_process=False)
    await Pipeline(ListSource(history(50, 60.0)), store, clock, settings).run()
    gate = asyncio.Event()
    from_start = dataclasses.replace(settings, from_start=True)
    again = Pipeline(GatedSource(history(50, 60.0), gate), store, clock, from_start)
    running = asyncio.create_task(again.run())
    for _ in range(50):  # the retention task's first round comes and goes
        await asyncio.sleep(0)
    gate.set()
    summary = await running
    store.close()
    assert summary.duplicates == 50
    assert query(db, "SELECT count(*) FROM events") == [(50,)]


class GatedSource(ListSource):
    """A list source whose first read waits for the gate."""

    def __init__(self, records: list[RawRecord], gate: asyncio.Event) -> None:
        super().__init__(records)
        self._gate = gate

    async def read(self, limit: int) -> list[RawRecord]:
        await self._gate.wait()
        return await super().read(limit)


def query_count(pipeline: Pipeline) -> int:
    return pipeline.store.count_events()


async def test_figures_are_read_at_the_newest_event_stored_not_the_newest_on_its_way(
    clock: ManualClock, tmp_path: Path
) -> None:
    """A fast replay's newest minute showed 0 ("this minute 0"): the figures were read
    at the newest event validated, whose batch was still on its way to the store."""
    import threading

    records = history(10, spacing=1.0)  # 08:00:00 to 08:00:09
    records += [event(100 + n, event_time=utc_iso(MARCH_1 + 300 + n)) for n in range(10)]
    settings = PipelineSettings(
        rate=None, stream_time=True, writer_process=False, chunk_size=10, batch_size=10
    )
    store = open_store(tmp_path / "events.db")  # read on a connection of its own
    pipeline = Pipeline(ListSource(records), store, clock, settings)
    held, calls = threading.Event(), []
    write_batch = store.write_batch

    def second_held(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 2:
            held.wait(30)  # the batch of 08:05 on its way, not stored yet
        return write_batch(*args, **kwargs)  # type: ignore[arg-type]

    store.write_batch = second_held  # type: ignore[method-assign]
    running = asyncio.create_task(pipeline.run())
    async with asyncio.timeout(30):
        while len(calls) < 2 or pipeline.health().stored < 10:
            await asyncio.sleep(0.01)
    snapshot = await pipeline.snapshot(window_minutes=5)
    assert snapshot.as_of == MARCH_1 + 9  # the newest stored, not 08:05:09
    assert snapshot.last_hour[-1].events == 10  # "this minute": its events, not 0
    assert snapshot.ahead is None  # a later batch on its way is not "ahead of the clock"
    held.set()
    await running
    assert (await pipeline.snapshot(window_minutes=5)).as_of == MARCH_1 + 309
    store.close()
