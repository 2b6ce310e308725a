"""Ratings today: how many, their average, and how many gave each of 1 to 10, as columns."""

from __future__ import annotations

from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual.geometry import Size

from imdb_tui.metrics import RATING_SCALE, Ratings
from imdb_tui.tui.panel import Panel

EIGHTHS = " ▁▂▃▄▅▆▇█"


class RatingsPanel(Panel):
    TITLE = "Ratings today"
    PAST_TITLE = "Ratings · {day}"
    COMPONENT_CLASSES: ClassVar[set[str]] = {"ratings--bar"}

    def render(self) -> Text:
        snapshot = self.snapshot
        if snapshot is None:
            return Text(self.WAITING)
        style = self.get_component_rich_style("ratings--bar")
        none = f"no ratings on {snapshot.day}" if snapshot.past else "no ratings yet today"
        return ratings_text(snapshot.ratings, self.content_size, style, none)


def ratings_text(ratings: Ratings, size: Size, bar_style: Style, none: str) -> Text:
    """The count and average on a line, then a column a rating as tall as the room
    allows, the ratings' numbers under them; `none` when there are no ratings."""
    average = ratings.average
    lines = Text(no_wrap=True, overflow="ellipsis")
    if average is None:
        lines.append(none)
        return lines
    lines.append(f"{ratings.count:,} · average {average:.2f}\n")
    cell = max(2, min(4, size.width // len(RATING_SCALE)))  # a bar and a space: "10" fits
    rows = max(1, size.height - 2)  # the line above, and the ratings' numbers below
    for line in bars(ratings, rows, cell - 1):
        lines.append(line + "\n", style=bar_style)
    lines.append("".join(f"{r:<{cell}}" for r in RATING_SCALE).rstrip(), style="dim")
    return lines


def bars(ratings: Ratings, rows: int, column: int) -> list[str]:
    """Columns as tall as each rating's count (the most: all the rows), drawn in eighths
    of a line, top row first; a rating given at all shows at least an eighth."""
    most = max(ratings.histogram)
    heights = [
        0 if not n else max(1, round(n / most * rows * 8)) if most else 0 for n in ratings.histogram
    ]
    lines = []
    for row in range(rows - 1, -1, -1):
        cells = [EIGHTHS[min(8, max(0, eighths - row * 8))] * column for eighths in heights]
        lines.append(" ".join(cells).rstrip())
    return lines
