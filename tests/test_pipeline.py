"""The pipeline: pacing, pause, drain, dedupe across runs, dead letters, retention."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import signal
import sqlite3
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest

from imdb_tui.catalog import build_catalog
from imdb_tui.clock import ManualClock
from imdb_tui.pipeline import Pacer, Pipeline, PipelineSettings
from imdb_tui.simulator import Simulator, SimulatorSettings
from imdb_tui.sources.jsonlines import JsonLinesSource
from imdb_tui.sources.simulated import SimulatedSource
from imdb_tui.store import Store, open_store
from tests.conftest import NOW, event
from tests.helpers import ListSource, ingest, query, snapshot


@pytest.mark.parametrize("rate", [1, 7, 200, 5_000, 50_000])
def test_the_pacer_holds_the_rate_within_5_percent(rate: float) -> None:
    pacer = Pacer(rate, 0.0)
    now, sent, naps = 0.0, 0, 0
    while now < 20.0:
        due = pacer.due(now)
        if due:
            pacer.sent(due)
            sent += due
        else:
            naps += 1
            now += min(max(pacer.wait(now), 0.002), 0.05)  # what the producer sleeps
    assert abs(sent - rate * 20) <= 0.05 * rate * 20
    assert naps <= 20 / 0.002 + 1  # it sleeps at least 2 ms each time: never spins


def test_a_slow_consumer_does_not_cause_a_burst_afterwards() -> None:
    pacer = Pacer(100, 0.0)
    assert pacer.due(60.0) == 100  # a minute blocked owes a second, not a minute


class CountingClock(ManualClock):
    naps = 0

    async def sleep(self, seconds: float) -> None:
        self.naps += 1
        await super().sleep(seconds)


def simulated(store: Store, clock: ManualClock, **settings: object) -> Pipeline:
    catalog = build_catalog(1, 100)
    source = SimulatedSource(Simulator(catalog, SimulatorSettings(seed=1, users=500), clock))
    return Pipeline(source, store, clock, PipelineSettings(**settings), catalog)  # type: ignore[arg-type]


async def run_for(pipeline: Pipeline, clock: ManualClock, seconds: float) -> None:
    """Run until the manual clock has moved `seconds` on, then stop and drain."""
    running = asyncio.create_task(pipeline.run())
    end = clock.monotonic() + seconds
    while clock.monotonic() < end and not running.done():
        await asyncio.sleep(0)
    pipeline.stop()
    await running


@pytest.mark.parametrize("rate", [1.0, 50.0, 2_000.0])
async def test_the_producer_emits_at_the_target_rate_without_busy_waiting(
    db_path: Path, rate: float
) -> None:
    clock = CountingClock(NOW)
    store = open_store(db_path)
    pipeline = simulated(store, clock, rate=rate)
    await run_for(pipeline, clock, 30.0)
    emitted = pipeline.health().emitted
    assert abs(emitted - rate * 30) <= max(1, 0.05 * rate * 30)
    assert clock.naps <= 30 / 0.002 + 1


async def test_everything_emitted_is_stored_when_stopped(db_path: Path, clock: ManualClock) -> None:
    store = open_store(db_path)
    pipeline = simulated(store, clock, rate=10_000.0)
    await run_for(pipeline, clock, 3.0)
    health = pipeline.health()
    assert health.emitted > 20_000
    assert health.stored == health.emitted
    assert pipeline.state == "stopped"
    assert query(db_path, "SELECT count(*) FROM events") == [(health.emitted,)]
    assert snapshot(db_path, clock).events_total == health.emitted
    final = await pipeline.snapshot()  # the final picture stays readable after the run
    assert final.events_total == health.emitted and final.health is not None
    store.close()


async def test_pause_stops_the_stream_and_resume_restarts_it(
    db_path: Path, clock: ManualClock
) -> None:
    store = open_store(db_path)
    pipeline = simulated(store, clock, rate=1_000.0, commit_interval=0.01)
    running = asyncio.create_task(pipeline.run())
    while pipeline.health().stored < 500:
        await asyncio.sleep(0.001)
    pipeline.pause()
    assert pipeline.state == "paused"
    while pipeline.health().queue_depth or pipeline.health().stored < pipeline.health().emitted:
        await asyncio.sleep(0.001)  # the consumer drains what was queued
    paused_at = pipeline.health().stored
    for _ in range(200):
        await asyncio.sleep(0)
    clock.advance(5.0)
    for _ in range(200):
        await asyncio.sleep(0)
    assert pipeline.health().emitted == pipeline.health().stored == paused_at
    pipeline.resume()
    while pipeline.health().stored < paused_at + 500:
        await asyncio.sleep(0.001)
    assert pipeline.state == "running"
    pipeline.stop()
    summary = await running
    assert summary.stored == summary.emitted


async def test_the_rate_can_change_while_running(db_path: Path) -> None:
    clock = ManualClock(NOW)
    store = open_store(db_path)
    pipeline = simulated(store, clock, rate=10.0)
    running = asyncio.create_task(pipeline.run())
    start = clock.monotonic()
    while clock.monotonic() < start + 10:
        await asyncio.sleep(0)
    slow = pipeline.health().emitted
    pipeline.set_rate(1_000.0)
    assert pipeline.target_rate == 1_000.0
    start = clock.monotonic()
    while clock.monotonic() < start + 10:
        await asyncio.sleep(0)
    fast = pipeline.health().emitted - slow
    pipeline.set_rate(None)
    assert pipeline.target_rate is None
    pipeline.set_rate(0.001)
    assert pipeline.target_rate == 1.0  # clamped
    pipeline.stop()
    await running
    assert abs(slow - 100) <= 5 and abs(fast - 10_000) <= 500


async def test_count_stops_after_exactly_that_many(db_path: Path, clock: ManualClock) -> None:
    store = open_store(db_path)
    summary = await simulated(store, clock, rate=None, count=12_345).run()
    assert summary.emitted == summary.stored == 12_345


async def test_duplicates_are_stored_once_across_restarts(
    db_path: Path, clock: ManualClock
) -> None:
    records = [event(n) for n in range(1000)]
    first = await ingest(db_path, records, clock)
    more = records + [event(n) for n in range(1000, 1010)]
    second = await ingest(db_path, more, clock, from_start=True)
    assert (first.stored, first.duplicates) == (1000, 0)
    assert (second.stored, second.duplicates) == (10, 1000)
    metrics = snapshot(db_path, clock)
    assert metrics.events_total == metrics.events_today == 1010
    assert metrics.duplicates == 1000
    assert sum(m.views for m in metrics.top_movies) == 1010


async def test_bad_records_go_to_the_dead_letters(db_path: Path, clock: ManualClock) -> None:
    records: list[object] = [event(1), "{broken", event(2, rating=3), b"\xff", event(3)]
    summary = await ingest(db_path, records, clock)  # type: ignore[arg-type]
    assert (summary.stored, summary.rejected) == (2, 3)
    rows = query(db_path, "SELECT reason, raw FROM dead_letters ORDER BY id")
    assert [raw for _, raw in rows] == ["{broken", json.dumps(event(2, rating=3)), "\\xff"]
    assert all(reason for reason, _ in rows)
    assert snapshot(db_path, clock).dead_letters == 3


async def test_old_events_are_pruned_while_running(db_path: Path, clock: ManualClock) -> None:
    old = [event(n, event_time="2026-10-01T00:00:00.000Z") for n in range(5000)]
    await ingest(db_path, old, clock)
    store = open_store(db_path)
    pipeline = simulated(
        store, clock, rate=100.0, retention_seconds=86400.0, prune_step=1000, prune_interval=0.01
    )
    running = asyncio.create_task(pipeline.run())
    oldest = "SELECT count(*) FROM events_with_titles WHERE event_time < '2026-11-01'"
    async with asyncio.timeout(30):
        while query(db_path, oldest) != [(0,)]:
            await asyncio.sleep(0.01)
    pipeline.stop()
    summary = await running
    assert summary.stored > 0  # the stream went on while old events were pruned
    assert snapshot(db_path, clock).events_total == 5000 + summary.stored


async def test_metrics_survive_a_restart(db_path: Path, clock: ManualClock) -> None:
    await ingest(db_path, [event(n) for n in range(300)], clock)
    before = snapshot(db_path, clock)
    await ingest(db_path, [event(n, event_type="click") for n in range(300, 400)], clock)
    after = snapshot(db_path, clock)
    assert after.events_total == before.events_total + 100
    assert after.by_type["view"] == before.by_type["view"] == 300
    assert after.by_type["click"] == 100
    assert after.users_today == before.users_today == 7


def writer_processes() -> list[multiprocessing.Process]:
    return [p for p in multiprocessing.active_children() if p.name == "imdb-tui-writer"]


@pytest.mark.parametrize("writer_process", [True, False])
async def test_both_writers_store_the_same(db_path: Path, writer_process: bool) -> None:
    clock = ManualClock(NOW)
    records = [event(n) for n in range(5000)] + [event(7), {"event_id": "bad"}]
    summary = await ingest(db_path, records, clock, writer_process=writer_process)
    assert (summary.stored, summary.duplicates, summary.rejected) == (5000, 1, 1)
    assert query(db_path, "SELECT count(*) FROM events") == [(5000,)]
    assert snapshot(db_path, clock).events_total == 5000
    assert not writer_processes()  # the child is gone once the run is over


async def test_a_killed_writer_process_is_replaced_and_nothing_is_lost(
    db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock(NOW)
    errors: list[str] = []
    store = open_store(db_path)
    catalog = build_catalog(1, 100)
    source = SimulatedSource(Simulator(catalog, SimulatorSettings(seed=1, users=500), clock))
    settings = PipelineSettings(rate=None, count=200_000, batch_size=4096)
    pipeline = Pipeline(source, store, clock, settings, catalog, on_error=errors.append)
    running = asyncio.create_task(pipeline.run())
    while pipeline.health().stored == 0:
        await asyncio.sleep(0.01)
    # The child stopped (SIGSTOP) holds the writes sent to it, so that some are surely
    # in flight when it dies: the queue fills once the consumer waits on them.
    (child,) = writer_processes()
    assert child.pid is not None
    os.kill(child.pid, signal.SIGSTOP)
    full = settings.queue_chunks * settings.chunk_size
    while pipeline.health().queue_depth < full:
        await asyncio.sleep(0.01)
    child.kill()  # SIGKILL ends a stopped process too
    summary = await running
    # A new child took the writes the dead one had not answered, without a storage error.
    assert "the writer process was killed by SIGKILL; a new one takes the" in caplog.text
    assert errors == [] and summary.error is None
    assert summary.stored == 200_000 and summary.lost == 0
    assert summary.duplicates == 0  # none in the input; a batch sent again is not one
    assert query(db_path, "SELECT count(*) FROM events") == [(200_000,)]
    store.close()


async def test_a_locked_database_shows_waiting_and_nothing_is_lost(db_path: Path) -> None:
    """Another program holds the write lock: the pipeline says it is waiting (its writes
    fail after half a second, not five), retries, and stores everything once freed."""
    clock = ManualClock(NOW)
    errors: list[str] = []
    store = open_store(db_path)
    catalog = build_catalog(1, 100)
    source = SimulatedSource(Simulator(catalog, SimulatorSettings(seed=1, users=500), clock))
    settings = PipelineSettings(rate=None, count=50_000, batch_size=4096, writer_process=False)
    pipeline = Pipeline(source, store, clock, settings, catalog, on_error=errors.append)
    running = asyncio.create_task(pipeline.run())
    while pipeline.health().stored == 0:
        await asyncio.sleep(0.01)
    blocker = sqlite3.connect(db_path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        while pipeline.state != "waiting":
            await asyncio.sleep(0.01)
        assert pipeline.error == f"storage error: {db_path} is locked by another program, retrying"
        assert pipeline.health().state == "waiting"
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    summary = await running
    assert errors == [f"{db_path} is locked by another program"]
    assert summary.stored == 50_000 and summary.lost == 0 and summary.error is None
    assert query(db_path, "SELECT count(*) FROM events") == [(50_000,)]
    store.close()


async def test_max_size_prunes_the_oldest_raw_events_and_keeps_the_counts(db_path: Path) -> None:
    clock = ManualClock(NOW)
    await ingest(db_path, [event(n) for n in range(30_000)], clock)
    store = open_store(db_path)
    before = store.size_bytes()
    assert before > 3_000_000
    gate = asyncio.Event()

    class Idle(ListSource):  # nothing more to read, and not ended: retention goes on
        async def read(self, limit: int) -> list[Any]:
            await gate.wait()
            return []

    settings = PipelineSettings(rate=None, max_bytes=1_500_000)
    pipeline = Pipeline(Idle([]), store, clock, settings)
    running = asyncio.create_task(pipeline.run())
    while store.size_bytes() > 1_500_000:  # round after round, until it is under
        await asyncio.sleep(0.05)
    gate.set()
    pipeline.stop()
    await running
    kept = query(db_path, "SELECT count(*), min(seq) FROM events")[0]
    assert 0 < kept[0] < 30_000 and kept[1] == 30_000 - kept[0] + 1  # the oldest went
    assert store.size_bytes() <= 1_500_000
    metrics = snapshot(db_path, clock)
    assert metrics.events_total == metrics.events_today == 30_000  # the counts stay
    assert metrics.database_bytes == store.size_bytes()
    store.close()


DAY = 86400.0


async def test_a_clock_a_day_behind_turns_no_event_away(tmp_path: Path, db_path: Path) -> None:
    """Every event of a file is "in the future" for a clock a day behind: all are stored,
    the position passes them only once they are, and the metrics say they are ahead."""
    behind = ManualClock(NOW - DAY, tz=UTC)
    records = [event(n) for n in range(3000)]
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    store = open_store(db_path)
    summary = await Pipeline(
        JsonLinesSource(str(path)), store, behind, PipelineSettings(rate=None, stream_time=True)
    ).run()
    store.close()
    assert (summary.stored, summary.rejected) == (3000, 0)
    assert query(db_path, "SELECT count(*) FROM dead_letters") == [(0,)]
    ahead = snapshot(db_path, behind).ahead
    assert ahead is not None and ahead.events == 3000 and ahead.by_seconds == DAY
    assert ahead.text() == "3,000 events ahead of this machine's clock by up to 24.0 h"
    assert snapshot(db_path, ManualClock(NOW, tz=UTC)).ahead is None  # a right clock: none


async def test_a_clock_ten_days_ahead_deletes_nothing_within_the_span_of_the_newest_event(
    tmp_path: Path, db_path: Path
) -> None:
    """Retention keeps what is within its span of the present or of the newest stored
    event: a clock ten days ahead, with a 7-day retention, deletes only what a right
    clock would (the event 9 days older than the newest), never the newest events."""
    kept = [event(n, event_time="2026-11-20T10:00:00.000Z") for n in range(100)]
    gone = [event(100 + n, event_time="2026-11-14T10:00:00.000Z") for n in range(100)]
    await ingest(db_path, kept + gone, ManualClock(NOW, tz=UTC))
    path = tmp_path / "live.jsonl"  # followed: the pipeline runs until stopped
    path.write_text("".join(json.dumps(event(200 + n)) + "\n" for n in range(100)))
    ahead = ManualClock(NOW + 10 * DAY, tz=UTC)
    store = open_store(db_path)
    settings = PipelineSettings(rate=None, retention_seconds=7 * DAY, prune_interval=0.01)
    pipeline = Pipeline(JsonLinesSource(str(path), follow=True), store, ahead, settings)
    running = asyncio.create_task(pipeline.run())
    older = "SELECT count(*) FROM events_with_titles WHERE event_time < '2026-11-15'"
    async with asyncio.timeout(30):
        while query(db_path, older) != [(0,)] or pipeline.health().stored < 100:
            await asyncio.sleep(0.01)
    pipeline.stop()
    await running
    store.close()
    assert query(db_path, "SELECT count(*) FROM events") == [(200,)]  # 100 kept, 100 new
    views = "SELECT sum(views) FROM movie_views_daily WHERE day >= '2026-11-20'"
    assert query(db_path, views) == [(200,)]  # and their daily counts
