"""Events per minute (the last hour) and today by hour: two charts."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Sparkline, Static

from imdb_tui.metrics import MetricsSnapshot
from imdb_tui.tui.panel import Panel


class PerMinute(Panel):
    TITLE = "Events per minute"

    def compose(self) -> ComposeResult:
        yield Sparkline([0] * 60)
        yield Static(Text(self.WAITING))

    def watch_snapshot(self, snapshot: MetricsSnapshot | None) -> None:
        if snapshot is None:
            return
        counts = [minute.events for minute in snapshot.per_minute]
        self.query_one(Sparkline).data = counts
        this_minute = counts[-1] if counts else 0
        note = f"last 60 min · this minute {this_minute:,} · peak {max(counts, default=0):,}"
        self.query_one(Static).update(_line(note), layout=False)


class TodayByHour(Panel):
    TITLE = "Today by hour"

    def compose(self) -> ComposeResult:
        yield Sparkline([0] * 24)
        yield Static(Text(self.WAITING))

    def watch_snapshot(self, snapshot: MetricsSnapshot | None) -> None:
        if snapshot is None:
            return
        hours = list(snapshot.per_hour)
        self.query_one(Sparkline).data = hours
        note = f"{snapshot.events_today:,} today"
        if any(hours):
            note += f" · peak {max(range(24), key=hours.__getitem__):02d}h"
        self.query_one(Static).update(_line(note), layout=False)


def _line(text: str) -> Text:
    """A note of one line (its height is set in app.tcss, so no layout pass is needed)."""
    return Text(text, no_wrap=True, overflow="ellipsis")
