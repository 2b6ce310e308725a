"""The monitor app: refreshes panels from a Reader's snapshots and maps keys to a Control.

The default monitor plugs in the pipeline it runs on its own loop (LocalPipeline,
both reader and control); `imdb-tui watch` plugs in a StoreWatcher and no control.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import stat
import time
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

import platformdirs
from rich.text import Text
from textual import events
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Grid
from textual.reactive import reactive
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Footer, Header, Input, Static
from textual.worker import Worker, WorkerCancelled, WorkerFailed

from imdb_tui.alerts import AlertChange, Alerts, AlertState, stored_alerts
from imdb_tui.clock import day_after, utc_iso
from imdb_tui.display import clock_text, literal, rate_text, size_text
from imdb_tui.health import ENDED_STATES, PipelineHealth
from imdb_tui.metrics import WINDOW_CHOICES, MetricsSnapshot, not_kept
from imdb_tui.pipeline import MAX_RATE, MIN_RATE, PipelineSettings, RunSummary
from imdb_tui.search import Found
from imdb_tui.store import StoreError
from imdb_tui.tail import EventMatch
from imdb_tui.tui.active_users import ActiveUsers
from imdb_tui.tui.alerts import AlertsScreen
from imdb_tui.tui.dead_letters import SHOWN, DeadLettersScreen
from imdb_tui.tui.dialogs import HelpScreen, RateDialog
from imdb_tui.tui.events_by_type import EventsByType
from imdb_tui.tui.movie import MovieScreen
from imdb_tui.tui.panel import Panel
from imdb_tui.tui.pipeline_panel import PipelinePanel
from imdb_tui.tui.ratings import RatingsPanel
from imdb_tui.tui.search import SearchScreen
from imdb_tui.tui.tail import TailScreen
from imdb_tui.tui.top_movies import TopMovies
from imdb_tui.tui.trending import TrendingPanel
from imdb_tui.tui.trends import PerMinute, TodayByHour
from imdb_tui.viewer import NO_WRITER, Control, Reader

REFRESH_STEPS = (0.25, 0.5, 1.0, 2.0, 5.0)
"""The refresh intervals [ and ] step through, in seconds."""
MIN_SIZE = (80, 24)
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
WIDE = 110
"""From this many columns on, Ratings has a panel of its own; below, Events by type
shows today's average rating on its rate row."""
"""The smallest terminal every panel is whole in, columns by rows."""
GC_THRESHOLD = 20_000
"""Allocations between young collections (Python's default is 700): at max rate the
stream allocates millions a second, and every collection stops the screen."""


def monitor_settings(**options: Any) -> PipelineSettings:
    """Pipeline settings for the monitor. The pipeline shares the app's event loop, and
    no key or refresh can run while one of its steps does: chunks an eighth of
    headless's keep reading and validating to a millisecond or two a step. Batches
    are half of headless's: a batch's step (counting it, and handing it to the
    writer process) takes about 35 ms at 8,192 events on a slow core, and each
    batch costs the writer a commit and every aggregate table's upserts, so at
    2,048 the writer could not keep up, and the monitor stored about half of what
    headless does (bench/monitor.py)."""
    return PipelineSettings(**{"chunk_size": 256, "batch_size": 8192, **options})


DEFAULT_RATE = 200.0
CONTROLS = frozenset({"pause", "resume", "faster", "slower", "unthrottle", "throttle", "ask_rate"})
"""The actions that drive the pipeline: none while watching or once the run is over."""
DASHBOARD_ONLY = frozenset(
    {
        "cycle_window",
        "toggle_trending",
        "dead_letters",
        "alerts",
        "search",
        "previous_day",
        "next_day",
    }
)
"""The actions that change only what the dashboard shows: not on a movie's screen."""


class MonitorApp(App[RunSummary | None]):
    CSS_PATH = "app.tcss"
    # Screen classes app.tcss lays out by: 24 rows get the compact grid, and under 90
    # columns the footer gives the palette's hint up so that every key shows.
    # Below MIN_SIZE, a "terminal too small" note takes the dashboard's place.
    HORIZONTAL_BREAKPOINTS = [(0, "-too-narrow"), (MIN_SIZE[0], "-narrow"), (WIDE, "-wide")]  # noqa: RUF012
    VERTICAL_BREAKPOINTS = [(0, "-too-short"), (MIN_SIZE[1], "-short"), (32, "-tall")]  # noqa: RUF012
    TITLE = "imdb-tui"
    BINDINGS: ClassVar[list[BindingType]] = [
        # Priority: the app takes the key before it bubbles up from the focused table
        # through every container (a loop iteration each, at max rate ~5 ms apiece).
        Binding("p,space", "pause", "Pause", priority=True),
        Binding("p,space", "resume", "Resume", priority=True),
        Binding("plus,equals_sign", "faster", "Faster"),
        Binding("minus", "slower", "Slower"),
        Binding("m", "unthrottle", "Max"),
        Binding("m", "throttle", "Paced"),
        Binding("r", "ask_rate", "Rate"),
        Binding("w", "cycle_window", "Window"),
        Binding("left_square_bracket", "refresh_slower", "Refresh−", show=False),
        Binding("right_square_bracket", "refresh_faster", "Refresh+", show=False),
        Binding("f", "freeze", "Freeze"),
        Binding("f", "unfreeze", "Thaw"),
        Binding("v", "toggle_trending", "Trending", show=False),
        Binding("less_than_sign", "previous_day", "Day−", show=False),
        Binding("greater_than_sign", "next_day", "Day+", show=False),
        Binding("t", "tail", "Tail", show=False),
        Binding("d", "dead_letters", "Dead", show=False),
        Binding("a", "alerts", "Alerts", show=False),
        Binding("s", "search", "Find", show=False),
        Binding("question_mark,f1", "help", "Help"),
        Binding("q", "quit", "Quit"),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
    ]

    snapshot: reactive[MetricsSnapshot | None] = reactive(None)
    frozen = reactive(False, bindings=True)
    unthrottled = reactive(False, bindings=True)

    def __init__(
        self,
        reader: Reader,
        control: Control | None = None,
        refresh_interval: float = 1.0,
        bell: bool = True,
        alerts: Alerts | None = None,
    ) -> None:
        """`control`: the pipeline this app runs and drives; None only watches.
        `alerts`: rules this app evaluates itself, at each refresh (watching; a
        pipeline it runs evaluates its own)."""
        super().__init__()
        self.reader = reader
        self.bell_on_alert = bell
        self.alerts = alerts
        if alerts is not None:
            alerts.listeners.append(self._alert_changed)
        self.control = control
        self.refresh_interval = refresh_interval
        self.window_minutes = reader.window_minutes
        rate = None if control is None else control.target_rate
        self.unthrottled = control is not None and rate is None
        self._last_rate = rate or DEFAULT_RATE
        self._quitting = False
        self._told_size = False
        self._shown_state = ""
        self._interval_changed = asyncio.Event()
        self._read_error: str | None = None
        self._unreachable_since: float | None = None
        """When reading the database began to fail (None: it reads)."""
        self.lateness: deque[float] = deque(maxlen=100_000)
        """Seconds each refresh ran after it was due (bench/monitor.py reads it)."""
        self.summary: RunSummary | None = None
        self.day: str | None = None
        """The past local day whose daily figures are shown (None: today's, live)."""
        self._titled_day: str | None = None
        reader.on_error = self._storage_error

    def compose(self) -> ComposeResult:
        yield Header()
        with Grid(id="dashboard"):
            for panel in (
                ActiveUsers(id="active-users"),
                EventsByType(id="events-by-type"),
                RatingsPanel(id="ratings"),
                PipelinePanel(self.reader.database, self.control is None, id="pipeline"),
                TopMovies(id="top-movies"),
                TrendingPanel(id="trending"),
                PerMinute(id="per-minute"),
                TodayByHour(id="today-by-hour"),
            ):
                yield panel.data_bind(MonitorApp.snapshot)
        yield Static(id="too-small")
        yield Static(id="status")
        yield Footer(compact=True)  # compact: every key fits in 80 columns

    def on_resize(self, event: events.Resize) -> None:
        columns, rows = event.size
        needs = f"{MIN_SIZE[0]}x{MIN_SIZE[1]}"
        note = f"terminal too small\nimdb-tui needs {needs}; this one is {columns}x{rows}\nq quits"
        for widget in self.query("#too-small").results(Static):
            widget.update(Text(note, justify="center"))

    def on_mount(self) -> None:
        # What exists now (Textual, the catalogue, the widgets) lives as long as the app;
        # left out of collections, a full collection takes a few ms instead of 60.
        gc.collect()
        gc.freeze()
        gc.set_threshold(GC_THRESHOLD)
        self._pipeline_worker: Worker[RunSummary] | None = None
        if self.control is not None:
            self._pipeline_worker = self.run_worker(
                self.control.run(), name="pipeline", exit_on_error=False
            )
        self.run_worker(self._refresh(), name="refresh", exit_on_error=False)
        if self.control is not None:
            self.control.listen_to_alerts(self._alert_changed)
        self.show_status()
        # SIGTERM (kill, systemd) and SIGHUP (the terminal closed) end it as q does: the
        # queue drained and committed, the health row marked, the terminal restored.
        loop = asyncio.get_running_loop()
        for signum in STOP_SIGNALS:
            with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
                loop.add_signal_handler(signum, self._stop_signal, signum)

    def _stop_signal(self, signum: int) -> None:
        if signum == signal.SIGHUP:
            self.call_later(self._hung_up)
        else:
            self.call_later(self.action_quit)

    async def _hung_up(self) -> None:
        """The terminal closed: drain as q does, then end at once. Nothing can be drawn
        or restored on a terminal that is gone, and Textual's own exit would wait for
        ever on its writer, which died at the first write that failed."""
        _terminal_gone()
        await self._finish_pipeline()  # the health row says "stopped"
        os._exit(0)

    async def on_unmount(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in STOP_SIGNALS:
            with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
                loop.remove_signal_handler(signum)
        await self._finish_pipeline()

    async def _finish_pipeline(self) -> None:
        """However the app ends, the pipeline has closed its writer when `run` returns,
        so its owner may close the store (on a crash the queue is not drained)."""
        if self.control is None or self._pipeline_worker is None:
            return
        self.control.stop()
        with contextlib.suppress(WorkerCancelled, WorkerFailed):
            await self._pipeline_worker.wait()

    # Refreshing ----------------------------------------------------------------

    async def _refresh(self) -> None:
        """Refresh every interval, on one long-lived task: a wake-up is the only wait
        (no task to start per tick), a slow read merges ticks instead of piling them
        up, and a new interval applies at once (the wait is interrupted)."""
        due = time.monotonic()
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, due - time.monotonic())):
                    await self._interval_changed.wait()
            if self._interval_changed.is_set():
                self._interval_changed.clear()
                due = min(due, time.monotonic() + self.refresh_interval)
                continue
            self.lateness.append(time.monotonic() - due)
            await self.refresh_now()
            due = max(due + self.refresh_interval, time.monotonic())

    async def refresh_now(self, even_frozen: bool = False) -> None:
        """Read a snapshot and show it (while frozen, only when `even_frozen`: a key
        that asks for other figures)."""
        try:
            snapshot = await self.reader.snapshot(self.window_minutes, self.day)
        except StoreError as error:  # the panels keep the last picture; the next tick retries
            if self._unreachable_since is None:
                self._unreachable_since = time.time()
                self._show_unreachable()
            if str(error) != self._read_error:
                self._storage_error(str(error))
            self._read_error = str(error)
            return
        self._read_error = None
        if self._unreachable_since is not None:
            self._unreachable_since = None
            self._show_unreachable()
            self.notify("the database answers again: the figures are current", title="Reconnected")
        if self.alerts is not None:  # this app's own rules, on its own clock
            self.alerts.observe(snapshot, time.monotonic(), utc_iso(time.time()))
        if not snapshot.past:
            self.day = None  # today's figures, live (the day asked for may have become today)
        if not self.frozen or even_frozen:
            with self.batch_update():  # one frame for every panel
                self.snapshot = snapshot

    def watch_snapshot(self, snapshot: MetricsSnapshot | None) -> None:
        self._title_day(None if snapshot is None else snapshot.past_day)
        self.show_status()  # the panels redraw themselves: their snapshot is bound
        if snapshot is not None and not self._told_size:
            self._told_size = True
            self._tell_size(snapshot)

    def _tell_size(self, snapshot: MetricsSnapshot) -> None:
        """Once, at start: what the database already holds, and how to empty it (the
        default one grows across every run)."""
        earlier = snapshot.events_total - (snapshot.health.stored if snapshot.health else 0)
        if self.control is None or earlier <= 0:
            return
        self.notify(
            f"{earlier:,} events from earlier runs, {size_text(snapshot.database_bytes)}."
            " imdb-tui prune --keep 7d deletes the older ones; --all empties it.",
            title=literal(Path(self.reader.database).name or self.reader.database),
            markup=False,
            timeout=8,
        )

    def _title_day(self, past_day: str | None) -> None:
        """Date the daily panels' titles (None: today's)."""
        if past_day != self._titled_day:
            self._titled_day = past_day
            for panel in self.query(Panel):
                panel.show_day(past_day)

    def show_status(self) -> None:
        status_now = self.reader.status()  # not a snapshot's health: current after a key
        if status_now.state != self._shown_state:  # the keys that act change with it
            self._shown_state = status_now.state
            self.call_after_refresh(self.refresh_bindings)
        state = status_now.state.upper()
        if self._unreachable_since is not None and self.control is None:
            state = "UNREACHABLE"  # the writer's last state is no news of it now
        head = state if self.control is not None else f"WATCHING · {state}"
        firing = len(self.alert_state().firing)
        self.sub_title = head + (f" · {firing} firing" if firing else "")
        parts = []
        if self._titled_day is not None:
            parts.append(f"viewing {self._titled_day} (> for the next day)")
        if self.frozen:
            parts.append("FROZEN (f)")
        if status_now.stream_time and self.snapshot is not None:
            # Before the settings: at 80 columns the line ends early.
            health = self.snapshot.health
            as_of = None if health is None else health.as_of  # None before the first event
            parts.append(clock_text(as_of, self.reader.tz, status_now.replay_speed))
        if status_now.state != NO_WRITER:
            parts.append(f"target {rate_text(status_now.target_rate)}")
        parts += [f"window {self.window_minutes} min", f"refresh {self.refresh_interval:g} s"]
        # The error right after the state: at 80 columns, and under a notification at
        # the right, the line's end is not seen.
        status = Text(head)
        if firing:  # first: at 80 columns the line's end is not seen
            status.append(f" · {firing} firing (a)", style="bold red")
        unreachable = self.unreachable_text()
        if unreachable is not None:
            status.append(f" · {unreachable}", style="bold red")
        elif status_now.error:
            status.append(f" · {literal(status_now.error)}", style="bold red")
        status.append("".join(f" · {part}" for part in parts))
        for line in self.query("#status").results(Static):  # none once the app is closing
            line.update(status, layout=False)

    def _unreachable_clock(self) -> str | None:
        """Since when (HH:MM:SS) the database cannot be read (None: it reads)."""
        since = self._unreachable_since
        return None if since is None else time.strftime("%H:%M:%S", time.localtime(since))

    def unreachable_text(self) -> str | None:
        """What the figures are while the database cannot be read, said for a person."""
        since = self._unreachable_clock()
        return (
            None
            if since is None
            else f"cannot reach the database since {since}; figures as of then"
        )

    def _show_unreachable(self) -> None:
        for panel in self.query(PipelinePanel).results(PipelinePanel):
            panel.unreachable = self._unreachable_clock()
        self.show_status()

    def _storage_error(self, message: str) -> None:
        self.notify(literal(message), title="Storage error", severity="error", markup=False)
        self.show_status()

    # Keys ----------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        columns, rows = self.size
        if (columns < MIN_SIZE[0] or rows < MIN_SIZE[1]) and action != "quit":
            return False  # only the note shows: no key acts unseen (p would pause)
        if isinstance(self.screen, ModalScreen) and action != "quit":
            return False  # a dialog is open: its keys, not the dashboard's (nor p in its input)
        if isinstance(self.focused, Input) and action != "quit":
            return False  # a typed p is a letter, not a pause
        if isinstance(self.screen, MovieScreen | TailScreen) and action in DASHBOARD_ONLY:
            return False  # nothing on this screen that they change
        if isinstance(self.screen, TailScreen) and action == "tail":
            return False
        if action in CONTROLS:
            control = self.control
            if control is None or self.reader.status().state in ENDED_STATES:
                return False  # nothing to drive: watching, or the run is over
        paused = self.control is not None and self.control.paused
        toggles = {
            "pause": not paused,
            "resume": paused,
            "unthrottle": not self.unthrottled,
            "throttle": self.unthrottled,
            "freeze": not self.frozen,
            "unfreeze": self.frozen,
        }
        return toggles.get(action, True)

    def action_pause(self) -> None:
        if self.control is not None:
            self.control.pause()
            self.show_status()  # the footer follows a frame later: it sees the state change

    def action_resume(self) -> None:
        if self.control is not None:
            self.control.resume()
            self.show_status()  # the footer follows a frame later: it sees the state change

    def _set_rate(self, rate: float | None) -> None:
        if self.control is None:
            return
        if rate is not None:
            rate = min(max(rate, MIN_RATE), MAX_RATE)
            self._last_rate = rate
        self.control.set_rate(rate)
        self.unthrottled = rate is None
        self.show_status()

    def action_faster(self) -> None:
        if self.unthrottled:
            self.notify("Already at max: - halves the measured rate, m paces it again.")
        else:
            self._set_rate(self._last_rate * 2)

    def action_slower(self) -> None:
        """Half the target; at max, half the rate measured now (not of the last target
        set, which may be far below what max was doing)."""
        rate = self._last_rate
        health = self.snapshot.health if self.snapshot is not None else None
        if self.unthrottled and health is not None and health.ingest_rate > 0:
            rate = health.ingest_rate
        self._set_rate(rate / 2)

    def action_unthrottle(self) -> None:
        self._set_rate(None)

    def action_throttle(self) -> None:
        self._set_rate(self._last_rate)

    def action_ask_rate(self) -> None:
        def chosen(answer: tuple[float | None] | None) -> None:
            if answer is not None:
                self._set_rate(answer[0])

        self.push_screen(RateDialog(), chosen)

    async def action_cycle_window(self) -> None:
        choices = list(WINDOW_CHOICES)
        at = choices.index(self.window_minutes) if self.window_minutes in choices else -1
        self.window_minutes = choices[(at + 1) % len(choices)]
        await self.refresh_now()

    def _set_refresh(self, interval: float) -> None:
        self.refresh_interval = interval
        self._interval_changed.set()
        self.show_status()

    def action_refresh_slower(self) -> None:
        """The next step of REFRESH_STEPS up from the interval (which --refresh may
        have set between steps)."""
        longer = [step for step in REFRESH_STEPS if step > self.refresh_interval]
        self._set_refresh(longer[0] if longer else REFRESH_STEPS[-1])

    def action_refresh_faster(self) -> None:
        shorter = [step for step in REFRESH_STEPS if step < self.refresh_interval]
        self._set_refresh(shorter[-1] if shorter else REFRESH_STEPS[0])

    def action_freeze(self) -> None:
        self.frozen = True
        self.show_status()

    def action_unfreeze(self) -> None:
        self.frozen = False
        self.show_status()

    def action_toggle_trending(self) -> None:
        """Top movies today and Trending take turns in one place (the one shown has
        the focus, so Enter opens its movie)."""
        dashboard = self.query_one("#dashboard")
        dashboard.toggle_class("-trending")
        shown = "#trending" if dashboard.has_class("-trending") else "#top-movies"
        self.query_one(f"{shown} DataTable").focus()

    def action_previous_day(self) -> None:
        """The daily panels show the day before the one shown, back to the oldest kept."""
        snapshot = self.snapshot
        if snapshot is None or not snapshot.day:
            return
        day = day_after(snapshot.day, -1)
        reason = not_kept(day, snapshot.oldest_day)
        if reason is not None:
            self.notify(reason, title="Past days", timeout=3)
            return
        self.day = day
        self._title_day(day)  # said at once; the figures follow from the store
        self.show_status()
        self._read_day()

    def action_next_day(self) -> None:
        """The daily panels show the day after the one shown; on today, live again."""
        snapshot = self.snapshot
        if snapshot is None or not snapshot.past:
            return  # today already
        self.day = day_after(snapshot.day)
        self._read_day()

    def _read_day(self) -> None:
        """Read the day asked for off the key's handler, so the key's answer is drawn
        while the store is read (a newer key's read replaces an older one's)."""
        self.run_worker(self.refresh_now(even_frozen=True), group="day", exclusive=True)

    async def action_tail(self) -> None:
        """The live tail; from a movie's screen, of that movie. The screen opens at once
        and fills as its first read comes back."""
        screen = self.screen
        match = EventMatch()
        if isinstance(screen, MovieScreen) and screen.movie_id is not None:
            match = EventMatch(movie_id=screen.movie_id)
        if not self.is_screen_installed("tail"):  # made once, kept: later opens are quick
            self.install_screen(TailScreen(self.reader.tail, self.reader.tz), "tail")
        tail = self.get_screen("tail")
        assert isinstance(tail, TailScreen)
        tail.start(match)
        await self.push_screen(tail)

    async def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter (or a click) on a movie's row opens its screen."""
        panel = event.data_table.parent
        if isinstance(panel, TopMovies | TrendingPanel):
            movie = panel.movie_at(event.cursor_row)
            if movie is not None:
                # Top movies are of the day shown; Trending is always of the present.
                snapshot = panel.snapshot if isinstance(panel, TopMovies) else None
                await self.open_movie(*movie, None if snapshot is None else snapshot.past_day)

    async def open_movie(self, movie_id: str, title: str, day: str | None = None) -> None:
        """The movie screen: at once, with its title; its figures (of today, or of a
        past `day`) as they are read."""
        if not self.is_screen_installed("movie"):  # made once, kept: later opens are quick
            self.install_screen(MovieScreen(self.reader.movie), "movie")
        screen = self.get_screen("movie")
        assert isinstance(screen, MovieScreen)
        screen.show(movie_id, title, self.refresh_interval, day)
        await self.push_screen(screen)

    def action_search(self) -> None:
        day = self.day

        async def chosen(found: Found | None) -> None:
            if found is not None:
                await self.open_movie(found.movie_id, found.title or found.movie_id, day)

        self.push_screen(SearchScreen(self.reader, day), chosen)

    def action_help(self) -> None:
        self.push_screen(HelpScreen(watching=self.control is None))

    # Alerts ----------------------------------------------------------------------

    def alert_state(self) -> AlertState:
        """The alerts to show: those the pipelines' health holds (the one this app
        runs, or every one writing the watched store), then this app's own rules'."""
        stored = stored_alerts(self._health_rows())
        if self.alerts is None:
            return stored
        own = self.alerts.state()
        recent = sorted(own.recent + stored.recent, key=lambda a: a.at, reverse=True)
        return AlertState(own.firing + stored.firing, tuple(recent))

    def _alert_changed(self, change: AlertChange) -> None:
        """Told by the pipeline's task: shown from the app's own message loop."""
        self.call_later(self._show_alert, change)

    def _show_alert(self, change: AlertChange) -> None:
        firing = change.state == "firing"
        self.notify(
            f"{change.name}: {change.value}",
            title="Alert firing" if firing else "Alert cleared",
            severity=("error" if change.severity == "critical" else "warning")
            if firing
            else "information",
            markup=False,
            timeout=8,
        )
        if firing and self.bell_on_alert:
            self.bell()
        self.show_status()

    def alert_action_failed(self, problem: str) -> None:
        """An alert's program or webhook failed: said, never fatal."""
        self.call_later(self.notify, problem, title="Alert action", severity="error", markup=False)

    def action_alerts(self) -> None:
        self.push_screen(AlertsScreen(self.alert_state(), self._has_rules()))

    def _has_rules(self) -> bool:
        return self.alerts is not None or any(health.alerts for health in self._health_rows())

    def _health_rows(self) -> tuple[PipelineHealth, ...]:
        """The health rows shown: every pipeline's of a watched store, else the one this
        app runs."""
        snapshot = self.snapshot
        if snapshot is None:
            return ()
        return snapshot.pipelines or ((snapshot.health,) if snapshot.health else ())

    async def action_dead_letters(self) -> None:
        try:
            letters = await self.reader.dead_letters(SHOWN)
        except StoreError as error:
            self._storage_error(str(error))
            return
        total = self.snapshot.dead_letters if self.snapshot is not None else len(letters)
        await self.push_screen(DeadLettersScreen(letters, max(total, len(letters))))

    async def action_quit(self) -> None:
        """Stop producing, drain and commit the queue, then exit."""
        if self._quitting:
            return
        self._quitting = True
        if self.control is None or self._pipeline_worker is None:
            self.exit(None)  # watching: nothing to drain
            return
        self.control.stop()
        self.show_status()
        note = self.set_timer(0.3, lambda: self.notify("draining the queue…", title="Quitting"))
        try:
            self.summary = await self._pipeline_worker.wait()
        except WorkerFailed as failure:
            self.notify(literal(str(failure.error)), severity="error", markup=False)
        note.stop()
        self.exit(self.summary)

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        for command in super().get_system_commands(screen):
            # Textual's screenshot fails when ~/Downloads is missing; its "Keys" docks a
            # panel of the focused table's cursor keys that squeezed the dashboard at
            # 80x24, beside "Help" (every key of imdb-tui).
            if command.title not in ("Screenshot", "Keys"):
                yield command
        if not self.is_web:  # a served viewer writes no file on the server
            yield SystemCommand(
                "Screenshot",
                "Save an SVG picture of the screen (to ~/Downloads, or imdb-tui's folder)",
                lambda: self.set_timer(0.1, self.action_save_screenshot),
            )
        if self.control is not None:
            yield SystemCommand("Pause or resume", "Stop or restart the stream (p)", self._toggle)
            yield SystemCommand("Double the rate", "Target rate x2 (+)", self.action_faster)
            yield SystemCommand("Halve the rate", "Target rate /2 (-)", self.action_slower)
            yield SystemCommand("Set the rate", "Type an exact rate (r)", self.action_ask_rate)
            yield SystemCommand("Unthrottled on/off", "Max rate (m)", self._toggle_max)
        yield SystemCommand("Freeze on/off", "Hold the display (f)", self._toggle_freeze)
        yield SystemCommand(
            "Top movies or trending",
            "Show the other of the two (v)",
            self.action_toggle_trending,
        )
        yield SystemCommand(
            "Live tail", "The newest events as they are stored (t)", self.action_tail
        )
        yield SystemCommand(
            "Previous day", "The daily panels: the day before (<)", self.action_previous_day
        )
        yield SystemCommand(
            "Next day", "The daily panels: the day after, up to today (>)", self.action_next_day
        )
        yield SystemCommand(
            "Dead letters", "The newest rejected records (d)", self.action_dead_letters
        )
        yield SystemCommand("Alerts", "Firing and recent alerts (a)", self.action_alerts)
        yield SystemCommand("Find a movie", "By title, year or id (s)", self.action_search)
        yield SystemCommand("Help", "Every key and what it does (?)", self.action_help)

    def action_save_screenshot(self) -> None:
        """An SVG of the screen in ~/Downloads if there is one, else in imdb-tui's own
        folder of screenshots (beside the default database, as k9s keeps its screen
        dumps), never the working folder (a repository's root, say); the
        notification says where it went."""
        if self.is_web:
            return
        downloads = Path.home() / "Downloads"
        folder = downloads
        try:
            if not downloads.is_dir():
                folder = Path(platformdirs.user_data_dir("imdb-tui")) / "screenshots"
                folder.mkdir(parents=True, exist_ok=True)
            saved = self.save_screenshot(path=str(folder))
        except OSError as error:
            self.notify(f"cannot save a screenshot in {folder}: {error.strerror}", severity="error")
            return
        self.notify(literal(saved), title="Screenshot saved", markup=False)

    def _toggle(self) -> None:
        paused = self.control is not None and self.control.paused
        self.action_resume() if paused else self.action_pause()

    def _toggle_max(self) -> None:
        self.action_throttle() if self.unthrottled else self.action_unthrottle()

    def _toggle_freeze(self) -> None:
        self.action_unfreeze() if self.frozen else self.action_freeze()


def _terminal_gone() -> None:
    """The terminal closed (SIGHUP): what would be drawn on it, or printed, goes to
    /dev/null instead, so that the drain and the exit never wait on a write that
    cannot be made (a write to a closed terminal fails, and Textual's writer thread
    with it)."""
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        for descriptor in (0, 1, 2):
            with contextlib.suppress(OSError):  # a hung-up terminal is no tty any more
                if stat.S_ISCHR(os.fstat(descriptor).st_mode):
                    os.dup2(devnull, descriptor)
    finally:
        os.close(devnull)
