"""Showing numbers and untrusted text in a terminal."""

from __future__ import annotations

import re
import unicodedata
from datetime import tzinfo
from typing import Final

from imdb_tui.clock import local_datetime
from imdb_tui.events import seconds

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
SPARK = "▁▂▃▄▅▆▇█"


def literal(text: str) -> str:
    """Text from data with every control character (and so every escape sequence) made visible.

    `\\x1b[31m` arrives as the four characters `\\x1b` and `[31m`, never as a colour.
    """
    return _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", text.replace("\t", " "))


def cells(text: str) -> int:
    """How many terminal cells text takes: two for a wide character (七), none for
    a combining one."""
    return sum(_cells(char) for char in text)


def _cells(char: str) -> int:
    if char < "\u0300":  # Latin and the like: one each, the common case, quickly
        return 1
    if unicodedata.combining(char):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def fit(text: str, width: int) -> str:
    """Text in exactly `width` terminal cells: padded, or cut with an ellipsis."""
    taken = cells(text)
    if taken <= width:
        return text + " " * (width - taken)
    kept: list[str] = []
    used = 0
    for char in text:
        size = _cells(char)
        if used + size > width - 1:
            break
        kept.append(char)
        used += size
    return "".join(kept) + "…" + " " * (width - 1 - used)


def short_count(count: float) -> str:
    """A count in at most six characters, for where the whole number does not fit:
    9,999, 12.3k, 883k, 1.2M, 45.0M."""
    for size, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(count) >= size and (unit != "k" or abs(count) >= 10_000):
            scaled = count / size
            return f"{scaled:.1f}{unit}" if abs(scaled) < 100 else f"{scaled:.0f}{unit}"
    return f"{count:,.0f}"


def count_in(count: float, width: int, sign: str = "") -> str:
    """A count with its thousands separated if that fits `width`, else shorter (1.2M)."""
    whole = f"{sign}{count:,.0f}"
    return whole if len(whole) <= width else f"{sign}{short_count(count)}"


def share_text(share: float) -> str:
    """A share in five characters at most: 12.3%, 100%."""
    return "100%" if share >= 0.9995 else f"{share:5.1%}"


def first_fitting(texts: list[str], width: int) -> str:
    """The first of these texts (longest and fullest first) that fits `width`, else
    the last one cut with an ellipsis: a figure is written shorter, never cut silently."""
    for text in texts:
        if len(text) <= width:
            return text
    last = texts[-1]
    return last[: max(width - 1, 0)] + "…" if width > 0 else ""


def sparkline(values: list[int]) -> str:
    top = max(values, default=0)
    if top <= 0:
        return SPARK[0] * len(values)
    return "".join(SPARK[min(len(SPARK) - 1, v * len(SPARK) // (top + 1))] for v in values)


def left_cut(text: str, width: int, separator: str = "/") -> str:
    """Text cut from the left to `width` with an ellipsis, at a separator where one is
    in reach, so that its end (a file's name) stays whole: …/imdb-tui/events.db."""
    if len(text) <= width:
        return text
    if width <= 1:
        return "…"[:width]
    tail = text[len(text) - (width - 1) :]
    cut = tail.find(separator)
    if 0 <= cut < len(tail) - 1:
        tail = tail[cut:]
    return "…" + tail


def size_text(size: float) -> str:
    """Bytes in decimal units, as --max-size takes them: 812 kB, 1.6 GB."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{size:,.0f} B"


_SIZE_UNITS: Final = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12} | {
    f"{unit}i": 1 << (10 * n) for n, unit in enumerate("kmgt", 1)
}


def parse_size(text: str) -> int:
    """Bytes in a size such as 500MB, 2GB, 1.5G, 750MiB, or a plain number of bytes."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgt]i?)?b?\s*", text.lower())
    if match is None:
        raise ValueError(f"{text!r} is not a size like 500MB or 2GB")
    return int(float(match[1]) * _SIZE_UNITS[match[2] or ""])


def plural(count: int, noun: str) -> str:
    """1 event, 2 events, 1,000 dead letters."""
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {noun}s"


def rate_text(rate: float | None) -> str:
    return "max" if rate is None else f"{rate:,.0f}/s"


def moment_text(ts: float, tz: tzinfo | None) -> str:
    """A moment as local date and time to the second: 2024-03-01 14:05:07."""
    return f"{local_datetime(ts, tz):%Y-%m-%d %H:%M:%S}"


def seen_text(when: str, tz: tzinfo | None = None) -> str:
    """A stored UTC time (ISO-8601) as the local time of day: 12:03:44."""
    try:
        moment = seconds(when)
    except ValueError:
        return "?"
    return f"{local_datetime(moment, tz):%H:%M:%S}"


def clock_text(as_of: float | None, tz: tzinfo | None, replay_speed: float | None) -> str:
    """Where stream time stands ("—" before the first event), and how fast a replay runs."""
    replay = f" · replay {replay_speed:g}x" if replay_speed else ""
    moment = "—" if as_of is None else moment_text(as_of, tz)
    return f"stream time {moment}{replay}"


def millis_text(ms: float) -> str:
    """A duration in milliseconds, short: 128 ms, 2.3 s, 10 s, 43 min, 2.5 h (so that
    a lag, p50 and p99, fits the Pipeline panel at 80 columns)."""
    if ms < 1_000:
        return f"{ms:,.0f} ms"
    if ms >= 90_000:
        return span_text(ms / 1000)
    return f"{ms / 1000:.1f} s" if ms < 10_000 else f"{ms / 1000:,.0f} s"


def span_text(seconds: float) -> str:
    """A longer span, short: 40 s, 12 min, 5.5 h, 10.0 d."""
    if seconds < 90:
        return f"{seconds:,.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:,.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:,.1f} h"
    return f"{seconds / 86400:,.1f} d"
