"""What the monitor's screen looks like, at 80x24 and 120x40 (SVG snapshots).

Made deterministic: a fixed seed, a manual clock, an in-memory database, and a
source that hands out exactly N records and then waits, so the stream is still
RUNNING when the picture is taken. Regenerate with `pytest --snapshot-update`
and look at the SVGs (in tests/__snapshots__/) before committing them.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC
from typing import Any

import pytest
from textual.pilot import Pilot

from imdb_tui.alerts import AlertChange, AlertState
from imdb_tui.catalog import build_catalog
from imdb_tui.clock import ManualClock
from imdb_tui.events import Placed, RawRecord
from imdb_tui.pipeline import Pipeline, PipelineSettings
from imdb_tui.pipeline.stats import Stats
from imdb_tui.simulator import Simulator, SimulatorSettings
from imdb_tui.sources import Lookup
from imdb_tui.store import SourcePosition, open_store
from imdb_tui.store.sqlite import MEMORY, SqliteStore
from imdb_tui.tui.alerts import AlertsScreen
from imdb_tui.tui.app import MonitorApp
from imdb_tui.tui.movie import MovieScreen
from imdb_tui.tui.search import SearchScreen
from imdb_tui.viewer import in_process

from .conftest import NOW

RECORDS = 3_000


class HeldSource:
    """These records, then nothing more, without ending."""

    name = "held"

    trouble: str | None = None  # reading never waits on a passing problem
    behind_ms: float | None = None  # no newest data to be behind

    def __init__(self, records: list[RawRecord]) -> None:
        self._records = records
        self.count = len(records)
        self._stopped = asyncio.Event()

    async def read(self, limit: int) -> list[RawRecord]:
        if not self._records:
            await self._stopped.wait()  # until the pipeline stops
            return []
        chunk, self._records = self._records[:limit], self._records[limit:]
        return chunk

    async def start(self, stored: Lookup) -> str | None:
        return None

    def positions(self) -> Sequence[SourcePosition]:
        return ()

    def committed(self, positions: Sequence[SourcePosition]) -> None:
        pass

    def stop(self) -> None:
        self._stopped.set()

    async def rest(self, limit: int) -> list[RawRecord]:
        return []


def monitor_of(
    days: int, monkeypatch: pytest.MonkeyPatch, bad: Sequence[bytes] = (), minutes: int = 0
) -> Iterator[MonitorApp]:
    """The monitor over RECORDS of the simulator's records, made at NOW, and as many
    again for each of the `days` days before; then the `bad` lines, as if from lines
    1000, 1001... of events.jsonl. With `minutes`, today's records are spread over
    that many minutes before NOW instead, a wave of traffic."""
    # How many pages the tables take depends on where batches were cut, which
    # depends on timing: the picture shows a fixed size instead.
    monkeypatch.setattr(SqliteStore, "size_bytes", lambda self: 900_000)
    clock = ManualClock(NOW - days * 86400 - minutes * 60, tz=UTC)
    catalog = build_catalog(7, 200)
    simulator = Simulator(catalog, SimulatorSettings(seed=7, users=2_000), clock)
    records = simulator.records(RECORDS) if not minutes else []
    for minute in range(minutes):  # evening traffic: a slow swell and a ripple
        records += simulator.records(round(120 + 60 * math.sin(minute / 9) + minute * 2))
        clock.advance(60)
    for _ in range(days):
        clock.advance(86400)
        records += simulator.records(RECORDS)
    if bad:
        starts = [150_000 + 200 * n for n in range(len(records) + len(bad))]
        numbers = list(range(1, len(starts) + 1))
        records = Placed([*records, *bad], "events.jsonl", starts, numbers)
    store = open_store(MEMORY)
    settings = PipelineSettings(rate=None, commit_interval=0.01)
    pipeline = Pipeline(HeldSource(records), store, clock, settings, catalog)
    yield MonitorApp(*in_process(pipeline, MEMORY))
    store.close()


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> Iterator[MonitorApp]:
    yield from monitor_of(0, monkeypatch)


@pytest.fixture
def app_over_hours(monkeypatch: pytest.MonkeyPatch) -> Iterator[MonitorApp]:
    # Lag percentiles over hours of history depend on where batches were cut (timing):
    # the picture shows a live pipeline's everyday figure instead.
    monkeypatch.setattr(Stats, "lag_percentiles", lambda self: (131.0, 262.0))
    yield from monitor_of(0, monkeypatch, minutes=150)


@pytest.fixture
def app_with_dead_letters(monkeypatch: pytest.MonkeyPatch) -> Iterator[MonitorApp]:
    bad = [
        b'{"event_id": "e1", "event_type": "like", "note": "' + b"long text " * 40 + b'"}',
        b"\x1b[31mred\x1b[0m [bold]markup[/] and a tab\there",
        b'{"event_id": "e2", "event_time": "yesterday"}',
    ]
    yield from monitor_of(0, monkeypatch, bad)


@pytest.fixture
def app_with_yesterday(monkeypatch: pytest.MonkeyPatch) -> Iterator[MonitorApp]:
    yield from monitor_of(1, monkeypatch)


async def all_shown(pilot: Pilot[Any]) -> None:
    app = pilot.app
    assert isinstance(app, MonitorApp)
    source = app.control.pipeline.source
    assert isinstance(source, HeldSource)
    stats = app.control.pipeline._stats  # stored and rejected, each counted once committed
    async with asyncio.timeout(30):
        while stats.stored + stats.rejected < source.count:
            await pilot.pause(0.01)
        await app.refresh_now()
        while app.snapshot is None:  # a read under way when asked: it lands
            await pilot.pause(0.01)
    await pilot.pause()


@pytest.mark.parametrize(
    "size",
    [(80, 24), (120, 40), (60, 15)],
    ids=["80x24 (the smallest whole)", "120x40", "60x15 (too small)"],
)
def test_the_dashboard(
    app: MonitorApp, size: tuple[int, int], snap_compare: Callable[..., bool]
) -> None:
    assert snap_compare(app, terminal_size=size, run_before=all_shown)


def test_the_readme_screenshot(
    app_over_hours: MonitorApp, snap_compare: Callable[..., bool]
) -> None:
    """The README shows this picture (tests/__snapshots__/.../test_the_readme_screenshot.svg):
    two and a half hours of traffic at 120x40."""
    assert snap_compare(app_over_hours, terminal_size=(120, 40), run_before=all_shown)


def test_the_help_screen(app: MonitorApp, snap_compare: Callable[..., bool]) -> None:
    assert snap_compare(app, terminal_size=(80, 24), run_before=all_shown, press=["question_mark"])


def test_paused(app: MonitorApp, snap_compare: Callable[..., bool]) -> None:
    assert snap_compare(app, terminal_size=(80, 24), run_before=all_shown, press=["p"])


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_trending(
    app: MonitorApp, size: tuple[int, int], snap_compare: Callable[..., bool]
) -> None:
    assert snap_compare(app, terminal_size=size, run_before=all_shown, press=["v"])


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_a_movie_screen(
    app: MonitorApp, size: tuple[int, int], snap_compare: Callable[..., bool]
) -> None:
    """Enter on the top movie: its day, drawn once its first figures are read."""

    async def opened(pilot: Pilot[Any]) -> None:
        await all_shown(pilot)
        await pilot.press("enter")
        async with asyncio.timeout(30):
            while not isinstance(pilot.app.screen, MovieScreen):
                await pilot.pause(0.01)
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=opened)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_a_past_day(
    app_with_yesterday: MonitorApp, size: tuple[int, int], snap_compare: Callable[..., bool]
) -> None:
    """`<`: yesterday's daily panels, dated, beside today's live ones."""

    async def yesterday(pilot: Pilot[Any]) -> None:
        await all_shown(pilot)
        await pilot.press("less_than_sign")
        app = pilot.app
        assert isinstance(app, MonitorApp)
        async with asyncio.timeout(30):  # the past day's figures follow from the store
            while app.snapshot is None or not app.snapshot.past:
                await pilot.pause(0.01)
        await pilot.pause()

    assert snap_compare(app_with_yesterday, terminal_size=size, run_before=yesterday)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_the_dead_letters(
    app_with_dead_letters: MonitorApp, size: tuple[int, int], snap_compare: Callable[..., bool]
) -> None:
    """d: the newest first, each column fitted to the terminal, the text literal."""
    app = app_with_dead_letters
    assert snap_compare(app, terminal_size=size, run_before=all_shown, press=["d"])


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_one_dead_letter_whole(
    app_with_dead_letters: MonitorApp, size: tuple[int, int], snap_compare: Callable[..., bool]
) -> None:
    """d, down, down, enter: the oldest of three whole, its place in its file said."""
    app = app_with_dead_letters
    press = ["d", "down", "down", "enter"]
    assert snap_compare(app, terminal_size=size, run_before=all_shown, press=press)


ALERTS = AlertState(
    firing=(
        AlertChange(
            "slow commits", "lag_p99 > 5s for 1m clear 3s", "critical", "firing", "7.2 s",
            "2026-11-23T09:58:30.000Z", "2026-11-23T09:58:30.000Z",
        ),
    ),
    recent=(
        AlertChange(
            "slow commits", "lag_p99 > 5s for 1m clear 3s", "critical", "firing", "7.2 s",
            "2026-11-23T09:58:30.000Z", "2026-11-23T09:58:30.000Z",
        ),
        AlertChange(
            "dead_letters_per_minute > 0", "dead_letters_per_minute > 0", "warning",
            "cleared", "0", "2026-11-23T09:41:02.000Z", "2026-11-23T09:37:55.000Z",
        ),
    ),
)  # fmt: skip


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_the_alerts(
    app: MonitorApp, size: tuple[int, int], snap_compare: Callable[..., bool]
) -> None:
    """a: what fires, in red, for how long; then what cleared, once each."""

    async def opened(pilot: Pilot[Any]) -> None:
        await all_shown(pilot)
        await pilot.app.push_screen(AlertsScreen(ALERTS, True, now=NOW))
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=opened)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_finding_a_movie(
    app: MonitorApp, size: tuple[int, int], snap_compare: Callable[..., bool]
) -> None:
    """s, then words of a title: the matches as typed, the most viewed first."""

    async def typed(pilot: Pilot[Any]) -> None:
        await all_shown(pilot)
        await pilot.press("s")
        screen = pilot.app.screen
        assert isinstance(screen, SearchScreen)
        async with asyncio.timeout(30):
            while screen.index is None:
                await pilot.pause(0.01)
        await pilot.press(*"the last")
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=typed)
