"""Pipeline: how the stream is doing (rates, queue, lag, rejects) and where it is stored."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.reactive import reactive

from imdb_tui.display import left_cut, literal, millis_text, rate_text, seen_text, size_text
from imdb_tui.tui.panel import Panel

LABEL = 13
"""The width of the names' column."""


class PipelinePanel(Panel):
    TITLE = "Pipeline"
    unreachable: reactive[str | None] = reactive(None, layout=False)
    """Since when (HH:MM:SS) the database cannot be read: the figures are of then (None:
    they are current)."""

    def __init__(self, database: str, watching: bool = False, **kwargs: object) -> None:
        """`watching`: the figures are another process's, read from its health row."""
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.database = database
        self.watching = watching

    def render(self) -> Text:
        snapshot = self.snapshot
        if snapshot is None:
            return Text(self.WAITING)
        health = snapshot.health
        text = Text()
        if self.unreachable is not None:  # short lines: the panel is narrow
            away = f"database away\nsince {self.unreachable}\nfigures as of then\n"
            text.append(away, style="bold red")
        live = health is not None and health.live and self.unreachable is None
        if health is None or (self.watching and not health.live):
            text.append("no pipeline writing\n", style="bold")
        dead = f"{snapshot.dead_letters:,}" + (" (d)" if snapshot.dead_letters else "")
        rows = [("stored", f"{snapshot.events_total:,}")]
        room = max(self.content_size.width - LABEL, 8)  # a value's width: none wraps
        if health is not None:
            source = literal(Path(health.source).name or health.source)
            if health.state == "finished":
                source = left_cut(source, room - len(" (ended)"), " ") + " (ended)"
            rows = [
                ("target", rate_text(health.target_rate)),
                # The last rate of a pipeline gone (or unseen) is no rate to show as now.
                ("measured", f"{health.ingest_rate:,.0f}/s" if live else "–"),
                *rows,
                ("queue", f"{health.queue_depth:,}"),
                ("lag p50/p99", _lag(health.lag_p50_ms, health.lag_p99_ms, room)),
            ]
        rows += [("dead letters", dead), ("duplicates", f"{snapshot.duplicates:,}")]
        if health is not None:
            rows.append(("source", source))
            if health.source_behind_ms is not None:  # a stream: how far from its tip
                rows.append(("behind", millis_text(health.source_behind_ms)))
        if self.watching:  # when the writer's health row was last written
            rows.append(("last seen", "never" if health is None else seen_text(health.last_seen)))
        rows.append(("database", left_cut(literal(self.database), room)))
        rows.append(("size", size_text(snapshot.database_bytes)))
        for name, value in rows:
            text.append(f"{name:<{LABEL}}", style="dim")
            text.append(f"{value}\n")
        if snapshot.ahead is not None:  # this clock, or the events' source, is wrong
            text.append(snapshot.ahead.text() + "\n", style="bold yellow")
        if health is not None and health.error:
            text.append(literal(health.error), style="bold red")
        return text


def _lag(p50: float | None, p99: float | None, room: int = 80) -> str:
    """128 / 253 ms, or each figure with its own unit where they differ: 128 ms / 10 s
    (replayed files lag by hours); units run on (43m / 2.5h) where that does not fit."""
    if p50 is None or p99 is None:
        return "-"
    low, high = millis_text(p50), millis_text(p99)
    if low.split()[-1] == high.split()[-1]:  # one unit, said once: it fits 80 columns
        return f"{low.split()[0]} / {high}"
    text = f"{low} / {high}"
    if len(text) <= room:
        return text
    return " / ".join(figure.replace(" min", "m").replace(" ", "") for figure in (low, high))
