"""Loading a JSON Lines file into SQLite: imdb-tui against the tool a user would pick.

    python bench/load.py [--lines 1000000]

Both are measured in this run, on this machine, on the same file of produced
events (`imdb-tui produce --seed 1 --start ...`, written once under bench/out/):
- imdb-tui: `imdb-tui run --source FILE` into a fresh database: validation,
  dedupe by event_id, dead letters and the metric aggregates included;
- sqlite-utils: `sqlite-utils insert DB events FILE --nl --pk event_id --alter`
  into a fresh database (its default batch size, and 10,000), which only loads
  the rows. sqlite-utils is a bench-only dependency: `pip install -e '.[bench]'`.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

from common import COMMAND, fresh, run_headless

OUT = Path(__file__).parent / "out"


def produced(lines: int) -> Path:
    path = OUT / f"produced-{lines}.jsonl"
    if not path.exists():
        OUT.mkdir(exist_ok=True)
        with path.open("w") as out:
            subprocess.run(
                [
                    COMMAND,
                    "produce",
                    "--count",
                    str(lines),
                    "--seed",
                    "1",
                    "--start",
                    "2026-11-20T00:00:00Z",
                    "--rate",
                    "1000",
                ],
                stdout=out,
                check=True,
            )
    return path


def sqlite_utils(source: Path, db: Path, *extra: str) -> float:
    tool = shutil.which("sqlite-utils", path=str(Path(sys.executable).parent))
    if tool is None:
        raise SystemExit("sqlite-utils is not installed: pip install -e '.[bench]'")
    started = time.perf_counter()
    subprocess.run(
        [
            tool,
            "insert",
            str(db),
            "events",
            str(source),
            "--nl",
            "--pk",
            "event_id",
            "--alter",
            *extra,
        ],
        check=True,
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    args = parser.parse_args()
    source = produced(args.lines)
    scratch = OUT / "load"
    scratch.mkdir(exist_ok=True)
    stored, ours = run_headless("--source", str(source), "--db", str(fresh(scratch / "ours.db")))
    assert stored == args.lines, stored
    theirs = sqlite_utils(source, fresh(scratch / "theirs.db"))
    batched = sqlite_utils(source, fresh(scratch / "batched.db"), "--batch-size", "10000")
    for name in ("ours.db", "theirs.db", "batched.db"):
        fresh(scratch / name)
    print(f"imdb-tui run --source FILE      : {ours:6.1f} s  ({args.lines / ours:,.0f} lines/s)")
    print(
        f"sqlite-utils insert --nl --pk   : {theirs:6.1f} s  ({args.lines / theirs:,.0f} lines/s)"
    )
    print(
        f"  ... --batch-size 10000        : {batched:6.1f} s  ({args.lines / batched:,.0f} lines/s)"
    )
    best = min(theirs, batched)
    print(f"ratio to sqlite-utils (its best): {best / ours:6.2f}x   (goal >= 3x)")


if __name__ == "__main__":
    main()
