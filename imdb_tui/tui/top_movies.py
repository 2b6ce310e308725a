"""Top movies today: a table of ten rows, updated cell by cell (no flicker, scroll kept)."""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.widgets import DataTable

from imdb_tui.display import count_in, literal, share_text
from imdb_tui.metrics import TOP_MOVIES, MetricsSnapshot, MovieRank
from imdb_tui.tui.panel import Panel

_COLUMNS = ("#", "Title", "Year", "Views", "Avg", "Share")
_FIXED = {"#": 2, "Year": 4, "Views": 7, "Avg": 4}
_NARROW = 50
"""Under this many columns (80x24) the year is left out: the title needs the room."""


def _layout(room: int) -> tuple[tuple[str, ...], int, int]:
    """The columns shown in a panel this wide, the title's width and the share bar's."""
    columns = _COLUMNS if room >= _NARROW else tuple(c for c in _COLUMNS if c != "Year")
    bar = 10 if room >= 80 else 5 if room >= _NARROW else 0
    padding = 2 * len(columns) + 2  # a cell's padding on each side, and the scrollbar
    fixed = sum(_FIXED.get(c, 0) for c in columns) + _share_width(bar)
    return columns, max(8, room - fixed - padding), bar


def _share_width(bar: int) -> int:
    return bar + 1 + 5 if bar else 5  # "█████  12.3%" or "12.3%"


class TopMovies(Panel):
    TITLE = "Top movies today"
    PAST_TITLE = "Top movies · {day}"
    SUBTITLE = "v: trending"

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._layout: tuple[tuple[str, ...], int, int] = ((), 0, 0)

    def compose(self) -> ComposeResult:
        yield DataTable(cursor_type="row", zebra_stripes=True)

    def on_resize(self, event: events.Resize) -> None:
        """Columns fitted to the width, rebuilt only when the width class changes."""
        layout = _layout(self.content_size.width)
        if layout == self._layout:
            return
        self._layout = columns, title, bar = layout
        table = self.query_one(DataTable)
        table.clear(columns=True)
        for name in columns:
            width = title if name == "Title" else _FIXED.get(name, _share_width(bar))
            label = Text(name, justify="right" if name in ("Views", "Avg") else "left")
            table.add_column(label, width=width, key=name)
        for rank in range(1, TOP_MOVIES + 1):
            table.add_row(Text(f"{rank}"), *self._cells(rank), key=str(rank))

    def watch_snapshot(self, snapshot: MetricsSnapshot | None) -> None:
        if not self._layout[1]:
            return  # the columns come with the first size
        table = self.query_one(DataTable)
        for rank in range(1, TOP_MOVIES + 1):
            for name, cell in zip(self._layout[0][1:], self._cells(rank), strict=True):
                table.update_cell(str(rank), name, cell)

    def movie_at(self, row: int) -> tuple[str, str] | None:
        """The movie id and title on a row (0: the first), if any."""
        movies = () if self.snapshot is None else self.snapshot.top_movies
        if not 0 <= row < len(movies):
            return None
        return movies[row].movie_id, movies[row].title

    def _cells(self, rank: int) -> tuple[Text, ...]:
        movies = () if self.snapshot is None else self.snapshot.top_movies
        columns = self._layout[0][1:]
        if rank > len(movies):
            return (Text(""),) * len(columns)
        cells = _movie_cells(movies[rank - 1], self._layout[2])
        return tuple(cells[name] for name in columns)


def _movie_cells(movie: MovieRank, bar: int) -> dict[str, Text]:
    share = share_text(movie.share)
    if bar:
        filled = round(movie.share * bar)
        share = f"{'█' * filled}{'░' * (bar - filled)} {share}"
    return {
        # Data is shown as text, never as markup; long titles end in an ellipsis.
        "Title": Text(literal(movie.title), no_wrap=True, overflow="ellipsis"),
        "Year": Text("" if movie.year is None else str(movie.year)),
        "Views": Text(count_in(movie.views, _FIXED["Views"]), justify="right"),  # 1.2M, not cut
        # Its average rating today (none yet: a dash).
        "Avg": Text(
            "–" if movie.avg_rating is None else f"{movie.avg_rating:.1f}", justify="right"
        ),
        "Share": Text(share),
    }
