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
_PADDING = 2 * len(_COLUMNS) + 2  # a cell's padding on each side, and the scrollbar


def _widths(room: int) -> tuple[int, int]:
    """The title's width and the share bar's for a panel this wide."""
    bar = 10 if room >= 80 else 5 if room >= 50 else 0
    return max(8, room - sum(_FIXED.values()) - _share_width(bar) - _PADDING), bar


def _share_width(bar: int) -> int:
    return bar + 1 + 5 if bar else 5  # "█████  12.3%" or "12.3%"


class TopMovies(Panel):
    TITLE = "Top movies today"
    PAST_TITLE = "Top movies · {day}"
    SUBTITLE = "v: trending"

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._widths = (0, 0)

    def compose(self) -> ComposeResult:
        yield DataTable(cursor_type="row", zebra_stripes=True)

    def on_resize(self, event: events.Resize) -> None:
        """Columns fitted to the width, rebuilt only when the width class changes."""
        widths = _widths(self.content_size.width)
        if widths == self._widths:
            return
        self._widths = title, bar = widths
        table = self.query_one(DataTable)
        table.clear(columns=True)
        for name in _COLUMNS:
            width = title if name == "Title" else _FIXED.get(name, _share_width(bar))
            label = Text(name, justify="right" if name in ("Views", "Avg") else "left")
            table.add_column(label, width=width, key=name)
        for rank in range(1, TOP_MOVIES + 1):
            table.add_row(Text(f"{rank}"), *self._cells(rank), key=str(rank))

    def watch_snapshot(self, snapshot: MetricsSnapshot | None) -> None:
        if not self._widths[0]:
            return  # the columns come with the first size
        table = self.query_one(DataTable)
        for rank in range(1, TOP_MOVIES + 1):
            for name, cell in zip(_COLUMNS[1:], self._cells(rank), strict=True):
                table.update_cell(str(rank), name, cell)

    def movie_at(self, row: int) -> tuple[str, str] | None:
        """The movie id and title on a row (0: the first), if any."""
        movies = () if self.snapshot is None else self.snapshot.top_movies
        if not 0 <= row < len(movies):
            return None
        return movies[row].movie_id, movies[row].title

    def _cells(self, rank: int) -> tuple[Text, ...]:
        movies = () if self.snapshot is None else self.snapshot.top_movies
        if rank > len(movies):
            return (Text(""),) * (len(_COLUMNS) - 1)
        return _movie_cells(movies[rank - 1], self._widths[1])


def _movie_cells(movie: MovieRank, bar: int) -> tuple[Text, ...]:
    share = share_text(movie.share)
    if bar:
        filled = round(movie.share * bar)
        share = f"{'█' * filled}{'░' * (bar - filled)} {share}"
    return (
        # Data is shown as text, never as markup; long titles end in an ellipsis.
        Text(literal(movie.title), no_wrap=True, overflow="ellipsis"),
        Text("" if movie.year is None else str(movie.year)),
        Text(count_in(movie.views, _FIXED["Views"]), justify="right"),  # 1.2M, never cut
        # Its average rating today (none yet: a dash).
        Text("–" if movie.avg_rating is None else f"{movie.avg_rating:.1f}", justify="right"),
        Text(share),
    )
