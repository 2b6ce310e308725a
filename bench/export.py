"""Exporting to Parquet: `imdb-tui export` against a bare script doing the same
with the same libraries, and the export's peak memory.

    python bench/export.py [--events 10000000] [--days 10]

A SQLite store is filled with `--events` produced events over `--days` UTC days.
- reference: a bare script reading the events table with sqlite3 (the database's
  own driver), a day at a time in chunks, writing each day with the same Parquet
  library (pyarrow, zstd): no dedupe, no counts tables, no typing beyond what
  pyarrow infers, no note of what was done;
- imdb-tui: `imdb-tui export --db DB --to DIR --tables events` in a process of
  its own, whose peak memory (max RSS) is read when it ends.
Both in this run, on the same file, one after the other, into empty folders.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from common import COMMAND, run_headless


def fill(db: Path, events: int, days: int) -> None:
    source = db.with_suffix(".jsonl")
    per_day = events // days
    rate = max(1, per_day // 80_000)  # a day's events inside the day
    with source.open("w") as out:
        for day in range(days):
            start = f"{date(2026, 11, 1) + timedelta(days=day)}T00:00:00Z"
            command = [COMMAND, "produce", "--count", str(per_day), "--seed", str(day)]
            command += ["--start", start, "--rate", str(rate)]
            subprocess.run(command, stdout=out, check=True)
    run_headless("--source", str(source), "--db", str(db))
    source.unlink()


def _millis(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * 1000


def bare(db: Path, folder: Path) -> tuple[int, float]:
    """The reference: (rows, seconds)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    started = time.perf_counter()
    connection = sqlite3.connect(db)
    # Times as the store keeps them (milliseconds since 1970), ids as they are (bytes).
    first, last = (
        datetime.fromtimestamp(ms / 1000, UTC).date()
        for ms in connection.execute(
            "SELECT min(event_time), max(event_time) FROM events"
        ).fetchone()
    )
    rows = 0
    day = first
    names = ["event_id", "event_time", "user_id", "session_id", "movie_id", "event_type", "rating"]
    while day <= last:
        stop = day + timedelta(days=1)
        cursor = connection.execute(
            f"SELECT {', '.join(names)} FROM events"  # noqa: S608
            " WHERE event_time >= ? AND event_time < ? ORDER BY event_time",
            (_millis(day), _millis(stop)),
        )
        writer = None
        while chunk := cursor.fetchmany(65_536):
            table = pa.table(list(map(list, zip(*chunk, strict=True))), names=names)
            if writer is None:
                (folder / f"dt={day}").mkdir(parents=True)
                writer = pq.ParquetWriter(
                    folder / f"dt={day}/part.parquet", table.schema, compression="zstd"
                )
            writer.write_table(table)
            rows += len(chunk)
        if writer is not None:
            writer.close()
        day = stop
    connection.close()
    return rows, time.perf_counter() - started


def ours(db: Path, folder: Path) -> tuple[int, float, int]:
    """imdb-tui export: (rows, seconds, peak memory in bytes)."""
    command = [COMMAND, "export", "--db", str(db), "--to", str(folder), "--tables", "events"]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    assert process.stdout is not None
    line = process.stdout.read()
    if status:
        raise SystemExit(f"export failed: {line}")
    rows = int(line.split("events ")[1].split(" ")[0].rstrip(",").replace(",", ""))
    return rows, seconds, usage.ru_maxrss * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "events.db"
        fill(db, args.events, args.days)
        rows, seconds = bare(db, Path(folder) / "bare")
        reference = rows / seconds
        print(
            f"bare sqlite3 + pyarrow : {reference:>10,.0f} rows/s ({rows:,} rows, {seconds:.1f} s)"
        )
        rows, seconds, peak = ours(db, Path(folder) / "ours")
        mine = rows / seconds
        print(f"imdb-tui export        : {mine:>10,.0f} rows/s ({rows:,} rows, {seconds:.1f} s)")
        print(f"ratio to the bare one  : {mine / reference:9.2f}x")
        print(f"export's peak memory   : {peak / 2**20:9.0f} MB")


if __name__ == "__main__":
    main()
