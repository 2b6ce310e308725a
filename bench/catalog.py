"""Reading a full-size IMDb title.basics file: time, and memory as the file goes by.

    python bench/catalog.py [--rows 11000000]

IMDb's files cannot be shipped (nor downloaded here), so this writes one of the
same shape and size first, once, under bench/out/: --rows rows of the exact
format (tab-separated, a header, \\N for null), about one in eight a movie, as
in the real file (11M rows, ~12% movies, ~1 GB unpacked). Then a child process
parses it with imdb_tui.imdb, and its resident memory is sampled at every
progress report: memory holds the movies kept, not the file, so it grows with
the movies (~one in eight rows) and not with the bytes read.
"""

from __future__ import annotations

import argparse
import gzip
import random
import subprocess
import sys
import time
from pathlib import Path

OUT = Path(__file__).parent / "out"
TYPES = ("movie",) + ("tvEpisode",) * 5 + ("short", "tvSeries")
GENRES = ("Drama", "Comedy", "Documentary", "Action", "Romance", "Thriller", "\\N")

CHILD = """
import resource, sys, time
from imdb_tui.imdb import load_imdb_catalog
samples = []
def progress(done, total):
    rss = int(open('/proc/self/statm').read().split()[1]) * 4096 // 2**20
    samples.append((done / total, rss))
start = time.perf_counter()
loaded = load_imdb_catalog(sys.argv[1], progress=progress)
seconds = time.perf_counter() - start
for share in (0.1, 0.25, 0.5, 0.75, 1.0):
    done, rss = next(s for s in samples if s[0] >= share - 1e-9)
    print(f"  {done:5.0%} of the file read: {rss:5,} MB resident")
print(f"{loaded.rows:,} rows, {len(loaded.catalog):,} movies kept, {loaded.skipped:,} skipped,"
      f" in {seconds:.1f} s ({loaded.rows / seconds:,.0f} rows/s)")
print(f"peak resident: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024:,} MB")
"""


def write_basics(path: Path, rows: int) -> None:
    rng = random.Random(1)
    header = "tconst\ttitleType\tprimaryTitle\toriginalTitle\tisAdult\tstartYear\tendYear"
    with gzip.open(path, "wt", encoding="utf-8", compresslevel=1, newline="\n") as out:
        out.write(header + "\truntimeMinutes\tgenres\n")
        for n in range(1, rows + 1):
            kind = rng.choice(TYPES)
            title = f'Title number {n} of the "synthetic" set'
            year = rng.choice(("\\N", str(rng.randint(1894, 2026))))
            genres = ",".join(sorted({rng.choice(GENRES) for _ in range(2)} - {"\\N"})) or "\\N"
            out.write(f"tt{n:08d}\t{kind}\t{title}\t{title}\t0\t{year}\t\\N\t90\t{genres}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=11_000_000)
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    path = OUT / f"title.basics.{args.rows}.tsv.gz"
    if not path.exists():
        start = time.perf_counter()
        partial = path.with_suffix(".partial")
        write_basics(partial, args.rows)
        partial.rename(path)
        print(f"wrote {path.name} in {time.perf_counter() - start:.0f} s", flush=True)
    print(f"{path.name}: {path.stat().st_size / 2**20:,.0f} MB compressed", flush=True)
    subprocess.run([sys.executable, "-c", CHILD, str(path)], check=True)


if __name__ == "__main__":
    main()
