"""Headless ingest at --rate max, against the seed's design and the raw SQLite ceiling.

    python bench/ingest.py [--seconds 20]

All three are measured in this run, on this machine, with the same simulated events:
- imdb-tui: `imdb-tui run --rate max` into a file database (validation, dedupe, metrics on).
- seed: the original demo's design: a producer thread, queue.Queue, and a consumer
  doing one INSERT and one commit per event (default SQLite settings, no sleeps).
- seed, batched commits: the same, kindly given WAL and one commit per 1,000
  events; the harder reference, and the one the 1.5x target is checked against.
- ceiling: the stored rows, executemany'd into an unindexed table (WAL, one
  transaction per 20,000 rows): what SQLite does with no pipeline at all.
"""

from __future__ import annotations

import argparse
import queue
import sqlite3
import tempfile
import threading
import time
from pathlib import Path

from common import fresh, run_headless

from imdb_tui.catalog import build_catalog
from imdb_tui.clock import SystemClock
from imdb_tui.simulator import Simulator, SimulatorSettings


def seed_design(path: Path, seconds: float, commit_every: int = 1) -> float:
    """Events per second of the seed's thread + queue.Queue + INSERT-per-event design."""
    db = sqlite3.connect(path, check_same_thread=False)
    if commit_every > 1:
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
    db.execute(
        "CREATE TABLE events (event_id TEXT, event_time TEXT, user_id TEXT, session_id TEXT,"
        " movie_id TEXT, event_type TEXT, rating INTEGER)"
    )
    db.commit()
    simulator = Simulator(build_catalog(0), SimulatorSettings(), SystemClock())
    events: queue.Queue[dict[str, object]] = queue.Queue()
    stop = threading.Event()

    def produce() -> None:
        while not stop.is_set():
            for record in simulator.records(100):
                events.put(record)  # unbounded, as in the seed: it grows while we measure

    stored = 0
    producer = threading.Thread(target=produce)
    start = time.perf_counter()
    producer.start()
    while time.perf_counter() - start < seconds:
        record = events.get()
        db.execute(
            "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                record["event_id"],
                record["event_time"],
                record["user_id"],
                record["session_id"],
                record["movie_id"],
                record["event_type"],
                record.get("rating"),
            ),
        )
        stored += 1
        if stored % commit_every == 0:
            db.commit()
    db.commit()
    elapsed = time.perf_counter() - start
    stop.set()
    producer.join()
    db.close()
    return stored / elapsed


def ceiling(source: Path, path: Path, rows: int) -> float:
    """Rows per second of plain executemany into an unindexed table."""
    with sqlite3.connect(source) as db:
        data = db.execute(
            "SELECT event_id, event_time, user_id, session_id, movie_id, event_type, rating"
            " FROM events LIMIT ?",
            (rows,),
        ).fetchall()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute("CREATE TABLE events (a, b, c, d, e, f, g)")
    start = time.perf_counter()
    for i in range(0, len(data), 20_000):
        db.execute("BEGIN")
        db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)", data[i : i + 20_000])
        db.execute("COMMIT")
    elapsed = time.perf_counter() - start
    db.close()
    return len(data) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        ours_db = fresh(folder / "ours.db")
        stored, elapsed = run_headless(
            "--rate", "max", "--duration", str(args.seconds), "--db", str(ours_db)
        )
        ours = stored / elapsed
        seed = seed_design(fresh(folder / "seed.db"), min(args.seconds, 10.0))
        batched = seed_design(fresh(folder / "batched.db"), min(args.seconds, 10.0), 1000)
        raw = ceiling(ours_db, fresh(folder / "ceiling.db"), min(stored, 1_000_000))
    print(f"imdb-tui run --rate max : {ours:>10,.0f} events/s  ({stored:,} in {elapsed:.1f} s)")
    print(f"seed design              : {seed:>10,.0f} events/s   (a commit per event)")
    print(f"seed, batched commits    : {batched:>10,.0f} events/s   (WAL, a commit per 1,000)")
    print(f"raw executemany ceiling  : {raw:>10,.0f} rows/s")
    print(f"ratio to seed design     : {ours / seed:10.2f}x")
    print(f"ratio to seed, batched   : {ours / batched:10.2f}x   (target >= 1.5)")
    print(f"ratio to raw ceiling     : {ours / raw:10.2f}x   (target >= 0.35)")


if __name__ == "__main__":
    main()
