"""Peak memory of a max-rate run, sampled every second.

    python bench/memory.py [--seconds 60]

Runs `imdb-tui run --rate max` into a fresh file database and reads the resident
set size (VmRSS) of the process and its writer process from /proc once a second.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import tempfile
import time
from pathlib import Path

from common import COMMAND


def rss_mb(pid: int) -> float:
    """Resident MB of a process and all its descendants (0 for one that has ended)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text().splitlines()
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    own = next((int(line.split()[1]) / 1024 for line in status if line.startswith("VmRSS:")), 0.0)
    children = []
    for task in tasks:
        with contextlib.suppress(FileNotFoundError):
            children += (task / "children").read_text().split()
    return own + sum(rss_mb(int(child)) for child in children)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        process = subprocess.Popen(
            [
                COMMAND,
                "run",
                "--rate",
                "max",
                "--duration",
                str(args.seconds),
                "--db",
                f"{tmp}/m.db",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        samples = []
        while process.poll() is None:
            samples.append(rss_mb(process.pid))
            time.sleep(1.0)
        out = process.stdout.read() if process.stdout else ""
    done = next((line for line in out.splitlines() if line.startswith("done:")), "no summary")
    print(done)
    marks = [s for s in (10, 20, 30, 40, 50, args.seconds - 1) if s < len(samples)]
    print("RSS over time: " + ", ".join(f"{s}s {samples[s]:.0f} MB" for s in marks))
    print(f"peak RSS, both processes: {max(samples):.0f} MB   (target < 300 MB)")
    if len(samples) > 20:
        later, earlier = max(samples[len(samples) // 2 :]), max(samples[5 : len(samples) // 2])
        print(f"second half vs first half peak: {later / earlier:.2f}x   (flat is about 1)")


if __name__ == "__main__":
    main()
