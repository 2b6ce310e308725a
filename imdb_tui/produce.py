"""`imdb-tui produce`'s engine: simulated events, paced, into a sink (JSON Lines on a
stream, or a Kinesis stream), or stamped on a simulated clock for a reproducible file."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Protocol, TextIO

from imdb_tui.clock import ManualClock
from imdb_tui.pipeline import MAX_RATE, Pacer
from imdb_tui.simulator import Simulator

CHUNK = 1_000


class Sink(Protocol):
    def send(self, records: list[dict[str, object]]) -> None: ...


class Lines:
    """Records as JSON Lines, one a line, written a chunk at a time.

    Straight to the file descriptor, every byte: a signal that comes while a write
    waits on a full pipe (Ctrl-C on `produce | slow-reader`) makes it return part
    way, and Python's buffered stdout then dropped the rest of the chunk (one run:
    58,022 of 59,000 lines arrived, the last one cut).
    """

    def __init__(self, out: TextIO) -> None:
        out.flush()  # what went before, first
        self._descriptor = out.fileno()

    def send(self, records: list[dict[str, object]]) -> None:
        chunk = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records)
        left = memoryview(chunk.encode())
        while left:
            left = left[os.write(self._descriptor, left) :]


def produce_live(
    events: Simulator,
    sink: Sink,
    count: int | None,
    rate: float | None,
    stopping: Callable[[], bool] = lambda: False,
) -> int:
    """`count` events (None: until stopped) at `rate` a second (None: as fast as the
    sink takes them), in whole chunks cut after: what comes out does not depend on
    `count`. `stopping` is asked between chunks, so a stop never cuts a line or a
    put in two. The number of events sent."""
    left = count
    sent = 0
    pacer = Pacer(rate or MAX_RATE, time.monotonic())
    while (left is None or left > 0) and not stopping():
        chunk = CHUNK
        if rate is not None:
            now = time.monotonic()
            due = pacer.due(now)
            if due <= 0:
                time.sleep(min(max(pacer.wait(now), 0.002), 0.05))
                continue
            chunk = min(chunk, due)
        records = events.records(chunk)[:left]
        sink.send(records)
        sent += len(records)
        pacer.sent(len(records))
        if left is not None:
            left -= len(records)
    return sent


def produce_stamped(
    clock: ManualClock, step: float, events: Simulator, count: int | None, out: TextIO
) -> None:
    """Events a `step` apart on the simulated clock from where it stands: one at a
    time, so the sequence is the same whatever `count` cuts it at."""
    start = clock.now()
    made = 0
    lines: list[str] = []
    while count is None or made < count:
        lines.append(json.dumps(events.records(1)[0], separators=(",", ":")))
        made += 1
        clock.advance(start + made * step - clock.now())
        if len(lines) == CHUNK:
            out.write("\n".join(lines) + "\n")
            lines.clear()
    if lines:
        out.write("\n".join(lines) + "\n")
    out.flush()
