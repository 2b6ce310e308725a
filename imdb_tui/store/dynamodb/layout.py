"""Where each of the model's tables lives in the one DynamoDB table: item keys.

The tables of counts (`Change.ADD` in store/model.py) become counter items, one a
key, that batches add to; a partition holds what one read wants together (a UTC
day's minutes, a day's movies), so a snapshot reads a bounded number of items by
Query and GetItem, never a Scan. A day's movies are one item each, holding its
events by type and its ratings (movie_views_daily, movie_events_daily and
movie_ratings_daily at once); the `top` index orders them by views, spread over
TOP_SHARDS partitions so that no one index partition takes every movie's writes.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from imdb_tui.aggregates import Aggregates
from imdb_tui.events import Event, Rejection, seconds
from imdb_tui.store import HEALTH_FIELDS, SourcePosition
from imdb_tui.store.dynamodb.table import Expiry, Item, wire_item

TOP_SHARDS: Final = 8
COUNTERS: Final = "counters"
POSITIONS: Final = "P"
PIPELINES: Final = "H"
OLDEST: Final = ("oldest", "-")
"""The oldest quarter hour counted: set only ever earlier."""
LETTER_DAYS: Final = "D"
"""The days that have dead letters, one item each."""
CATALOG_SOURCE: Final = ("catalog_source", "-")
MOVIE_PARTITIONS: Final = 16
NEWEST: Final = ("newest", "-")
"""The newest minute and event time counted: set only ever later."""

EXPIRING: Final = frozenset(
    ("E", "T", "D", "epm", "epq", "md", "rd", "rv", "mvm", "UM", "upm", "ud", "MU", "muc")
)
"""The kinds of item (a partition key's part before `#`) that retention lets go: an
event and its time index entry, dead letters, and every count of a minute or a day
(who.py's too). The counters, positions, health, catalogue, each user's last time
and the batches' records are kept for good."""
_MOMENT: Final = re.compile(r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2})?")

Count = tuple[str, str, dict[str, int], dict[str, object]]
"""A counter item's partition and sort keys, what to add to it, and what to set."""


def minute_key(minute: str) -> tuple[str, str]:
    """events_per_minute's partition (a UTC day) and the minute's sort key prefix."""
    return f"epm#{minute[:10]}", minute


def quarter_key(quarter: str) -> tuple[str, str]:
    return f"epq#{quarter[:10]}", quarter


def movie_day_key(day: str, movie_id: str) -> tuple[str, str]:
    return f"md#{day}", movie_id


def top_partition(day: str, movie_id: str) -> str:
    return f"top#{day}#{zlib.crc32(movie_id.encode()) % TOP_SHARDS}"


def ratings_key(day: str, rating: int) -> tuple[str, str]:
    return f"rd#{day}", f"{rating:02d}"


def recent_key(period: str, movie_id: str) -> tuple[str, str]:
    return f"rv#{period}", movie_id


def movie_minute_key(movie_id: str, minute: str) -> tuple[str, str]:
    return f"mvm#{movie_id}", minute


def movie_key(movie_id: str) -> tuple[str, str]:
    """A catalogue movie: spread over MOVIE_PARTITIONS partitions, read whole only to
    load a kept catalogue."""
    return f"M#{zlib.crc32(movie_id.encode()) % MOVIE_PARTITIONS}", movie_id


def letter_partition(received_at: str) -> str:
    return f"D#{received_at[:10]}"


def event_item(event: Event) -> Item:
    return {
        "p": f"E#{event.event_id}",
        "s": "-",
        "t": event.event_time,
        "ss": event.session_id,
        **_what(event),
    }


def _what(event: Event) -> Item:
    """What an event's items hold of it beside its keys: who, which movie, its type
    and its rating."""
    item: Item = {"u": event.user_id, "m": event.movie_id, "y": event.event_type}
    if event.rating is not None:
        item["r"] = event.rating
    return item


def event_of(item: Item) -> Event:
    """An event item read back."""
    return Event(
        item["p"][2:], item["t"], item["u"], item["ss"], item["m"], item["y"], item.get("r")
    )


def time_partition(minute: str) -> str:
    return f"T#{minute}"


def time_item(event: Event) -> Item:
    """An event's entry in the time index: its minute's partition, ordered by time."""
    return {
        "p": time_partition(event.event_time[:16] + "Z"),
        "s": f"{event.event_time}#{event.event_id}",
        "ss": event.session_id,
        **_what(event),
    }


def event_of_time_item(item: Item) -> Event:
    """An event read back from its entry in the time index (all of it: `export`)."""
    moment, event_id = item["s"].split("#", 1)
    return Event(
        event_id, moment, item["u"], item.get("ss", ""), item["m"], item["y"], item.get("r")
    )


def plan_of(
    aggregates: Aggregates,
    *,
    stored: int,
    events: int,
    rejections: Sequence[Rejection],
    received_at: str,
    writer: str,
    number: int,
    positions: Sequence[SourcePosition],
    health: tuple[object, ...] | None,
) -> dict[str, Any]:
    """What a batch adds and puts, as plain values (written as its plan, see batch.py)."""
    counts: dict[tuple[str, str], tuple[dict[str, int], dict[str, object]]] = {}

    def add(p: str, s: str, name: str, n: int, **sets: object) -> None:
        adds, kept = counts.setdefault((p, s), ({}, {}))
        adds[name] = adds.get(name, 0) + n
        kept.update(sets)

    for (minute, event_type), n in aggregates.per_minute.items():
        add(*minute_key(minute), event_type, n)
    for (quarter, event_type), n in aggregates.per_quarter_hour.items():
        add(*quarter_key(quarter), event_type, n)
    for (day, movie_id, event_type), n in aggregates.movie_events.items():
        sets = {"g": top_partition(day, movie_id)} if event_type == "view" else {}
        add(*movie_day_key(day, movie_id), event_type, n, **sets)
    for (day, movie_id, rating), n in aggregates.movie_ratings.items():
        add(*movie_day_key(day, movie_id), f"r{rating}", n)
    for (day, rating), n in aggregates.ratings.items():
        add(*ratings_key(day, rating), "n", n)
    for (period, movie_id), n in aggregates.recent_views.items():
        add(*recent_key(period, movie_id), "n", n)
    for (movie_id, minute), n in aggregates.movie_minutes.items():
        add(*movie_minute_key(movie_id, minute), "n", n)
    for name, n in (
        ("events_total", stored),
        ("duplicates", events - stored),
        ("dead_letters", len(rejections)),
    ):
        if n:
            add(COUNTERS, name, "n", n)
    letter_days = [{"p": LETTER_DAYS, "s": received_at[:10]}] if rejections else []
    letters = letter_days + [
        {
            "p": letter_partition(received_at),
            "s": f"{received_at}#{writer}#{number:012d}#{i:05d}",
            "received_at": received_at,
            "reason": r.reason,
            "raw": r.raw,
            "raw_size": r.raw_size,
        }
        for i, r in enumerate(rejections)
    ]
    newest = []
    if aggregates.per_minute:
        newest.append([*NEWEST, "minute", max(minute for minute, _ in aggregates.per_minute)])
    if aggregates.last_seen:
        newest.append([*NEWEST, "time", max(aggregates.last_seen.values())])
    if aggregates.recent_views:
        newest.append([*NEWEST, "period", max(period for period, _ in aggregates.recent_views)])
    oldest = []
    if aggregates.per_quarter_hour:
        oldest.append([*OLDEST, "quarter", min(q for q, _ in aggregates.per_quarter_hour)])
    return {
        "counts": [[p, s, adds, sets] for (p, s), (adds, sets) in sorted(counts.items())],
        "newest": newest,
        "oldest": oldest,
        "letters": letters,
        "last_seen": aggregates.last_seen,
        "user_days": {day: [start, users] for day, (start, users) in aggregates.user_days.items()},
        "movie_users": sorted(aggregates.movie_users),
        "positions": [[p.source, p.position] for p in positions],
        "received_at": received_at,
        "health": list(health) if health is not None else None,
        "stored": stored,
        "duplicates": events - stored,
        "rejected": len(rejections),
    }


def health_item(row: Sequence[object]) -> Item:
    fields = dict(zip((name for name, _ in HEALTH_FIELDS), row, strict=True))
    return {"p": PIPELINES, "s": fields["id"], **fields}


def commit_items(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """The items a batch's commit puts (typed for a transaction): positions, health."""
    items: list[Item] = [
        {"p": POSITIONS, "s": source, "position": position, "updated_at": plan["received_at"]}
        for source, position in plan["positions"]
    ]
    if plan["health"] is not None:
        items.append(health_item(plan["health"]))
    return [wire_item(item) for item in items]


def expiry(retention: float, clock: Callable[[], float]) -> Expiry:
    """When each item goes: `retention` seconds after its time (an event's own time,
    else the end of the minute or day its keys name, the partition's first), or
    after it is written if that is later (`clock`: now), so that history loaded
    today is kept as long as today's events, and a clock behind deletes nothing
    early."""

    def expires(p: str, s: str, event_time: str | None) -> float | None:
        if p.split("#", 1)[0] not in EXPIRING:
            return None
        if event_time is not None:
            return max(seconds(event_time), clock()) + retention
        found = _MOMENT.search(p) or _MOMENT.search(s)
        if found is None:
            return None
        text = found.group()
        span = 60 if found.group(1) else 86_400
        start = datetime.fromisoformat(text if span == 60 else f"{text}T00:00")
        return max(start.replace(tzinfo=UTC).timestamp() + span, clock()) + retention

    return expires
