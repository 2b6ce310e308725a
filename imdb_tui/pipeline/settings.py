"""What a pipeline is asked to do, and what it says when it is done."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

MIN_RATE: Final = 1.0
MAX_RATE: Final = 1_000_000.0


@dataclass(frozen=True, slots=True)
class PipelineSettings:
    rate: float | None = 200.0
    """Target events per second; None runs unthrottled."""
    count: int | None = None
    """Stop after this many records from the source."""
    window_minutes: int = 5
    retention_seconds: float = 7 * 86400.0
    max_bytes: int | None = None
    """Prune the oldest raw events while the database's data is larger (--max-size)."""
    queue_chunks: int = 16
    """The queue's bound, in chunks of at most chunk_size records."""
    chunk_size: int = 2048
    batch_size: int = 16_384
    """A power of two: a full batch is a few equal insert statements."""
    commit_interval: float = 0.25
    """A batch is committed at the latest this long after its first record arrived."""
    prune_interval: float = 5.0
    prune_step: int = 2_000
    writes_in_flight: int = 2
    """Batches handed to the writer and not yet committed, at most."""
    writer_process: bool = True
    """Let the store write from a process of its own where it can (see store.writer)."""
    stream_time: bool = False
    """Read the metrics at stream time, the newest event time seen, instead of the
    present: for events from files and pipes, which may be history."""
    replay_speed: float = 0.0
    """Above 0: release events at this many times the pace of their own timestamps."""
    from_start: bool = False
    """Read the source from its start, whatever position is stored for it."""


@dataclass(frozen=True, slots=True)
class RunSummary:
    emitted: int
    stored: int
    duplicates: int
    rejected: int
    lost: int
    """Events that could not be stored when the run had to end."""
    elapsed: float
    error: str | None
    """The storage error the run ended with, if any."""
    input_error: str | None = None
    """Why the source failed, if it did (what it gave before is stored)."""
    resumed: str | None = None
    """Where the source carried on from a stored position, if it did."""
    blank: int = 0
    """Blank lines skipped (counted, not stored as dead letters)."""


def checked_rate(rate: float | None) -> float | None:
    if rate is not None and not MIN_RATE <= rate <= MAX_RATE:
        raise ValueError(f"rate must be from {MIN_RATE:g} to {MAX_RATE:,.0f} events per second")
    return rate
