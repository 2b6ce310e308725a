"""Statements written once for every SQL backend (`?` placeholders: postgres turns
them into psycopg's), and what goes with them."""

from __future__ import annotations

from typing import Final

OLDEST_HEADS: Final = (
    "SELECT (SELECT min(event_time) FROM events), (SELECT min(received_at) FROM dead_letters)"
)
"""The oldest event's time and the oldest dead letter's arrival (see older_kind)."""


def older_kind(event_head: str | None, letter_head: str | None) -> str | None:
    """Which raw rows are oldest, "events" or "dead_letters" (None: there are none)."""
    if letter_head is not None and (event_head is None or letter_head < event_head):
        return "dead_letters"
    return None if event_head is None else "events"


NEWEST_MINUTE: Final = "SELECT max(minute) FROM events_per_minute"
EVENTS_AFTER: Final = (
    "SELECT count(*) FROM (SELECT 1 FROM events WHERE event_time > ? LIMIT ?) AS later"
)
"""MetricsReader.events_after, for every SQL backend (`?` placeholders)."""
