"""The Alerts screen (a): the rules firing now, then the recent firings and clearings."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Static

from imdb_tui.alerts import AlertChange, AlertState
from imdb_tui.display import literal, span_text

NO_RULES = "no alert rules: --alert 'lag_p99 > 5s for 1m' (or --alerts FILE) adds them"


def _seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _lasted(alert: AlertChange, now: float) -> str:
    """How long it fired: until now, or until it cleared."""
    try:
        end = now if alert.state == "firing" else _seconds(alert.at)
        return span_text(max(end - _seconds(alert.since), 0.0))
    except ValueError:
        return "–"


class AlertsScreen(ModalScreen[None]):
    """Read once, when it opens (a opens it again for the news)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,a,q", "dismiss", "Close")]

    def __init__(self, state: AlertState, has_rules: bool, now: float | None = None) -> None:
        super().__init__()
        self.state = state
        self.has_rules = has_rules
        self.now = now

    def compose(self) -> ComposeResult:
        with Vertical(id="alerts"):
            yield DataTable(cursor_type="row", zebra_stripes=True)
            yield Static(self._note(), id="alerts-note")
        yield Footer(compact=True)

    def _note(self) -> Text:
        if not self.has_rules:
            return Text(NO_RULES, style="dim")
        firing = len(self.state.firing)
        said = f"{firing} firing" if firing else "nothing firing"
        return Text(f"{said} · times in UTC · report --json lists them (alerts)")

    def on_mount(self) -> None:
        self.query_one("#alerts").border_title = "Alerts"
        now = self.now if self.now is not None else datetime.now(UTC).timestamp()
        table = self.query_one(DataTable)
        table.add_columns("State", "Rule", "Value", "At", "For")
        firing = {(alert.name, alert.since) for alert in self.state.firing}
        for alert in self.state.firing:  # firing now: since when, and for how long
            table.add_row(
                Text("FIRING", "bold red"),
                *self._cells(alert, alert.since),
                Text(_lasted(alert, now)),
            )
        for alert in self.state.recent:
            if alert.state == "firing":
                if (alert.name, alert.since) in firing:
                    continue  # the start of one firing now: listed above
                # It fired, in a pipeline gone since or before it cleared: no end known.
                table.add_row(Text("fired"), *self._cells(alert, alert.at), Text("–"))
            else:
                table.add_row(
                    Text(alert.state), *self._cells(alert, alert.at), Text(_lasted(alert, now))
                )

    @staticmethod
    def _cells(alert: AlertChange, when: str) -> tuple[Text, Text, Text]:
        return (
            Text(literal(alert.name), no_wrap=True, overflow="ellipsis"),
            Text(alert.value),
            Text(when[11:19]),
        )
