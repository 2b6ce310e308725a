"""The replay clock: historical events released at X times the pace of their own timestamps.

It maps the pipeline's monotonic clock onto event time. It starts at the first
event's time and then runs `speed` times as fast as the pipeline's clock; an
event is due once the replay clock has reached its time. Events older than one
already released (out of order) are due at once. Held (paused), it stands
still, and it carries on from there, so a pause is not followed by a burst.
Nor is a slow stretch (a --rate cap, a busy store): an event more than a
second overdue sets the clock back to its own time, so the replay runs late
instead of racing to catch up.
"""

from __future__ import annotations

from typing import Final

from imdb_tui.clock import Clock

MAX_OVERDUE: Final = 1.0
"""Seconds an event may be overdue before the replay clock is set back to it."""


class ReplayClock:
    def __init__(self, speed: float, clock: Clock) -> None:
        if not speed > 0:
            raise ValueError("a replay runs at a speed above 0")
        self.speed = speed
        self._clock = clock
        self._anchor: tuple[float, float] | None = None  # (event time, monotonic time)
        self._held_at: float | None = None  # the event time it stands at, while held
        self._latest = float("-inf")  # the newest event time asked about

    def position(self) -> float | None:
        """The event time the replay has reached; None before the first event."""
        if self._held_at is not None or self._anchor is None:
            return self._held_at
        event_time, started = self._anchor
        return event_time + (self._clock.monotonic() - started) * self.speed

    def wait(self, event_time: float) -> float:
        """Seconds of the pipeline's clock until an event of this time is due (<= 0: now).

        The first event starts the clock.
        """
        position = self.position()
        if position is None:
            self._anchor = (event_time, self._clock.monotonic())
            self._latest = event_time
            return 0.0
        if self._held_at is not None:
            return float("inf") if event_time > position else 0.0
        if event_time <= self._latest:
            return 0.0  # out of order: never a reason to move the clock
        wait = (event_time - position) / self.speed
        if wait < -MAX_OVERDUE:  # running late: carry on from here, no catching up
            self._anchor = (event_time, self._clock.monotonic())
            wait = 0.0
        if wait <= 0:
            self._latest = event_time
        return wait

    def hold(self) -> None:
        """Stand still (the pipeline is paused)."""
        if self._held_at is None:
            self._held_at = self.position()

    def go(self) -> None:
        """Carry on from where it stood."""
        if self._held_at is not None:
            self._anchor = (self._held_at, self._clock.monotonic())
            self._held_at = None
