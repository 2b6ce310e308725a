"""Headless ingest at --rate max, against the seed's design and the raw SQLite ceiling.

    python bench/ingest.py [--seconds 20]

All are measured in this run, on this machine:
- imdb-tui: `imdb-tui run --rate max` into a file database (validation, dedupe and
  metrics on), with its writer process, and again with `--writer thread`.
- seed: the original demo's design as it would run without its sleeps: a producer
  thread making plain dict events (user, movie, type, time, random as in the seed)
  into a `queue.Queue`, a consumer thread doing one INSERT per event into a
  four-column table with no index, and one commit at the end. The reference the
  1.5x goal is checked against. Its queue is bounded (100,000): unbounded, the
  producer outruns the consumer and the two threads convoy on the GIL, at a few
  thousand events a second, which would flatter imdb-tui.
- ceiling: the stored rows, executemany'd into an unindexed table (WAL, one
  transaction per 20,000 rows): what SQLite does with no pipeline at all.
"""

from __future__ import annotations

import argparse
import contextlib
import queue
import random
import sqlite3
import tempfile
import threading
import time
from pathlib import Path

from common import fresh, run_headless

EVENT_TYPES = ("view", "click", "rate", "watchlist_add")


def seed_design(path: Path, seconds: float) -> float:
    """Events per second stored by the seed's thread + queue.Queue + INSERT-per-event design."""
    db = sqlite3.connect(path, check_same_thread=False)
    db.execute("CREATE TABLE events (user_id TEXT, movie_id TEXT, event_type TEXT, ts REAL)")
    events: queue.Queue[dict[str, object]] = queue.Queue(maxsize=100_000)
    stop = threading.Event()
    stored = 0

    def produce() -> None:
        rng = random.Random(0)
        while not stop.is_set():
            events.put(
                {
                    "user_id": f"user_{rng.randint(1, 20_000)}",
                    "movie_id": f"tt{rng.randint(1, 1_000):07d}",
                    "event_type": rng.choice(EVENT_TYPES),
                    "timestamp": time.time(),
                }
            )

    def consume() -> None:
        nonlocal stored
        while not stop.is_set():
            event = events.get()
            db.execute(
                "INSERT INTO events VALUES (?, ?, ?, ?)",
                (event["user_id"], event["movie_id"], event["event_type"], event["timestamp"]),
            )
            stored += 1

    producer, consumer = threading.Thread(target=produce), threading.Thread(target=consume)
    start = time.perf_counter()
    producer.start()
    consumer.start()
    time.sleep(seconds)
    counted, elapsed = stored, time.perf_counter() - start
    stop.set()
    consumer.join()
    while producer.is_alive():  # a producer blocked on the full queue gets room to stop
        with contextlib.suppress(queue.Empty):
            events.get_nowait()
    db.commit()  # the seed's one commit, at the end
    db.close()
    return counted / elapsed


def ceiling(source: Path, path: Path, rows: int) -> float:
    """Rows per second of plain executemany into an unindexed table."""
    with sqlite3.connect(source) as db:
        data = db.execute(
            "SELECT event_id, event_time, user_id, session_id, movie_id, event_type, rating"
            " FROM events_with_titles LIMIT ?",  # as the events came: text
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
        seconds = f"{args.seconds:g}"
        stored, elapsed = run_headless("--rate", "max", "--duration", seconds, "--db", str(ours_db))
        ours = stored / elapsed
        thread_stored, thread_elapsed = run_headless(
            "--rate",
            "max",
            "--duration",
            seconds,
            "--writer",
            "thread",
            "--db",
            str(fresh(folder / "thread.db")),
        )
        thread = thread_stored / thread_elapsed
        seed = seed_design(fresh(folder / "seed.db"), args.seconds)
        raw = ceiling(ours_db, fresh(folder / "ceiling.db"), min(stored, 1_000_000))
    print(
        f"imdb-tui run --rate max        : {ours:>10,.0f} events/s  ({stored:,} in {elapsed:.1f} s)"
    )
    print(
        f"  ... --writer thread          : {thread:>10,.0f} events/s"
        f"   (process writer {ours / thread:.2f}x)"
    )
    print(
        f"seed design, without its sleeps: {seed:>10,.0f} events/s"
        "   (thread, queue.Queue, INSERT each)"
    )
    print(f"raw executemany ceiling        : {raw:>10,.0f} rows/s")
    print(f"ratio to the seed's design     : {ours / seed:10.2f}x   (goal >= 1.5x, stretch 2x)")
    print(f"ratio to the raw ceiling       : {ours / raw:10.2f}x   (goal >= 0.5x kept)")


if __name__ == "__main__":
    main()
