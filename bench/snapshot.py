"""Cost of one metrics snapshot: 100 thousand and 10 million events, and many users.

    python bench/snapshot.py [--big 10000000] [--users 20000,1000000]

Each database holds events spread over the last 7 days (the default retention),
from USERS distinct users taking turns (so all of them are users today, which is
nearly over) over 1,000 titles, with the aggregate tables the
pipeline would have built for them. A snapshot reads only those tables, so its
cost should not grow with the number of events; the seed's queries
(COUNT(DISTINCT) and GROUP BY over every raw event) are timed on the same files
for contrast. A fifth of the events go to one title, as at the head of a real
catalogue; the top title's movie screen is timed too. The store counts active
users and users today from per-minute counts of users' last-seen minutes; the
big database is built once for each number of users given, to show that the
cost does not follow them.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from datetime import UTC
from pathlib import Path

from common import fresh, median_seconds

from imdb_tui.catalog import build_catalog
from imdb_tui.clock import day_after
from imdb_tui.metrics import Trending, read_movie, read_snapshot
from imdb_tui.store import RECENT_KEPT_SECONDS, open_store

SPAN = 7 * 86400


def build(path: Path, count: int, now: float, users: int) -> None:
    """A database of `count` events, made in SQL (fast), with matching aggregates."""
    store = open_store(fresh(path))
    store.save_movies(build_catalog(0).movies)
    store.close()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA synchronous = OFF")
    db.execute("BEGIN")
    db.execute(
        "CREATE TEMPORARY TABLE titles AS SELECT row_number() OVER (ORDER BY movie_id) - 1"
        " AS n, movie_id FROM movies"
    )
    db.execute("CREATE UNIQUE INDEX temp.titles_by_n ON titles (n)")
    db.execute(
        """
        WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < :count)
        INSERT INTO events (event_id, event_time, user_id, session_id, movie_id, event_type, rating)
        SELECT printf('%016x-bench', i),
               CAST(round((:start + i * :span / :count) * 1000) AS INTEGER),
               printf('u%07d', i % :users),
               printf('s%012x', i / 8),
               -- A fifth of the events go to one title (a real catalogue's head is as
               -- steep): its movie screen counts the most users.
               (SELECT movie_id FROM titles WHERE titles.n =
                    CASE WHEN (i + abs(random())) % 5 = 0 THEN 0 ELSE (i + abs(random())) % 1000
                    END),
               CASE abs(random()) % 20 WHEN 0 THEN 'rate' WHEN 1 THEN 'watchlist_add'
                    WHEN 2 THEN 'click' WHEN 3 THEN 'click' WHEN 4 THEN 'click'
                    ELSE 'view' END,
               NULL
        FROM n
        """,
        {"count": count, "start": now - SPAN, "span": SPAN, "users": users},
    )
    db.execute("UPDATE events SET rating = 1 + abs(random()) % 10 WHERE event_type = 'rate'")
    db.execute(
        "INSERT INTO events_per_minute SELECT substr(event_time, 1, 16) || 'Z', event_type,"
        " count(*) FROM events_with_titles GROUP BY 1, 2"
    )
    db.execute(
        "INSERT INTO events_per_quarter_hour SELECT substr(minute, 1, 14)"
        " || printf('%02d', CAST(substr(minute, 15, 2) AS INTEGER) / 15 * 15) || 'Z',"
        " event_type, sum(events) FROM events_per_minute GROUP BY 1, 2"
    )
    db.execute(
        "INSERT INTO movie_views_daily SELECT substr(event_time, 1, 10), movie_id, count(*)"
        " FROM events_with_titles WHERE event_type = 'view' GROUP BY 1, 2"
    )
    db.execute(
        "INSERT INTO user_activity SELECT user_id, max(event_time) FROM events_with_titles"
        " GROUP BY 1"
    )
    db.execute(
        "INSERT INTO users_per_last_minute SELECT substr(last_seen, 1, 16) || 'Z', count(*)"
        " FROM user_activity GROUP BY 1"
    )
    recent = time.strftime("%Y-%m-%dT%H:%M", time.gmtime(now - RECENT_KEPT_SECONDS))
    db.execute(
        "INSERT INTO recent_views SELECT substr(event_time, 1, 14)"
        " || printf('%02d', CAST(substr(event_time, 15, 2) AS INTEGER) / 5 * 5) || 'Z',"
        " movie_id, count(*) FROM events_with_titles WHERE event_type = 'view' AND event_time >= ?"
        " GROUP BY 1, 2",
        (recent,),
    )
    db.execute(
        "INSERT INTO movie_views_per_minute SELECT movie_id, substr(event_time, 1, 16) || 'Z',"
        " count(*) FROM events_with_titles WHERE event_type = 'view' AND event_time >= ?"
        " GROUP BY 1, 2",
        (recent,),
    )
    db.execute(
        "INSERT INTO movie_events_daily SELECT substr(event_time, 1, 10), movie_id, event_type,"
        " count(*) FROM events_with_titles GROUP BY 1, 2, 3"
    )
    db.execute(
        "INSERT INTO movie_users_daily SELECT DISTINCT substr(event_time, 1, 10), movie_id,"
        " user_id FROM events_with_titles"
    )
    db.execute(
        "INSERT INTO movie_user_counts SELECT day, movie_id, count(*) FROM movie_users_daily"
        " GROUP BY 1, 2"
    )
    db.execute(
        "INSERT INTO users_daily SELECT substr(event_time, 1, 10), count(DISTINCT user_id)"
        " FROM events_with_titles GROUP BY 1"
    )
    db.execute(
        "INSERT INTO ratings_daily SELECT substr(event_time, 1, 10), rating, count(*)"
        " FROM events_with_titles WHERE event_type = 'rate' GROUP BY 1, 2"
    )
    db.execute(
        "INSERT INTO movie_ratings_daily SELECT substr(event_time, 1, 10), movie_id, rating,"
        " count(*) FROM events_with_titles WHERE event_type = 'rate' GROUP BY 1, 2, 3"
    )
    db.execute("INSERT INTO counters VALUES ('events_total', ?)", (count,))
    db.execute("COMMIT")
    db.close()


def seed_queries(db: sqlite3.Connection, now: float) -> None:
    """What the seed's Streamlit page ran on every refresh."""
    since = int((now - 300) * 1000)  # as the store keeps times
    db.execute("SELECT COUNT(DISTINCT user_id) FROM events WHERE event_time >= ?", (since,))
    db.execute("SELECT COUNT(*) FROM events").fetchall()
    db.execute(
        "SELECT movie_id, COUNT(*) AS n FROM events WHERE event_type = 'view'"
        " GROUP BY movie_id ORDER BY n DESC LIMIT 10"
    ).fetchall()
    db.execute("SELECT event_type, COUNT(*) FROM events GROUP BY event_type").fetchall()


def measure(path: Path, now: float, seed: bool = True) -> tuple[float, ...]:
    """The snapshot's median time (as a monitor reads it, again and again), the seed's
    queries' (0 if not asked), users today, the top movie's screen (its median time
    and its users today), and yesterday's: the snapshot's and the movie screen's."""
    store = open_store(path)
    trends = Trending()
    first = read_snapshot(store, now, UTC, 5, trends=trends)  # and warm the page cache
    ours = median_seconds(lambda: read_snapshot(store, now, UTC, 5, trends=trends), repeat=20)
    top = first.top_movies[0].movie_id
    movie = median_seconds(lambda: read_movie(store, top, now, UTC), repeat=20)
    movie_users = read_movie(store, top, now, UTC).users
    day = day_after(first.day, -1)
    past = read_snapshot(store, now, UTC, 5, trends=trends, day=day)
    assert past.past and past.users_today and past.events_today
    past_seconds = median_seconds(
        lambda: read_snapshot(store, now, UTC, 5, trends=trends, day=day), repeat=20
    )
    past_movie = median_seconds(lambda: read_movie(store, top, now, UTC, day), repeat=20)
    store.close()
    theirs = 0.0
    if seed:
        db = sqlite3.connect(path)
        theirs = median_seconds(lambda: seed_queries(db, now), repeat=3)
        db.close()
    users_today = first.users_today or 0
    return ours, theirs, users_today, movie, movie_users, past_seconds, past_movie


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--big", type=int, default=10_000_000)
    parser.add_argument("--users", default="20000,1000000", help="comma-separated")
    args = parser.parse_args()
    users = [int(n) for n in args.users.split(",")]
    # A minute before UTC midnight: "today" holds a seventh of the events, enough for
    # every user (they take turns) to be a user today.
    now = (time.time() // 86400 + 1) * 86400 - 60
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for count, people in [(args.small, users[0])] + [(args.big, n) for n in users]:
            path = Path(tmp) / f"{count}-{people}.db"
            started = time.perf_counter()
            build(path, count, now, people)
            print(
                f"built {count:>12,} events of {people:>9,} users"
                f" in {time.perf_counter() - started:6.1f} s",
                flush=True,
            )
            results[count, people] = measure(path, now, seed=people == users[0])
            path.unlink()
    for (count, _), (ours, seed, today, *_) in results.items():
        seeds = f"  (seed's queries: {seed:.2f} s)" if seed else ""
        print(
            f"snapshot, {count:>12,} events, {today:>9,} users today: {ours * 1000:8.2f} ms{seeds}"
        )
    for (count, _), (ours, _, today, _, _, past, past_movie) in results.items():
        print(
            f"yesterday, {count:>12,} events, {today:>9,} users: snapshot {past * 1000:6.2f} ms"
            f" ({past / ours:.2f}x today's), movie screen {past_movie * 1000:6.2f} ms"
            "   (goal <= 20 ms)"
        )
    for (count, _), (_, _, today, movie, movie_users, _, _) in results.items():
        print(
            f"movie screen, {count:>12,} events, {today:>9,} users today, the top movie's"
            f" {movie_users:>9,}: {movie * 1000:8.2f} ms   (goal <= 20 ms)"
        )
    small, seed_small, *_ = results[args.small, users[0]]
    big, seed_big, *_ = results[args.big, users[0]]
    print(f"ratio big/small, {users[0]:,} users  : {big / small:8.2f}x   (goal <= 2)")
    print(f"seed's queries, ratio big/small: {seed_big / seed_small:8.2f}x")
    for people in users[1:]:
        many = results[args.big, people][0]
        print(
            f"{people:,} users / {users[0]:,} users: {many / big:8.2f}x"
            f"   ({many * 1000:.1f} ms; goal <= 10 ms and <= 2x)"
        )


if __name__ == "__main__":
    main()
