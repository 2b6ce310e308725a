"""The live tail (t): the newest stored events, newest on top, at a readable pace.

Every half second it reads the events stored since its last read and shows up
to PACE of them, the newest; when more came, the note says it is sampling. It
holds while the table is scrolled or the cursor is off the top row (home follows
again), and while the display is frozen. `/` types a filter (see imdb_tui.tail);
escape clears it, or goes back to the dashboard when there is none.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import tzinfo
from typing import ClassVar

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Header, Input, Static

from imdb_tui.clock import local_datetime
from imdb_tui.display import literal
from imdb_tui.events import seconds
from imdb_tui.store import StoreError
from imdb_tui.tail import TAIL_SCAN, EventMatch, MatchError, Tail, TailEvent, parse_match

TailRead = Callable[[EventMatch, int, int], Awaitable[Tail]]

INTERVAL = 0.5
"""Seconds between reads."""
PACE = 5
"""Events shown a read at most, once the screen is full: ten a second."""
KEPT = 100
"""Rows the table keeps (scrolling down goes back this far)."""
_COLUMNS = (("Time", 12), ("Type", 13), ("Title", 0), ("User", 10), ("Rating", 6))


class TailScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("slash", "ask_filter", "Filter"),
        # Before the table's own home (its first column): back to the newest.
        Binding("home", "follow", "Follow", show=False, priority=True),
    ]

    def __init__(self, read: TailRead, tz: tzinfo | None) -> None:
        """Made once and kept by the app: `start` begins each showing."""
        super().__init__()
        self._read = read
        self._tz = tz
        self.match = EventMatch()
        self._after = 0  # the newest seq read so far
        self._rows: list[TailEvent] = []
        self._note = "waiting for the first read…"
        self._problem: str | None = None
        self._reading = False
        self._timer: Timer | None = None

    def start(self, match: EventMatch) -> None:
        """Show the events that match, from the newest on; the first read comes at
        once, after the screen is drawn."""
        self.match = match
        self._after = 0
        self._rows = []
        self._note = "reading the newest events…"
        if self.is_mounted:
            self._fill()
            self._show_note(None)
            self.action_follow()

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="tail-note")
        yield DataTable(id="tail-table", cursor_type="row", zebra_stripes=True)
        yield Input(id="tail-filter", placeholder="view tt0111161 user:u0000042 title words")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#tail-filter", Input).display = False
        self._build_columns()
        self._show_note(None)

    def on_screen_resume(self) -> None:
        if self._timer is None:
            self._timer = self.set_interval(INTERVAL, self.read_newest)
        else:
            self._timer.resume()
        self.call_after_refresh(self.read_newest)

    def on_screen_suspend(self) -> None:
        if self._timer is not None:
            self._timer.pause()
        self._close_filter()

    def on_resize(self, event: events.Resize) -> None:
        self._build_columns()

    def _build_columns(self) -> None:
        table = self.query_one(DataTable)
        fixed = sum(width for _, width in _COLUMNS) + 2 * len(_COLUMNS) + 2
        title = max(10, self.size.width - fixed)
        table.clear(columns=True)
        for name, width in _COLUMNS:
            label = Text(name, justify="right" if name == "Rating" else "left")
            table.add_column(label, width=width or title, key=name)
        self._fill()

    @property
    def held(self) -> str | None:
        """Why the tail is not moving on, if it is not."""
        if getattr(self.app, "frozen", False):
            return "frozen (f)"
        table = self.query_one(DataTable)
        if table.scroll_y > 0 or table.cursor_row > 0:
            return "held while scrolled: home follows again"
        if self.query_one("#tail-filter", Input).display:
            return "held while a filter is typed"
        return None

    async def read_newest(self) -> None:
        if self._reading:  # a read is under way: this one merges into it
            return
        self._reading = True
        try:
            await self._read_newest()
        finally:
            self._reading = False

    async def _read_newest(self) -> None:
        held = self.held
        if held is None:
            # Full at first, then at a readable pace.
            limit = PACE if self._rows else max(PACE, self.query_one(DataTable).size.height)
            match = self.match
            try:
                tail = await self._read(match, self._after, limit)
            except StoreError as error:
                self._problem = str(error)
            else:
                self._problem = None
                # Dropped if the filter changed, or the user scrolled, during the read.
                held = self.held
                if match is self.match and held is None and self._take(tail, limit):
                    self._fill()
        self._show_note(held)

    def _take(self, tail: Tail, limit: int) -> bool:
        """Keep the events new to the table; whether there were any."""
        fresh = [event for event in tail.events if event.seq > self._after]
        shown = len(fresh)
        if self._after and tail.newest > self._after:
            came = tail.newest - self._after
            if self.match.everything and came > shown:
                self._note = f"sampling: the newest {shown} of {came:,} stored since the last read"
            elif not self.match.everything and shown == limit:
                self._note = f"sampling: the newest {shown} matches since the last read"
            else:
                self._note = "every event as it is stored"
        elif self._after:
            self._note = "every event as it is stored (none new)"
        else:
            self._note = "the newest stored"
        if not self._rows and not self.match.everything:
            self._note = f"no event matches yet (of the newest {TAIL_SCAN:,} looked through)"
        self._after = max(self._after, tail.newest)
        if fresh:
            self._rows = [*fresh, *self._rows][:KEPT]
        return bool(fresh)

    def _fill(self) -> None:
        table = self.query_one(DataTable)
        table.clear()
        for event in self._rows:
            table.add_row(*self._cells(event), key=str(event.seq))

    def _cells(self, event: TailEvent) -> tuple[Text, ...]:
        local = local_datetime(seconds(event.event_time), self._tz)
        title = event.movie_id if event.title is None else event.title
        return (
            Text(local.strftime("%H:%M:%S.%f")[:-3]),
            Text(event.event_type),
            # Data is shown as text, never as markup; long titles end in an ellipsis.
            Text(literal(title), no_wrap=True, overflow="ellipsis"),
            Text(literal(event.user_id), no_wrap=True, overflow="ellipsis"),
            Text("" if event.rating is None else str(event.rating), justify="right"),
        )

    def _show_note(self, held: str | None) -> None:
        note = Text()
        if not self.match.everything:
            note.append("filter: ", style="bold")
            note.append(literal(self.match.describe()))
            note.append(" (esc clears) · ")
        if self._problem is not None:
            note.append(literal(self._problem), style="bold red")
        elif held is not None:
            note.append(held.upper() if held.startswith("frozen") else held, style="bold")
        else:
            note.append(self._note)
        self.query_one("#tail-note", Static).update(note)

    # Keys ----------------------------------------------------------------------

    def action_follow(self) -> None:
        """Back to the top row: the tail moves on again."""
        table = self.query_one(DataTable)
        table.move_cursor(row=0)
        table.scroll_to(y=0, animate=False)

    def action_ask_filter(self) -> None:
        field = self.query_one("#tail-filter", Input)
        field.value = self.match.describe()
        field.display = True
        field.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        try:
            match = parse_match(event.value)
        except MatchError as error:
            self.notify(literal(str(error)), title="Filter", severity="error", markup=False)
            return
        self._close_filter()
        self.set_match(match)

    def set_match(self, match: EventMatch) -> None:
        """Start over with a new filter: the newest events that match, at once."""
        self.start(match)
        self.call_after_refresh(self.read_newest)

    def _close_filter(self) -> None:
        field = self.query_one("#tail-filter", Input)
        field.display = False
        self.query_one(DataTable).focus()

    def action_back(self) -> None:
        """Escape: closes the filter being typed, else clears the filter, else leaves."""
        if self.query_one("#tail-filter", Input).display:
            self._close_filter()
        elif not self.match.everything:
            self.set_match(EventMatch())
        else:
            self.app.pop_screen()
