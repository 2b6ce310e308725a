"""Active users: the count for the window in large digits, and users today."""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.widgets import Digits, Static

from imdb_tui.metrics import MetricsSnapshot
from imdb_tui.tui.panel import Panel

ROOMY = 6
"""From this many rows inside, the note spells itself out on two lines."""


class ActiveUsers(Panel):
    TITLE = "Active users"

    def compose(self) -> ComposeResult:
        yield Digits("0")
        yield Static(Text(self.WAITING), id="active-users-note")

    def watch_snapshot(self, snapshot: MetricsSnapshot | None) -> None:
        if snapshot is not None:
            self.query_one(Digits).update(f"{snapshot.active_users.count:,}")
            self._show_note(snapshot)

    def on_resize(self, event: events.Resize) -> None:
        if self.snapshot is not None:
            self._show_note(self.snapshot)

    def _show_note(self, snapshot: MetricsSnapshot) -> None:
        window = snapshot.active_users.window_minutes
        users = "–" if snapshot.users_today is None else f"{snapshot.users_today:,}"
        if self.content_size.height >= ROOMY:
            day = f"on {snapshot.day}" if snapshot.past else "today"
            note = f"active in the last {window} min\n{users} users {day}"
        elif snapshot.past:  # in 21 columns, with thousands of users
            note = f"{window}m · {users} on {snapshot.day[5:]}"
        else:
            note = f"{window} min · {users} today"
        # Its height is set in app.tcss: no layout pass for the whole screen.
        self.query_one(Static).update(Text(note, no_wrap=True, overflow="ellipsis"), layout=False)
