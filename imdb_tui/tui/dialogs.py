"""The help screen and the exact-rate dialog."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Input, Static

from imdb_tui.pipeline import MAX_RATE, MIN_RATE

PIPELINE_KEYS = (
    ("p / space", "pause or resume the stream"),
    ("+ / -", "double or halve the target rate"),
    ("m", "unthrottled (max) on or off"),
    ("r", "type an exact rate"),
)
"""The keys that drive a pipeline: not while watching one that another process runs."""
KEYS = (
    *PIPELINE_KEYS,
    ("w", "active-user window: 1, 5, 15, 60 minutes"),
    ("[ / ]", "slower or faster refresh: 0.25, 0.5, 1, 2, 5 s"),
    ("f", "freeze the display; the pipeline keeps running"),
    ("v", "top movies today, or trending (15 min)"),
    ("enter", "the movie on the row: its day, live"),
    ("t", "live tail of the events; / filters it"),
    ("< / >", "the daily panels: a day back, a day on"),
    ("d", "dead letters: enter shows one whole, c copies"),
    ("a", "alerts: the rules firing, and recent changes"),
    ("s", "find any movie by title, year or id"),
    ("? / F1", "this help"),
    ("ctrl+p", "palette: these actions, themes, a screenshot"),
    ("q / ctrl+c", "quit: the queue is drained and committed first"),
)
WATCHING_QUIT = ("q / ctrl+c", "quit")


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark,f1", "dismiss", "Close")
    ]

    def __init__(self, watching: bool = False) -> None:
        """`watching`: no pipeline to drive, so no pipeline keys."""
        super().__init__()
        self.keys = [row for row in KEYS if not (watching and row in PIPELINE_KEYS)]
        if watching:  # no queue: nothing to drain
            self.keys[-1] = WATCHING_QUIT

    def compose(self) -> ComposeResult:
        text = Text()
        for keys, what in self.keys:
            text.append(f"{keys:<12}", style="bold")
            text.append(f"{what}\n")
        with Vertical(id="help"):
            yield Static(text)
            yield Static(Text("escape closes", style="dim"))
        yield Footer(compact=True)  # this dialog's keys, over the dashboard's

    def on_mount(self) -> None:
        self.query_one("#help").border_title = "Keys"


def parse_rate(text: str) -> float | None:
    """A typed rate: a number of events per second, or "max". ValueError if neither."""
    value = text.strip().lower().removesuffix("/s")
    if value == "max":
        return None
    rate = float(value.replace(",", "").replace("_", ""))
    if not MIN_RATE <= rate <= MAX_RATE:
        raise ValueError(f"from {MIN_RATE:g} to {MAX_RATE:,.0f}, or max")
    return rate


class RateDialog(ModalScreen[tuple[float | None] | None]):
    """Asks for an exact rate; dismisses with (rate,) or None if cancelled."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Cancel")]

    def compose(self) -> ComposeResult:
        with Vertical(id="rate-dialog"):
            yield Static("Events per second (1 to 1,000,000, or max):")
            yield Input(placeholder="e.g. 5000", id="rate-input")
            yield Static(id="rate-error")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#rate-dialog").border_title = "Set rate"

    def on_input_submitted(self, event: Input.Submitted) -> None:
        try:
            rate = parse_rate(event.value)
        except ValueError:
            self.query_one("#rate-error", Static).update(
                Text("not a rate: give a number from 1 to 1,000,000, or max", style="red")
            )
            return
        self.dismiss((rate,))
