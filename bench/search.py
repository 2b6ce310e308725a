"""Finding a movie in an IMDb-sized catalogue: one search's time, as a keystroke costs it.

    python bench/search.py [--titles 700000]

A made-up catalogue of TITLES movies (IMDb's title.basics holds about 700,000
`movie` rows), titles of one to five words drawn from 20,000, a seventh of them
viewed today. Each query is timed over five runs (the median), against a bare
reference in the same run: one pass of Python's `in` over the same folded titles,
the least any search of every title does.
"""

from __future__ import annotations

import argparse
import random
import statistics
import string
import time

from imdb_tui.search import TitleIndex

QUERIES = ("a", "the", "ab 1999", "1999", "tt0012345", "WORD", "WORD XYZ")


def timed(work: object, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--titles", type=int, default=700_000)
    args = parser.parse_args()
    rng = random.Random(1)
    words = [
        "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(3, 9)))
        for _ in range(20_000)
    ]
    rows = [
        (
            f"tt{n:07d}",
            " ".join(rng.choice(words).capitalize() for _ in range(rng.randint(1, 5))),
            1900 + n % 125,
        )
        for n in range(args.titles)
    ]
    views = {f"tt{n:07d}": n % 97 for n in range(0, args.titles, 7)}
    start = time.perf_counter()
    index = TitleIndex(rows, views)
    print(f"index of {len(index):,} titles made in {time.perf_counter() - start:.2f} s")
    folded = [title.casefold() for _, title, _ in rows]
    bare = timed(lambda: [key for key in folded if "a" in key])
    print(f"reference: one pass of `in` over every title: {bare * 1000:.0f} ms")
    for query in QUERIES:
        query = query.replace("WORD", words[5]).replace("XYZ", words[7][:3])
        took = timed(lambda query=query: index.find(query))
        print(f"{query!r:>16}: {took * 1000:6.1f} ms, {took / bare:.1f}x the reference")


if __name__ == "__main__":
    main()
