"""What a batch of events adds to the aggregate tables: the write side of the
metrics, below the store (the store applies it; `metrics` reads what it left)."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from itertools import compress, islice, repeat
from operator import eq, itemgetter, le

from imdb_tui.clock import date_start, local_day, utc_iso
from imdb_tui.events import Event


@dataclass(frozen=True, slots=True)
class Aggregates:
    """What one batch adds to the metric tables (see Aggregator)."""

    per_minute: dict[tuple[str, str], int]
    """(minute, event_type) -> events"""
    per_quarter_hour: dict[tuple[str, str], int]
    """(quarter-hour start, event_type) -> events"""
    movie_views: dict[tuple[str, str], int]
    """(day, movie_id) -> views"""
    last_seen: dict[str, str]
    """user_id -> newest event_time"""
    ratings: dict[tuple[str, int], int] = field(default_factory=dict)
    """(day, rating) -> rate events"""
    movie_ratings: dict[tuple[str, str, int], int] = field(default_factory=dict)
    """(day, movie_id, rating) -> rate events"""
    recent_views: dict[tuple[str, str], int] = field(default_factory=dict)
    """(UTC five-minute period, movie_id) -> views: what trending is counted from"""
    movie_events: dict[tuple[str, str, str], int] = field(default_factory=dict)
    """(day, movie_id, event_type) -> events: a movie's day, by type"""
    movie_users: set[tuple[str, str, str]] = field(default_factory=set)
    """(day, movie_id, user_id): who had an event of a movie that day"""
    movie_minutes: dict[tuple[str, str], int] = field(default_factory=dict)
    """(movie_id, UTC minute YYYY-MM-DDTHH:MMZ) -> views: a movie's last hours"""
    user_days: dict[str, tuple[str, list[str]]] = field(default_factory=dict)
    """local day -> (its start, UTC; the users with an event that day): each is one
    more user of the day if the store has none of their events from its start on"""


AggregateFn = Callable[[Sequence[Event]], Aggregates]


class Aggregator:
    """Turns newly stored events into updates of the aggregate tables.

    It runs on the event loop's thread for every batch, so the counting is done
    by Counter, map and zip over the batch (their loops run in C); Python-level
    loops go over distinct minutes and movies only, which are few.

    A day's users are counted as they come: a user counts on a day when the store
    has none of their events on or after its start yet. In time order that is
    exact; an event that arrives after one of the same user on a later day is not
    counted again (their earlier day may then miss them).
    """

    def __init__(self, tz: tzinfo | None) -> None:
        self._tz = tz
        self._days: dict[str, str] = {}  # minute -> local day: days change on minute bounds
        self._starts: dict[str, str] = {}  # local day -> its start, UTC ISO

    def __call__(self, events: Sequence[Event]) -> Aggregates:
        return self.who(self.counts(events), events)

    def counts(self, events: Sequence[Event]) -> Aggregates:
        """The counts (a row a minute, movie or day), without who had events (a row a
        user: see `who`)."""
        if not events:
            return Aggregates({}, {}, {}, {})
        times = list(map(_TIME, events))
        per_minute = {
            (minute + "Z", event_type): n
            for (minute, event_type), n in Counter(
                zip(map(_MINUTE, times), map(_TYPE, events), strict=True)
            ).items()
        }
        per_quarter_hour: dict[tuple[str, str], int] = {}
        for (minute, event_type), n in per_minute.items():
            key = (quarter_hour(minute), event_type)
            per_quarter_hour[key] = per_quarter_hour.get(key, 0) + n
        views = list(compress(events, map(eq, map(_TYPE, events), repeat("view"))))
        # A dict keeps the last value given for a key: in time order, the newest.
        if all(map(le, times, islice(times, 1, None))):
            last_seen = dict(zip(map(_USER, events), times, strict=True))
        else:
            ordered = sorted(zip(times, map(_USER, events), strict=True))
            last_seen = dict(zip(map(_SECOND, ordered), map(_FIRST, ordered), strict=True))
        ratings: dict[tuple[str, int], int] = {}
        movie_ratings: dict[tuple[str, str, int], int] = {}
        rates = list(compress(events, map(eq, map(_TYPE, events), repeat("rate"))))
        minutes = map(_MINUTE, map(_TIME, rates))
        keys = zip(minutes, map(_MOVIE, rates), map(_RATING, rates), strict=True)
        for (minute, movie, rating), n in Counter(keys).items():
            if rating is None:  # validation gives every rate event its rating
                continue
            day = self._day(minute)
            ratings[day, rating] = ratings.get((day, rating), 0) + n
            movie_ratings[day, movie, rating] = movie_ratings.get((day, movie, rating), 0) + n
        recent_views: dict[tuple[str, str], int] = {}
        movie_minutes: dict[tuple[str, str], int] = {}
        periods: dict[str, str] = {}
        for (minute, movie), n in Counter(
            zip(map(_MINUTE, map(_TIME, views)), map(_MOVIE, views), strict=True)
        ).items():
            period = periods.get(minute)
            if period is None:
                period = periods[minute] = five_minutes(minute)
            key = (period, movie)
            recent_views[key] = recent_views.get(key, 0) + n
            movie_minutes[movie, minute + "Z"] = n
        movie_events: dict[tuple[str, str, str], int] = {}
        if (one_day := self._one_day(times)) is not None:
            for (movie, event_type), n in Counter(
                zip(map(_MOVIE, events), map(_TYPE, events), strict=True)
            ).items():
                movie_events[one_day, movie, event_type] = n
        else:  # the batch spans midnight
            days = list(map(self._day, times))
            kinds = zip(days, map(_MOVIE, events), map(_TYPE, events), strict=True)
            movie_events = dict(Counter(kinds))
        movie_views = {(d, m): n for (d, m, kind), n in movie_events.items() if kind == "view"}
        return Aggregates(
            per_minute,
            per_quarter_hour,
            movie_views,
            last_seen,
            ratings,
            movie_ratings,
            recent_views,
            movie_events,
            movie_minutes=movie_minutes,
        )

    def who(self, counts: Aggregates, events: Sequence[Event]) -> Aggregates:
        """`counts` (of these events) with who had them: each movie's users and each
        day's, a row a user. They are worked out where the batch is written, from its
        events, rather than sent there beside them."""
        if not events:
            return counts
        times = list(map(_TIME, events))
        movie_users: set[tuple[str, str, str]]  # who, not how often: made in C
        user_days: dict[str, tuple[str, list[str]]]
        if (day := self._one_day(times)) is not None:
            movie_users = set(zip(repeat(day), map(_MOVIE, events), map(_USER, events)))
            user_days = {day: (self._start(day), list(counts.last_seen))}
        else:  # the batch spans midnight
            days = list(map(self._day, times))
            movie_users = set(zip(days, map(_MOVIE, events), map(_USER, events), strict=True))
            user_days = {}
            for each_day, user in sorted(set(zip(days, map(_USER, events), strict=True))):
                user_days.setdefault(each_day, (self._start(each_day), []))[1].append(user)
        return dataclasses.replace(counts, movie_users=movie_users, user_days=user_days)

    def _one_day(self, times: list[str]) -> str | None:
        """The local day of all these event times, if they share one (None: they span
        midnight, and each needs its own)."""
        day = self._day(min(times))
        return day if self._day(max(times)) == day else None

    def _start(self, day: str) -> str:
        """The UTC time (canonical) at which a local day starts."""
        start = self._starts.get(day)
        if start is None:
            start = self._starts[day] = utc_iso(date_start(day, self._tz))
        return start

    def _day(self, when: str) -> str:
        """The local day of an event time (UTC, canonical)."""
        minute = when[:16]
        day = self._days.get(minute)
        if day is None:
            if len(self._days) > 10_000:
                self._days.clear()
            moment = datetime.fromisoformat(minute + ":00+00:00").timestamp()
            day = self._days[minute] = local_day(moment, self._tz)
        return day


_FIRST, _SECOND = itemgetter(0), itemgetter(1)
_MINUTE = itemgetter(slice(16))  # an event time's minute, YYYY-MM-DDTHH:MM
_TIME, _USER, _MOVIE, _TYPE = (
    itemgetter(Event._fields.index(name))
    for name in ("event_time", "user_id", "movie_id", "event_type")
)
_RATING = itemgetter(Event._fields.index("rating"))


def quarter_hour(minute: str) -> str:
    """The quarter hour holding a minute key: 2026-11-23T10:44Z -> 2026-11-23T10:30Z."""
    return f"{minute[:14]}{int(minute[14:16]) // 15 * 15:02d}Z"


def five_minutes(minute: str) -> str:
    """The five-minute period holding a minute: 2026-11-23T10:44 -> 2026-11-23T10:40Z
    (with or without the minute's Z)."""
    return f"{minute[:14]}{int(minute[14:16]) // 5 * 5:02d}Z"
