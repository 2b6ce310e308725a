"""What a pipeline counts as it runs: events in and out, the stored rate, the lag."""

from __future__ import annotations

from collections import deque
from typing import Final

RATE_SPAN: Final = 3.0
"""The measured rate is the events stored over the last this many seconds."""


class Stats:
    def __init__(self, started: float) -> None:
        self.started = started
        self.queued = 0
        self.emitted = 0
        self.stored = 0
        self.duplicates = 0
        self.rejected = 0
        self.lost = 0
        self.blank = 0
        """Blank lines skipped."""
        self.lost_because: str | None = None
        """Why the first events lost could not be stored."""
        # (monotonic time, stored so far) at each commit over the last RATE_SPAN
        # seconds, and the newest one before them: right at any number of commits.
        self._commits: deque[tuple[float, int]] = deque()
        self._lags: deque[float] = deque(maxlen=4096)

    def restart(self, started: float) -> None:
        self.started = started

    def committed(self, at: float, stored: int, duplicates: int, rejected: int) -> None:
        self.stored += stored
        self.duplicates += duplicates
        self.rejected += rejected
        self._commits.append((at, self.stored))
        self._forget(at)

    def lose(self, events: int, reason: str) -> None:
        """Events given up at the end of a run, and why."""
        self.lost += events
        if self.lost_because is None:
            self.lost_because = reason

    def lags(self, seconds: list[float]) -> None:
        self._lags.extend(seconds)

    def ingest_rate(self, now: float) -> float:
        """Events stored per second over the last RATE_SPAN seconds."""
        since = max(now - RATE_SPAN, self.started)
        if now <= since:
            return 0.0
        self._forget(now)
        first = self._commits[0] if self._commits else None
        before = first[1] if first is not None and first[0] <= since else 0
        return (self.stored - before) / (now - since)

    def _forget(self, now: float) -> None:
        """Drop commits older than the window, keeping the newest one before it."""
        since = now - RATE_SPAN
        commits = self._commits
        while len(commits) >= 2 and commits[1][0] <= since:
            commits.popleft()

    def lag_percentiles(self) -> tuple[float | None, float | None]:
        """p50 and p99 of the recent lags, in milliseconds."""
        ordered = sorted(self._lags)
        return _percentile(ordered, 0.50), _percentile(ordered, 0.99)


def _percentile(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000
