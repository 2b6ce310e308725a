"""Bytes on disk per stored event in SQLite, table by table.

    python bench/disk.py [--events 10000000] [--db PATH]

Runs `imdb-tui run --count N --rate max --seed 1` into a fresh database (or
reads --db as it is, without running), then reports the file's size and each
table's and index's pages (SQLite's dbstat) per stored event. The reference is
the events' own JSON Lines text, as `imdb-tui produce` writes it, measured on a
sample of the same run's rows.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
from pathlib import Path

from common import fresh, run_headless


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--db", type=Path, help="measure this database instead of a new run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        db = args.db
        if db is None:
            db = fresh(Path(folder) / "disk.db")
            stored, seconds = run_headless(
                "--count", str(args.events), "--rate", "max", "--seed", "1", "--db", str(db)
            )
            print(f"stored {stored:,} events in {seconds:.1f} s")
        report(db)


def report(db: Path) -> None:
    connection = sqlite3.connect(db)
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    events = connection.execute("SELECT count(*) FROM events").fetchone()[0]
    pages = connection.execute(
        "SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC"
    ).fetchall()
    total = sum(size for _, size in pages)
    size = db.stat().st_size
    print(f"{events:,} events; file {size / 1e6:,.1f} MB: {size / events:.1f} bytes an event")
    print(f"{'table or index':40} {'bytes/event':>12}")
    for name, used in pages:
        if used / events >= 0.05:
            print(f"{name:40} {used / events:12.1f}")
    print(f"{'all':40} {total / events:12.1f}")
    line = _json_line_bytes(connection)
    ratio = total / events / line
    print(f"reference: the events as JSON Lines, {line:.1f} bytes an event: {ratio:.2f}x")


def _json_line_bytes(connection: sqlite3.Connection) -> float:
    """The mean length of a sample of stored events written as produce writes them."""
    rows = connection.execute(
        "SELECT event_id, event_time, user_id, session_id, movie_id, event_type, rating"
        " FROM events_with_titles ORDER BY seq LIMIT 10000"
    ).fetchall()
    sizes = []
    for event_id, moment, user, session, movie, kind, rating in rows:
        event = {
            "event_id": event_id,
            "event_time": moment,
            "user_id": user,
            "session_id": session,
            "movie_id": movie,
            "event_type": kind,
        }
        if rating is not None:
            event["rating"] = rating
        sizes.append(len(json.dumps(event, separators=(",", ":"))) + 1)
    return sum(sizes) / len(sizes)


if __name__ == "__main__":
    main()
