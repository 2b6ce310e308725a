from __future__ import annotations

from datetime import UTC
from pathlib import Path

import pytest

from imdb_tui.clock import ManualClock

# 2026-11-23 10:00:00 UTC: a fixed "now" for tests that need one.
NOW = 1795428000.0


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW, tz=UTC)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "events.db"


def event(n: int = 0, **changes: object) -> dict[str, object]:
    """A valid raw event record, at NOW unless told otherwise."""
    record: dict[str, object] = {
        "event_id": f"evt-{n:08d}",
        "event_time": "2026-11-23T10:00:00.000Z",
        "user_id": f"u{n % 7:07d}",
        "session_id": f"s{n % 11:012x}",
        "movie_id": f"tt{1000000 + n % 5:07d}",
        "event_type": "view",
    }
    record.update(changes)
    return {k: v for k, v in record.items() if v is not DROP}


DROP = object()
