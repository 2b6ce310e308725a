"""SQLite's write-ahead log under a long reader: how big it grows while another program
holds a read transaction during a max-rate run, and how big it is after.

    python bench/wal.py [--hold 15] [--after 10]

`imdb-tui run --rate max` writes a fresh file; once it is under way, a reader (as the
sqlite3 shell or a BI tool would) opens a read transaction and holds it for --hold
seconds, so no checkpoint can get past it and the WAL grows. The WAL's size is
printed at its peak, and --after seconds after the reader ends; the database file's
size beside it. Run on main and on an older commit to compare.
"""

from __future__ import annotations

import argparse
import signal
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path

from common import COMMAND


def size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def mb(count: int) -> str:
    return f"{count / 1e6:8.1f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hold", type=float, default=15.0)
    parser.add_argument("--after", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "events.db"
        wal = Path(f"{db}-wal")
        run = subprocess.Popen(
            [COMMAND, "run", "--rate", "max", "--db", str(db)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            while size(db) < 1_000_000:  # under way
                time.sleep(0.1)
            time.sleep(2)
            reader = sqlite3.connect(db)
            reader.execute("BEGIN")
            reader.execute("SELECT count(*) FROM events").fetchone()  # a read snapshot held
            peak, ends = 0, time.monotonic() + args.hold
            while time.monotonic() < ends:
                peak = max(peak, size(wal))
                time.sleep(0.1)
            reader.execute("COMMIT")
            reader.close()
            print(f"WAL while a reader held it {args.hold:.0f} s : {mb(peak)} at its peak")
            time.sleep(args.after)
            print(f"WAL {args.after:.0f} s after the reader ended   : {mb(size(wal))}")
            print(f"database file                     : {mb(size(db))}")
        finally:
            run.send_signal(signal.SIGINT)
            run.wait(timeout=60)


if __name__ == "__main__":
    main()
