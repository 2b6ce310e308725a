"""`imdb-tui serve` with browser tabs open: memory and CPU, and the pipeline's rate.

    python bench/serve.py [--seconds 15] [--rounds 2]

One real `imdb-tui serve --rate max` (its pipeline and its web server) on a
loopback port. A tab is a WebSocket client connecting to `/ws` as textual-serve's
page does (120x40) and reading every frame the server sends (a browser would
draw them; here they are counted and dropped). Each tab is one `imdb-tui watch`
process on the server's side.

1. With 1, 5 and 20 tabs, once all have drawn, for S seconds: the resident memory
   of the serve process (pipeline and web server), of its writer process, and of
   each viewer process (from /proc), and the CPU each used, as a share of one core.
2. The pipeline's ingest rate (events stored a second, from the store's counters)
   with 5 tabs open against none, in the same serve, in alternating phases of S
   seconds, ROUNDS times. Goal: >= 0.8x.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from common import COMMAND

from imdb_tui.store import open_store

TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def descendants(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [root]
    while frontier:
        pid = frontier.pop()
        children = [p for p, parent in parents.items() if parent == pid]
        found += children
        frontier += children
    return found


def sample(pid: int) -> tuple[float, int] | None:
    """CPU seconds used so far and resident bytes, or None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        resident = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICKS, resident


def kind(pid: int) -> str:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "gone"
    if b"watch" in command:
        return "viewer"
    if any(b"spawn_main" in part for part in command):
        return "writer"  # the store's writer process
    return "other"  # multiprocessing's resource tracker


class Tabs:
    """WebSocket clients, each as one browser tab."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.received = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._drawn: list[asyncio.Event] = []

    async def open(self, session: aiohttp.ClientSession, count: int) -> None:
        for _ in range(count):
            drawn = asyncio.Event()
            self._drawn.append(drawn)
            self._tasks.append(asyncio.create_task(self._tab(session, drawn)))
        for drawn in self._drawn:
            await asyncio.wait_for(drawn.wait(), 60)

    async def _tab(self, session: aiohttp.ClientSession, drawn: asyncio.Event) -> None:
        url = f"{self.base}/ws?width=120&height=40"
        async with session.ws_connect(url, headers={"Origin": self.base}) as websocket:
            seen = b""
            async for message in websocket:
                if message.type == aiohttp.WSMsgType.BINARY:
                    self.received += len(message.data)
                    if not drawn.is_set():
                        seen += message.data
                        drawn.set() if b"stored" in seen else None

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        self._drawn.clear()


def stored(db: Path) -> int:
    store = open_store(str(db), read_only=True)
    try:
        return store.counters().get("events_total", 0)
    finally:
        store.close()


async def usage(server: int, seconds: float) -> dict[str, list[tuple[float, float]]]:
    """Per kind of process: (share of a core, resident MB) over `seconds`."""
    pids = [server, *descendants(server)]
    before = {pid: sample(pid) for pid in pids}
    await asyncio.sleep(seconds)
    found: dict[str, list[tuple[float, float]]] = {}
    for pid in pids:
        first, last = before[pid], sample(pid)
        if first is None or last is None:
            continue
        name = "serve" if pid == server else kind(pid)
        found.setdefault(name, []).append(((last[0] - first[0]) / seconds, last[1] / 1e6))
    return found


async def rate(db: Path, seconds: float) -> float:
    start, at = stored(db), time.monotonic()
    await asyncio.sleep(seconds)
    return (stored(db) - start) / (time.monotonic() - at)


async def main(seconds: float, rounds: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="imdb-tui-bench-serve-"))
    db = folder / "events.db"
    process = subprocess.Popen(
        # --max-viewers: the default (8) would turn the 20-tab round away
        [
            COMMAND,
            "serve",
            "--port",
            "0",
            "--db",
            str(db),
            "--rate",
            "max",
            "--seed",
            "1",
            "--max-viewers",
            "20",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            found = re.search(r"serving the monitor at http://[^:]+:(\d+)/", line)
            if found:
                break
        else:
            sys.exit("serve did not start")
        base = f"http://127.0.0.1:{found[1]}"
        output = process.stdout

        async def drain() -> None:  # its viewer lines, so that its pipe never fills
            await asyncio.to_thread(lambda: [None for _ in output])

        draining = asyncio.create_task(drain())
        print(f"imdb-tui serve --rate max, {os.cpu_count()} cores; tabs of 120x40")
        async with aiohttp.ClientSession() as session:
            await asyncio.sleep(seconds)  # the pipeline warms up
            for count in (1, 5, 20):
                tabs = Tabs(base)
                await tabs.open(session, count)
                await asyncio.sleep(2)
                received, start = tabs.received, stored(db)
                found = await usage(process.pid, seconds)
                sent = (tabs.received - received) / seconds / 1e3
                ingest = (stored(db) - start) / seconds
                await tabs.close()
                viewers = found.get("viewer", [])
                serve_cpu, serve_mb = found["serve"][0]
                writer = found.get("writer", [(0.0, 0.0)])[0]
                print(
                    f"{count:>2} tabs: viewers {max(v[1] for v in viewers):.1f} MB resident"
                    f" at most, {statistics.median(v[0] for v in viewers) * 100:.1f}% of a"
                    f" core each;"
                    f" serve {serve_mb:.0f} MB, {serve_cpu * 100:.0f}%;"
                    f" writer {writer[1]:.0f} MB, {writer[0] * 100:.0f}%;"
                    f" {sent:,.0f} kB/s to the tabs; {ingest:,.0f} events/s stored"
                )
                await asyncio.sleep(2)  # the viewers end
            alone, watched = [], []
            for _ in range(rounds):
                alone.append(await rate(db, seconds))
                tabs = Tabs(base)
                await tabs.open(session, 5)
                watched.append(await rate(db, seconds))
                await tabs.close()
                await asyncio.sleep(2)
        for number, (a, w) in enumerate(zip(alone, watched, strict=True), 1):
            print(f"round {number}: no tabs {a:,.0f} events/s, 5 tabs {w:,.0f} events/s")
        ratio = statistics.median(w / a for a, w in zip(alone, watched, strict=True))
        print(f"ingest with 5 tabs open against none: {ratio:.2f}x   (goal >= 0.8x)")
        process.send_signal(2)
        process.wait(timeout=120)
        draining.cancel()
    finally:
        if process.poll() is None:
            process.kill()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rounds", type=int, default=2)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.seconds, arguments.rounds))
