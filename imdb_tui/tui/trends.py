"""Events per minute (the last hour) and today by hour: two charts."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Sparkline, Static

from imdb_tui.metrics import MetricsSnapshot
from imdb_tui.tui.panel import Panel


class Chart(Panel):
    """A sparkline of POINTS values and a note of one line under it."""

    POINTS = 0

    def compose(self) -> ComposeResult:
        yield Sparkline([0] * self.POINTS)
        yield Static(Text(self.WAITING))

    def on_resize(self) -> None:
        self.watch_snapshot(self.snapshot)

    def watch_snapshot(self, snapshot: MetricsSnapshot | None) -> None:
        if snapshot is None:
            return
        values, note = self.chart(snapshot)
        self.query_one(Sparkline).data = values
        # The note's height is set in app.tcss, so no layout pass is needed.
        self.query_one(Static).update(Text(note, no_wrap=True, overflow="ellipsis"), layout=False)

    def chart(self, snapshot: MetricsSnapshot) -> tuple[list[int], str]:
        """The values to draw and the note to show."""
        raise NotImplementedError


class PerMinute(Chart):
    """One cell a minute, as many minutes as the panel is wide (the snapshot keeps
    up to three hours), the newest at the right edge."""

    TITLE = "Events per minute"
    POINTS = 60

    def chart(self, snapshot: MetricsSnapshot) -> tuple[list[int], str]:
        shown = max(self.content_size.width, 1)
        counts = [minute.events for minute in snapshot.per_minute[-shown:]]
        this_minute = counts[-1] if counts else 0
        peak = max(counts, default=0)
        note = f"last {len(counts)} min · this minute {this_minute:,} · peak {peak:,}"
        return counts, note


class TodayByHour(Chart):
    TITLE = "Today by hour"
    PAST_TITLE = "{day} by hour"
    POINTS = 24

    def chart(self, snapshot: MetricsSnapshot) -> tuple[list[int], str]:
        hours = list(snapshot.per_hour)
        note = f"{snapshot.events_today:,} {'that day' if snapshot.past else 'today'}"
        if any(hours):
            note += f" · peak {max(range(24), key=hours.__getitem__):02d}h"
        return hours, note
