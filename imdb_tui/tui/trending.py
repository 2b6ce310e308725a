"""Trending: the movies whose views lately most exceed their pace of the hour before,
with how far each moved since the last five-minute period (▲3, ▼1, new)."""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.widgets import DataTable

from imdb_tui.display import count_in, literal
from imdb_tui.metrics import TRENDING, MetricsSnapshot, Trend
from imdb_tui.tui.panel import Panel

_COLUMNS = ("#", "Move", "Title", "Views", "Before", "Change")
"""Views: in the last 15 minutes; Before: in the hour before; Change: Views less what
Before predicts for as long."""
_FIXED = {"#": 2, "Move": 4, "Views": 7, "Before": 7, "Change": 7}
_NUMBERS = ("Views", "Before", "Change")
_NARROW = 70
"""Under this many columns, Before is left out: the title needs the room."""


def _layout(room: int) -> tuple[tuple[str, ...], int]:
    """The columns shown in a panel this wide, and the title's width."""
    columns = _COLUMNS if room >= _NARROW else tuple(c for c in _COLUMNS if c != "Before")
    padding = 2 * len(columns) + 2  # a cell's padding on each side, and the scrollbar
    fixed = sum(_FIXED.get(c, 0) for c in columns)
    return columns, max(6, room - fixed - padding)


def movement_text(movement: int | None) -> Text:
    """▲3 up three places, ▼1 down one, = unmoved, new: not trending a period ago."""
    if movement is None:
        return Text("new", style="bold")
    if movement > 0:
        return Text(f"▲{movement}", style="green")
    if movement < 0:
        return Text(f"▼{-movement}", style="red")
    return Text("=", style="dim")


class TrendingPanel(Panel):
    TITLE = "Trending · last 15 min"
    SUBTITLE = "v: top movies"

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._layout: tuple[tuple[str, ...], int] = ((), 0)

    def compose(self) -> ComposeResult:
        yield DataTable(cursor_type="row", zebra_stripes=True)

    def on_resize(self, event: events.Resize) -> None:
        """Columns fitted to the width, rebuilt only when the title's width changes."""
        layout = _layout(self.content_size.width)
        if layout == self._layout:
            return
        self._layout = columns, width = layout
        table = self.query_one(DataTable)
        table.clear(columns=True)
        for name in columns:
            label = Text(name, justify="right" if name in _NUMBERS else "left")
            table.add_column(label, width=_FIXED.get(name, width), key=name)
        for rank in range(1, TRENDING + 1):
            table.add_row(Text(f"{rank}"), *self._cells(rank), key=str(rank))

    def watch_snapshot(self, snapshot: MetricsSnapshot | None) -> None:
        columns = self._layout[0]
        if not columns:
            return  # the columns come with the first size
        table = self.query_one(DataTable)
        for rank in range(1, TRENDING + 1):
            for name, cell in zip(columns[1:], self._cells(rank), strict=True):
                table.update_cell(str(rank), name, cell)

    def movie_at(self, row: int) -> tuple[str, str] | None:
        """The movie id and title on a row (0: the first), if any."""
        trends = () if self.snapshot is None else self.snapshot.trending
        if not 0 <= row < len(trends):
            return None
        return trends[row].movie_id, trends[row].title

    def _cells(self, rank: int) -> tuple[Text, ...]:
        trends = () if self.snapshot is None else self.snapshot.trending
        columns = self._layout[0][1:]
        if rank > len(trends):
            return (Text(""),) * len(columns)
        cells = _trend_cells(trends[rank - 1])
        return tuple(cells[name] for name in columns)


def _trend_cells(trend: Trend) -> dict[str, Text]:
    return {
        "Move": movement_text(trend.movement),
        # Data is shown as text, never as markup; long titles end in an ellipsis.
        "Title": Text(literal(trend.title), no_wrap=True, overflow="ellipsis"),
        # Numbers too wide for their column are written shorter (+104k), never cut.
        "Views": Text(count_in(trend.views_recent, _FIXED["Views"]), justify="right"),
        "Before": Text(count_in(trend.views_before, _FIXED["Before"]), justify="right"),
        "Change": Text(count_in(trend.change, _FIXED["Change"], "+"), justify="right"),
    }
