"""The monitor under load: its stored rate against headless, refresh lateness, key latency.

    python bench/monitor.py [--seconds 20] [--rounds 2] [--presses 30] [--rules 20]

Each round, in turn:
1. headless: `imdb-tui run --rate max --duration S --seed 1 --users 5000` (the real
   command, the same workload as the monitor); its summary gives events stored per second;
2. the monitor, as `imdb-tui --rate max` builds it, on a real pseudo-terminal of
   120x40 (this process's stdin and stderr are pointed at it, so Textual renders
   and writes every frame as it does for a user). After S seconds at max rate the
   stored rate is read; then `p` is typed PRESSES times, and each time the clock
   runs from writing the key to the terminal until the terminal receives
   "PAUSED" (or "RUNNING" again). Then `q`, and the app drains and exits.
Then the live tail: the stored rate over S seconds with it open, against the mean
of S/2 seconds before and after it without; and `t` and enter (on the top movie)
are typed PRESSES/3 times each, timed as p to the screen drawn and to its first
figures drawn; and `<` (to yesterday, which the database holds 50,000 events of
before the round) until "viewing" is drawn on the status line, and until that day's
figures are ("that day" under its hours), then `>` back.
The refresh lateness is how late each refresh tick ran, as the app records it,
apart for the streaming phase and the key phase (pausing and resuming five
times a second recomposes the footer each time).
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import statistics
import struct
import sys
import tempfile
import termios
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from common import fresh, run_headless

from imdb_tui.alerts import FIGURES, Alerts, Unit, parse_rule
from imdb_tui.store import open_store

SEED, USERS = 1, 5_000
"""The workload, the same for the monitor and for the headless run it is compared with."""


class Terminal:
    """A pseudo-terminal this process's stdin and stderr point at while it is open;
    a thread reads everything drawn on it and can wait for a word to appear."""

    def __init__(self, columns: int, rows: int) -> None:
        self._master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        self._saved = os.dup(0), os.dup(2)
        os.dup2(slave, 0)
        os.dup2(slave, 2)
        os.close(slave)
        self._drawn = bytearray()
        self._changed = threading.Condition()
        self._open = True
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while self._open:
            try:
                chunk = os.read(self._master, 1 << 16)
            except OSError:
                return
            with self._changed:
                self._drawn += chunk
                self._changed.notify_all()

    def type(self, key: bytes) -> tuple[float, int]:
        """Write a key; return when, and how much had been drawn before it."""
        with self._changed:
            mark = len(self._drawn)
        started = time.perf_counter()
        os.write(self._master, key)
        return started, mark

    def wait_for(self, word: bytes, after: int, timeout: float = 10.0) -> float:
        """The moment `word` has been drawn past offset `after`."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while word not in self._drawn[after:]:
                if not self._changed.wait(max(0.0, deadline - time.monotonic())):
                    raise TimeoutError(f"{word!r} never appeared")
            return time.perf_counter()

    def close(self) -> None:
        self._open = False
        os.dup2(self._saved[0], 0)
        os.dup2(self._saved[1], 2)
        os.close(self._master)


def fill_yesterday(db: Path, count: int = 50_000) -> None:
    """`count` of the simulator's events, made a day ago, stored as the pipeline stores them."""
    from imdb_tui.aggregates import Aggregator
    from imdb_tui.catalog import build_catalog
    from imdb_tui.clock import ManualClock
    from imdb_tui.events import validate_many
    from imdb_tui.simulator import Simulator, SimulatorSettings

    clock = ManualClock(time.time() - 86400)
    simulator = Simulator(build_catalog(SEED), SimulatorSettings(seed=SEED + 1, users=USERS), clock)
    store = open_store(db)
    aggregate = Aggregator(None)
    for _ in range(count // 1000):
        events, _, _ = validate_many(simulator.records(1000))
        store.write_batch(events, [], "", aggregate)
        clock.advance(1.0)
    store.close()


def alert_rules(count: int) -> Alerts | None:
    """`count` rules over every figure, none of which fires (each is evaluated in full)."""
    if not count:
        return None
    names = list(FIGURES)
    return Alerts(
        [
            parse_rule(
                f"{name} > {'900TB' if FIGURES[name].unit is Unit.BYTES else '1e12'} for 1m",
                name=f"rule {n}",
            )
            for n, name in ((n, names[n % len(names)]) for n in range(count))
        ]
    )


def run_monitor(db: Path, seconds: float, presses: int, rules: int = 0) -> Round:
    """A round of the monitor at max rate (times in seconds), with `rules` alert rules."""
    from imdb_tui.assembly import Inputs, build_pipeline
    from imdb_tui.tui.app import MonitorApp, monitor_settings
    from imdb_tui.viewer import in_process

    fill_yesterday(db)
    store = open_store(db)
    pipeline = build_pipeline(store, monitor_settings(rate=None), Inputs(seed=SEED, users=USERS))
    pipeline.alerts = alert_rules(rules)
    app = MonitorApp(*in_process(pipeline, str(db)))
    terminal = Terminal(120, 40)
    latencies: list[float] = []
    screens: dict[bytes, list[float]] = {
        key: [] for key in (b"t", b"t filled", b"\r", b"\r filled", b"<", b"< filled")
    }
    figures: dict[str, float] = {}

    def stored_over(seconds: float) -> float:
        """Events stored a second over the next `seconds`."""
        before, started = pipeline.health().stored, time.perf_counter()
        time.sleep(seconds)
        return (pipeline.health().stored - before) / (time.perf_counter() - started)

    def screen_key(key: bytes, word: bytes, filled: bytes) -> None:
        """Type a key that opens a screen, until `word` of that screen is drawn, and
        until `filled` (its first figures) is; then escape back to the dashboard."""
        pressed, mark = terminal.type(key)
        screens[key].append(terminal.wait_for(word, mark) - pressed)
        screens[key + b" filled"].append(terminal.wait_for(filled, mark) - pressed)
        time.sleep(0.2)
        _, mark = terminal.type(b"\x1b")
        terminal.wait_for(b"Top movies today", mark)
        time.sleep(0.2)

    def drive() -> None:
        # Counted as headless counts: everything stored since the start (the first
        # frame, a little before the first event), over the time since then.
        started = terminal.wait_for(b"RUNNING", 0, timeout=30)
        time.sleep(seconds)
        figures["rate"] = pipeline.health().stored / (time.perf_counter() - started)
        figures["ticks"] = len(app.lateness)
        for n in range(presses):
            word = b"PAUSED" if n % 2 == 0 else b"RUNNING"
            pressed, mark = terminal.type(b"p")
            latencies.append(terminal.wait_for(word, mark) - pressed)
            time.sleep(0.2)  # a person's pace, and room for the stream to move
        if presses % 2:  # an odd count left it paused: resume before the tail
            _, mark = terminal.type(b"p")
            terminal.wait_for(b"RUNNING", mark)
        # The live tail at max rate: the stored rate with it open, against the
        # same monitor without it just before and just after.
        without = stored_over(seconds / 2)
        _, mark = terminal.type(b"t")
        terminal.wait_for(b"the newest stored", mark, timeout=30)
        figures["tail"] = stored_over(seconds)
        _, mark = terminal.type(b"\x1b")
        terminal.wait_for(b"Top movies today", mark)
        figures["plain"] = (without + stored_over(seconds / 2)) / 2
        for _ in range(presses // 3):
            screen_key(b"t", b"Type", b"the newest stored")  # its column heading
            screen_key(b"\r", b"Views per minute", b"last hour")  # enter on the top movie
            pressed, mark = terminal.type(b"<")
            screens[b"<"].append(terminal.wait_for(b"viewing", mark) - pressed)
            screens[b"< filled"].append(terminal.wait_for(b"that day", mark) - pressed)
            time.sleep(0.2)
            _, mark = terminal.type(b">")
            terminal.wait_for(b"Top movies today", mark)
            time.sleep(0.2)
        terminal.type(b"q")

    failed: list[BaseException] = []

    def drive_or_quit() -> None:
        """A driver that fails (a word never drawn) must not leave the monitor
        storing at max rate until the disk is full: it quits it, and says why."""
        try:
            drive()
        except BaseException as error:
            failed.append(error)
            app.call_from_thread(app.exit)

    driver = threading.Thread(target=drive_or_quit, daemon=True)
    try:
        driver.start()
        app.run()
    finally:
        terminal.close()
        store.close()
    driver.join()
    if failed:
        raise failed[0]
    ticks = int(figures["ticks"])
    lateness = list(app.lateness)
    return Round(
        figures["rate"],
        latencies,
        lateness[:ticks],
        lateness[ticks:],
        figures["tail"] / figures["plain"],
        screens[b"t"],
        screens[b"\r"],
        screens[b"t filled"],
        screens[b"\r filled"],
        screens[b"<"],
        screens[b"< filled"],
    )


@dataclass
class Round:
    rate: float
    """Events stored a second at max rate."""
    keys: list[float]
    """p to PAUSED or RUNNING on screen."""
    lateness: list[float]
    """How late each refresh ran while streaming."""
    lateness_keys: list[float]
    """... while p was pressed."""
    tail_ratio: float
    """The stored rate with the live tail open against without it."""
    tail_keys: list[float]
    """t to the tail drawn."""
    movie_keys: list[float]
    """enter to the movie's screen drawn."""
    tail_filled: list[float]
    """t to the tail's first rows drawn."""
    movie_filled: list[float]
    """enter to the movie's figures drawn."""
    day_keys: list[float]
    """< to the day said on the status line."""
    day_filled: list[float]
    """< to yesterday's figures drawn."""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--presses", type=int, default=30)
    parser.add_argument(
        "--rules",
        type=int,
        default=0,
        help="Also run the monitor with this many alert rules, each round, and compare",
    )
    args = parser.parse_args()
    latencies: list[float] = []
    lateness: list[float] = []
    lateness_keys: list[float] = []
    tail_keys: list[float] = []
    movie_keys: list[float] = []
    tail_filled: list[float] = []
    movie_filled: list[float] = []
    day_keys: list[float] = []
    day_filled: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(1, args.rounds + 1):
            stored, elapsed = run_headless(
                "--rate",
                "max",
                "--duration",
                f"{args.seconds:g}",
                "--seed",
                str(SEED),
                "--users",
                str(USERS),
                "--db",
                f"{tmp}/headless.db",
            )
            headless = stored / elapsed
            fresh(Path(f"{tmp}/headless.db"))
            result = run_monitor(fresh(Path(tmp) / "monitor.db"), args.seconds, args.presses)
            latencies += result.keys
            lateness += result.lateness
            lateness_keys += result.lateness_keys
            tail_keys += result.tail_keys
            movie_keys += result.movie_keys
            tail_filled += result.tail_filled
            movie_filled += result.movie_filled
            day_keys += result.day_keys
            day_filled += result.day_filled
            rate = result.rate
            if args.rules:
                ruled = run_monitor(
                    fresh(Path(tmp) / "ruled.db"), args.seconds, args.presses, args.rules
                )
                plain_ms = [value * 1000 for value in result.keys]
                ruled_ms = [value * 1000 for value in ruled.keys]
                print(
                    f"round {round_}: with {args.rules} alert rules {ruled.rate:,.0f}/s,"
                    f" {ruled.rate / rate:.2f}x the monitor without; key p: p50"
                    f" {statistics.median(ruled_ms):.1f} ms p99 {percentile(ruled_ms, 0.99):.1f} ms"
                    f" against p50 {statistics.median(plain_ms):.1f} ms"
                    f" p99 {percentile(plain_ms, 0.99):.1f} ms without",
                    flush=True,
                )
            print(
                f"round {round_}: headless {headless:,.0f}/s   monitor {rate:,.0f}/s"
                f"   ratio {rate / headless:.2f}x (target >= 0.75x)"
                f"   with the live tail open {result.tail_ratio:.2f}x (target >= 0.9x)",
                flush=True,
            )
    ms = [value * 1000 for value in latencies]
    print("key latencies (ms):", " ".join(f"{value:.0f}" for value in ms))
    print(
        f"key p (pause/resume) to screen, {len(ms)} presses at max rate: "
        f"p50 {statistics.median(ms):.1f} ms  p99 {percentile(ms, 0.99):.1f} ms"
        f"  max {max(ms):.1f} ms (target p99 < 100 ms)"
    )
    for label, values in (
        ("t to the live tail", tail_keys),
        ("t to the tail's first rows", tail_filled),
        ("enter to a movie", movie_keys),
        ("enter to the movie's figures", movie_filled),
        ("< to yesterday on the status line", day_keys),
        ("< to yesterday's figures", day_filled),
    ):
        ms = [value * 1000 for value in values]
        print(f"  {label} (ms):", " ".join(f"{value:.0f}" for value in ms))
        print(
            f"key {label}, {len(ms)} presses at max rate: p50 {statistics.median(ms):.1f} ms"
            f"  p99 {percentile(ms, 0.99):.1f} ms  max {max(ms):.1f} ms (target p99 < 100 ms)"
        )
    for label, values in (
        ("streaming at max rate", lateness),
        ("while p was pressed 5 times a second", lateness_keys),
    ):
        late_ms = [value * 1000 for value in values]
        if not late_ms:  # too few presses for a refresh to fall among them
            print(f"refresh lateness {label}: no tick")
            continue
        print(
            f"refresh lateness {label}, {len(late_ms)} ticks:"
            f" p50 {statistics.median(late_ms):.1f} ms  p99 {percentile(late_ms, 0.99):.1f} ms"
            f"  max {max(late_ms):.1f} ms (target p99 < 50 ms)"
        )


if __name__ == "__main__":
    sys.exit(main())
