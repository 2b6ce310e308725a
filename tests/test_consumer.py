"""Batches are stored, with their sources' positions, and acknowledged strictly in order,
even when a write fails while the next one is already in flight."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from imdb_tui.clock import ManualClock
from imdb_tui.pipeline import Pipeline, PipelineSettings
from imdb_tui.store import SourcePosition, StoreError, open_store
from imdb_tui.store.sqlite import MEMORY, SqliteStore
from tests.conftest import NOW, event
from tests.helpers import ListSource, query


class FlakyStore(SqliteStore):
    """Fails the writes whose number (from 1) is in `failing`, once each; records the
    positions of every batch it stores, in the order stored."""

    failing: set[int] = set()  # noqa: RUF012 (set per test)

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.calls = 0
        self.stored_positions: list[int] = []

    def write_batch(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls in self.failing:
            time.sleep(0.05)  # as a lock does, waiting before it fails: the next is sent
            raise StoreError("database is locked")
        result = super().write_batch(*args, **kwargs)
        positions: Sequence[SourcePosition] = kwargs.get("positions") or args[5]
        self.stored_positions += [int(p.position) for p in positions]
        return result


async def run_over(store: SqliteStore, records: int, **settings: Any) -> tuple[ListSource, Any]:
    clock = ManualClock(NOW)
    source = ListSource([event(n) for n in range(records)])
    options = {"rate": None, "chunk_size": 100, "batch_size": 256, "writer_process": False}
    pipeline = Pipeline(source, store, clock, PipelineSettings(**{**options, **settings}))
    return source, await pipeline.run()


async def test_a_failed_write_is_stored_before_the_one_after_it() -> None:
    FlakyStore.failing = {2, 5}
    store = FlakyStore.open(MEMORY)
    assert isinstance(store, FlakyStore)
    source, summary = await run_over(store, 5_000)
    assert summary.stored == 5_000 and summary.lost == 0
    # Stored in order: never a later position before an earlier one.
    assert store.stored_positions == sorted(store.stored_positions)
    assert store.stored_positions[-1] == 5_000
    assert store.position(source.key) == "5000"
    store.close()


async def test_the_positions_reach_the_end_in_order_with_the_writer_process(
    db_path: Path,
) -> None:
    store = open_store(db_path)
    source, summary = await run_over(store, 20_000, writer_process=True)  # type: ignore[arg-type]
    assert summary.stored == 20_000 and source.positions()[0].position == "20000"
    assert query(db_path, "SELECT position FROM source_positions") == [("20000",)]
    store.close()


async def test_the_health_row_is_kept_while_idle_and_marked_at_the_end(db_path: Path) -> None:
    clock = ManualClock(NOW)
    gate = asyncio.Event()

    class Held(ListSource):
        async def read(self, limit: int) -> list[Any]:
            chunk = await super().read(limit)
            if not chunk:
                await gate.wait()  # idle until told to end
            return chunk

    store = open_store(db_path)
    pipeline = Pipeline(
        Held([event(n) for n in range(10)]), store, clock, PipelineSettings(rate=None)
    )
    running = asyncio.create_task(pipeline.run())

    def rows() -> list[tuple[object, ...]]:
        return query(db_path, "SELECT state, stored, last_seen FROM pipelines")

    while not rows() or rows()[0][1] != 10:  # the heartbeat carries the count while idle
        await asyncio.sleep(0.05)
    (first,) = rows()
    assert first[0] == "running"
    clock.advance(5)
    while rows()[0][2] == first[2]:  # refreshed again, a second later, though idle
        await asyncio.sleep(0.05)
    pipeline.stop()
    gate.set()
    await running
    (last,) = rows()
    assert last[0] == "stopped" and last[1] == 10
    (health,) = store.pipelines(NOW + 5)
    assert health.pipeline_id == pipeline.pipeline_id and not health.live
    store.close()
