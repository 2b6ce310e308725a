"""Active users and users today, kept as counts per minute, against a plain recount.

The store keeps how many users were last seen in each minute, moved along as
batches arrive; these tests replay random histories (out of order, repeated,
across midnight, with retention pruning) and compare every figure a snapshot
shows with counting the users by hand.
"""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imdb_tui.aggregates import Aggregator
from imdb_tui.clock import day_start, utc_iso
from imdb_tui.events import Event
from imdb_tui.metrics import WINDOW_CHOICES, read_snapshot
from imdb_tui.store import open_store
from tests.conftest import NOW, Database
from tests.helpers import older_file

TZ = ZoneInfo("America/New_York")
MIDNIGHT = day_start(NOW, TZ)  # local midnight, so "today" changes inside the histories
SPAN_MS = 40 * 60 * 1000  # histories run from 20 minutes before it to 20 after


def at(offset_ms: int) -> float:
    return MIDNIGHT - SPAN_MS / 2000 + offset_ms / 1000


times = st.integers(0, SPAN_MS)
batch = st.lists(st.tuples(times, st.integers(0, 9)), min_size=1, max_size=12)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("batch"), batch),
        st.tuples(st.just("again"), st.just([])),  # the previous batch, resent: duplicates
        st.tuples(st.just("prune"), times),
        st.tuples(st.just("look"), times),
    ),
    max_size=25,
)


class Recount:
    """What the figures should be, from every event written, counted by hand."""

    def __init__(self) -> None:
        self.last_seen: dict[str, str] = {}
        self.cutoff = ""

    def add(self, events: list[Event]) -> None:
        for e in events:
            self.last_seen[e.user_id] = max(self.last_seen.get(e.user_id, ""), e.event_time)

    def since(self, moment: str) -> int | None:
        """Users with an event at or after `moment`; None for a moment before what
        retention kept, where the store is not asked to know."""
        if moment < self.cutoff:
            return None
        return sum(seen >= moment for seen in self.last_seen.values())


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(history=steps)
def test_user_counts_match_a_recount(
    sql_database: Database, history: list[tuple[str, object]]
) -> None:
    check_user_counts(sql_database, history)


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(history=steps)
def test_user_counts_match_a_recount_on_dynamodb(
    dynamodb_database: Database, history: list[tuple[str, object]]
) -> None:
    """The same, on fewer histories: each is a few hundred calls to moto's endpoint."""
    check_user_counts(dynamodb_database, history)


def check_user_counts(database: Database, history: list[tuple[str, object]]) -> None:
    store = database.another().open()
    recount = Recount()
    aggregate = Aggregator(TZ)
    previous: list[Event] = []
    serial = 0
    for kind, value in history:
        if kind in ("batch", "again"):
            if kind == "batch":
                assert isinstance(value, list)
                previous = []
                for offset, user in value:
                    serial += 1
                    when = utc_iso(at(offset))
                    previous.append(Event(f"e{serial}", when, f"u{user}", "s", "tt1", "view", None))
            store.write_batch(previous, [], utc_iso(NOW), aggregate)
            recount.add(previous)
        elif kind == "prune":
            assert isinstance(value, int)
            cutoff = utc_iso(at(value))
            store.prune_aggregates(cutoff)
            recount.cutoff = max(recount.cutoff, cutoff)
        else:
            assert isinstance(value, int)
            now = at(value)
            for window in WINDOW_CHOICES:
                snap = read_snapshot(store, now, TZ, window)
                active = recount.since(utc_iso(now - window * 60))
                if active is not None:
                    assert snap.active_users.count == active, (window, now)
                today = recount.since(utc_iso(day_start(now, TZ)))
                if today is not None:
                    assert snap.users_today == today, now
    store.close()


def test_a_window_starting_inside_a_minute_counts_to_the_millisecond(database: Database) -> None:
    store = database.open()
    seen = ["10:00:10.000", "10:00:20.000", "10:00:20.001", "10:01:00.000", "10:03:59.999"]
    events = [
        Event(f"e{n}", f"2026-11-23T{t}Z", f"u{n}", "s", "tt1", "view", None)
        for n, t in enumerate(seen)
    ]
    store.write_batch(events, [], utc_iso(NOW), Aggregator(None))
    counts = store.users_seen_since(
        "2026-11-23T10:00:20.001Z", "2026-11-23T10:00:00.000Z", "2026-11-23T10:04:00.000Z"
    )
    assert counts == [3, 5, 0]
    store.close()


def test_an_upgraded_file_counts_the_users_it_already_held(db_path: Path) -> None:
    """Schema 4 fills the per-minute counts from the users an older file knew."""
    with older_file(db_path, 3) as old:
        old.executemany(
            "INSERT INTO user_activity VALUES (?, ?)",
            [(f"u{n}", f"2026-11-23T09:{n % 60:02d}:{n % 7:02d}.000Z") for n in range(300)],
        )
    moments = ("2026-11-23T09:00:00.000Z", "2026-11-23T09:30:03.500Z", "2026-11-23T09:59:59.000Z")
    as_it_was = open_store(db_path, read_only=True)  # an older file, read by scanning users
    expected = as_it_was.users_seen_since(*moments)
    as_it_was.close()
    upgraded = open_store(db_path)
    assert upgraded.users_seen_since(*moments) == expected == [300, 147, 0]
    upgraded.close()
