"""--max-size holds: the data in use stays within the limit at max rate, dead letters
included (the oldest rows go first, and are counted), sampled as another program
would read it while the run goes on."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from pathlib import Path

from tests.test_cli import COMMAND

LIMIT = 5_000_000


def data_bytes(db: Path) -> int:
    """The pages in use, as `size` in the Pipeline panel counts them (0 before the file)."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as connection:
            pages, free, size = (
                connection.execute(f"PRAGMA {name}").fetchone()[0]
                for name in ("page_count", "freelist_count", "page_size")
            )
        connection.close()
        return int((pages - free) * size)
    except sqlite3.Error:
        return 0


def sampled(args: list[str], db: Path) -> tuple[list[int], str]:
    """Run the command, reading the database's size every 0.2 s until it ends."""
    process = subprocess.Popen(
        [COMMAND, "run", *args, "--db", str(db), "--max-size", "5MB"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    sizes = []
    try:
        while process.poll() is None:
            sizes.append(data_bytes(db))
            time.sleep(0.2)
        out = process.communicate(timeout=60)[0]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, out
    sizes.append(data_bytes(db))
    return sizes, out


def counters(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as connection:
        rows = connection.execute("SELECT name, value FROM counters").fetchall()
    connection.close()
    return dict(rows)


def test_max_size_holds_at_max_rate(tmp_path: Path) -> None:
    """A world small enough that the figures' own tables (a movie's users a day above
    all: kept whole, the figures need them) stay well under the limit."""
    db = tmp_path / "events.db"
    world = ["--users", "300", "--titles", "100"]
    sizes, _ = sampled(["--rate", "max", "--duration", "8", *world], db)
    past = [size for n, size in enumerate(sizes) if max(sizes[: n + 1]) > 0.9 * LIMIT]
    assert len(past) > 5, sizes  # it reached the limit, and was sampled there
    assert max(past) <= 1.1 * LIMIT, str(sizes)
    kept = counters(db)
    assert kept["pruned_events"] > 0 and kept["events_total"] > kept["pruned_events"]


def test_max_size_holds_against_rejected_lines_and_skips_blank_ones(tmp_path: Path) -> None:
    """15,000 lines of 4 kB that are no events (60 MB of dead letters), and newlines:
    the oldest dead letters go, counted; blank lines are skipped, not stored."""
    source = tmp_path / "bad.jsonl"
    with source.open("w") as out:
        for n in range(15_000):
            out.write(json.dumps({"event_id": f"bad-{n}", "padding": "x" * 4000}) + "\n")
            if n % 3 == 0:
                out.write("\n")
    db = tmp_path / "events.db"
    sizes, out = sampled(["--source", str(source)], db)
    assert "done: 0 events stored, 0 duplicates, 15,000 dead letters, 5,000 blank lines" in out
    assert max(sizes) <= 1.1 * LIMIT, sizes
    kept = counters(db)
    assert kept["dead_letters"] == 15_000 and kept["pruned_dead_letters"] > 10_000
    with sqlite3.connect(db) as connection:
        left = connection.execute("SELECT count(*), min(raw) FROM dead_letters").fetchone()
    connection.close()
    assert left[0] == 15_000 - kept["pruned_dead_letters"]  # the oldest went
    assert f'"bad-{15_000 - left[0]}"' in left[1] or left[0] == 0
