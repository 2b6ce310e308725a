"""Reading a full-size IMDb catalogue into the database: time, and memory as the file goes by.

    python bench/catalog.py [--rows 11000000]

IMDb's files cannot be shipped (nor downloaded here), so this writes a pair of
the same shape and size first, once, under bench/out/: a title.basics of --rows
rows in the exact format (tab-separated, a header, \\N for null, ids as IMDb
writes them), about one in eight a movie, as in the real file (11M rows, ~12%
movies, ~1 GB unpacked), and a title.ratings with one row in seven rated.

A child process then does what `imdb-tui --catalog ... --ratings ...` does on a
first start (parse both files into a fresh database) and on the next one (read
the kept catalogue back), sampling its resident memory at every progress
report. The reference, timed in the same child, is only reading the two files'
lines (gunzip and split on tabs), so the ratio is what parsing and storing add.
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
import gzip, resource, sys, time
from imdb_tui.imdb import kept_imdb_catalog, load_imdb_catalog
from imdb_tui.store import Store, open_store

def rss():
    return int(open('/proc/self/statm').read().split()[1]) * 4096 // 2**20

basics, ratings, db = sys.argv[1:]
start = time.perf_counter()
for path in (basics, ratings):
    with gzip.open(path, 'rb') as lines:
        for line in lines:
            line.split(b'\\t')
reference = time.perf_counter() - start
print(f"reference, reading the lines only: {reference:.1f} s; {rss():,} MB resident", flush=True)

samples = []
def progress(done, total):
    samples.append((len(samples), done / total, rss()))

store = open_store(db)
start = time.perf_counter()
store.forget_catalog()
loaded = load_imdb_catalog(basics, ratings, progress=progress, keep=store)
store.keep_catalog('bench', loaded.skipped, loaded.rated)
seconds = time.perf_counter() - start
basics_part = samples[: next(i for i, share, _ in samples if share >= 1.0) + 1]
for share in (0.1, 0.25, 0.5, 0.75, 1.0):
    _, done, mb = next(s for s in basics_part if s[1] >= share - 1e-9)
    print(f"  {done:5.0%} of title.basics read: {mb:5,} MB resident")
print(f"  ratings read and weights stored: {rss():5,} MB resident")
print(f"first start: {loaded.rows:,} rows, {len(loaded.catalog):,} movies"
      f" ({loaded.rated:,} rated, {loaded.skipped:,} skipped) into {db.split('/')[-1]}"
      f" in {seconds:.1f} s = {seconds / reference:.2f}x the reference"
      f" ({loaded.rows / seconds:,.0f} rows/s)")
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
print(f"peak resident: {peak:,} MB", flush=True)
del loaded
start = time.perf_counter()
kept = kept_imdb_catalog(store.catalog_weights())
print(f"next start: {len(kept):,} movies read back from the database in"
      f" {time.perf_counter() - start:.1f} s; {rss():,} MB resident")
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
            out.write(f"tt{n:07d}\t{kind}\t{title}\t{title}\t0\t{year}\t\\N\t90\t{genres}\n")


def write_ratings(path: Path, rows: int) -> None:
    rng = random.Random(2)
    with gzip.open(path, "wt", encoding="utf-8", compresslevel=1, newline="\n") as out:
        out.write("tconst\taverageRating\tnumVotes\n")
        for n in range(1, rows + 1, 7):
            out.write(f"tt{n:07d}\t{rng.randint(10, 100) / 10}\t{int(rng.paretovariate(1.2))}\n")


def made_once(path: Path, write: object, rows: int) -> Path:
    if not path.exists():
        start = time.perf_counter()
        partial = path.with_suffix(".partial")
        write(partial, rows)  # type: ignore[operator]
        partial.rename(path)
        print(f"wrote {path.name} in {time.perf_counter() - start:.0f} s", flush=True)
    print(f"{path.name}: {path.stat().st_size / 2**20:,.0f} MB compressed", flush=True)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=11_000_000)
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    basics = made_once(OUT / f"title.basics.{args.rows}.v2.tsv.gz", write_basics, args.rows)
    ratings = made_once(OUT / f"title.ratings.{args.rows}.v2.tsv.gz", write_ratings, args.rows)
    db = OUT / "catalog.db"
    for stale in OUT.glob("catalog.db*"):
        stale.unlink()
    subprocess.run([sys.executable, "-c", CHILD, str(basics), str(ratings), str(db)], check=True)


if __name__ == "__main__":
    main()
