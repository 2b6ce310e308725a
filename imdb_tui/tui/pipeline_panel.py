"""Pipeline: how the stream is doing (rates, queue, lag, rejects) and where it is stored."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text

from imdb_tui.display import literal, rate_text
from imdb_tui.tui.panel import Panel


class PipelinePanel(Panel):
    TITLE = "Pipeline"

    def __init__(self, database: str, source: str, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.database = database
        self.source = source

    def render(self) -> Text:
        snapshot = self.snapshot
        health = None if snapshot is None else snapshot.health
        if snapshot is None or health is None:
            return Text(self.WAITING)

        source = literal(Path(self.source).name or self.source)
        if health.state == "finished":
            source += " (ended)"

        rows = [
            ("target", rate_text(health.target_rate)),
            ("measured", f"{health.ingest_rate:,.0f}/s"),
            ("stored", f"{snapshot.events_total:,}"),
            ("queue", f"{health.queue_depth:,}"),
            ("lag p50/p99", _lag(health.lag_p50_ms, health.lag_p99_ms)),
            (
                "dead letters",
                f"{snapshot.dead_letters:,}" + (" (d)" if snapshot.dead_letters else ""),
            ),
            ("duplicates", f"{snapshot.duplicates:,}"),
            ("source", source),
            ("database", literal(self.database)),
        ]
        text = Text()
        for name, value in rows:
            text.append(f"{name:<13}", style="dim")
            text.append(f"{value}\n")
        if health.error:
            text.append(f"storage: {literal(health.error)}", style="bold red")
        return text


def _lag(p50: float | None, p99: float | None) -> str:
    """Milliseconds, or seconds once they pass ten (replayed files lag by hours)."""
    if p50 is None or p99 is None:
        return "-"
    if p99 < 10_000:
        return f"{p50:,.0f} / {p99:,.0f} ms"
    return f"{p50 / 1000:,.0f} / {p99 / 1000:,.0f} s"
