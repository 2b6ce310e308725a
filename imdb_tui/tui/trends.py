"""Events per minute (the last hour) and today by hour: two charts."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Sparkline, Static

from imdb_tui.display import first_fitting, short_count
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
        values, notes = self.chart(snapshot)
        note = first_fitting(notes, self.content_size.width)
        self.query_one(Sparkline).data = values
        # The note's height is set in app.tcss, so no layout pass is needed.
        self.query_one(Static).update(Text(note, no_wrap=True, overflow="ellipsis"), layout=False)

    def chart(self, snapshot: MetricsSnapshot) -> tuple[list[int], list[str]]:
        """The values to draw, and the note to show in its forms, fullest first."""
        raise NotImplementedError


class PerMinute(Chart):
    """One cell a minute, as many minutes as the panel is wide (the snapshot keeps
    up to three hours), the newest at the right edge."""

    TITLE = "Events per minute"
    POINTS = 60

    def chart(self, snapshot: MetricsSnapshot) -> tuple[list[int], list[str]]:
        shown = max(self.content_size.width, 1)
        counts = [minute.events for minute in snapshot.per_minute[-shown:]]
        this_minute = counts[-1] if counts else 0
        peak = max(counts, default=0)
        now, top = short_count(this_minute), short_count(peak)
        return counts, [
            f"last {len(counts)} min · this minute {this_minute:,} · peak {peak:,}",
            f"last {len(counts)} min · this minute {now} · peak {top}",
            f"this minute {now} · peak {top}",
            f"now {now} · peak {top}",
        ]


class TodayByHour(Chart):
    TITLE = "Today by hour"
    PAST_TITLE = "{day} by hour"
    POINTS = 24

    def chart(self, snapshot: MetricsSnapshot) -> tuple[list[int], list[str]]:
        hours = list(snapshot.per_hour)
        when = "that day" if snapshot.past else "today"
        peak = f" · peak {max(range(24), key=hours.__getitem__):02d}h" if any(hours) else ""
        total = snapshot.events_today
        return hours, [f"{total:,} {when}{peak}", f"{short_count(total)} {when}{peak}"]
