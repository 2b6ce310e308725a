"""Finding any movie (s): title words, a year or an id; results as you type, with
their views on the day shown; enter opens the movie's screen."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Input, Static

from imdb_tui.display import literal
from imdb_tui.search import Found, TitleIndex
from imdb_tui.viewer import Reader


class SearchScreen(ModalScreen[Found | None]):
    """Dismissed with the movie chosen, or None."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss(None)", "Close"),
        Binding("down", "to_results", "Results", show=False),
    ]

    def __init__(self, reader: Reader, day: str | None) -> None:
        super().__init__()
        self.reader = reader
        self.day = day
        self.index: TitleIndex | None = None
        self.found: list[Found] = []

    def compose(self) -> ComposeResult:
        with Vertical(id="search"):
            yield Input(placeholder="title words, a year, an id (tt0111161)", id="search-input")
            yield DataTable(cursor_type="row", zebra_stripes=True)
            yield Static(Text("reading the titles…", style="dim"), id="search-note")
        yield Footer(compact=True)

    async def on_mount(self) -> None:
        self.query_one("#search").border_title = "Find a movie"
        table = self.query_one(DataTable)
        table.add_column("Title", key="title")
        table.add_column("Year", key="year")
        table.add_column(f"Views {self.day or 'today'}", key="views")
        table.add_column("Id", key="id")
        self.query_one(Input).focus()
        self.index = await self.reader.titles(self.day)
        self._show(self.query_one(Input).value)

    @on(Input.Changed)
    def typed(self, event: Input.Changed) -> None:
        self._show(event.value)

    def _show(self, text: str) -> None:
        if self.index is None:
            return
        self.found = self.index.find(text)
        table = self.query_one(DataTable)
        table.clear()
        for found in self.found:
            table.add_row(
                Text(
                    literal(found.title or "(not in the catalogue)"),
                    no_wrap=True,
                    overflow="ellipsis",
                ),
                Text(str(found.year or "")),
                Text(f"{found.views:,}", justify="right"),
                Text(found.movie_id),
            )
        note = self.query_one("#search-note", Static)
        if not text.strip():
            note.update(Text(f"{len(self.index):,} movies · type to find one", style="dim"))
        elif not self.found:
            note.update(Text("no movie matches", style="dim"))
        else:
            note.update(Text("enter opens the first · ↓ chooses another", style="dim"))

    @on(Input.Submitted)
    def submitted(self) -> None:
        if self.found:
            self.dismiss(self.found[0])

    def action_to_results(self) -> None:
        if self.found:
            self.query_one(DataTable).focus()

    @on(DataTable.RowSelected)
    def chosen(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if 0 <= event.cursor_row < len(self.found):
            self.dismiss(self.found[event.cursor_row])
