"""How closely the pipeline holds a target rate, from 1 to 50,000 events a second.

    python bench/rate.py

Each rate runs `imdb-tui run --rate R --duration D` on the real clock and
compares the events stored per second with the target.
"""

from __future__ import annotations

import tempfile

from common import run_headless

RUNS = ((1, 20), (10, 10), (200, 10), (5_000, 10), (50_000, 10))


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for rate, seconds in RUNS:
            stored, elapsed = run_headless(
                "--rate", str(rate), "--duration", str(seconds), "--db", f"{tmp}/r{rate}.db"
            )
            measured = stored / elapsed
            print(
                f"target {rate:>7,}/s   measured {measured:>10,.1f}/s   "
                f"{measured / rate:6.1%} of target   ({stored:,} in {elapsed:.1f} s)"
            )


if __name__ == "__main__":
    main()
