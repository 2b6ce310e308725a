"""The monitor, driven through its keys with Textual's Pilot, over the real pipeline."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gzip
import json
import re
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from rich.text import Text
from textual.pilot import Pilot
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input, Static
from textual.widgets._footer import FooterKey
from textual.widgets._toast import Toast

from imdb_tui.alerts import Alerts, parse_rule
from imdb_tui.catalog import Catalog, Movie, build_catalog
from imdb_tui.clock import ManualClock
from imdb_tui.pipeline import MAX_RATE, Pipeline, PipelineSettings
from imdb_tui.simulator import Simulator, SimulatorSettings
from imdb_tui.sources.jsonlines import JsonLinesSource
from imdb_tui.sources.simulated import SimulatedSource
from imdb_tui.store import Store, StoreError, open_store
from imdb_tui.store.sqlite import MEMORY, SqliteStore
from imdb_tui.tui.alerts import AlertsScreen
from imdb_tui.tui.app import MonitorApp
from imdb_tui.tui.dead_letters import DeadLetterScreen, DeadLettersScreen
from imdb_tui.tui.dialogs import KEYS, HelpScreen, RateDialog
from imdb_tui.tui.events_by_type import EventsByType
from imdb_tui.tui.movie import MovieHeading, MovieMinutes, MovieScreen, MovieToday
from imdb_tui.tui.panel import Panel
from imdb_tui.tui.ratings import RatingsPanel
from imdb_tui.tui.top_movies import TopMovies
from imdb_tui.tui.trending import TrendingPanel
from imdb_tui.tui.trends import PerMinute, TodayByHour
from imdb_tui.viewer import StoreWatcher, in_process

from .conftest import NOW, event
from .helpers import ingest


class NappingClock(ManualClock):
    """Time that moves only when the pipeline sleeps, as a manual clock's, but the
    sleeps are real: the app's loop goes idle between chunks, as it does for a user."""

    async def sleep(self, seconds: float) -> None:
        self.advance(max(seconds, 0.0))
        await asyncio.sleep(seconds)


def monitor(
    db: str | Path,
    *,
    rate: float | None = 20.0,
    catalog: Catalog | None = None,
    store: Store | None = None,
    clock: ManualClock | None = None,
    **settings: object,
) -> MonitorApp:
    """The monitor over the simulator, as `imdb-tui` builds it, on a test clock."""
    clock = clock or NappingClock(NOW, tz=UTC)
    catalog = catalog or build_catalog(7, 200)
    simulator = Simulator(catalog, SimulatorSettings(seed=7, users=2_000), clock)
    options = {"rate": rate, "commit_interval": 0.02, **settings}
    pipeline = Pipeline(
        SimulatedSource(simulator),
        store or open_store(db),
        clock,
        PipelineSettings(**options),  # type: ignore[arg-type]
        catalog,
    )
    return MonitorApp(*in_process(pipeline, str(db)))


@pytest.fixture
def app(db_path: Path) -> Iterator[MonitorApp]:
    app = monitor(db_path, writer_process=False)
    yield app
    app.control.pipeline.store.close()


async def until(pilot: Pilot[object], condition: Callable[[], bool], seconds: float = 60.0) -> None:
    """Let the app run until `condition` holds (the stream moves on its own)."""
    async with asyncio.timeout(seconds):
        while not condition():
            await pilot.pause(0.01)


def status(app: MonitorApp) -> str:
    return str(app.query_one("#status", Static).render())


def footer(app: MonitorApp) -> list[str]:
    """The keys the footer lists (it is on the dashboard, under any dialog)."""
    return [key.description for key in app.screen_stack[0].query(FooterKey)]


def stored_in(db: Path) -> int:
    with sqlite3.connect(db) as connection:
        (count,) = connection.execute("SELECT count(*) FROM events").fetchone()
    return int(count)


async def test_the_panels_show_the_stream(app: MonitorApp) -> None:
    app.control.pipeline.set_rate(5_000)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.snapshot is not None and app.snapshot.events_total > 500)
        snapshot = app.snapshot
        assert snapshot is not None
        titles = [panel.border_title for panel in app.query(Panel)]
        assert titles == [
            "Active users",
            "Events by type",
            "Ratings today",
            "Pipeline",
            "Top movies today",
            "Trending · last 15 min",
            "Events per minute",
            "Today by hour",
        ]
        table = app.query_one(DataTable)
        assert str(table.get_cell("1", "Title")) == snapshot.top_movies[0].title
        top = snapshot.top_movies[0]
        assert str(table.get_cell("1", "Avg")) == (
            "–" if top.avg_rating is None else f"{top.avg_rating:.1f}"
        )
        average = snapshot.ratings.average
        assert average is not None  # the simulator rates
        ratings = str(app.query_one(RatingsPanel).render())
        assert ratings.startswith(f"{snapshot.ratings.count:,} · average {average:.2f}\n")
        assert ratings.endswith("\n1 2 3 4 5 6 7 8 9 10")  # each under its column
        assert "RUNNING" in status(app)
        assert "imdb-tui" in app.title and app.sub_title == "RUNNING"


async def test_v_shows_trending_in_place_of_top_movies_and_back(app: MonitorApp) -> None:
    app.control.pipeline.set_rate(5_000)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.snapshot is not None and len(app.snapshot.trending) > 3)
        top, trending = app.query_one(TopMovies), app.query_one(TrendingPanel)
        assert top.display and not trending.display
        assert top.border_subtitle == "v: trending"
        place = top.region
        await pilot.press("v")
        await pilot.pause()
        assert trending.display and not top.display
        assert trending.region == place and place.width > 40
        await app.refresh_now()
        shown = app.snapshot
        assert shown is not None
        table = trending.query_one(DataTable)
        rows = [[str(cell) for cell in table.get_row(str(rank))] for rank in (1, 2, 3)]
        # A first run has no hour before: every title is new, and rises by its views.
        assert [row[1:] for row in rows] == [
            ["new", t.title, f"{t.views_recent:,}", f"+{t.views_recent:,}"]
            for t in shown.trending[:3]
        ]
        await pilot.press("v")
        assert top.display and not trending.display


async def test_enter_on_a_movie_opens_its_screen_live_and_escape_returns(
    app: MonitorApp,
) -> None:
    app.control.pipeline.set_rate(2_000)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.snapshot is not None and len(app.snapshot.top_movies) > 2)
        await pilot.press("f")  # the lists hold still between the key and the check
        listed = app.snapshot
        await pilot.press("down", "enter")  # the second of Top movies
        await until(pilot, lambda: isinstance(app.screen, MovieScreen))
        screen = app.screen
        assert isinstance(screen, MovieScreen)
        await until(pilot, lambda: screen.movie is not None)  # read once drawn
        assert screen.movie is not None
        second = listed.top_movies[1]
        assert screen.movie.movie_id == second.movie_id
        heading = screen.query_one(MovieHeading)
        assert heading.border_title == f"{second.title} ({second.year})"
        assert str(heading.render()).startswith(second.movie_id)
        today = str(screen.query_one(MovieToday).render())
        assert "views" in today and "users" in today
        shown = screen.movie
        await pilot.press("f")  # unfrozen, on the movie's screen
        await until(pilot, lambda: screen.movie is not shown)  # it reads again, live
        assert screen.movie.by_type["view"] >= shown.by_type["view"]
        await pilot.press("escape")
        assert not isinstance(app.screen, MovieScreen)
        await pilot.press("f", "v")
        listed = app.snapshot
        await pilot.press("enter")  # the first of Trending
        await until(pilot, lambda: isinstance(app.screen, MovieScreen))
        assert screen is app.screen  # made once, kept
        await until(pilot, lambda: screen.movie is not None)
        assert screen.movie is not None
        assert screen.movie.movie_id == listed.trending[0].movie_id
        await pilot.press("escape")


async def test_pause_stops_the_stored_total_and_resume_restarts_it(
    app: MonitorApp, db_path: Path
) -> None:
    pipeline = app.control.pipeline
    pipeline.set_rate(5_000)
    async with app.run_test() as pilot:
        await until(pilot, lambda: pipeline.health().stored > 1_000)
        assert "Pause" in footer(app)
        await pilot.press("p")
        assert status(app).startswith("PAUSED")
        await pilot.pause()
        assert "Resume" in footer(app) and "Pause" not in footer(app)
        await until(pilot, lambda: pipeline.health().stored == pipeline.health().emitted)
        held = pipeline.health().stored
        await pilot.pause(0.5)
        await app.refresh_now()
        assert pipeline.health().stored == held == stored_in(db_path)
        assert app.snapshot is not None and app.snapshot.events_total == held

        await pilot.press("space")
        assert status(app).startswith("RUNNING")
        await until(pilot, lambda: pipeline.health().stored > held + 1_000)
        await pilot.pause()
        assert "Pause" in footer(app)


async def test_the_rate_keys_change_the_target(app: MonitorApp) -> None:
    pipeline = app.control.pipeline
    async with app.run_test() as pilot:
        await pilot.press("p")  # paused, so that Pilot finds the app idle after each key
        await pilot.press("plus")
        assert pipeline.target_rate == 40
        assert "target 40/s" in status(app)
        await pilot.press("minus", "minus", "minus")
        assert pipeline.target_rate == 5
        await pilot.press("m")
        assert pipeline.target_rate is None and "target max" in status(app)
        await pilot.pause()
        assert "Paced" in footer(app)
        await pilot.press("plus")  # no doubling of "unthrottled": it says so
        assert pipeline.target_rate is None
        assert any("Already at max" in str(n.message) for n in app._notifications)
        await pilot.press("m")
        assert pipeline.target_rate == 5
        await pilot.press(*["minus"] * 4)
        assert pipeline.target_rate == 1  # 1 ev/s is the floor


async def test_the_monitor_says_what_the_database_held_before_and_how_to_empty_it(
    db_path: Path,
) -> None:
    await ingest(db_path, [event(n) for n in range(500)], ManualClock(NOW, tz=UTC))
    app = monitor(db_path, writer_process=False)
    try:
        async with app.run_test(size=(120, 40), notifications=True) as pilot:
            await until(pilot, lambda: bool(app.screen.query(Toast)))
            toast = " ".join(str(t.render()) for t in app.screen.query(Toast))
            assert "500 events from earlier runs" in toast and "imdb-tui prune" in toast
    finally:
        app.control.pipeline.store.close()


async def test_keys_do_nothing_behind_the_terminal_too_small_note(app: MonitorApp) -> None:
    """Only the note shows: p (pause), + and the others would act unseen; q quits."""
    pipeline = app.control.pipeline
    async with app.run_test(size=(60, 15)) as pilot:
        await pilot.press("p", "plus", "m", "f", "d", "question_mark")
        assert not pipeline.paused and pipeline.target_rate == 20 and not app.frozen
        assert not isinstance(app.screen, ModalScreen)
        await pilot.resize_terminal(80, 24)
        await pilot.press("p")  # whole again: the keys act
        assert pipeline.paused
        await pilot.resize_terminal(60, 15)
        await pilot.press("q")  # quits even so
        await until(pilot, lambda: not app.is_running)


async def test_big_figures_are_written_shorter_at_80x24_not_cut(app: MonitorApp) -> None:
    """At 80x24 the chart's note had no room for the peak's number, and lost it."""
    pipeline = app.control.pipeline
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("m")
        await until(pilot, lambda: pipeline.health().stored > 120_000, seconds=60)
        await app.refresh_now()
        await pilot.pause()
        note = str(app.query_one(PerMinute).query_one(Static).render())
        assert re.fullmatch(r".*this minute [\d.,]+k? · peak [\d.,]+k", note), note
        await pilot.press("f")  # held: the figures below stay shown
        assert app.snapshot is not None
        big = {"view": 9_123_456, "click": 2_345_678, "rate": 1_100_000, "watchlist_add": 1_000_001}
        app.snapshot = dataclasses.replace(app.snapshot, by_type=big)
        await pilot.pause()
        shown = str(app.query_one(EventsByType).render())
        assert "watchlist_add  1.0M" in shown and "total         13.6M" in shown, shown
        first = dataclasses.replace(app.snapshot.top_movies[0], views=1_234_567, share=1.0)
        app.snapshot = dataclasses.replace(app.snapshot, top_movies=(first,))
        await pilot.pause()
        table = app.query_one(TopMovies).query_one(DataTable)
        cells = [str(table.get_cell("1", column)) for column in ("Views", "Share")]
        assert cells[0] == "1.2M" and cells[1].endswith("100%"), cells  # not "1,234,5", "100.0"


async def test_minus_at_max_halves_the_measured_rate(app: MonitorApp) -> None:
    pipeline = app.control.pipeline
    async with app.run_test() as pilot:
        await pilot.press("m")
        await until(pilot, lambda: pipeline.health().stored > 20_000)
        await app.refresh_now()
        await pilot.press("f")  # the figures held: the rate the key reads is this one
        assert app.snapshot is not None and app.snapshot.health is not None
        measured = app.snapshot.health.ingest_rate
        assert measured > 1_000  # max, far above the last target set (20/s)
        await pilot.press("minus")
        assert pipeline.target_rate == min(measured / 2, MAX_RATE)  # not 10/s


async def test_r_asks_for_an_exact_rate(app: MonitorApp) -> None:
    pipeline = app.control.pipeline
    async with app.run_test() as pilot:
        await pilot.press("p", "r")
        assert isinstance(app.screen, RateDialog)
        await pilot.press(*"12,345", "enter")
        assert not isinstance(app.screen, RateDialog)
        assert pipeline.target_rate == 12_345

        await pilot.press("r", *"fast", "enter")
        assert isinstance(app.screen, RateDialog)  # a bad rate is explained, not taken
        assert "not a rate" in str(app.screen.query_one("#rate-error", Static).render())
        await pilot.press("escape")
        assert not isinstance(app.screen, RateDialog)
        assert pipeline.target_rate == 12_345

        await pilot.press("r", *"max", "enter")
        assert pipeline.target_rate is None

        await pilot.press("r", "space", "p")  # in the dialog, p and space are text
        assert isinstance(app.screen, RateDialog) and pipeline.paused
        assert app.screen.query_one(Input).value == " p"


async def test_w_cycles_the_active_user_window(app: MonitorApp) -> None:
    async with app.run_test() as pilot:
        seen = []
        for _ in range(4):
            await pilot.press("w")
            await until(pilot, lambda: app.snapshot is not None)
            assert app.snapshot is not None
            seen.append(app.snapshot.active_users.window_minutes)
        assert seen == [15, 60, 1, 5]  # from the default 5
        assert "window 5 min" in status(app)
        note = str(app.query_one("#active-users-note", Static).render())
        assert "5 min" in note


async def test_brackets_step_through_a_fixed_ladder_of_refresh_intervals(
    app: MonitorApp,
) -> None:
    async with app.run_test() as pilot:
        seen = []
        for key in ["right_square_bracket"] * 3 + ["left_square_bracket"] * 5:
            await pilot.press(key)
            seen.append(app.refresh_interval)
        assert seen == [0.5, 0.25, 0.25, 0.5, 1.0, 2.0, 5.0, 5.0]  # 1 s is reached again
        assert "refresh 5 s" in status(app)
        app.refresh_interval = 0.75  # as --refresh may set it, between steps
        await pilot.press("left_square_bracket")
        assert app.refresh_interval == 1.0


async def test_a_dialog_shows_only_its_own_keys_and_its_input_gets_them(app: MonitorApp) -> None:
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert {"Faster", "Slower", "Pause", "Window"} <= set(footer(app))
        for dialog in ("question_mark", "r"):
            await pilot.press(dialog)
            await until(  # its own footer drawn, the dashboard's keys gone from beneath
                pilot,
                lambda: (
                    any(app.screen.query(FooterKey))
                    and not {"Faster", "Slower", "Pause", "Max", "Window"} & set(footer(app))
                ),
            )
            own = {key.description for key in app.screen.query(FooterKey)}
            assert own & {"Close", "Cancel"} and "Quit" not in own  # q closes, not quits
            assert app.check_action("faster", ()) is False
            await pilot.press("escape")
        await until(pilot, lambda: {"Faster", "Slower", "Pause"} <= set(footer(app)))


async def test_f_freezes_the_display_while_the_pipeline_runs(app: MonitorApp) -> None:
    pipeline = app.control.pipeline
    pipeline.set_rate(2_000)
    async with app.run_test() as pilot:
        await until(pilot, lambda: app.snapshot is not None and app.snapshot.events_total > 0)
        await pilot.press("f")
        assert "FROZEN" in status(app)
        shown = app.snapshot
        stored = pipeline.health().stored
        await until(pilot, lambda: pipeline.health().stored > stored + 200)
        await app.refresh_now()
        assert app.snapshot is shown
        await pilot.press("f")
        await app.refresh_now()
        assert app.snapshot is not shown and "FROZEN" not in status(app)


async def test_help_lists_every_key(app: MonitorApp) -> None:
    async with app.run_test(size=(100, 40)) as pilot:
        for key in ("question_mark", "f1"):
            await pilot.press(key)
            assert isinstance(app.screen, HelpScreen)
            shown = "\n".join(str(part.render()) for part in app.screen.query(Static))
            lines = [" ".join(line.split()) for line in shown.splitlines()]
            for keys, what in KEYS:  # each key with its own description, on one line
                assert f"{keys} {what}" in lines
            await pilot.press("escape")
            assert not isinstance(app.screen, HelpScreen)


@pytest.mark.parametrize("key", ["q", "ctrl+c"])
async def test_quit_drains_the_queue_and_the_database_is_complete(db_path: Path, key: str) -> None:
    app = monitor(db_path, rate=None)  # the writer process, as `imdb-tui` runs it
    try:
        async with app.run_test() as pilot:
            await until(pilot, lambda: app.control.pipeline.health().stored > 20_000)
            await pilot.press(key)
            await until(pilot, lambda: app.return_value is not None)
    finally:
        app.control.pipeline.store.close()
    summary = app.return_value
    assert summary is not None
    assert summary.stored == summary.emitted > 20_000
    assert stored_in(db_path) == summary.stored


class FullDisk(SqliteStore):
    """A store whose batch writes fail while `full` is set, as on a full disk."""

    full = False

    def write_batch(self, *args: Any, **kwargs: Any) -> Any:
        if self.full:
            raise StoreError("database or disk is full")
        return super().write_batch(*args, **kwargs)


async def test_a_storage_error_is_shown_and_the_app_keeps_running() -> None:
    store = FullDisk.open(MEMORY)
    assert isinstance(store, FullDisk)
    app = monitor(MEMORY, store=store)
    pipeline = app.control.pipeline
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await until(pilot, lambda: pipeline.health().stored > 0)
        store.full = True
        await until(pilot, lambda: any(app.screen.query(Toast)))
        toast = str(app.screen.query_one(Toast).render())
        assert "database or disk is full" in toast
        await app.refresh_now()
        # First on the line, where neither 80 columns nor the notification hide it.
        assert status(app).startswith("WAITING · storage error: database or disk is full, retrying")
        store.full = False
        stored = pipeline.health().stored
        await until(pilot, lambda: pipeline.health().stored > stored)
        await app.refresh_now()
        assert "storage error" not in status(app)
    store.close()


async def test_titles_from_data_are_shown_literally(db_path: Path) -> None:
    hostile = "[bold red]Boom[/] \x1b[31mred\x1b[0m [link=http://x]y[/link]"
    catalog = Catalog.of([Movie("tt0000001", hostile, 1999, ("Drama",))], [1.0])
    app = monitor(db_path, catalog=catalog, writer_process=False)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: app.snapshot is not None and bool(app.snapshot.top_movies))
            cell = app.query_one(DataTable).get_cell("1", "Title")
            assert isinstance(cell, Text) and not cell.spans and cell.style == ""
            assert cell.plain == "[bold red]Boom[/] \\x1b[31mred\\x1b[0m [link=http://x]y[/link]"
            await pilot.press("enter")  # its screen: the title on the border, as it is
            await until(pilot, lambda: isinstance(app.screen, MovieScreen))
            await until(pilot, lambda: getattr(app.screen, "movie", None) is not None)
            heading = app.screen.query_one(MovieHeading)
            title = heading._border_title
            assert title is not None and not title.spans
            assert title.plain == cell.plain + " (1999)"
    finally:
        app.control.pipeline.store.close()


@contextlib.asynccontextmanager
async def monitor_of_file(
    path: Path, db: Path, clock: ManualClock, **settings: object
) -> AsyncIterator[tuple[MonitorApp, Pilot[object]]]:
    """The monitor over a JSON Lines file, once all of it is stored."""
    store = open_store(db)
    options = PipelineSettings(**settings)  # type: ignore[arg-type]
    pipeline = Pipeline(JsonLinesSource(str(path)), store, clock, options)
    app = MonitorApp(*in_process(pipeline, str(db)))
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: pipeline.state in ("finished", "failed"))
            await app.refresh_now()
            yield app, pilot
            # Quit as a user does: the app waits for the pipeline's run to end, its
            # writer (a child process) closed, before it exits.
            await pilot.press("q")
            await until(pilot, lambda: app.summary is not None)
    finally:
        store.close()


async def test_an_input_error_shows_failed_and_the_reason(tmp_path: Path, db_path: Path) -> None:
    lines = b"".join(json.dumps(event(n)).encode() + b"\n" for n in range(2000))
    packed = gzip.compress(lines)
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(packed[: len(packed) // 2])
    clock = NappingClock(NOW, tz=UTC)
    async with monitor_of_file(path, db_path, clock) as (app, pilot):
        line = status(app)
        assert line.startswith("FAILED") and f"input error: cannot read {path}" in line
        assert "storage error" not in line
        for action in ("pause", "faster", "unthrottle", "ask_rate"):
            assert app.check_action(action, ()) is False  # nothing runs to drive
        await pilot.press("p")
        await pilot.pause()
        assert status(app).startswith("FAILED")
        assert not {"Pause", "Resume", "Faster", "Slower", "Max", "Rate"} & set(footer(app))
        assert {"Window", "Freeze", "Quit"} <= set(footer(app))


async def test_d_lists_the_dead_letters_literally(tmp_path: Path, db_path: Path) -> None:
    lines = b'{"event_id": "\x1b[31mred"}\n[bold]not json[/]\n' + json.dumps(event(1)).encode()
    (tmp_path / "in.jsonl").write_bytes(lines + b"\n")
    clock = NappingClock(NOW, tz=UTC)
    async with monitor_of_file(tmp_path / "in.jsonl", db_path, clock) as (app, pilot):
        assert "FINISHED" in status(app)
        await pilot.press("d")
        assert isinstance(app.screen, DeadLettersScreen)
        table = app.screen.query_one(DataTable)
        await until(pilot, lambda: table.row_count == 2)  # read from the store in a worker
        rows = [[str(cell) for cell in table.get_row_at(n)] for n in range(table.row_count)]
        assert [row[2] for row in rows] == ["[bold]not json[/]", '{"event_id": "\\x1b[31mred"}']
        assert all(row[1] for row in rows)
        await pilot.press("down", "enter")  # the older one, whole
        assert isinstance(app.screen, DeadLetterScreen)
        shown = " ".join(str(s.render()) for s in app.screen.query(Static))
        assert f"({tmp_path / 'in.jsonl'} line 1, byte 0)" in shown
        assert '{"event_id": "\\x1b[31mred"}' in shown  # literal
        await pilot.press("c")
        assert app.clipboard == '{"event_id": "\x1b[31mred"}'  # as received
        await pilot.press("escape")
        assert isinstance(app.screen, DeadLettersScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, DeadLettersScreen)


async def test_history_is_shown_at_stream_time(tmp_path: Path, db_path: Path) -> None:
    lines = [
        json.dumps(event(n, event_time=f"2024-03-01T08:{n:02d}:00.000Z", user_id=f"u{n % 3}"))
        for n in range(25)
    ]
    (tmp_path / "march.jsonl").write_text("\n".join(lines) + "\n")
    clock = NappingClock(NOW, tz=UTC)
    replay = {"rate": None, "stream_time": True, "replay_speed": 600.0}
    async with monitor_of_file(tmp_path / "march.jsonl", db_path, clock, **replay) as (app, _):
        assert "stream time 2024-03-01 08:24:00 · replay 600x" in status(app)
        assert app.snapshot is not None and app.snapshot.events_today == 25
        assert app.snapshot.active_users.count == 3
        assert clock.monotonic() == pytest.approx(24 * 60 / 600)  # paced by event time


async def test_the_palette_names_each_command_once_and_saves_screenshots_somewhere_real(
    app: MonitorApp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/Downloads there
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        titles = [command.title for command in app.get_system_commands(app.screen)]
        assert len(titles) == len(set(titles)) and "Help" in titles
        assert "Keys" not in titles  # Textual's: a table's cursor keys, squeezing the panels
        app.action_save_screenshot()
        await pilot.pause()
        assert not list(tmp_path.glob("*.svg"))  # not in the working folder
        (saved,) = (tmp_path / "data" / "imdb-tui" / "screenshots").glob("*.svg")
        assert "imdb-tui" in saved.read_text()
        toast = str(app.screen.query_one(Toast).render())
        assert "Screenshot saved" in toast or str(saved) in toast


async def test_watching_lists_only_the_view_keys(db_path: Path) -> None:
    yesterday = [event(50, event_time="2026-11-22T10:00:00.000Z")]
    await ingest(db_path, [event(n) for n in range(50)] + yesterday, ManualClock(NOW, tz=UTC))
    watcher = StoreWatcher(open_store(db_path, read_only=True), ManualClock(NOW, tz=UTC))
    app = MonitorApp(watcher, None)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await app.refresh_now()
            await pilot.pause()
            assert {"Window", "Freeze", "Help", "Quit"} <= set(footer(app))
            assert not {"Pause", "Faster", "Max", "Rate"} & set(footer(app))
            assert status(app).startswith("WATCHING · NO PIPELINE WRITING")
            await pilot.press("question_mark")
            shown = "\n".join(str(part.render()) for part in app.screen.query(Static))
            assert "p / space" not in shown and "w " in shown
            lines = [" ".join(line.split()) for line in shown.splitlines()]
            for row in ("v top movies", "enter the movie", "t live tail", "< / > the daily"):
                assert any(line.startswith(row) for line in lines), row
            assert "q / ctrl+c quit" in lines and "queue" not in shown  # it has none
            await pilot.press("escape", "p", "plus")  # nothing to drive: nothing happens
            await pilot.press("less_than_sign")  # a day back, read from the database
            await until(pilot, lambda: shows(app, "2026-11-22"))
            assert app.snapshot is not None and app.snapshot.events_today == 1
            assert "no ratings on 2026-11-22" in str(app.query_one("#ratings").render())
            await pilot.press("q")
        assert app.return_value is None
    finally:
        watcher.close()


def shows(app: MonitorApp, day: str) -> bool:
    """The dashboard shows a past day's figures."""
    return app.snapshot is not None and app.snapshot.past and app.snapshot.day == day


async def test_angle_brackets_step_the_daily_panels_through_past_days(db_path: Path) -> None:
    """`<` shows the day before in the daily panels (dated, and said in the status line),
    back to the oldest kept; enter opens a movie's screen of that day; `>` steps forward
    and, on today, the figures are live again."""
    clock = NappingClock(NOW, tz=UTC)
    past = [
        event(n, event_time=f"2026-11-{21 + n % 2}T12:{n % 60:02d}:00.000Z", user_id=f"u{n % 9}")
        for n in range(300)
    ]
    past += [
        event(1000 + n, event_time="2026-11-21T13:00:00.000Z", movie_id="tt0000007", user_id="u1")
        for n in range(40)
    ]
    await ingest(db_path, past, ManualClock(NOW, tz=UTC))
    app = monitor(db_path, clock=clock, writer_process=False)
    try:
        async with app.run_test(size=(120, 40), notifications=True) as pilot:
            await until(pilot, lambda: app.snapshot is not None and app.snapshot.events_today > 0)
            top = app.query_one(TopMovies)
            assert top.border_title == "Top movies today" and "viewing" not in status(app)
            await pilot.press("less_than_sign")
            await until(pilot, lambda: shows(app, "2026-11-22"))
            assert app.snapshot is not None and app.snapshot.events_today == 150
            assert top.border_title == "Top movies · 2026-11-22"
            assert app.query_one(TodayByHour).border_title == "2026-11-22 by hour"
            assert app.query_one(RatingsPanel).border_title == "Ratings · 2026-11-22"
            assert "viewing 2026-11-22" in status(app)
            assert "users on 2026-11-22" in str(app.query_one("#active-users-note").render())
            await pilot.press("less_than_sign")
            await until(pilot, lambda: shows(app, "2026-11-21"))
            assert app.snapshot.users_today == 9
            await pilot.pause()  # the panels redraw from the bound snapshot
            table = top.query_one(DataTable)
            assert (str(table.get_cell("1", "Title")), str(table.get_cell("1", "Views"))) == (
                "tt0000007",
                "40",
            )
            await pilot.press("less_than_sign")  # the oldest day kept: it stays
            assert app.snapshot.day == "2026-11-21"
            said = "the oldest day kept is 2026-11-21"
            await until(pilot, lambda: any(said in str(t.render()) for t in app.query(Toast)))
            await pilot.pause(1.2)  # refreshes keep the day shown
            assert app.snapshot.day == "2026-11-21" and app.snapshot.past
            await pilot.press("enter")  # its top movie, that day
            await until(pilot, lambda: isinstance(app.screen, MovieScreen))
            screen = app.screen
            assert isinstance(screen, MovieScreen)
            await until(pilot, lambda: screen.movie is not None)
            assert screen.movie is not None
            assert (screen.movie.day, screen.movie.views) == ("2026-11-21", 40)
            assert screen.query_one(MovieToday).border_title == "2026-11-21"
            await pilot.pause()
            minutes = screen.query_one(MovieMinutes)  # not today's last hour under that day
            assert minutes.border_title == "Views per minute · 2026-11-21"
            note = str(minutes.query_one(Static).render())
            assert note == "kept for the last two hours only: none for 2026-11-21"
            await pilot.press("escape", "greater_than_sign")
            await until(pilot, lambda: shows(app, "2026-11-22"))
            await pilot.press("greater_than_sign")
            await until(pilot, lambda: app.snapshot is not None and not app.snapshot.past)
            assert top.border_title == "Top movies today"
            assert "viewing" not in status(app)
            shown = app.snapshot.events_today
            await until(pilot, lambda: app.snapshot.events_today > shown)  # live again
    finally:
        app.control.pipeline.store.close()


async def test_an_alert_firing_rings_shows_and_is_listed_under_a(
    app: MonitorApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rule of the pipeline fires: a toast, the bell, `1 firing (a)` first on the status
    line; `a` lists it; pausing lets the rule clear, and the toast says so."""
    rings: list[bool] = []
    monkeypatch.setattr(app, "bell", lambda: rings.append(True))
    app.control.pipeline.alerts = Alerts([parse_rule("ingest_rate > 1", name="busy")])
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await until(pilot, lambda: "1 firing (a)" in status(app))
        assert status(app).startswith("RUNNING · 1 firing (a)") and rings == [True]
        await until(pilot, lambda: bool(app.screen.query(Toast)))
        toasts = [str(toast.render()) for toast in app.screen.query(Toast)]
        assert any("Alert firing" in toast and "busy: " in toast for toast in toasts), toasts
        await pilot.press("a")
        assert isinstance(app.screen, AlertsScreen)
        table = app.screen.query_one(DataTable)
        row = [str(cell) for cell in table.get_row_at(0)]
        assert row[:2] == ["FIRING", "busy"] and table.row_count == 1
        await pilot.press("escape", "p")  # paused: nothing is stored, the rate falls to 0
        await until(pilot, lambda: "firing" not in status(app), seconds=30)
        assert rings == [True]  # a clearing does not ring
        await pilot.press("q")
        await until(pilot, lambda: app.summary is not None)
