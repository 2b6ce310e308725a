"""Helpers shared by the benchmarks: run the real command, read its summary, time things."""

from __future__ import annotations

import contextlib
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

COMMAND = str(Path(sys.executable).with_name("imdb-tui"))
ROOT = Path(__file__).resolve().parent.parent
_DONE = re.compile(r"done: ([\d,]+) events? stored.* in ([\d,.]+) s")


def run_headless(*args: str) -> tuple[int, float]:
    """Run `imdb-tui run ARGS`; return (events stored, seconds) from its summary line."""
    result = subprocess.run([COMMAND, "run", *args], capture_output=True, text=True, check=True)
    match = _DONE.search(result.stdout)
    if not match:
        raise RuntimeError(f"no summary in output:\n{result.stdout}\n{result.stderr}")
    return int(match[1].replace(",", "")), float(match[2].replace(",", ""))


def median_seconds(work: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def fresh(path: Path) -> Path:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return path


def point_aws_at(url: str) -> None:
    """This process's AWS settings (and its children's) at a local endpoint, with
    placeholder credentials unless some are set."""
    os.environ.update(
        AWS_ENDPOINT_URL=url,
        AWS_ACCESS_KEY_ID=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
        AWS_SECRET_ACCESS_KEY=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
        AWS_DEFAULT_REGION=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
    )


@contextlib.contextmanager
def aws_endpoint() -> Iterator[str]:
    """AWS_ENDPOINT_URL if set (a service itself, or DynamoDB Local), else the tests'
    moto server (tests/kinesis_server.py) in a process of its own on a free loopback
    port, stopped at the end; this process's AWS settings point at it meanwhile."""
    url = os.environ.get("AWS_ENDPOINT_URL")
    server = None
    if not url:
        server = subprocess.Popen(
            [sys.executable, "-m", "tests.kinesis_server"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert server.stdout is not None
        line = server.stdout.readline()
        if not line.startswith("AWS_ENDPOINT_URL="):
            server.kill()
            raise SystemExit("the test endpoint did not start: pip install 'moto[server]'")
        url = line.strip().partition("=")[2]
    point_aws_at(url)
    try:
        yield url
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
