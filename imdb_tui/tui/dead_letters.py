"""The dead letters screen: the newest rejected records, their reasons and raw lines,
and one of them whole (enter), its raw text ready to copy (c)."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Static

from imdb_tui.display import literal
from imdb_tui.store import DeadLetter

SHOWN = 200
WIDE = 100
"""Terminals at least this wide show each letter's date as well as its time."""
REASON_SHARE = 0.45
"""Of the width left after the time, what the reason may take (the raw text the rest)."""


def received(letter: DeadLetter, wide: bool) -> str:
    when = letter.received_at[:19].replace("T", " ")
    return when if wide else when[11:]


def column_widths(width: int, letters: list[DeadLetter]) -> tuple[int, int, int]:
    """Received, reason and raw column widths that fill `width` cells (each column
    has a cell of padding either side): the reason as wide as its longest if that
    leaves the raw text its share, the raw text the rest."""
    wide = width >= WIDE
    when = 19 if wide else 8
    free = max(width - when - 6, 20)
    longest = max((len(literal(letter.reason)) for letter in letters), default=6)
    reason = max(min(longest, round(free * REASON_SHARE)), min(free // 3, longest), 6)
    return when, reason, max(free - reason, 6)


class DeadLettersScreen(ModalScreen[None]):
    """Opened with d; the list is read once, when it opens. Enter shows one whole."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,d,q", "dismiss", "Close"),
        Binding("enter", "open", "Show whole", priority=True),
    ]

    def __init__(self, letters: list[DeadLetter], total: int) -> None:
        super().__init__()
        self.letters = letters
        self.total = total
        self._width = 0

    def compose(self) -> ComposeResult:
        with Vertical(id="dead-letters"):
            yield DataTable(cursor_type="row", zebra_stripes=True)
            yield Static(self._note(), id="dead-letters-note")
        yield Footer(compact=True)  # this dialog's keys, over the dashboard's

    def _note(self) -> Text:
        if not self.letters:
            return Text("no dead letters: every record so far was a valid event", style="dim")
        shown = f"the newest {len(self.letters):,} of {self.total:,}"
        return Text(f"{shown} · report --dead-letters lists them all")

    def on_mount(self) -> None:
        self.query_one("#dead-letters").border_title = "Dead letters"
        self.call_after_refresh(self._fill)

    def on_resize(self, event: events.Resize) -> None:
        self.call_after_refresh(self._fill)

    def _fill(self) -> None:
        """The columns fitted to the dialog's width, filled again when it changes."""
        table = self.query_one(DataTable)
        width = table.size.width or self.query_one("#dead-letters").content_size.width
        if width == self._width or width <= 0:
            return
        self._width = width
        row = table.cursor_row
        table.clear(columns=True)
        when, reason, raw = column_widths(width, self.letters)
        table.add_column("Received (UTC)" if when > 8 else "UTC", width=when)
        table.add_column("Reason", width=reason)
        table.add_column("Raw", width=raw)
        wide = when > 8
        for letter in self.letters:
            table.add_row(
                Text(received(letter, wide)),
                Text(literal(letter.reason), no_wrap=True, overflow="ellipsis"),
                # escapes and markup shown as the characters they are
                Text(literal(letter.raw[: raw * 2]), no_wrap=True, overflow="ellipsis"),
            )
        if self.letters:
            table.move_cursor(row=min(row, len(self.letters) - 1))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open()

    def action_open(self) -> None:
        table = self.query_one(DataTable)
        if self.letters and 0 <= table.cursor_row < len(self.letters):
            self.app.push_screen(DeadLetterScreen(self.letters[table.cursor_row]))


class DeadLetterScreen(ModalScreen[None]):
    """One dead letter whole: when, why (with its place in its source), and its raw
    text wrapped and scrollable, shown literally; c copies the raw text."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "dismiss", "Back"),
        Binding("c", "copy", "Copy raw"),
    ]

    def __init__(self, letter: DeadLetter) -> None:
        super().__init__()
        self.letter = letter

    def compose(self) -> ComposeResult:
        letter = self.letter
        kept = len(letter.raw)
        size = f"{letter.raw_size:,} characters"
        if letter.raw_size > kept:
            size += f", the first {kept:,} kept"
        with Vertical(id="dead-letter"):
            yield Static(Text.assemble(("received ", "dim"), received(letter, True) + " UTC"))
            yield Static(Text.assemble(("reason   ", "dim"), literal(letter.reason)))
            yield Static(Text.assemble(("raw      ", "dim"), (size, "dim")))
            with VerticalScroll(id="dead-letter-raw"):
                yield Static(Text(literal(letter.raw), overflow="fold"))
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#dead-letter").border_title = "Dead letter"

    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self.letter.raw)
        self.notify(f"copied the raw text, {len(self.letter.raw):,} characters")
