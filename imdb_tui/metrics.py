"""The metrics: how a batch of new events updates the aggregates, and the snapshot read from them.

Definitions (the README repeats them):
- events_total: events stored, all time (retention does not lower it).
- events_today, by_type, per_hour: events whose event_time falls on the local calendar day.
- active_users: distinct users with an event in the last W minutes.
- users_today: distinct users with an event today.
- a past day (`read_snapshot(day=...)`): the daily figures (events, by_type, per_hour,
  top_movies, ratings, users) are that local day's; the rest stay live. Its users are
  counted as events arrive: each user once on each day of their events, unless an
  event comes after a later one of theirs on a later day (see Aggregator).
- top_movies: today's most viewed titles (view events), with their share of today's views
  and their average rating today (None: not rated today).
- ratings: today's rate events, their average rating, and how many gave each of 1 to 10.
- trending: the movies whose views in the last 15 minutes most exceed what their views
  in the hour before predict for as long (see `trending`), with their movement.
- per_minute: events per UTC minute over the last 60 minutes, oldest first, empty minutes 0
  (the snapshot keeps MINUTES_KEPT of them, so a wide chart is full; reports show 60).
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any, Final

from imdb_tui.clock import day_start, local_day, utc_iso, wall_time
from imdb_tui.display import span_text
from imdb_tui.events import EVENT_TYPES, latest_time, seconds
from imdb_tui.health import PipelineHealth
from imdb_tui.store import MetricsReader

TOP_MOVIES = 10
TRENDING = 10
MINUTES_SHOWN = 60
MINUTES_KEPT = 180
"""Minutes a snapshot holds: a chart as wide as the terminal shows as many as fit."""
WINDOW_CHOICES = (1, 5, 15, 60)
RATING_SCALE = range(1, 11)


@dataclass(frozen=True, slots=True)
class MovieRank:
    movie_id: str
    title: str
    """The catalogue title, or the movie id when the catalogue does not know it."""
    year: int | None
    views: int
    share: float
    """Fraction of today's views."""
    avg_rating: float | None = None
    """The average of its ratings today (None: not rated today)."""


@dataclass(frozen=True, slots=True)
class Ratings:
    """A day's rate events: how many gave each rating, 1 to 10."""

    histogram: tuple[int, ...] = (0,) * 10
    """histogram[r - 1]: the rate events giving r."""

    @classmethod
    def of(cls, counts: dict[int, int]) -> Ratings:
        return cls(tuple(counts.get(rating, 0) for rating in RATING_SCALE))

    @property
    def count(self) -> int:
        return sum(self.histogram)

    @property
    def average(self) -> float | None:
        count = self.count
        if not count:
            return None
        return sum(r * n for r, n in zip(RATING_SCALE, self.histogram, strict=True)) / count

    def to_json(self) -> dict[str, Any]:
        average = self.average
        return {
            "count": self.count,
            "average": None if average is None else round(average, 3),
            "histogram": {str(r): n for r, n in zip(RATING_SCALE, self.histogram, strict=True)},
        }


@dataclass(frozen=True, slots=True)
class Trend:
    movie_id: str
    title: str
    """The catalogue title, or the movie id when the catalogue does not know it."""
    year: int | None
    views_recent: int
    """Views in the last 10 to 15 minutes: this five-minute period so far, and the two before."""
    views_before: int
    """Views in the hour before those."""
    change: float
    """views_recent less what views_before predicts for as many minutes."""
    movement: int | None
    """Places up (+) or down (-) since the end of the last five-minute period; None: new."""

    def to_json(self) -> dict[str, Any]:
        return {
            "movie_id": self.movie_id,
            "title": self.title,
            "views_recent": self.views_recent,
            "views_before": self.views_before,
            "change": round(self.change, 1),
            "movement": self.movement,
        }


@dataclass(frozen=True, slots=True)
class ActiveUsers:
    window_minutes: int
    count: int


@dataclass(frozen=True, slots=True)
class MinuteCount:
    minute: str
    """UTC, YYYY-MM-DDTHH:MMZ"""
    events: int


AHEAD_COUNTED: Final = 100_000
"""Events ahead of the clock are counted up to this many (more: "100,000+")."""


@dataclass(frozen=True, slots=True)
class Ahead:
    """Stored events later than the clock of whoever reads them (with MAX_FUTURE_SECONDS
    of leeway): their clock, or the events' source, is wrong."""

    events: int
    """How many, up to AHEAD_COUNTED"""
    by_seconds: float
    """How far the newest is ahead of the clock"""

    @property
    def more(self) -> bool:
        """There are more than `events` (the count stopped there)."""
        return self.events >= AHEAD_COUNTED

    def text(self) -> str:
        """N events ahead of this machine's clock by up to D"""
        count = f"{self.events:,}{'+' if self.more else ''}"
        noun = "event" if self.events == 1 else "events"
        return f"{count} {noun} ahead of this machine's clock by up to {span_text(self.by_seconds)}"

    def to_json(self) -> dict[str, Any]:
        return {"events": self.events, "more": self.more, "by_seconds": round(self.by_seconds, 3)}


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    as_of: float
    events_total: int
    events_today: int
    active_users: ActiveUsers
    users_today: int | None
    """Distinct users of the day (None: a past day from before they were counted)."""
    top_movies: tuple[MovieRank, ...]
    by_type: dict[str, int]
    per_minute: tuple[MinuteCount, ...]
    """The last MINUTES_KEPT minutes, oldest first (`last_hour`: the last 60)."""
    per_hour: tuple[int, ...]
    """Events in each local hour of today, 0 to 23."""
    dead_letters: int
    duplicates: int
    health: PipelineHealth | None = None
    """The health of the pipeline the figures come from, if one is known."""
    database_bytes: int = 0
    """How much of the database its data takes."""
    pipelines: tuple[PipelineHealth, ...] = ()
    """Every pipeline's health row in the store (read by viewers of a database)."""
    ratings: Ratings = Ratings()
    """Today's."""
    trending: tuple[Trend, ...] = ()
    day: str = ""
    """The local day (YYYY-MM-DD) of the daily figures: today's, or a past day's."""
    past: bool = False
    """The daily figures are of a past day; the others are live all the same."""
    oldest_day: str | None = None
    """The oldest local day with figures kept (None: nothing stored yet)."""
    ahead: Ahead | None = None
    """Stored events ahead of the reader's clock, if there are any."""

    @classmethod
    def of_health(cls, health: PipelineHealth) -> MetricsSnapshot:
        """A pipeline's health alone, no figures of the store (for what needs only it)."""
        return cls(health.as_of or 0.0, 0, 0, ActiveUsers(0, 0), None, (), {}, (), (), 0, 0, health)

    @property
    def past_day(self) -> str | None:
        """The past day the daily figures are of (None: today's)."""
        return self.day if self.past else None

    @property
    def last_hour(self) -> tuple[MinuteCount, ...]:
        return self.per_minute[-MINUTES_SHOWN:]

    def to_json(self) -> dict[str, Any]:
        """The report's JSON object."""
        return {
            "day": self.day,
            "events_total": self.events_total,
            "events_today": self.events_today,
            "active_users": {
                "window_minutes": self.active_users.window_minutes,
                "count": self.active_users.count,
            },
            "users_today": self.users_today,
            "top_movies": [
                {
                    "movie_id": m.movie_id,
                    "title": m.title,
                    "views": m.views,
                    "avg_rating": None if m.avg_rating is None else round(m.avg_rating, 3),
                }
                for m in self.top_movies
            ],
            "ratings": self.ratings.to_json(),
            "trending": [trend.to_json() for trend in self.trending],
            "by_type": dict(self.by_type),
            "per_minute": [{"minute": m.minute, "events": m.events} for m in self.last_hour],
            "per_hour": [{"hour": hour, "events": n} for hour, n in enumerate(self.per_hour)],
            "dead_letters": self.dead_letters,
            "duplicates": self.duplicates,
            "database_bytes": self.database_bytes,
            "ahead_of_clock": None if self.ahead is None else self.ahead.to_json(),
        }


@dataclass(frozen=True, slots=True)
class MovieDay:
    """One movie's figures for a day (its drill-down), read at `as_of`."""

    movie_id: str
    title: str
    """The catalogue title, or the movie id when the catalogue does not know it."""
    year: int | None
    genres: tuple[str, ...]
    day: str
    """The local day, YYYY-MM-DD"""
    by_type: dict[str, int]
    users: int
    """Distinct users with an event of the movie that day."""
    per_minute: tuple[MinuteCount, ...]
    """Its views in each UTC minute of the last MINUTES_SHOWN, oldest first."""
    ratings: Ratings
    as_of: float

    @property
    def views(self) -> int:
        return self.by_type.get("view", 0)

    def to_json(self) -> dict[str, Any]:
        average = self.ratings.average
        return {
            "movie_id": self.movie_id,
            "title": self.title,
            "year": self.year,
            "genres": list(self.genres),
            "day": self.day,
            "views": self.views,
            "by_type": dict(self.by_type),
            "users": self.users,
            "per_minute": [{"minute": m.minute, "views": m.events} for m in self.per_minute],
            "ratings": self.ratings.to_json(),
            "avg_rating": None if average is None else round(average, 3),
        }


def minute_key(ts: float) -> str:
    return utc_iso(ts)[:16] + "Z"


def read_snapshot(
    store: MetricsReader,
    now: float,
    tz: tzinfo | None,
    window_minutes: int,
    health: PipelineHealth | None = None,
    trends: Trending | None = None,
    day: str | None = None,
    clock: float | None = None,
) -> MetricsSnapshot:
    """The metrics as stored, at time `now`; reads only the small aggregate tables.

    `trends`: a reader's own Trending, which keeps what does not change from one
    refresh to the next (None: trending read whole). `day`: a past local day
    (YYYY-MM-DD) whose daily figures to read instead of today's. `clock`: the time
    stored events count as ahead of, if not `now` (a pipeline at stream time reads
    at its newest event stored, while a batch of later ones may be half applied)."""
    counters = store.counters()
    today = day_start(now, tz)
    day, past = _day_shown(day, now, tz)
    hour_keys = _local_hour_keys(day, tz)  # 25: each local hour's start, and the next day's
    first_minute = _first_minute(now, MINUTES_KEPT)
    per_minute = _per_minute(store.events_per_minute(minute_key(first_minute)), now, MINUTES_KEPT)
    by_type = dict.fromkeys(EVENT_TYPES, 0)
    per_hour = [0] * 24
    for hour, event_type, events in store.events_per_period(hour_keys):
        per_hour[hour] += events
        by_type[event_type] = by_type.get(event_type, 0) + events
    views_today = by_type.get("view", 0)
    ranked = store.top_movies(day, TOP_MOVIES)
    rated = store.movie_ratings(day, [m.movie_id for m in ranked])
    top = tuple(
        MovieRank(
            m.movie_id,
            m.title if m.title is not None else m.movie_id,
            m.year,
            m.views,
            m.views / views_today if views_today else 0.0,
            Ratings.of(rated.get(m.movie_id, {})).average,
        )
        for m in ranked
    )
    active, users_today = store.users_seen_since(utc_iso(now - window_minutes * 60), utc_iso(today))
    return MetricsSnapshot(
        as_of=now,
        events_total=counters.get("events_total", 0),
        events_today=sum(per_hour),
        active_users=ActiveUsers(window_minutes, active),
        users_today=_users_on(store, day, sum(per_hour)) if past else users_today,
        top_movies=top,
        by_type=by_type,
        per_minute=per_minute,
        per_hour=tuple(per_hour),
        dead_letters=counters.get("dead_letters", 0),
        duplicates=counters.get("duplicates", 0),
        health=health,
        database_bytes=store.size_bytes(),
        ratings=Ratings.of(store.ratings(day)),
        trending=(trends or Trending())(store, now),
        day=day,
        past=past,
        oldest_day=oldest_day(store, tz),
        ahead=_ahead(store, now if clock is None else clock),
    )


def _ahead(store: MetricsReader, now: float) -> Ahead | None:
    """Events stored ahead of the clock at `now`, if any: the newest minute counted
    says whether to look (the raw events are read only when some are ahead)."""
    latest = latest_time(now)
    minute = store.newest_minute()
    if minute is None or minute[:16] < latest[:16]:
        return None
    newest = store.newest_event_time()
    if newest is None or newest <= latest:
        return None
    return Ahead(store.events_after(latest, AHEAD_COUNTED), seconds(newest) - now)


class Trending:
    """The TRENDING movies whose views lately most exceed their pace of the hour before.

    Views are kept by five-minute period (UTC). "Lately" is this period so far and the
    two before (10 to 15 minutes); "the hour before" the twelve periods before those.
    A movie's change is its views lately less its views in the hour before scaled to
    as many minutes; those with a positive change rank by it. Movement compares with
    the same ranking at the end of the last period (15 minutes lately, exactly).

    What lies before this period changes little once it has begun: it is read at the
    period's start and again SETTLE seconds in (for batches then in flight), and kept,
    so a refresh reads this period's views only. One object serves one reader (a
    thread): it is not shared.
    """

    SETTLE = 30.0

    def __init__(self) -> None:
        self._read_at: tuple[int, bool] | None = None  # (period, settled) of the cache
        self._before: dict[str, tuple[int, int]] = {}  # movie: (hour before, two periods)
        self._then: dict[str, int] = {}  # movie: its rank at the period's start

    def __call__(self, store: MetricsReader, now: float) -> tuple[Trend, ...]:
        period = int(now // 300 * 300)
        bounds = [minute_key(period + 60 * m) for m in (-75, -70, -15, -10, 0, 5)]
        read_at = (period, now - period >= self.SETTLE)
        if read_at != self._read_at:
            self._read_before(store, bounds[:5])
            self._read_at = read_at
        this_period = {movie_id: n for _, movie_id, n in store.views_per_period(bounds[4:])}
        scale = (10 + (now - period) / 60) / 60  # the minutes lately, in hours
        lately = [
            (movie_id, recent + this_period.get(movie_id, 0), before)
            for movie_id, (before, recent) in self._before.items()
        ]
        lately += [(m, n, 0) for m, n in this_period.items() if m not in self._before]
        scored = [(-(recent - before * scale), m, recent, before) for m, recent, before in lately]
        top = heapq.nsmallest(TRENDING, (s for s in scored if s[0] < 0))
        titles = store.titles([movie_id for _, movie_id, _, _ in top]) if top else {}
        trends = []
        for rank, (change, movie_id, recent, before) in enumerate(top):
            title, year = titles.get(movie_id, (movie_id, None))
            then = self._then.get(movie_id)
            movement = None if then is None else then - rank
            trends.append(Trend(movie_id, title, year, recent, before, -change, movement))
        return tuple(trends)

    def _read_before(self, store: MetricsReader, bounds: list[str]) -> None:
        """Each movie's views in the periods before this one, and the ranking at its start."""
        views: dict[str, list[int]] = {}
        for index, movie_id, n in store.views_per_period(bounds):
            views.setdefault(movie_id, [0, 0, 0, 0])[index] += n
        self._before = {m: (r1 + r2, r3) for m, (_, r1, r2, r3) in views.items()}
        then = [(-(r2 + r3 - (r0 + r1) / 4), m) for m, (r0, r1, r2, r3) in views.items()]
        ranked = heapq.nsmallest(TRENDING, (t for t in then if t[0] < 0))
        self._then = {movie_id: rank for rank, (_, movie_id) in enumerate(ranked)}


def trending(store: MetricsReader, now: float) -> tuple[Trend, ...]:
    """Trending at `now`, read whole (see Trending)."""
    return Trending()(store, now)


def read_movie(
    store: MetricsReader, movie_id: str, now: float, tz: tzinfo | None, day: str | None = None
) -> MovieDay:
    """A movie's day so far (today's, at `now`; or a past `day`'s), its views per
    minute of the last hour, live either way: small aggregate rows only."""
    day, _ = _day_shown(day, now, tz)
    movie = store.movie(movie_id)
    since = minute_key(_first_minute(now, MINUTES_SHOWN))
    per_minute = _per_minute(store.movie_views_per_minute(movie_id, since), now, MINUTES_SHOWN)
    by_type = dict.fromkeys(EVENT_TYPES, 0)
    by_type.update(store.movie_events(day, movie_id))
    return MovieDay(
        movie_id=movie_id,
        title=movie_id if movie is None else movie.title,
        year=None if movie is None else movie.year,
        genres=() if movie is None else movie.genres,
        day=day,
        by_type=by_type,
        users=store.movie_users(day, movie_id),
        per_minute=per_minute,
        ratings=Ratings.of(store.movie_ratings(day, [movie_id]).get(movie_id, {})),
        as_of=now,
    )


def _first_minute(now: float, count: int) -> int:
    """The start of the first of the `count` UTC minutes that end with `now`'s."""
    return int(now // 60 * 60) - (count - 1) * 60


def _per_minute(rows: Sequence[tuple[str, int]], now: float, count: int) -> tuple[MinuteCount, ...]:
    """The `count` minutes that end with `now`'s, oldest first, from (minute, n) rows
    (minutes without a row: 0)."""
    first = _first_minute(now, count)
    minutes = {minute_key(first + 60 * i): 0 for i in range(count)}
    for minute, n in rows:
        if minute in minutes:
            minutes[minute] += n
    return tuple(MinuteCount(minute, n) for minute, n in minutes.items())


def _local_hour_keys(day: str, tz: tzinfo | None) -> list[str]:
    """The UTC minute keys at which each local hour of a day starts, and the next day's start.

    Walking local hours through real time keeps days with a daylight-saving change right.
    """
    midnight = datetime.fromisoformat(day)
    return [minute_key(wall_time(midnight + timedelta(hours=hour), tz)) for hour in range(25)]


def _day_shown(day: str | None, now: float, tz: tzinfo | None) -> tuple[str, bool]:
    """The local day whose daily figures to read, and whether it is past: `day` if it
    is before `now`'s, else `now`'s (today's, live)."""
    today = local_day(now, tz)
    return (day, True) if day is not None and day < today else (today, False)


def _users_on(store: MetricsReader, day: str, events: int) -> int | None:
    """A past day's users: none on a day without events, unknown if not counted."""
    users = store.users_on(day)
    return 0 if users is None and not events else users


def not_kept(day: str, oldest: str | None) -> str | None:
    """Why a past local day has no figures, given the oldest day kept (None: it has)."""
    if oldest is None:
        return f"no figures for {day}: nothing is stored yet"
    if day < oldest:
        return f"no figures for {day}: the oldest day kept is {oldest}"
    return None


def oldest_day(store: MetricsReader, tz: tzinfo | None) -> str | None:
    """The oldest local day with figures kept (None: nothing stored)."""
    first = store.first_quarter_hour()
    if first is None:
        return None
    return local_day(datetime.fromisoformat(first[:16] + ":00+00:00").timestamp(), tz)
