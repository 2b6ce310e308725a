"""Metric definitions, checked against hand-made events at known times."""

from __future__ import annotations

import dataclasses
import random
import sqlite3
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from imdb_tui.aggregates import Aggregates, Aggregator, quarter_hour
from imdb_tui.catalog import Movie
from imdb_tui.clock import ManualClock, date_start, local_day, utc_iso
from imdb_tui.events import EVENT_TYPES, Event
from imdb_tui.metrics import (
    Ratings,
    Trending,
    minute_key,
    read_movie,
    read_snapshot,
    trending,
)
from imdb_tui.store import open_store
from tests.conftest import NOW, Database, event, scaled
from tests.helpers import ingest, snapshot


def at(text: str) -> str:
    return datetime.fromisoformat(text).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


async def test_per_minute_covers_the_last_hour_with_empty_minutes_as_zero(
    database: Database, clock: ManualClock
) -> None:
    records = [event(n, event_time=at("2026-11-23T09:58:10+00:00")) for n in range(3)]
    records += [event(n, event_time=at("2026-11-23T10:00:00+00:00")) for n in range(3, 5)]
    records += [event(5, event_time=at("2026-11-23T08:00:00+00:00"))]  # over an hour ago
    await ingest(database, records, clock)
    kept = snapshot(database, clock)
    assert len(kept.per_minute) == 180 and kept.per_minute[-60:] == kept.last_hour
    assert kept.per_minute[0].minute == "2026-11-23T07:01Z"
    minutes = kept.last_hour
    assert len(minutes) == 60
    assert minutes[0].minute == "2026-11-23T09:01Z" and minutes[-1].minute == "2026-11-23T10:00Z"
    assert [m.events for m in minutes[-3:]] == [3, 0, 2]
    assert sum(m.events for m in minutes) == 5


async def test_today_by_hour_and_by_type(database: Database, clock: ManualClock) -> None:
    records = [
        event(1, event_time=at("2026-11-22T23:59:00+00:00")),  # yesterday
        event(2, event_time=at("2026-11-23T00:00:00+00:00")),
        event(3, event_time=at("2026-11-23T07:30:00+00:00"), event_type="click"),
        event(4, event_time=at("2026-11-23T07:45:00+00:00"), event_type="rate", rating=9),
        event(5, event_time=at("2026-11-23T10:00:00+00:00"), event_type="watchlist_add"),
    ]
    await ingest(database, records, clock)
    metrics = snapshot(database, clock)
    assert metrics.events_total == 5
    assert metrics.events_today == 4
    assert metrics.per_hour[0] == 1 and metrics.per_hour[7] == 2 and metrics.per_hour[10] == 1
    assert sum(metrics.per_hour) == 4
    assert metrics.by_type == {"view": 1, "click": 1, "rate": 1, "watchlist_add": 1}


async def test_today_is_the_local_calendar_day(database: Database) -> None:
    kolkata = ZoneInfo("Asia/Kolkata")  # UTC+05:30: the local day starts at 18:30 UTC
    clock = ManualClock(NOW, tz=kolkata)  # 15:30 in Kolkata
    records = [
        event(1, event_time=at("2026-11-22T18:29:00+00:00")),  # 23:59 the day before
        event(2, event_time=at("2026-11-22T18:31:00+00:00")),  # 00:01 today
        event(3, event_time=at("2026-11-23T09:45:00+00:00")),  # 15:15 today
    ]
    await ingest(database, records, clock)
    metrics = snapshot(database, clock)
    assert metrics.events_today == 2
    assert metrics.per_hour[0] == 1 and metrics.per_hour[15] == 1
    assert metrics.users_today == 2


async def test_active_users_count_distinct_users_in_the_window(
    database: Database, clock: ManualClock
) -> None:
    records = [
        event(1, user_id="alice", event_time=at("2026-11-23T09:58:00+00:00")),
        event(2, user_id="alice", event_time=at("2026-11-23T09:59:30+00:00")),
        event(3, user_id="bob", event_time=at("2026-11-23T09:56:00+00:00")),
        event(4, user_id="carol", event_time=at("2026-11-23T09:40:00+00:00")),
        event(5, user_id="dave", event_time=at("2026-11-23T01:00:00+00:00")),
    ]
    await ingest(database, records, clock)
    assert snapshot(database, clock, window=1).active_users.count == 1
    assert snapshot(database, clock, window=5).active_users.count == 2
    assert snapshot(database, clock, window=60).active_users.count == 3
    assert snapshot(database, clock).users_today == 4
    clock.advance(3600)
    assert snapshot(database, clock, window=60).active_users.count == 0


async def test_top_movies_rank_views_with_titles_and_share(
    database: Database, clock: ManualClock
) -> None:
    store = database.open()
    store.save_movies([Movie("tt0000002", "Second [bold]Title[/]", 2001, ("Drama",))])
    store.close()
    records = [event(n, movie_id="tt0000002") for n in range(6)]
    records += [event(n, movie_id="tt0000001") for n in range(6, 9)]
    records += [event(9, movie_id="tt0000003", event_type="click")]  # clicks are not views
    await ingest(database, records, clock)
    top = snapshot(database, clock).top_movies
    assert [(m.movie_id, m.title, m.views) for m in top] == [
        ("tt0000002", "Second [bold]Title[/]", 6),
        ("tt0000001", "tt0000001", 3),  # not in the catalogue: shown by id
    ]
    assert top[0].share == 6 / 9 and top[0].year == 2001


async def test_a_snapshot_never_reads_raw_events(db_path: Path, clock: ManualClock) -> None:
    await ingest(db_path, [event(n) for n in range(2000)], clock)
    store = open_store(db_path)
    tables: set[str] = set()

    def watch(action: int, table: str | None, *_: object) -> int:
        if action == sqlite3.SQLITE_READ and table:
            tables.add(table)
        return sqlite3.SQLITE_OK

    store._db.set_authorizer(watch)
    metrics = read_snapshot(store, clock.now(), clock.tz, 5)
    assert metrics.events_total == 2000
    assert "events" not in tables  # its cost does not grow with history
    assert {"counters", "events_per_minute", "movie_views_daily", "user_activity"} <= tables


async def test_the_json_report_has_the_documented_keys(
    database: Database, clock: ManualClock
) -> None:
    await ingest(database, [event(n) for n in range(10)], clock)
    data = snapshot(database, clock).to_json()
    assert list(data) == [
        "day",
        "events_total",
        "events_today",
        "active_users",
        "users_today",
        "top_movies",
        "ratings",
        "trending",
        "by_type",
        "per_minute",
        "per_hour",
        "dead_letters",
        "duplicates",
        "database_bytes",
        "ahead_of_clock",
    ]
    assert data["active_users"] == {"window_minutes": 5, "count": 7}
    assert set(data["top_movies"][0]) == {"movie_id", "title", "views", "avg_rating"}


@given(
    st.lists(
        st.tuples(
            st.integers(0, 3 * 86400),  # seconds into a three-day span
            st.integers(0, 6),  # user
            st.integers(0, 4),  # movie
            st.sampled_from(["view", "view", "click", "rate"]),
        ),
        max_size=60,
    )
)
def test_the_batch_aggregates_match_counting_event_by_event(
    draws: list[tuple[int, int, int, str]],
) -> None:
    """Out of order, across midnights, with repeats: the same sums as a plain loop."""
    tz = ZoneInfo("America/New_York")
    batch = [
        Event(
            f"e{n}",
            utc_iso(NOW - 86400 + offset),
            f"u{user}",
            "s1",
            f"tt{1000000 + movie}",
            kind,
            1 + n % 10 if kind == "rate" else None,
        )
        for n, (offset, user, movie, kind) in enumerate(draws)
    ]
    per_minute: Counter[tuple[str, str]] = Counter()
    per_quarter_hour: Counter[tuple[str, str]] = Counter()
    movie_views: Counter[tuple[str, str]] = Counter()
    last_seen: dict[str, str] = {}
    ratings: Counter[tuple[str, int]] = Counter()
    movie_ratings: Counter[tuple[str, str, int]] = Counter()
    recent_views: Counter[tuple[str, str]] = Counter()
    movie_events: Counter[tuple[str, str, str]] = Counter()
    movie_users: set[tuple[str, str, str]] = set()
    movie_minutes: Counter[tuple[str, str]] = Counter()
    user_days: dict[str, set[str]] = defaultdict(set)
    for e in batch:
        user_days[local_day(e.ts, tz)].add(e.user_id)
        movie_events[local_day(e.ts, tz), e.movie_id, e.event_type] += 1
        movie_users.add((local_day(e.ts, tz), e.movie_id, e.user_id))
        if e.event_type == "view":
            period = f"{e.event_time[:14]}{int(e.event_time[14:16]) // 5 * 5:02d}Z"
            recent_views[period, e.movie_id] += 1
            movie_minutes[e.movie_id, e.event_time[:16] + "Z"] += 1
        if e.rating is not None:
            ratings[local_day(e.ts, tz), e.rating] += 1
            movie_ratings[local_day(e.ts, tz), e.movie_id, e.rating] += 1
        minute = e.event_time[:16] + "Z"
        per_minute[minute, e.event_type] += 1
        per_quarter_hour[quarter_hour(minute), e.event_type] += 1
        if e.event_type == "view":
            movie_views[local_day(e.ts, tz), e.movie_id] += 1
        last_seen[e.user_id] = max(last_seen.get(e.user_id, ""), e.event_time)
    aggregates = Aggregator(tz)(batch)
    assert {day: (start, set(users)) for day, (start, users) in aggregates.user_days.items()} == {
        day: (utc_iso(date_start(day, tz)), users) for day, users in user_days.items()
    }
    assert sum(len(users) for _, users in aggregates.user_days.values()) == sum(
        map(len, user_days.values())
    )  # each user once a day
    assert dataclasses.replace(aggregates, user_days={}) == Aggregates(
        dict(per_minute),
        dict(per_quarter_hour),
        dict(movie_views),
        last_seen,
        dict(ratings),
        dict(movie_ratings),
        dict(recent_views),
        dict(movie_events),
        movie_users,
        dict(movie_minutes),
    )


async def test_ratings_and_each_top_movies_average_match_a_recount_across_midnight(
    database: Database,
) -> None:
    """A seeded stream of events over three hours around local midnight (Kolkata,
    UTC+05:30), out of order: today's and yesterday's ratings, and each top movie's
    average today, against a recount of the stored rate events."""
    kolkata = ZoneInfo("Asia/Kolkata")
    clock = ManualClock(datetime.fromisoformat("2026-11-23T20:00:00+00:00").timestamp(), kolkata)
    randoms = random.Random(16)
    start = datetime.fromisoformat("2026-11-23T17:00:00+00:00").timestamp()  # 22:30 local
    records = []
    for n in range(scaled(database, 3_000)):
        moment = start + randoms.uniform(0, 3 * 3600)  # to 01:30 local, the next day
        kind = randoms.choice(["view", "view", "rate", "click"])
        record = event(n, event_time=utc_iso(moment), movie_id=f"tt{1 + n % 13:07d}")
        record["event_type"] = kind
        if kind == "rate":
            record["rating"] = randoms.randint(1, 10)
        records.append(record)
    randoms.shuffle(records)
    await ingest(database, records, clock)
    recount: dict[str, Counter[int]] = defaultdict(Counter)
    by_movie: dict[tuple[str, str], Counter[int]] = defaultdict(Counter)
    for record in records:
        if record["event_type"] == "rate":
            moment = datetime.fromisoformat(str(record["event_time"])).timestamp()
            day = local_day(moment, kolkata)
            recount[day][int(record["rating"])] += 1  # type: ignore[call-overload]
            by_movie[day, str(record["movie_id"])][int(record["rating"])] += 1  # type: ignore[call-overload]
    today, yesterday = "2026-11-24", "2026-11-23"
    assert set(recount) == {today, yesterday}
    metrics = snapshot(database, clock)
    assert metrics.ratings == Ratings.of(recount[today])
    assert metrics.ratings.count == sum(recount[today].values()) > scaled(database, 100)
    store = database.open(create=False)
    try:
        assert store.count_events() == len(records)  # every event stored: the recount is of them
        assert store.ratings(yesterday) == dict(recount[yesterday])
    finally:
        store.close()
    assert len(metrics.top_movies) == 10
    for movie in metrics.top_movies:
        counts = by_movie[today, movie.movie_id]
        expected = sum(r * n for r, n in counts.items()) / sum(counts.values())
        assert movie.avg_rating is not None and abs(movie.avg_rating - expected) < 1e-9
    report = metrics.to_json()
    assert report["ratings"]["histogram"] == {str(r): recount[today][r] for r in range(1, 11)}
    assert report["top_movies"][0]["avg_rating"] == round(metrics.top_movies[0].avg_rating, 3)


def test_a_day_without_ratings_has_no_average() -> None:
    assert Ratings().count == 0 and Ratings().average is None
    assert Ratings().to_json() == {
        "count": 0,
        "average": None,
        "histogram": {str(r): 0 for r in range(1, 11)},
    }


async def test_trending_matches_a_recount_with_each_movies_movement(database: Database) -> None:
    """Views of 30 movies over two hours, a few of them rising in the last minutes and
    one falling: the trending list against a recount of the views by their times."""
    now = datetime.fromisoformat("2026-11-23T10:02:30+00:00").timestamp()
    clock = ManualClock(now, UTC)
    randoms = random.Random(23)
    records = []
    for n in range(scaled(database, 6_000)):
        movie = randoms.randrange(30)
        start = now - 2 * 3600
        if movie < 4 and randoms.random() < 0.5:  # rising: many views lately
            start = now - (4 + movie) * 60
        if movie == 29 and randoms.random() < 0.5:  # falling: its views were earlier
            start, now_ = now - 2 * 3600, now - 30 * 60
        else:
            now_ = now
        moment = randoms.uniform(start, now_)
        records.append(event(n, event_time=utc_iso(moment), movie_id=f"tt{movie:07d}"))
    await ingest(database, records, clock)

    def minute(text: str) -> float:
        return datetime.fromisoformat(f"2026-11-23T{text}:00+00:00").timestamp()

    def ranking(recent: tuple[str, str], before: tuple[str, str], minutes: float) -> list:
        views: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for record in records:
            moment = datetime.fromisoformat(str(record["event_time"])).timestamp()
            movie = str(record["movie_id"])
            if minute(recent[0]) <= moment < minute(recent[1]):
                views[movie][0] += 1
            elif minute(before[0]) <= moment < minute(before[1]):
                views[movie][1] += 1
        scored = [(v[0] - v[1] * minutes / 60, m, *v) for m, v in views.items()]
        return sorted((s for s in scored if s[0] > 0), key=lambda s: (-s[0], s[1]))[:10]

    # 12.5 minutes into the recent quarter, or a little more: a store error's retry
    # (moto on a loaded machine) sleeps on the pipeline's clock.
    lately = ranking(("09:50", "10:05"), ("08:50", "09:50"), (clock.now() - minute("09:50")) / 60)
    then = [s[1] for s in ranking(("09:45", "10:00"), ("08:45", "09:45"), 15)]
    trending = snapshot(database, clock).trending
    assert [(t.movie_id, t.views_recent, t.views_before) for t in trending] == [
        (m, recent, before) for _, m, recent, before in lately
    ]
    for trend, (change, *_) in zip(trending, lately, strict=True):
        assert abs(trend.change - change) < 1e-9
    assert {t.movie_id for t in trending[:4]} == {f"tt{m:07d}" for m in range(4)}  # rising
    assert "tt0000029" not in [t.movie_id for t in trending]
    movements = [
        then.index(t.movie_id) - rank if t.movie_id in then else None
        for rank, t in enumerate(trending)
    ]
    assert [t.movement for t in trending] == movements
    assert None in movements and any(m not in (None, 0) for m in movements)


async def test_a_movies_day_matches_a_recount_across_midnight(database: Database) -> None:
    """A seeded, shuffled stream around local midnight (Kolkata): one movie's events by
    type, distinct users, views per minute and ratings, today and yesterday, against a
    recount of the events."""
    kolkata = ZoneInfo("Asia/Kolkata")
    now = datetime.fromisoformat("2026-11-23T19:00:30+00:00").timestamp()  # 00:30:30 local
    clock = ManualClock(now, kolkata)
    randoms = random.Random(61)
    records = []
    for n in range(scaled(database, 4_000)):
        moment = now - randoms.uniform(0, 2 * 3600)
        kind = randoms.choice(["view", "view", "click", "rate", "watchlist_add"])
        record = event(
            n,
            event_time=utc_iso(moment),
            movie_id=f"tt{1 + n % 3:07d}",
            user_id=f"u{randoms.randrange(300):07d}",
            event_type=kind,
        )
        if kind == "rate":
            record["rating"] = randoms.randint(1, 10)
        records.append(record)
    movie = Movie("tt0000001", "[b]Bold[/b] \x1b[31m", 1994, ("Drama", "Crime"))
    store = database.open()
    store.save_movies([movie])
    store.close()
    await ingest(database, records, clock)

    def recount(day: str) -> tuple[Counter[str], set[str], Counter[int]]:
        types: Counter[str] = Counter()
        users: set[str] = set()
        ratings: Counter[int] = Counter()
        for record in records:
            moment = datetime.fromisoformat(str(record["event_time"])).timestamp()
            if record["movie_id"] == movie.movie_id and local_day(moment, kolkata) == day:
                types[str(record["event_type"])] += 1
                users.add(str(record["user_id"]))
                if record["event_type"] == "rate":
                    ratings[int(record["rating"])] += 1  # type: ignore[call-overload]
        return types, users, ratings

    store = database.open(create=False)
    try:
        today = read_movie(store, movie.movie_id, now, kolkata)
        yesterday = read_movie(store, movie.movie_id, now - 3600, kolkata)
    finally:
        store.close()
    assert (today.title, today.year, today.genres) == (movie.title, 1994, ("Drama", "Crime"))
    for day, figures in (("2026-11-24", today), ("2026-11-23", yesterday)):
        types, users, ratings = recount(day)
        assert figures.day == day
        assert figures.by_type == {kind: types[kind] for kind in EVENT_TYPES}
        assert figures.users == len(users) > scaled(database, 50)
        assert figures.ratings == Ratings.of(ratings)
    minutes: Counter[str] = Counter(
        str(r["event_time"])[:16] + "Z"
        for r in records
        if r["movie_id"] == movie.movie_id and r["event_type"] == "view"
    )
    assert [(m.minute, m.events) for m in today.per_minute] == [
        (minute_key(now - 60 * back), minutes[minute_key(now - 60 * back)])
        for back in range(59, -1, -1)
    ]
    assert today.views == today.by_type["view"] and sum(
        m.events for m in today.per_minute
    ) > scaled(database, 100)
    report = today.to_json()
    assert report["users"] == today.users and report["views"] == today.by_type["view"]
    assert report["avg_rating"] == round(today.ratings.average or 0, 3)


async def test_trending_read_again_keeps_up_with_new_views_and_new_periods(
    database: Database,
) -> None:
    """One reader's Trending reads what lies before this five-minute period at its
    start and again 30 s in, and keeps it: read again, it counts new views of this
    period at once, and views that came late for earlier ones from the next read of
    them on."""
    period = datetime.fromisoformat("2026-11-23T10:00:00+00:00").timestamp()
    now = period + 150
    randoms = random.Random(7)

    def views(first: int, count: int, since: float, until: float) -> list[dict[str, object]]:
        return [
            event(
                n,
                event_time=utc_iso(randoms.uniform(since, until)),
                movie_id=f"tt{randoms.randrange(20):07d}",
            )
            for n in range(first, first + count)
        ]

    clock = ManualClock(period + 600, UTC)
    await ingest(database, views(0, scaled(database, 3_000), now - 5400, now), clock)
    store = database.open(create=False)
    kept = Trending()
    try:
        assert kept(store, now) == trending(store, now) != ()
        await ingest(database, views(3_000, 300, period, now), clock)  # this period
        assert kept(store, now + 1) == trending(store, now + 1)
        await ingest(database, views(4_000, 600, now - 3600, now - 1200), clock)  # late
        assert kept(store, now + 2) != trending(store, now + 2)
        later = period + 301  # the next period: read again
        assert kept(store, later) == trending(store, later)
        await ingest(database, views(5_000, 300, period + 240, period + 299), clock)  # in flight
        assert kept(store, later + 1) != trending(store, later + 1)
        assert kept(store, later + 30) == trending(store, later + 30)  # read again 30 s in
    finally:
        store.close()


async def test_a_past_days_figures_match_a_recount(database: Database) -> None:
    """Three local days (Kolkata) of seeded events, out of order within each hour and
    in batches that span midnight: each past day's daily figures (events, by type, by
    hour, top movies, ratings, users) against a recount; the live ones stay today's."""
    kolkata = ZoneInfo("Asia/Kolkata")
    start = datetime.fromisoformat("2026-11-20T18:30:00+00:00").timestamp()  # 00:00 local
    now = start + 2 * 86400 + 5 * 3600  # 05:00 local on the third day
    randoms = random.Random(47)
    records = []
    for n in range(scaled(database, 6_000)):
        moment = start + randoms.uniform(0, now - start)
        kind = randoms.choice(["view", "view", "click", "rate", "watchlist_add"])
        record = event(
            n,
            event_time=utc_iso(moment),
            movie_id=f"tt{1 + int(randoms.paretovariate(1.2)) % 40:07d}",
            user_id=f"u{randoms.randrange(900):07d}",
            event_type=kind,
        )
        if kind == "rate":
            record["rating"] = randoms.randint(1, 10)
        records.append(record)
    # In time order but for a shuffle within each hour: nothing arrives after an event
    # of its user on a later day, so each day's users are exact.
    records.sort(key=lambda r: (str(r["event_time"])[:13], randoms.random()))
    await ingest(database, records, ManualClock(now, kolkata), batch_size=700, chunk_size=350)

    def local(record: dict[str, object]) -> datetime:
        return datetime.fromisoformat(str(record["event_time"])).astimezone(kolkata)

    store = database.open(create=False)
    try:
        for day in ("2026-11-21", "2026-11-22"):
            figures = read_snapshot(store, now, kolkata, 5, day=day)
            of_day = [r for r in records if local(r).date().isoformat() == day]
            assert (figures.day, figures.past, figures.oldest_day) == (day, True, "2026-11-21")
            assert figures.events_today == len(of_day) > len(records) // 3
            assert figures.by_type == dict(Counter(str(r["event_type"]) for r in of_day))
            assert list(figures.per_hour) == [
                sum(1 for r in of_day if local(r).hour == hour) for hour in range(24)
            ]
            assert figures.users_today == len({r["user_id"] for r in of_day})
            views = Counter(str(r["movie_id"]) for r in of_day if r["event_type"] == "view")
            ranked = sorted(views.items(), key=lambda item: (-item[1], item[0]))[:10]
            assert [(m.movie_id, m.views) for m in figures.top_movies] == ranked
            rated = Counter(int(r["rating"]) for r in of_day if r["event_type"] == "rate")  # type: ignore[call-overload]
            assert figures.ratings == Ratings.of(rated)
            # The live figures are the present's, whatever day is shown.
            today = read_snapshot(store, now, kolkata, 5)
            assert figures.active_users == today.active_users
            assert figures.per_minute == today.per_minute
            assert figures.trending == today.trending
        today = read_snapshot(store, now, kolkata, 5, day="2026-11-23")
        assert (today.day, today.past) == ("2026-11-23", False)  # today: live
        assert store.users_on("2026-11-23") == today.users_today
        assert read_snapshot(store, now, kolkata, 5, day="2026-11-19").users_today == 0
    finally:
        store.close()


async def test_a_days_users_count_each_user_once_as_events_come(database: Database) -> None:
    """A user counts on each day of their events, once; an event that arrives after one
    of theirs on a later day does not count them again (the documented limit)."""
    clock = ManualClock(NOW, UTC)
    day1, day2 = "2026-11-21", "2026-11-22"
    batches = [
        [event(1, user_id="a", event_time=f"{day1}T10:00:00.000Z")],
        [
            event(2, user_id="a", event_time=f"{day1}T11:00:00.000Z"),  # a again: once
            event(3, user_id="b", event_time=f"{day1}T23:59:59.999Z"),
            event(4, user_id="b", event_time=f"{day2}T00:00:00.000Z"),  # spans midnight
            event(5, user_id="c", event_time=f"{day2}T01:00:00.000Z"),
        ],
        [
            event(6, user_id="d", event_time=f"{day1}T12:00:00.000Z"),  # late: counts
            event(7, user_id="c", event_time=f"{day1}T12:00:00.000Z"),  # after day2's: not
            event(4, user_id="b", event_time=f"{day2}T00:00:00.000Z"),  # a duplicate
        ],
    ]
    for batch in batches:
        await ingest(database, batch, clock)
    store = database.open(create=False)
    try:
        assert (store.users_on(day1), store.users_on(day2)) == (3, 2)  # a b d; b c
    finally:
        store.close()
