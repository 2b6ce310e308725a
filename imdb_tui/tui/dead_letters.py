"""The dead letters screen: the newest rejected records, their reasons and raw lines."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Static

from imdb_tui.display import literal
from imdb_tui.store import DeadLetter

SHOWN = 200
RAW_CHARS = 200


class DeadLettersScreen(ModalScreen[None]):
    """Opened with d; the list is read once, when it opens."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,d,q", "dismiss", "Close")]

    def __init__(self, letters: list[DeadLetter], total: int) -> None:
        super().__init__()
        self.letters = letters
        self.total = total

    def compose(self) -> ComposeResult:
        with Vertical(id="dead-letters"):
            yield DataTable(cursor_type="row", zebra_stripes=True)
            yield Static(self._note(), id="dead-letters-note")
        yield Footer(compact=True)  # this dialog's keys, over the dashboard's

    def _note(self) -> Text:
        if not self.letters:
            return Text("no dead letters: every record so far was a valid event", style="dim")
        shown = f"the newest {len(self.letters):,} of {self.total:,}"
        return Text(f"{shown} · imdb-tui report --dead-letters lists them all · escape closes")

    def on_mount(self) -> None:
        self.query_one("#dead-letters").border_title = "Dead letters"
        table = self.query_one(DataTable)
        table.add_columns("Received (UTC)", "Reason", "Raw")
        for letter in self.letters:
            raw = literal(letter.raw)  # escapes and markup shown as the characters they are
            if len(raw) > RAW_CHARS or letter.raw_size > len(letter.raw):
                raw = raw[:RAW_CHARS] + f"… ({letter.raw_size:,} chars)"
            table.add_row(
                Text(letter.received_at[:19].replace("T", " ")),
                Text(literal(letter.reason)),
                Text(raw, no_wrap=True, overflow="ellipsis"),
            )
