"""Events by type: today's counts, shares and bars."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from rich.text import Text

from imdb_tui.display import short_count
from imdb_tui.tui.panel import Panel

KIND_WIDTH = 13  # "watchlist_add"
MIN_BAR = 3
SHARE_WIDTH = 5  # " 100%"


class EventsByType(Panel):
    TITLE = "Events by type"
    PAST_TITLE = "Types · {day}"
    COMPONENT_CLASSES: ClassVar[set[str]] = {"events-by-type--bar"}

    def render(self) -> Text:
        snapshot = self.snapshot
        if snapshot is None:
            return Text(self.WAITING)
        total = sum(snapshot.by_type.values())
        number: Callable[[float], str] = "{:,}".format
        counts = {kind: number(count) for kind, count in snapshot.by_type.items()}
        if self.content_size.width - max(map(len, counts.values()), default=1) - 1 < KIND_WIDTH:
            number = short_count  # 1.2M, not a label cut to "watchlist_…"
            counts = {kind: number(count) for kind, count in snapshot.by_type.items()}
        count_width = max(len(number(total)), *map(len, counts.values()))
        # Narrow panels drop the bars first, then the shares, and only then cut names.
        room = self.content_size.width - count_width - 1
        with_share = room >= KIND_WIDTH + SHARE_WIDTH
        kind_width = max(4, min(KIND_WIDTH, room - (SHARE_WIDTH if with_share else 0)))
        bar_room = room - kind_width - SHARE_WIDTH - 1
        bar_style = self.get_component_rich_style("events-by-type--bar")
        lines = Text(no_wrap=True, overflow="ellipsis")
        average = snapshot.ratings.average
        # No Ratings panel beside this one (a narrow screen): the rate row says the average.
        with_average = average is not None and self.screen.has_class("-narrow")
        for kind, count in snapshot.by_type.items():
            share = count / total if total else 0.0
            label = kind
            if kind == "rate" and with_average:
                label = f"rate avg {average:.1f}"  # "rate avg 10.0" fits KIND_WIDTH
            name = label if len(label) <= kind_width else label[: kind_width - 1] + "…"
            lines.append(f"{name:<{kind_width}} {counts[kind]:>{count_width}}")
            if with_share:
                lines.append(f" {share:>4.0%}")
            if bar_room >= MIN_BAR:
                lines.append(" " + "█" * round(share * bar_room), style=bar_style)
            lines.append("\n")
        lines.append(f"{'total':<{kind_width}} {number(total):>{count_width}}", style="dim")
        return lines
