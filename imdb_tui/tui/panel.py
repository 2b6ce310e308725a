"""What every dashboard panel shares: a title and the snapshot it shows."""

from __future__ import annotations

from textual.reactive import reactive
from textual.widget import Widget

from imdb_tui.metrics import MetricsSnapshot


class DayTitled(Widget):
    """A box titled TITLE, or PAST_TITLE (with {day}) while a past day is shown."""

    TITLE = ""
    PAST_TITLE = ""
    """The title while a past day is shown, with {day}: a daily box has one."""
    past_day: str | None = None
    """The past day shown (None: today)."""

    def on_mount(self) -> None:
        self.border_title = self.TITLE

    def show_day(self, past_day: str | None) -> None:
        """Title the box for a past day's figures (None: today's)."""
        self.past_day = past_day
        if self.PAST_TITLE:
            self.border_title = self.PAST_TITLE.format(day=past_day) if past_day else self.TITLE


class Panel(DayTitled):
    """A titled box that redraws from the app's current snapshot (bound with data_bind)."""

    SUBTITLE = ""
    """On the bottom border: a key the panel answers, say."""
    WAITING = "waiting for the first snapshot…"
    snapshot: reactive[MetricsSnapshot | None] = reactive(None, layout=False)

    def on_mount(self) -> None:
        super().on_mount()
        self.border_subtitle = self.SUBTITLE
