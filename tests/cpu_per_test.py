"""A pytest plugin that says what each test costs in CPU, where wall time misleads (a
test waiting for a core on a loaded machine is slow, not costly):

    .venv/bin/pytest -q -n 4 -p tests.cpu_per_test    # then: python -m tests.cpu_per_test

Each test's CPU is its worker's own (the test, and moto's endpoint, which runs in
the worker) and that of the processes it started and waited for (imdb-tui's runs and
their writers); PostgreSQL's server is not counted. One JSON line a test is appended
to CPU_PER_TEST (default /tmp/imdb-tui-cpu.jsonl)."""

from __future__ import annotations

import json
import os
import resource
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

OUT = Path(os.environ.get("CPU_PER_TEST", "/tmp/imdb-tui-cpu.jsonl"))


def _cpu() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    own, children, started = *_cpu(), time.monotonic()
    yield
    own_after, children_after = _cpu()
    line = {
        "test": item.nodeid,
        "own": round(own_after - own, 2),
        "children": round(children_after - children, 2),
        "wall": round(time.monotonic() - started, 2),
    }
    with OUT.open("a") as out:
        out.write(json.dumps(line) + "\n")


def main() -> None:
    """The tests that cost most, and the total, from what the plugin wrote."""
    rows = [json.loads(line) for line in OUT.read_text().splitlines()]
    cost = {row["test"]: row["own"] + row["children"] for row in rows}
    by_module: Counter[str] = Counter()
    for test, seconds in cost.items():
        by_module[test.split("::")[0]] += seconds
    print(f"{sum(cost.values()) / 60:.1f} CPU-minutes in {len(rows)} tests")
    for module, seconds in by_module.most_common(10):
        print(f"{seconds:8.1f} s  {module}")
    print()
    for test, seconds in sorted(cost.items(), key=lambda item: -item[1])[:20]:
        print(f"{seconds:8.1f} s  {test}")


if __name__ == "__main__":
    main()
