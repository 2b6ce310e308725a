"""How a pipeline is doing: measured by the pipeline, kept in the store as a row of its own.

A running pipeline writes its health with its commits and at least every
HEARTBEAT_SECONDS while idle or paused, so any viewer of the database (another
process, another machine) sees it; a row not refreshed for LIVE_SECONDS belongs to
a pipeline that is gone (killed, or its machine lost).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

HEARTBEAT_SECONDS: Final = 1.0
LIVE_SECONDS: Final = 3.0
"""A pipeline not heard from for this long is no longer writing."""
ENDED_STATES: Final = frozenset({"finished", "stopped", "failed"})


@dataclass(frozen=True, slots=True)
class PipelineHealth:
    """One pipeline's state and figures, as measured by it."""

    state: str
    """running, paused, waiting (on the store), draining, finished, stopped or failed"""
    target_rate: float | None
    """events per second asked for; None when unthrottled"""
    ingest_rate: float
    """events stored per second over the last few seconds"""
    queue_depth: int
    lag_p50_ms: float | None
    lag_p99_ms: float | None
    emitted: int
    stored: int
    error: str | None
    """the storage or input error not yet recovered from"""
    stream_time: bool = False
    """The metrics are read at stream time (the newest event seen), not the present."""
    replay_speed: float | None = None
    as_of: float | None = None
    """Where the pipeline's metrics clock stands (stream time); None before an event."""
    pipeline_id: str = ""
    host: str = ""
    pid: int = 0
    source: str = ""
    started_at: str = ""
    """UTC ISO-8601"""
    last_seen: str = ""
    """UTC ISO-8601: when the row was last written"""
    live: bool = True
    """Still writing: not ended, and heard from within LIVE_SECONDS (set when read)."""
    source_behind_ms: float | None = None
    """How far behind the newest data its source reads, where the source knows (a
    stream's MillisBehindLatest, the most of its shards')."""
    alerts: str | None = None
    """Its alert rules' state, firing and recent (JSON: alerts.AlertState), if it has rules."""

    def to_json(self) -> dict[str, Any]:
        """The `pipelines` entries of `report --json`."""
        return {
            "id": self.pipeline_id,
            "host": self.host,
            "pid": self.pid,
            "state": self.state,
            "live": self.live,
            "source": self.source,
            "source_behind_ms": self.source_behind_ms,
            "target_rate": self.target_rate,
            "ingest_rate": round(self.ingest_rate, 1),
            "stored": self.stored,
            "queue": self.queue_depth,
            "lag_p50_ms": None if self.lag_p50_ms is None else round(self.lag_p50_ms, 1),
            "lag_p99_ms": None if self.lag_p99_ms is None else round(self.lag_p99_ms, 1),
            "error": self.error,
            "started_at": self.started_at,
            "last_seen": self.last_seen,
        }
