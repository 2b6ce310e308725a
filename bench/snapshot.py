"""Cost of one metrics snapshot with 100 thousand and with 10 million stored events.

    python bench/snapshot.py [--big 10000000]

Each database holds events spread over the last 7 days (the default retention),
from 20,000 users over 1,000 titles, with the aggregate tables the pipeline would
have built for them. A snapshot reads only those small tables, so its cost should
not grow with the number of events; the seed's queries (COUNT(DISTINCT) and
GROUP BY over every raw event) are timed on the same files for contrast.
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
from imdb_tui.metrics import read_snapshot
from imdb_tui.store import open_store

SPAN = 7 * 86400


def build(path: Path, count: int, now: float) -> None:
    """A database of `count` events, made in SQL (fast), with matching aggregates."""
    store = open_store(fresh(path))
    store.save_movies(build_catalog(0).movies)
    store.close()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA synchronous = OFF")
    db.execute("BEGIN")
    db.execute(
        """
        WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < :count)
        INSERT INTO events (event_id, event_time, user_id, session_id, movie_id, event_type, rating)
        SELECT printf('%016x-bench', i),
               strftime('%Y-%m-%dT%H:%M:%f', :start + i * :span / :count, 'unixepoch') || 'Z',
               printf('u%07d', abs(random()) % 20000),
               printf('s%012x', i / 8),
               (SELECT movie_id FROM movies LIMIT 1 OFFSET abs(random()) % 1000),
               CASE abs(random()) % 20 WHEN 0 THEN 'rate' WHEN 1 THEN 'watchlist_add'
                    WHEN 2 THEN 'click' WHEN 3 THEN 'click' WHEN 4 THEN 'click'
                    ELSE 'view' END,
               NULL
        FROM n
        """,
        {"count": count, "start": now - SPAN, "span": SPAN},
    )
    db.execute("UPDATE events SET rating = 1 + abs(random()) % 10 WHERE event_type = 'rate'")
    db.execute(
        "INSERT INTO events_per_minute SELECT substr(event_time, 1, 16) || 'Z', event_type,"
        " count(*) FROM events GROUP BY 1, 2"
    )
    db.execute(
        "INSERT INTO events_per_quarter_hour SELECT substr(minute, 1, 14)"
        " || printf('%02d', CAST(substr(minute, 15, 2) AS INTEGER) / 15 * 15) || 'Z',"
        " event_type, sum(events) FROM events_per_minute GROUP BY 1, 2"
    )
    db.execute(
        "INSERT INTO movie_views_daily SELECT substr(event_time, 1, 10), movie_id, count(*)"
        " FROM events WHERE event_type = 'view' GROUP BY 1, 2"
    )
    db.execute("INSERT INTO user_activity SELECT user_id, max(event_time) FROM events GROUP BY 1")
    db.execute("INSERT INTO counters VALUES ('events_total', ?)", (count,))
    db.execute("COMMIT")
    db.close()


def seed_queries(db: sqlite3.Connection, now: float) -> None:
    """What the seed's Streamlit page ran on every refresh."""
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now - 300))
    db.execute("SELECT COUNT(DISTINCT user_id) FROM events WHERE event_time >= ?", (since,))
    db.execute("SELECT COUNT(*) FROM events").fetchall()
    db.execute(
        "SELECT movie_id, COUNT(*) AS n FROM events WHERE event_type = 'view'"
        " GROUP BY movie_id ORDER BY n DESC LIMIT 10"
    ).fetchall()
    db.execute("SELECT event_type, COUNT(*) FROM events GROUP BY event_type").fetchall()


def measure(path: Path, now: float) -> tuple[float, float]:
    store = open_store(path)
    read_snapshot(store, now, UTC, 5)  # warm the page cache, as a running monitor has it
    ours = median_seconds(lambda: read_snapshot(store, now, UTC, 5), repeat=50)
    store.close()
    db = sqlite3.connect(path)
    seed = median_seconds(lambda: seed_queries(db, now), repeat=3)
    db.close()
    return ours, seed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--big", type=int, default=10_000_000)
    args = parser.parse_args()
    now = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        for count in (args.small, args.big):
            path = Path(tmp) / f"{count}.db"
            started = time.perf_counter()
            build(path, count, now)
            print(
                f"built {count:>12,} events in {time.perf_counter() - started:6.1f} s", flush=True
            )
            results[count] = measure(path, now)
            path.unlink()
    for count, (ours, seed) in results.items():
        print(
            f"snapshot, {count:>12,} events: {ours * 1000:8.2f} ms  (seed's queries: {seed:.2f} s)"
        )
    (small, seed_small), (big, seed_big) = results[args.small], results[args.big]
    print(f"ratio big/small                : {big / small:8.2f}x   (target <= 2, and <= 10 ms)")
    print(f"seed's queries, ratio big/small: {seed_big / seed_small:8.2f}x")


if __name__ == "__main__":
    main()
