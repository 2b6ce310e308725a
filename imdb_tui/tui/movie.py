"""The movie screen: one title's day (Enter on a row of Top movies or Trending), live.

It reads the movie's figures through the app's Reader at the app's refresh
interval, and follows freeze; Escape goes back to the dashboard.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid
from textual.reactive import reactive
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Header, Sparkline, Static

from imdb_tui.display import first_fitting, literal, short_count
from imdb_tui.metrics import MovieDay
from imdb_tui.store import StoreError
from imdb_tui.tui.panel import DayTitled
from imdb_tui.tui.ratings import ratings_text

MovieRead = Callable[[str, str | None], Awaitable[MovieDay]]


class MoviePart(DayTitled):
    """A titled box of the movie screen, drawn from its MovieDay."""

    movie: reactive[MovieDay | None] = reactive(None, layout=False)


class MovieHeading(MoviePart):
    WAITING = "reading its figures…"

    def watch_movie(self, movie: MovieDay | None) -> None:
        if movie is not None:
            # A Text, never a str: a border title given as a str is read as markup.
            title = literal(movie.title) + (f" ({movie.year})" if movie.year else "")
            self.border_title = Text(title)

    def render(self) -> Text:
        movie = self.movie
        if movie is None:
            return Text(self.WAITING, style="dim")
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(movie.movie_id, style="bold")
        if movie.genres:
            text.append(" · " + literal(", ".join(movie.genres)))
        text.append(f" · {movie.day}", style="dim")
        return text


class MovieToday(MoviePart):
    TITLE = "Today"
    PAST_TITLE = "{day}"

    def render(self) -> Text:
        movie = self.movie
        if movie is None:
            return Text("")
        rows = [("views", movie.views), ("users", movie.users)]
        rows += [(kind, n) for kind, n in movie.by_type.items() if kind != "view"]
        width = max(len(f"{n:,}") for _, n in rows)
        text = Text(no_wrap=True)
        for name, n in rows:
            text.append(f"{name:<14}{n:>{width},}\n")
        return text


class MovieRatings(MoviePart):
    TITLE = "Ratings today"
    PAST_TITLE = "Ratings · {day}"
    COMPONENT_CLASSES: ClassVar[set[str]] = {"ratings--bar"}

    def render(self) -> Text:
        movie = self.movie
        if movie is None:
            return Text("")
        style = self.get_component_rich_style("ratings--bar")
        none = f"not rated on {self.past_day}" if self.past_day else "not rated today"
        return ratings_text(movie.ratings, self.content_size, style, none)


class MovieMinutes(MoviePart):
    TITLE = "Views per minute · last 60 min"
    PAST_TITLE = "Views per minute · {day}"

    def compose(self) -> ComposeResult:
        yield Sparkline([0] * 60)
        yield Static()

    def watch_movie(self, movie: MovieDay | None) -> None:
        if movie is None:
            return
        if self.past_day:  # not today's last hour beside a past day's figures
            self.query_one(Sparkline).data = [0] * len(movie.per_minute)
            note = f"kept for the last two hours only: none for {self.past_day}"
            self.query_one(Static).update(Text(note, no_wrap=True), layout=False)
            return
        views = [m.events for m in movie.per_minute]
        self.query_one(Sparkline).data = views
        now, peak, hour = views[-1], max(views), sum(views)
        note = first_fitting(
            [
                f"this minute {now:,} · peak {peak:,} · last hour {hour:,}",
                f"this minute {short_count(now)} · peak {short_count(peak)}"
                f" · last hour {short_count(hour)}",
                f"now {short_count(now)} · peak {short_count(peak)} · hour {short_count(hour)}",
            ],
            self.content_size.width,
        )
        self.query_one(Static).update(Text(note, no_wrap=True), layout=False)


class MovieScreen(Screen[None]):
    """Opened with Enter on a movie's row; reads the movie again every interval.

    Made once and kept by the app: `show` gives it the movie to show each time."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "app.pop_screen", "Back")]
    movie: reactive[MovieDay | None] = reactive(None)

    def __init__(self, read: MovieRead) -> None:
        super().__init__()
        self._read = read
        self._interval = 1.0
        self._timer: Timer | None = None
        self._title = ""
        self._day: str | None = None
        self.movie_id: str | None = None

    def show(self, movie_id: str, title: str, interval: float, day: str | None = None) -> None:
        """The movie to show from now on (its title until its figures are read), read
        again every `interval` seconds: today's figures, or a past `day`'s."""
        self.movie_id = movie_id
        self.movie = None
        self._title = title
        self._day = day
        if interval != self._interval and self._timer is not None:
            self._timer.stop()
            self._timer = None
        self._interval = interval
        if self.is_mounted:
            self._show_title()

    def _show_title(self) -> None:
        # A Text, never a str: a border title given as a str is read as markup.
        self.query_one(MovieHeading).border_title = Text(literal(self._title))
        for part in self.query(MoviePart):
            part.show_day(self._day)

    def compose(self) -> ComposeResult:
        yield Header()
        with Grid(id="movie"):
            for part in (
                MovieHeading(id="movie-heading"),
                MovieToday(id="movie-today"),
                MovieRatings(id="movie-ratings"),
                MovieMinutes(id="movie-minutes"),
            ):
                yield part.data_bind(MovieScreen.movie)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self._show_title()

    def on_screen_resume(self) -> None:
        if self._timer is None:
            self._timer = self.set_interval(self._interval, self.reread)
        else:
            self._timer.resume()
        self.call_after_refresh(self.reread)  # the first figures, as soon as drawn

    def on_screen_suspend(self) -> None:
        if self._timer is not None:
            self._timer.pause()

    async def reread(self) -> None:
        """The movie's figures now; kept as they are while frozen (once shown) or on a
        read error (the dashboard reports storage errors)."""
        movie_id = self.movie_id
        if movie_id is None or (getattr(self.app, "frozen", False) and self.movie is not None):
            return
        try:
            movie = await self._read(movie_id, self._day)
        except StoreError:
            return
        if movie_id == self.movie_id:  # still the one shown
            self.movie = movie
