"""Time as the pipeline sees it: wall clock, monotonic clock, sleeping and the local day.

Everything that reads the time takes a Clock, so tests can drive it by hand.
"""

from __future__ import annotations

import asyncio
import time
from datetime import date, datetime, timedelta, tzinfo
from typing import Protocol


class Clock(Protocol):
    """What the pipeline needs to know about time."""

    tz: tzinfo | None
    """The zone of "today"; None means the machine's local zone."""

    def now(self) -> float:
        """Seconds since the Unix epoch (UTC)."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back, for intervals and rates."""

    async def sleep(self, seconds: float) -> None:
        """Wait that long, yielding to the event loop."""


class SystemClock:
    """The real clock."""

    def __init__(self, tz: tzinfo | None = None) -> None:
        self.tz = tz

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class ManualClock:
    """A clock that only moves when told to, or when something sleeps on it."""

    def __init__(self, start: float, tz: tzinfo | None = None) -> None:
        self._now = start
        self._mono = 0.0
        self.tz = tz

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        self._now += seconds
        self._mono += seconds

    async def sleep(self, seconds: float) -> None:
        self.advance(max(seconds, 0.0))
        await asyncio.sleep(0)


def local_datetime(ts: float, tz: tzinfo | None) -> datetime:
    """The aware datetime of `ts` in `tz` (None: the machine's zone)."""
    if tz is None:
        return datetime.fromtimestamp(ts).astimezone()
    return datetime.fromtimestamp(ts, tz)


def day_start(ts: float, tz: tzinfo | None) -> float:
    """The epoch seconds of local midnight that starts the day holding `ts`."""
    return wall_time(local_datetime(ts, tz).date(), tz)


def wall_time(when: date | datetime, tz: tzinfo | None) -> float:
    """The epoch seconds of a local wall-clock time (a date: its midnight) in `tz`."""
    wall = when if isinstance(when, datetime) else datetime(when.year, when.month, when.day)
    if tz is None:
        return wall.astimezone().timestamp()
    return wall.replace(tzinfo=tz).timestamp()


def date_start(day: str, tz: tzinfo | None) -> float:
    """The epoch seconds of the local midnight that starts a YYYY-MM-DD day."""
    return wall_time(date.fromisoformat(day), tz)


def day_after(day: str, days: int = 1) -> str:
    """The local day `days` after a YYYY-MM-DD day (negative: before)."""
    return (date.fromisoformat(day) + timedelta(days=days)).isoformat()


def local_day(ts: float, tz: tzinfo | None) -> str:
    """The local calendar day of `ts` as YYYY-MM-DD."""
    return local_datetime(ts, tz).date().isoformat()


def parse_duration(text: str, default_unit: str = "s") -> float:
    """Seconds in a duration such as "90", "45s", "30m", "12h" or "7d"."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    value = text.strip().lower()
    unit = default_unit
    if value and value[-1] in units:
        value, unit = value[:-1], value[-1]
    try:
        amount = float(value)
    except ValueError:
        raise ValueError(f"not a duration: {text!r} (use e.g. 90s, 30m, 12h, 7d)") from None
    if amount <= 0 or amount != amount or amount == float("inf"):
        raise ValueError(f"duration must be positive: {text!r}")
    return amount * units[unit]


def utc_iso(ts: float) -> str:
    """Canonical event time: UTC ISO-8601 with milliseconds and a Z."""
    ms = round(ts * 1000)
    seconds, millis = divmod(ms, 1000)
    base = datetime(1970, 1, 1) + timedelta(seconds=seconds)
    return f"{base:%Y-%m-%dT%H:%M:%S}.{millis:03d}Z"
