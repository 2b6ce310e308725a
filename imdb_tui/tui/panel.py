"""What every dashboard panel shares: a title and the snapshot it shows."""

from __future__ import annotations

from textual.reactive import reactive
from textual.widget import Widget

from imdb_tui.metrics import MetricsSnapshot


class Panel(Widget):
    """A titled box that redraws from the app's current snapshot (bound with data_bind)."""

    TITLE = ""
    PAST_TITLE = ""
    """The title while a past day is shown, with {day}: a daily panel has one."""
    SUBTITLE = ""
    """On the bottom border: a key the panel answers, say."""
    WAITING = "waiting for the first snapshot…"
    snapshot: reactive[MetricsSnapshot | None] = reactive(None, layout=False)

    def on_mount(self) -> None:
        self.border_title = self.TITLE
        self.border_subtitle = self.SUBTITLE

    def show_day(self, past_day: str | None) -> None:
        """Title the panel for a past day's figures (None: today's)."""
        if self.PAST_TITLE:
            self.border_title = self.PAST_TITLE.format(day=past_day) if past_day else self.TITLE
