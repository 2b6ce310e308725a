"""What every store backend does alike: each test runs on SQLite and on PostgreSQL.

Dedupe, aggregates, retention, the catalogue, positions and health rows, through
the store interfaces only (no backend's SQL), so one test holds both to the same
behaviour. Backend-specific matters (SQLite's files and schema versions,
PostgreSQL's schemas, connections and many writers) have files of their own.
"""

from __future__ import annotations

import pytest

from imdb_tui.aggregates import Aggregator
from imdb_tui.catalog import Movie
from imdb_tui.events import Event, validate
from imdb_tui.health import PipelineHealth
from imdb_tui.store import SourcePosition, Store, StoreError, TopMovie
from imdb_tui.store.dynamodb import batch
from imdb_tui.tail import EventMatch
from tests.conftest import DROP, NOW, Database, event
from tests.helpers import events, write


def test_an_event_is_stored_once_and_counted_as_a_duplicate_after(database: Database) -> None:
    store = database.open()
    assert len(write(store, events(range(0, 10)))) == 10
    again = events(range(5, 15)) + events(range(14, 16))  # 5-9 stored, 14 twice in the batch
    new = write(store, again)
    assert [e.event_id for e in new] == [f"evt-{n:08d}" for n in range(10, 16)]
    assert store.counters() == {"events_total": 16, "duplicates": 6}
    assert store.count_events() == 16
    store.close()


UUID = "01a252a8-540a-701e-8e82-6172c34f7bfa"
IDS = (
    UUID,  # SQLite keeps it in 16 bytes
    UUID.upper(),  # not canonical: kept as given, another event
    UUID.replace("-", ""),
    "01a252a8-540a-701e-8e82-6172c34f7bfz",  # not hex
    "evt-1",
    "x" * 36,  # 36 characters, not a UUID
)


def test_every_form_of_event_id_is_stored_once_and_read_back_as_given(
    database: Database,
) -> None:
    times = (
        "2026-11-23T10:00:00.000Z",
        "2026-11-23T10:00:00.999Z",
        "2026-11-23T10:59:59.001Z",
        "2026-11-23T10:00:00.500Z",
        "2026-11-23T10:30:00.007Z",
        "2026-11-23T10:00:00.123Z",
    )
    batch = [
        validate(event(n, event_id=i, event_time=t))
        for n, (i, t) in enumerate(zip(IDS, times, strict=True))
    ]
    store = database.open()
    assert len(write(store, batch)) == len(IDS)  # type: ignore[arg-type]
    again = events(range(2), event_id=UUID) + events(range(1), event_id="evt-2")
    assert [e.event_id for e in write(store, again)] == ["evt-2"]
    assert store.counters() == {"events_total": 7, "duplicates": 2}
    read = [e for page in store.events_between(times[0], "2026-11-24", 2) for e in page]
    assert sorted(read) == sorted([*batch, again[2]])  # type: ignore[type-var]
    assert store.newest_event_time() == "2026-11-23T10:59:59.001Z"
    store.close()


def test_aggregates_count_only_new_events(database: Database) -> None:
    store = database.open()
    write(store, events(range(4)))
    write(store, events(range(4)))
    assert store.events_per_minute("2026-11-23T10:00Z") == [("2026-11-23T10:00Z", 4)]
    assert sum(m.views for m in store.top_movies("2026-11-23", 10)) == 4
    (users,) = store.users_seen_since("2026-11-23T09:00:00.000Z")
    assert users == 4 and type(users) is int  # a count, not a Decimal, in JSON reports
    store.close()


def test_big_batches_are_stored_whole(database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    size = 40_000  # past SQLite's bound variables, several COPY and VALUES statements
    if database.backend == "dynamodb":
        # Past one transaction (100 events) and one item of a batch's ids, made small:
        # moto answers a few hundred calls a second, 40,000 would take minutes.
        size = 1_000
        monkeypatch.setattr(batch, "CHUNK", 2_000)
    store = database.open()
    assert len(write(store, events(range(size)))) == size
    assert store.count_events() == size
    store.close()


def test_retention_deletes_old_events_in_steps(sql_database: Database) -> None:
    """(On DynamoDB, items go by TTL instead: test_dynamodb.)"""
    store = sql_database.open()
    write(store, events(range(10), event_time="2026-11-01T10:00:00.000Z"))
    write(store, events(range(10, 15)))
    assert store.prune("2026-11-20T00:00:00.000Z", limit=4) == 4
    assert store.prune("2026-11-20T00:00:00.000Z", limit=4) == 4
    assert store.prune("2026-11-20T00:00:00.000Z", limit=4) == 2
    assert store.prune("2026-11-20T00:00:00.000Z", limit=4) == 0
    assert store.count_events() == 5
    assert store.counters()["events_total"] == 15  # all time, not what is kept
    store.close()


def test_views_by_five_minutes_are_kept_two_hours_behind_the_newest(database: Database) -> None:
    """What trending reads: kept through retention's cutoff while within two hours of
    the newest views, so a short --retention still has an hour to compare with."""
    store = database.open()
    for n, moment in enumerate(("07:00", "08:30", "09:58", "10:00", "10:04")):
        write(store, events(range(10 * n, 10 * n + 3), event_time=f"2026-11-23T{moment}:00.000Z"))
    bounds = ["2026-11-23T06:00Z", "2026-11-23T09:00Z", "2026-11-23T10:00Z", "2026-11-23T10:05Z"]

    def per_period() -> dict[int, int]:
        views: dict[int, int] = {}
        for period, _, n in store.views_per_period(bounds):
            views[period] = views.get(period, 0) + n
        return views

    assert per_period() == {0: 6, 1: 3, 2: 6}
    store.prune_aggregates("2026-11-23T09:30:00.000Z")  # the newest, 10:00, less 2 h: 08:00
    assert per_period() == {0: 3, 1: 3, 2: 6}
    store.prune_aggregates("2026-11-23T07:30:00.000Z")  # retention keeps more: no change
    assert per_period() == {0: 3, 1: 3, 2: 6}
    store.close()


def test_the_newest_events_that_match_come_newest_first(database: Database) -> None:
    """What the live tail reads: by type, movie, user and title words (literal, however
    they look), after a point, at most so many."""
    store = database.open()
    store.save_movies(
        [
            Movie("tt1000000", "The [Bold] 100% Story", 2001, ("Drama",)),
            Movie("tt1000001", "Another_Title", 1999, ("Crime",)),
        ]
    )
    kinds = ["view", "click", "rate", "view"]
    for n in range(20):
        kind = kinds[n % 4]
        rating = 5 if kind == "rate" else DROP
        time = f"2026-11-23T10:00:{n:02d}.000Z"
        write(store, events(range(n, n + 1), event_type=kind, rating=rating, event_time=time))
    every = store.newest_events(EventMatch(), 0, 5)
    assert every.newest == max(e.seq for e in every.events)
    assert [e.event_time[17:19] for e in every.events] == ["19", "18", "17", "16", "15"]
    first = every.events[0]
    assert (first.event_type, first.movie_id, first.user_id) == ("view", "tt1000004", "u0000005")

    def times(match: EventMatch, after: int = 0) -> list[int]:
        return [int(e.event_time[17:19]) for e in store.newest_events(match, after, 50).events]

    assert times(EventMatch(event_type="rate")) == [18, 14, 10, 6, 2]
    assert times(EventMatch(movie_id="tt1000001")) == [16, 11, 6, 1]
    assert times(EventMatch(user_id="u0000003", event_type="view")) == [3]
    assert times(EventMatch(words=("[bold]", "100%"))) == [15, 10, 5, 0]
    assert times(EventMatch(words=("_title",))) == [16, 11, 6, 1]
    assert times(EventMatch(words=("%",))) == [15, 10, 5, 0]  # no pattern: a character
    assert times(EventMatch(words=("tt1000002",))) == [17, 12, 7, 2]  # no title: its id
    assert times(EventMatch(), after=every.events[2].seq) == [19, 18]
    assert store.newest_events(EventMatch(event_type="rate"), 0, 1).events[0].rating == 5
    same = "2026-11-23T10:00:30.000Z"  # two events in one millisecond: two rows
    write(store, events(range(40, 42), event_time=same))
    both = store.newest_events(EventMatch(), every.newest, 50)
    assert [e.event_time for e in both.events] == [same, same]
    assert len({e.seq for e in both.events}) == 2 and both.newest == max(e.seq for e in both.events)
    store.close()


def test_the_catalogue_is_saved_and_refreshed(database: Database) -> None:
    store = database.open()
    store.save_movies([Movie("tt0000001", "First", 1999, ("Drama",))])
    store.save_movies([Movie("tt0000001", "First (restored)", 1999, ("Drama", "War"))])
    write(store, events(range(1), movie_id="tt0000001"))
    assert store.top_movies("2026-11-23", 10) == [
        TopMovie("tt0000001", "First (restored)", 1999, 1)
    ]
    store.close()


def keep(store: Store, files: str, movies: list[Movie], weights: list[float]) -> None:
    """A catalogue read and kept the way the CLI does it."""
    store.forget_catalog()
    store.add_catalog_movies(movies)
    store.weigh_catalog_movies(zip((m.movie_id for m in movies), weights, strict=True))
    store.keep_catalog(files, skipped=len(movies), rated=1)


def test_a_kept_catalogue_comes_back_only_for_the_same_files(database: Database) -> None:
    store = database.open()
    store.save_movies([Movie("tt0000009", "Made up", 2000, ("Drama",))])  # not IMDb's
    movies = [
        Movie("tt10000001", "Eight digits", 2020, ()),
        Movie("tt0000002", "Two", None, ()),
        Movie("tt0000001", "One", 1999, ("Drama", "War")),
    ]
    keep(store, "a|1|2", movies, [7.0, 1.0, 5.0])
    assert store.kept_catalog("a|1|3") is None
    assert store.kept_catalog("a|1|2") == (3, 1)
    # Shorter ids first, then in order: tt9999999 comes before tt10000000, as in IMDb's files.
    assert list(store.catalog_weights()) == [
        ("tt0000001", 5.0),
        ("tt0000002", 1.0),
        ("tt10000001", 7.0),
    ]
    write(store, events(range(1), movie_id="tt0000001"))
    assert store.top_movies("2026-11-23", 1) == [TopMovie("tt0000001", "One", 1999, 1)]
    keep(store, "b|1|2", movies[1:2], [2.0])  # another file: the first catalogue is gone
    assert store.kept_catalog("a|1|2") is None
    assert list(store.catalog_weights()) == [("tt0000002", 2.0)]
    store.close()


def test_a_catalogue_cut_short_is_not_kept(database: Database) -> None:
    store = database.open()
    keep(store, "a|1|2", [Movie("tt0000001", "One", 1999, ())], [5.0])
    store.forget_catalog()  # a new file was being read when the power went
    store.add_catalog_movies([Movie("tt0000002", "Two", 2000, ())])
    assert store.kept_catalog("a|1|2") is None  # so the next start reads it again
    store.close()


def health(state: str, last_seen: str) -> PipelineHealth:
    return PipelineHealth(
        state=state,
        target_rate=None,
        ingest_rate=10.0,
        queue_depth=0,
        lag_p50_ms=1.0,
        lag_p99_ms=2.0,
        emitted=3,
        stored=3,
        error=None,
        pipeline_id=f"host:1:{state}",
        host="host",
        pid=1,
        source="s.jsonl",
        started_at="2026-11-23T09:00:00.000Z",
        last_seen=last_seen,
    )


def test_positions_and_health_are_written_with_their_batch(database: Database) -> None:
    store = database.open()
    where = SourcePosition("file:/data/a.jsonl", '{"offset": 120}')
    store.write_batch(
        events(range(3)),
        [],
        "2026-11-23T10:00:00.000Z",
        Aggregator(None),
        positions=[where],
        health=health("running", "2026-11-23T10:00:00.000Z"),
    )
    assert store.position("file:/data/a.jsonl") == '{"offset": 120}'
    assert store.position("file:/other") is None
    assert store.positions() == [
        SourcePosition("file:/data/a.jsonl", '{"offset": 120}', "2026-11-23T10:00:00.000Z")
    ]
    store.put_health(health("stopped", "2026-11-23T10:00:01.000Z"))
    (running, stopped) = sorted(store.pipelines(NOW), key=lambda h: h.state)
    assert running.live and running.stored == 3 and running.source == "s.jsonl"
    assert not stopped.live  # ended
    assert not store.pipelines(NOW + 60)[0].live  # not heard from for a minute: gone
    store.close()


def test_a_batch_and_its_positions_are_stored_together_or_not_at_all(
    database: Database,
) -> None:
    store = database.open()
    broken = SourcePosition("file:/a", None)  # type: ignore[arg-type]  # NOT NULL fails
    with pytest.raises(StoreError):
        store.write_batch(
            events(range(5)),
            [],
            "2026-11-23T10:00:00.000Z",
            Aggregator(None),
            positions=[SourcePosition("file:/b", "7"), broken],
        )
    assert store.position("file:/b") is None and store.counters() == {}
    assert store.count_events() == 0
    store.close()


HOSTILE = [
    "[bold red]markup[/] and [link=http://x]links[/link]",
    "\x1b[31mANSI escape\x1b[0m \x07 bell \x08 backspace \r return",
    "quotes ' \" ` and \\ backslashes; DROP TABLE events; --",
    "emoji 🎬 and right-to-left \u202e text, zero\u200bwidth",
]


def test_hostile_text_round_trips_literally(database: Database) -> None:
    store = database.open()
    rejections = [validate(text) for text in HOSTILE]
    assert all(not isinstance(r, Event) for r in rejections)
    store.write_batch([], rejections, "2026-11-23T10:00:00.000Z", Aggregator(None))  # type: ignore[arg-type]
    assert [d.raw for d in reversed(store.dead_letters(10))] == HOSTILE
    movies = [Movie(f"tt000000{n}", text, 2000, (text,)) for n, text in enumerate(HOSTILE)]
    store.save_movies(movies)
    write(store, [validate(event(n, movie_id=m.movie_id)) for n, m in enumerate(movies)])  # type: ignore[misc]
    assert sorted(m.title for m in store.top_movies("2026-11-23", 10)) == sorted(HOSTILE)
    store.close()


def test_a_shard_is_leased_to_one_owner_at_a_time(database: Database) -> None:
    first, second = database.open(), database.open()
    key = "kinesis:clicks/shardId-000000000000"
    assert first.take_lease("g", key, "a", until=NOW + 10, now=NOW)
    assert not second.take_lease("g", key, "b", until=NOW + 10, now=NOW + 5)  # a holds it
    assert first.take_lease("g", key, "a", until=NOW + 20, now=NOW + 5)  # renewed
    assert second.lease_holders("g", NOW + 15) == {key: "a"}
    assert second.take_lease("g", key, "b", until=NOW + 31, now=NOW + 21)  # a's expired
    assert not first.take_lease("g", key, "a", until=NOW + 32, now=NOW + 22)
    assert second.take_lease("other", key, "b", until=NOW + 31, now=NOW + 21)  # groups apart
    second.release_leases("g", "b", [key])
    assert first.lease_holders("g", NOW + 22) == {}
    assert first.take_lease("g", key, "a", until=NOW + 32, now=NOW + 22)  # at once
    first.close()
    second.close()


def test_a_tail_read_while_a_batch_commits_reads_each_event_once(
    sql_database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tail's newest seq and its rows come from two queries: a batch committed
    between them must not come back again at the next read (the tail's rows are keyed
    by seq: a second row of one crashed the monitor's tail)."""
    writer, reader = sql_database.open(), sql_database.open()
    write(writer, events(range(0, 5)))
    queries = 0
    plain = reader._query  # type: ignore[attr-defined]

    def committing_between(*args: object) -> object:
        nonlocal queries
        queries += 1
        rows = plain(*args)
        if queries == 1:  # after the newest seq was read, before the rows are
            write(writer, events(range(5, 8)))
        return rows

    monkeypatch.setattr(reader, "_query", committing_between)
    first = reader.newest_events(EventMatch(), 0, 50)
    monkeypatch.setattr(reader, "_query", plain)
    assert all(event.seq <= first.newest for event in first.events)
    second = reader.newest_events(EventMatch(), first.newest, 50)
    seqs = [e.seq for e in first.events + second.events]
    assert len(seqs) == len(set(seqs)) == 8
    writer.close()
    reader.close()
