"""The simulator: deterministic, realistic traffic that validates."""

from __future__ import annotations

from collections import Counter, defaultdict

from imdb_tui.catalog import build_catalog
from imdb_tui.clock import ManualClock
from imdb_tui.events import Event, validate
from imdb_tui.simulator import Simulator, SimulatorSettings
from tests.conftest import NOW


def simulate(seed: int, count: int, users: int = 20_000) -> list[dict[str, object]]:
    clock = ManualClock(NOW)
    simulator = Simulator(
        build_catalog(seed, 300), SimulatorSettings(seed=seed, users=users), clock
    )
    records = []
    while len(records) < count:
        records += simulator.records(min(500, count - len(records)))
        clock.advance(0.01)
    return records


def test_the_same_seed_gives_the_same_events() -> None:
    assert simulate(7, 3000) == simulate(7, 3000)


def test_another_seed_gives_other_events() -> None:
    assert simulate(7, 100) != simulate(8, 100)


def test_the_catalogue_is_the_same_for_the_same_seed() -> None:
    assert build_catalog(3, 50) == build_catalog(3, 50)
    assert build_catalog(3, 50) != build_catalog(4, 50)
    movies = build_catalog(3, 500).movies
    assert len({m.movie_id for m in movies}) == len({m.title for m in movies}) == 500


def test_every_simulated_event_is_valid_and_ids_increase() -> None:
    records = simulate(1, 5000)
    events = [validate(r) for r in records]
    assert all(isinstance(e, Event) for e in events)
    ids = [r["event_id"] for r in records]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_views_dominate_the_mix() -> None:
    mix = Counter(r["event_type"] for r in simulate(2, 20_000))
    assert set(mix) == {"view", "click", "rate", "watchlist_add"}
    assert mix["view"] > 0.5 * sum(mix.values())
    assert mix["view"] > mix["click"] > mix["rate"] and mix["click"] > mix["watchlist_add"]


def test_popularity_has_a_long_tail() -> None:
    views = Counter(r["movie_id"] for r in simulate(3, 30_000) if r["event_type"] == "view")
    counts = sorted(views.values(), reverse=True)
    top_tenth = sum(counts[: len(counts) // 10])
    assert top_tenth > 0.4 * sum(counts)  # uniform would be about 0.1
    assert len(counts) > 150  # and the tail is still watched


def test_a_session_acts_on_the_title_it_viewed() -> None:
    last_view: dict[str, str] = {}
    follow_ups = defaultdict(int)
    for record in simulate(4, 20_000):
        session, movie = str(record["session_id"]), str(record["movie_id"])
        if record["event_type"] == "view":
            last_view[session] = movie
        else:
            assert last_view[session] == movie
            follow_ups[record["event_type"]] += 1
    assert follow_ups["click"] and follow_ups["rate"] and follow_ups["watchlist_add"]


def test_ratings_are_in_range() -> None:
    ratings = [r["rating"] for r in simulate(5, 20_000) if r["event_type"] == "rate"]
    assert ratings and all(1 <= int(str(r)) <= 10 for r in ratings)
    assert len(set(ratings)) > 3
