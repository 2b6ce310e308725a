"""A BI dashboard's query on PostgreSQL: events per minute by type over the last hour.

    python bench/dashboard.py [--events 1500000]

Needs the PostgreSQL server binaries (a throwaway server on a free loopback port, as
the tests do) or IMDB_TUI_BENCH_POSTGRES, a URL. EVENTS events over the last 24
hours go into two schemas, made the same way in this run:
- `before`: the events table as imdb-tui stored it before schema 13, times as
  text; the query must cast (`date_trunc('minute', event_time::timestamptz)`,
  `event_time::timestamptz >= now() - interval '1 hour'`);
- `after`: the table as this imdb-tui makes it, times as timestamptz; the same
  query without casts.
Each query's median time of 7 runs, and the ratio, are printed, with whether the
plan used the events_by_time index.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg

from imdb_tui.store import open_store
from tests.postgres_server import throwaway_server

BEFORE = (
    "SELECT date_trunc('minute', event_time::timestamptz) AS minute, event_type, count(*)"
    " FROM events WHERE event_time::timestamptz >= now() - interval '1 hour'"
    " GROUP BY 1, 2 ORDER BY 1"
)
AFTER = (
    "SELECT date_trunc('minute', event_time) AS minute, event_type, count(*)"
    " FROM events WHERE event_time >= now() - interval '1 hour' GROUP BY 1, 2 ORDER BY 1"
)
FILL = (
    "INSERT INTO events (event_id, event_time, user_id, session_id, movie_id, event_type)"
    " SELECT lpad(to_hex(i), 16, '0') || '-bench', {time}, 'u' || (i %% 100000),"
    " 's' || (i / 8), 'tt' || (1000000 + i %% 1000),"
    " (ARRAY['view','view','view','click','rate','watchlist_add'])[1 + i %% 6]"
    " FROM generate_series(0, %(count)s - 1) AS i"
)
MOMENT = "now() - interval '1 day' + i * interval '1 day' / %(count)s"
TEXT_TIME = f"""to_char(({MOMENT}) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')"""


def timed(db: psycopg.Connection, sql: str) -> tuple[float, bool]:
    """The median seconds of 7 runs (after one to warm the cache), and whether the
    plan reads the index on event_time."""
    db.execute(sql)  # type: ignore[call-overload]
    runs = []
    for _ in range(7):
        started = time.perf_counter()
        db.execute(sql).fetchall()  # type: ignore[call-overload]
        runs.append(time.perf_counter() - started)
    plan = "\n".join(row[0] for row in db.execute("EXPLAIN " + sql))  # type: ignore[call-overload]
    return statistics.median(runs), "events_by_time" in plan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_500_000)
    args = parser.parse_args()
    with ExitStack() as stack:
        url = (
            os.environ.get("IMDB_TUI_BENCH_POSTGRES")
            or stack.enter_context(throwaway_server()).url()
        )
        open_store(url, pg_schema="after").close()
        with psycopg.connect(url, autocommit=True) as db:
            db.execute("DROP SCHEMA IF EXISTS before CASCADE")
            db.execute("CREATE SCHEMA before")
            db.execute(
                "CREATE TABLE before.events (seq bigserial PRIMARY KEY, event_id text NOT NULL"
                " UNIQUE, event_time text NOT NULL, user_id text NOT NULL, session_id text"
                " NOT NULL, movie_id text NOT NULL, event_type text NOT NULL, rating integer)"
            )
            db.execute("CREATE INDEX events_by_time ON before.events (event_time)")
            figures = {}
            for schema, moment, query in (
                ("before", TEXT_TIME, BEFORE),
                ("after", MOMENT, AFTER),
            ):
                db.execute(f"SET search_path TO {schema}")
                db.execute(FILL.format(time=moment), {"count": args.events})  # type: ignore[arg-type]
                db.execute("VACUUM ANALYZE events")
                figures[schema] = timed(db, query)
            db.execute("DROP SCHEMA before CASCADE")
            db.execute("DROP SCHEMA after CASCADE")
    for schema, (seconds, indexed) in figures.items():
        how = "by the index" if indexed else "a sequential scan"
        print(f"{schema:7} {seconds * 1000:8.1f} ms  ({how})")
    print(f"after/before: {figures['after'][0] / figures['before'][0]:.3f}x")


if __name__ == "__main__":
    main()
