"""PostgreSQL as the store: one writer against COPY, many writers, and a snapshot.

    python bench/postgres.py [--seconds 30] [--big 10000000] [--users 1000000]

Needs the PostgreSQL server binaries (a throwaway server is started on a free
loopback port, as the tests do) or IMDB_TUI_BENCH_POSTGRES, a URL. All in this run:
- one `imdb-tui run --rate max` into PostgreSQL, against COPY of the very rows it
  stored into an unindexed table (the ceiling: no dedupe, no aggregates);
- 1, 2 and 4 such writers at once into one schema (different seeds): events/s
  in all, and events per CPU-second spent by the writers (with their writer
  processes) and the server together, the VACUUM ANALYZE of what each run wrote
  included (else autovacuum does it during the next run, on its account). Two
  cores cannot show a linear speed-up; this shows whether writers fight (locks,
  retries) as they are added;
- one metrics snapshot over BIG events from USERS distinct users, all of them
  users today (made in SQL, with their aggregates), read through the store.
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import subprocess
import sys
import time
import uuid
from contextlib import ExitStack
from datetime import UTC
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg
from common import _DONE, COMMAND, median_seconds

from imdb_tui.metrics import read_snapshot
from imdb_tui.store import open_store
from tests.postgres_server import throwaway_server

TICKS = os.sysconf("SC_CLK_TCK")


def server_cpu(postmaster: int) -> float:
    """CPU seconds of the server: the postmaster with every child it reaped, and its
    children still running (background workers, open backends)."""

    def stat(pid: int) -> list[str]:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()

    own = stat(postmaster)
    total = sum(int(v) for v in own[11:15])  # utime stime cutime cstime
    for child in Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split():
        try:
            fields = stat(int(child))
        except FileNotFoundError:  # ended meanwhile: counted in cutime next time
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICKS


def postmaster_pid(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as db:
        folder = db.execute("SHOW data_directory").fetchone()[0]  # type: ignore[index]
    return int(Path(folder, "postmaster.pid").read_text().split()[0])


def writers(url: str, schema: str, count: int, seconds: float) -> tuple[int, float, float]:
    """`count` writers at max rate for `seconds`: (events stored, seconds, writers' CPU s,
    their start-up included)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    processes = [
        subprocess.Popen(
            [
                COMMAND,
                "run",
                "--db",
                url,
                "--pg-schema",
                schema,
                "--rate",
                "max",
                "--duration",
                str(seconds),
                "--seed",
                str(100 + n),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for n in range(count)
    ]
    outputs = [p.communicate()[0] for p in processes]
    if any(p.returncode for p in processes):
        raise SystemExit("a writer failed:\n" + "\n".join(outputs))
    # Each writer's own time from its summary: the start-up of the processes not counted.
    wall = max(float(_DONE.search(out)[2].replace(",", "")) for out in outputs)  # type: ignore[index]
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    store = open_store(url, read_only=True, pg_schema=schema)
    stored = store.counters().get("events_total", 0)
    store.close()
    return stored, wall, cpu


def settle(url: str, schema: str) -> None:
    """VACUUM ANALYZE what a run wrote: the upkeep autovacuum would otherwise do later,
    during (and on the account of) the next run."""
    with psycopg.connect(url, autocommit=True) as db:
        tables = db.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,)
        ).fetchall()
        for (table,) in tables:
            db.execute(f'VACUUM ANALYZE "{schema}"."{table}"')


def drop(url: str, schema: str) -> None:
    with psycopg.connect(url, autocommit=True) as db:
        db.execute(f'DROP SCHEMA "{schema}" CASCADE')


def copy_ceiling(url: str, schema: str) -> tuple[int, float]:
    """The stored events COPYed into an unindexed table: (rows, seconds)."""
    with psycopg.connect(url, autocommit=True) as db:
        db.execute(f'SET search_path TO "{schema}"')
        data = io.BytesIO()
        with db.cursor().copy(
            "COPY (SELECT event_id, event_time, user_id, session_id, movie_id, event_type,"
            " rating FROM events) TO STDOUT"
        ) as out:
            for block in out:
                data.write(block)
        db.execute(
            "CREATE UNLOGGED TABLE IF NOT EXISTS copied (event_id text, event_time timestamptz,"
            " user_id text, session_id text, movie_id text, event_type text, rating integer)"
        )
        db.execute("ALTER TABLE copied SET LOGGED")  # as the events table is
        started = time.perf_counter()
        with db.transaction(), db.cursor().copy("COPY copied FROM STDIN") as into:
            into.write(data.getvalue())
        seconds = time.perf_counter() - started
        rows = db.execute("SELECT count(*) FROM copied").fetchone()[0]  # type: ignore[index]
    return int(rows), seconds


def build(url: str, schema: str, count: int, users: int, now: float) -> None:
    """BIG events over the last 7 days ending a minute before UTC midnight, users taking
    turns (so all are users today), with the aggregates the pipeline would keep."""
    open_store(url, pg_schema=schema).close()
    span = 7 * 86400
    with psycopg.connect(url, autocommit=True) as db:
        db.execute(f'SET search_path TO "{schema}"')
        db.execute("SET synchronous_commit = off")
        with db.transaction():
            db.execute(
                "INSERT INTO events (event_id, event_time, user_id, session_id, movie_id,"
                " event_type) SELECT lpad(to_hex(i), 16, '0') || '-bench',"
                " date_trunc('milliseconds',"
                " to_timestamp(%(start)s + i * %(span)s::float8 / %(count)s)),"
                " 'u' || lpad((i %% %(users)s)::text, 7, '0'), 's' || (i / 8),"
                " 'tt' || lpad((1000000 + i %% 1000)::text, 7, '0'),"
                " (ARRAY['view','view','view','click','rate','watchlist_add'])[1 + i %% 6]"
                " FROM generate_series(0, %(count)s - 1) AS i",
                {"start": now - span, "span": span, "count": count, "users": users},
            )
            db.execute("UPDATE events SET rating = 1 + seq % 10 WHERE event_type = 'rate'")
            db.execute(
                "INSERT INTO events_per_minute SELECT date_trunc('minute', event_time), event_type,"
                " count(*) FROM events GROUP BY 1, 2"
            )
            db.execute(
                "INSERT INTO events_per_quarter_hour SELECT date_trunc('hour', minute)"
                " + floor(extract(minute FROM minute) / 15) * interval '15 minutes',"
                " event_type, sum(events) FROM events_per_minute GROUP BY 1, 2"
            )
            db.execute(
                "INSERT INTO movie_views_daily SELECT CAST(event_time AT TIME ZONE 'UTC' AS date),"
                " movie_id, count(*)"
                " FROM events WHERE event_type = 'view' GROUP BY 1, 2"
            )
            db.execute(
                "INSERT INTO user_activity (user_id, last_seen)"
                " SELECT user_id, max(event_time) FROM events GROUP BY 1"
            )
            db.execute(
                "INSERT INTO users_per_last_minute SELECT date_trunc('minute', last_seen), count(*)"
                " FROM user_activity GROUP BY 1"
            )
            db.execute("INSERT INTO counters VALUES ('events_total', %s)", (count,))
        db.execute("VACUUM ANALYZE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--big", type=int, default=10_000_000)
    parser.add_argument("--users", type=int, default=1_000_000)
    args = parser.parse_args()
    with ExitStack() as stack:
        url = os.environ.get("IMDB_TUI_BENCH_POSTGRES")
        if url is None:
            url = stack.enter_context(throwaway_server()).url()
        postmaster = postmaster_pid(url)

        per_cpu = {}
        for count in (1, 2, 4):
            schema = f"bench_{uuid.uuid4().hex[:8]}"
            server_before = server_cpu(postmaster)
            stored, wall, cpu = writers(url, schema, count, args.seconds)
            settle(url, schema)  # the run's own upkeep is charged to it, not to the next
            server = server_cpu(postmaster) - server_before
            per_cpu[count] = stored / (cpu + server)
            print(
                f"{count} writer(s): {stored / wall:>9,.0f} events/s in all"
                f"   {per_cpu[count]:>8,.0f} events per CPU-second"
                f" (writers {cpu:5.1f} s, server {server:5.1f} s, {stored:,} events)",
                flush=True,
            )
            if count == 1:
                one = stored / wall
                rows, seconds = copy_ceiling(url, schema)
                ceiling = rows / seconds
                print(f"COPY of the same rows, unindexed: {ceiling:>9,.0f} rows/s", flush=True)
            drop(url, schema)
        print(f"one writer / COPY ceiling           : {one / ceiling:6.2f}x   (goal >= 0.3x)")
        print(
            f"events per CPU-second, 4 writers / 1: {per_cpu[4] / per_cpu[1]:6.2f}x"
            "   (goal >= 0.8x: writers do not fight)"
        )

        schema = f"bench_{uuid.uuid4().hex[:8]}"
        now = (time.time() // 86400 + 1) * 86400 - 60
        started = time.perf_counter()
        build(url, schema, args.big, args.users, now)
        print(
            f"built {args.big:,} events of {args.users:,} users in"
            f" {time.perf_counter() - started:.0f} s",
            flush=True,
        )
        store = open_store(url, read_only=True, pg_schema=schema)
        today = read_snapshot(store, now, UTC, 5).users_today
        took = median_seconds(lambda: read_snapshot(store, now, UTC, 5), repeat=20)
        store.close()
        print(
            f"snapshot, {args.big:,} events, {today:,} users today: {took * 1000:.1f} ms"
            "   (goal <= 20 ms)"
        )


if __name__ == "__main__":
    main()
