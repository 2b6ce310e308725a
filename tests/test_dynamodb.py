"""The DynamoDB store's writes against moto's server: a batch stored and counted once,
whatever stops it at any step, and whoever finishes it.

A writer "killed" at a step is stopped there by the test hook (`marks.before_step`
raising), leaving the table as a dead process would; the clock each writer reads is
the test's, so a writer is taken for dead by moving it past GRACE."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path

import pytest

from imdb_tui.aggregates import Aggregator
from imdb_tui.events import Event, validate_many
from imdb_tui.store import (
    AlreadyStored,
    BatchMark,
    OutOfOrder,
    SourcePosition,
    StoreError,
    marks,
)
from imdb_tui.store.dynamodb import DynamoStore, batch
from tests.conftest import NOW, dynamodb_table, event
from tests.kinesis_server import Throttle
from tests.test_cli import COMMAND, imdb_tui

STEPS = ("claim", "plan", "apply", "commit")


class Killed(Exception):
    """The writer died here (the test hook stopped it)."""


@pytest.fixture
def store(aws: dict[str, str]) -> Iterator[DynamoStore]:
    opened = DynamoStore.open(f"dynamodb://t-{uuid.uuid4().hex[:12]}", create=True)
    opened.batches.clock = lambda: NOW
    yield opened
    opened.close()


def events(numbers: range, **changes: object) -> list[Event]:
    valid, rejected, _ = validate_many([event(n, **changes) for n in numbers])
    assert not rejected
    return valid


def write(
    store: DynamoStore,
    batch_events: list[Event],
    mark: BatchMark | None = None,
    positions: tuple[SourcePosition, ...] = (),
) -> list[Event]:
    return store.write_batch(
        batch_events,
        [],
        "2026-11-23T10:00:01.000Z",
        Aggregator(UTC),
        positions=positions,
        mark=mark,
    )


def recount(store: DynamoStore, expected: list[Event]) -> None:
    """The store's counts are those of `expected`, each event once."""
    distinct = {e.event_id: e for e in expected}
    assert store.counters().get("events_total") == len(distinct)
    by_minute = Counter(e.event_time[:16] + "Z" for e in distinct.values())
    assert dict(store.events_per_minute("2026-11-23T00:00Z")) == dict(by_minute)
    views = Counter(e.movie_id for e in distinct.values() if e.event_type == "view")
    top = store.top_movies("2026-11-23", 10)
    assert {m.movie_id: m.views for m in top} == dict(views)
    for e in distinct.values():
        item = store.stored_event(e.event_id)
        assert item is not None and item["u"] == e.user_id


def kill_at(step: str, number: int) -> None:
    def hook(at: str, mark: BatchMark) -> None:
        if at == step and mark.number == number:
            raise Killed(step)

    marks.before_step = hook


@pytest.fixture(autouse=True)
def no_hook() -> Iterator[None]:
    yield
    marks.before_step = None


def test_a_batch_is_stored_once_and_its_duplicates_counted(store: DynamoStore) -> None:
    first = events(range(20))
    assert len(write(store, first, BatchMark("w", 1, None))) == 20
    again = events(range(10, 30))
    new = write(store, again, BatchMark("w", 2, 1))
    assert [e.event_id for e in new] == [e.event_id for e in again[10:]]
    recount(store, first + again)
    assert store.counters()["duplicates"] == 10


def test_the_same_batch_sent_again_is_answered_with_what_it_did(store: DynamoStore) -> None:
    write(store, events(range(5)), BatchMark("w", 1, None))
    with pytest.raises(AlreadyStored) as done:
        write(store, events(range(5)), BatchMark("w", 1, None))
    assert (done.value.stored, done.value.duplicates) == (5, 0)
    with pytest.raises(OutOfOrder):
        write(store, events(range(5, 9)), BatchMark("w", 3, 2))
    recount(store, events(range(5)))


@pytest.mark.parametrize("step", STEPS)
def test_a_writer_killed_at_any_step_and_sent_again_stores_once(
    store: DynamoStore, step: str
) -> None:
    """A writer child dies at a step; its parent sends the batch again (same mark)."""
    write(store, events(range(10)), BatchMark("w", 1, None))
    kill_at(step, 2)
    second = events(range(5, 25))
    with pytest.raises(Killed):
        write(store, second, BatchMark("w", 2, 1), (SourcePosition("file:/f", "20"),))
    marks.before_step = None
    with contextlib.suppress(AlreadyStored):  # the commit went through before the kill
        write(store, second, BatchMark("w", 2, 1), (SourcePosition("file:/f", "20"),))
    recount(store, events(range(25)))
    assert store.position("file:/f") == "20"


@pytest.mark.parametrize("step", STEPS)
def test_a_run_killed_at_any_step_then_run_again_stores_once(store: DynamoStore, step: str) -> None:
    """The whole run dies at a step; the same command, a new writer, sends the same
    events once the old writer's time is up."""
    kill_at(step, 1)
    lines = events(range(30))
    with pytest.raises(Killed):
        write(store, lines, BatchMark("run-1", 1, None))
    marks.before_step = None
    assert store.position("file:/f") is None  # nothing committed: the rerun starts over
    store.batches.clock = lambda: NOW + batch.LIVE_FOR + batch.GRACE + 1
    write(store, lines, BatchMark("run-2", 1, None), (SourcePosition("file:/f", "30"),))
    recount(store, lines)
    # Killed before its plan, run-1 is aborted and its claims taken over; killed
    # after, it is finished by run-2, whose own sends are then duplicates.
    finished = step in ("apply", "commit")
    assert store.counters().get("duplicates", 0) == (30 if finished else 0)
    assert store.position("file:/f") == "30"


def test_a_writer_taken_for_dead_while_slow_counts_nothing_twice(store: DynamoStore) -> None:
    """A stops before its plan; B (A's time up) aborts it and stores the events; A
    then goes on: its plan is refused, its next attempt finds every event B's."""
    lines = events(range(12))
    stopped: list[BatchMark] = []

    def pause_a(at: str, mark: BatchMark) -> None:
        if mark.writer == "a" and at == "plan" and not stopped:
            stopped.append(mark)
            store.batches.clock = lambda: NOW + batch.LIVE_FOR + batch.GRACE + 1
            marks.before_step = None
            write(store, lines, BatchMark("b", 1, None))  # B, while A stands still

    marks.before_step = pause_a
    new = write(store, lines, BatchMark("a", 1, None))
    assert stopped and new == []
    recount(store, lines)
    assert store.counters()["duplicates"] == 12


def test_a_run_killed_while_applying_is_finished_by_the_next(store: DynamoStore) -> None:
    """The plan was written and some counts added: whoever meets its events finishes
    it, adding each count once, and takes its events as duplicates."""
    lines = events(range(8))

    def die_part_way(at: str, mark: BatchMark) -> None:
        if at == "commit":
            raise Killed(at)

    marks.before_step = die_part_way
    with pytest.raises(Killed):
        write(store, lines, BatchMark("run-1", 1, None))
    marks.before_step = None
    store.batches.clock = lambda: NOW + batch.LIVE_FOR + batch.GRACE + 1
    assert write(store, lines, BatchMark("run-2", 1, None)) == []
    recount(store, lines)
    assert store.counters()["duplicates"] == 8


def test_a_missing_table_is_one_line(aws: dict[str, str]) -> None:
    with pytest.raises(StoreError, match="no such table"):
        DynamoStore.open("dynamodb://no-such-table-here")
    with pytest.raises(StoreError, match="table name"):
        DynamoStore.open("dynamodb://a")


def test_counts_added_before_a_kill_are_not_added_again(
    store: DynamoStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed after the first of its transactions of counts (3 counts each, here):
    the writer sent again (the same mark) and a new run (another writer) each finish
    it, adding each count once."""
    monkeypatch.setattr(batch, "COUNTS", 3)
    table = store.batches.table  # what a batch writes through
    transact = table.transact
    made = 0

    def some_then_die(actions: list[dict[str, object]]) -> None:
        nonlocal made
        if "ADD #a0" in str(actions[0].get("Update", {})):
            made += 1
            if made > 1:
                raise Killed("apply")
        transact(actions)

    for rerun, rated, viewed in (("w", 100, 300), ("run-2", 200, 400)):
        made = 0
        lines = events(range(rated, rated + 40), event_type="rate", rating=7)
        lines += events(range(viewed, viewed + 40))
        monkeypatch.setattr(table, "transact", some_then_die)
        number = 1 if rerun == "w" else 2
        with pytest.raises(Killed):
            write(store, lines, BatchMark("w", number, None if number == 1 else 1))
        monkeypatch.setattr(table, "transact", transact)
        if rerun == "w":  # finished, then answered as stored
            with pytest.raises(AlreadyStored):
                write(store, lines, BatchMark("w", 1, None))
        else:
            store.batches.clock = lambda: NOW + batch.LIVE_FOR + batch.GRACE + 1
            assert write(store, lines, BatchMark("run-2", 1, None)) == []
    everything = events(range(100, 140), event_type="rate", rating=7) + events(range(300, 340))
    everything += events(range(200, 240), event_type="rate", rating=7) + events(range(400, 440))
    recount(store, everything)


def test_users_are_counted_exactly_whoever_adds_them_and_however_often(
    store: DynamoStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Active users to the millisecond, a day's users and a movie's users agree with
    a recount, also when a batch is killed part way through its users and finished
    by the next run."""
    early = events(range(0, 14), event_time="2026-11-23T09:58:10.000Z")
    late = events(range(14, 17), event_time="2026-11-23T10:00:30.500Z")  # users 0-2 again
    late += validate_many(  # and 70 new users: three transactions of users
        [
            event(n, user_id=f"v{n}", event_time="2026-11-23T10:00:31.000Z")
            for n in range(1000, 1070)
        ]
    )[0]
    write(store, early, BatchMark("w", 1, None))
    table = store.batches.table
    transact = table.transact
    made = 0

    def one_then_die(actions: object) -> None:
        nonlocal made
        made += 1
        if made > 1:
            raise Killed("apply")
        transact(actions)  # type: ignore[arg-type]

    monkeypatch.setattr(table, "transact", one_then_die)
    with pytest.raises(Killed):
        write(store, late, BatchMark("w", 2, 1))
    monkeypatch.setattr(table, "transact", transact)
    store.batches.clock = lambda: NOW + batch.LIVE_FOR + batch.GRACE + 1
    write(store, early + late, BatchMark("run-2", 1, None))
    recount(store, early + late)
    every = early + late
    newest: dict[str, str] = {}
    for e in every:
        newest[e.user_id] = max(newest.get(e.user_id, ""), e.event_time)
    for moment in (
        "2026-11-23T09:00:00.000Z",
        "2026-11-23T09:58:10.000Z",
        "2026-11-23T09:58:10.001Z",
        "2026-11-23T10:00:30.500Z",
        "2026-11-23T10:00:30.501Z",
    ):
        expected = sum(1 for t in newest.values() if t >= moment)
        assert store.users_seen_since(moment) == [expected], moment
    assert store.users_on("2026-11-23") == len(newest)
    for movie in {e.movie_id for e in every}:
        users = {e.user_id for e in every if e.movie_id == movie}
        assert store.movie_users("2026-11-23", movie) == len(users)


def test_writers_sharing_events_store_each_once(store: DynamoStore) -> None:
    """Three writers at once, each in batches of its own, over overlapping events:
    each event is stored by one of them and counted as a duplicate by the others."""
    import threading

    runs = {"a": range(0, 300), "b": range(100, 400), "c": range(0, 400, 2)}
    stored: dict[str, int] = {}

    def run(writer: str) -> None:
        mine = DynamoStore(store.table)
        mine.batches.clock = store.batches.clock
        lines = events(runs[writer])
        count, previous = 0, None
        for number, start in enumerate(range(0, len(lines), 60), 1):
            count += len(
                write(mine, lines[start : start + 60], BatchMark(writer, number, previous))
            )
            previous = number
        mine.forget_writer(writer)
        mine.close()
        stored[writer] = count

    threads = [threading.Thread(target=run, args=(w,)) for w in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = events(range(400))
    recount(store, everything)
    sent = sum(len(r) for r in runs.values())
    assert sum(stored.values()) == 400
    assert store.counters()["duplicates"] == sent - 400
    counters = store.table.get("counters", "events_total") or {}
    assert not [name for name in counters if name.startswith("h:")]  # forgotten


def test_retention_goes_by_ttl_and_readers_leave_out_what_is_past_its_time(
    store: DynamoStore,
) -> None:
    """Each item is written with its time to go (`x`, the table's TTL attribute):
    DynamoDB deletes it, up to two days late, and moto never does, so readers leave
    out what is past its time themselves. Nothing is deleted by hand."""
    from imdb_tui.clock import utc_iso
    from imdb_tui.events import Rejection
    from imdb_tui.store.dynamodb.table import key

    retention = 7 * 86_400.0
    assert time.time() > NOW + retention  # what was written at NOW is past its time
    old_time = utc_iso(NOW - 5 * 86_400)
    old = events(range(10), event_time=old_time)
    bad = [Rejection("not JSON", "{", 1)]
    aggregate = Aggregator(UTC)
    store.write_batch(old, bad, old_time, aggregate, retention=retention)  # at NOW
    # Written now: kept a week from now, whatever their own time (history loaded today).
    store.batches.clock = time.time
    store.write_batch(events(range(10, 15)), [], utc_iso(NOW), aggregate, retention=retention)

    assert store.count_events() == 5
    assert store.events_per_minute(old_time[:16] + "Z") == [("2026-11-23T10:00Z", 5)]
    assert store.top_movies(old_time[:10], 10) == []
    assert store.users_on(old_time[:10]) in (None, 0)
    assert store.dead_letters(10) == []
    assert store.counters()["events_total"] == 15  # all time, as on every store
    assert store.prune(utc_iso(NOW), 100) == 0  # DynamoDB deletes them, at no cost

    client, table = store.table.client, store.table.name
    item = client.get_item(TableName=table, Key=key(f"E#{old[0].event_id}", "-"))["Item"]
    assert int(item["x"]["N"]) == int(NOW + retention)  # still there
    kept = client.get_item(TableName=table, Key=key("counters", "events_total"))["Item"]
    assert "x" not in kept  # counters are kept for good
    ttl = client.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "x"}

    # A batch its writer left applying is finished by the next run with the same times.
    kill_at("apply", 1)
    late = events(range(20, 25))
    with pytest.raises(Killed):
        store.write_batch(
            late, [], utc_iso(NOW), aggregate, mark=BatchMark("dead", 1, None), retention=retention
        )
    marks.before_step = None
    next_run = DynamoStore(store.table)
    next_run.batches.clock = lambda: time.time() + batch.LIVE_FOR + batch.GRACE + 1
    next_run.batches.recover()
    assert store.count_events() == 10
    entry = f"{late[0].event_time}#{late[0].event_id}"
    item = client.get_item(TableName=table, Key=key(f"T#{late[0].event_time[:16]}Z", entry))["Item"]
    assert int(item["x"]["N"]) > time.time() + retention - 60


def test_no_credentials_is_said_as_such_not_as_a_missing_table(
    aws: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(StoreError, match="no AWS credentials"):
        DynamoStore.open("dynamodb://no-such-table-here")


def test_four_runs_into_one_table_two_of_one_file_store_each_event_once(
    aws: dict[str, str], tmp_path: Path
) -> None:
    """Four `imdb-tui run` processes at once into one table, two of them fed the same
    file and the others files that share events with it: each event stored once,
    each duplicate counted once, the figures those of the events."""
    lines = produced(500, seed=23)
    files = {"a": lines[:300], "b": lines[200:], "c1": lines[100:400], "c2": lines[100:400]}
    table = dynamodb_table().name
    runs = []
    for name, chosen in files.items():
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(chosen))
        runs.append(
            subprocess.Popen(
                [COMMAND, "run", "--source", str(path), "--db", table],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=aws,
            )
        )
    try:
        for run in runs:
            _, err = run.communicate(timeout=240)
            assert run.returncode == 0, err
    finally:
        for run in runs:
            if run.poll() is None:
                run.kill()
                run.wait()
    sent = sum(len(chosen) for chosen in files.values())
    assert stored(table) == (500, 500, sent - 500)
    alone = dynamodb_table().name
    source = tmp_path / "all.jsonl"
    source.write_text("".join(lines))
    assert imdb_tui("run", "--source", str(source), "--db", alone, env=aws).returncode == 0
    together, by_itself = figures(table, aws), figures(alone, aws)
    assert together.pop("duplicates") == sent - 500
    by_itself.pop("duplicates")
    assert together == by_itself


# Throttling: the test endpoint refuses calls (tests/kinesis_server.Throttle) -------


def produced(count: int, seed: int) -> list[str]:
    made = imdb_tui("produce", "--count", str(count), "--seed", str(seed), timeout=120)
    return made.stdout.splitlines(keepends=True)


def stored(table: str) -> tuple[int, int, int]:
    """(events counted, event items in the table, duplicates counted)."""
    store = DynamoStore.open(table)
    try:
        counters = store.counters()
        return counters["events_total"], store.count_events(), counters.get("duplicates", 0)
    finally:
        store.close()


def figures(database: str, env: dict[str, str]) -> dict[str, object]:
    """`report --json`, less what is about the run rather than the events."""
    result = imdb_tui("report", "--db", database, "--json", "--as-of", "latest", env=env)
    assert result.returncode == 0, result.stderr
    report: dict[str, object] = json.loads(result.stdout)
    for about_the_run in ("pipelines", "sources", "database_bytes", "figures"):
        report.pop(about_the_run)
    return report


def test_throttled_calls_lose_and_double_nothing(
    aws: dict[str, str], throttle: Throttle, tmp_path: Path
) -> None:
    """A tenth of the calls refused, half of them after they were carried out (their
    answer lost, so they are made again): the same figures as without throttling."""
    source = tmp_path / "events.jsonl"
    lines = produced(300, seed=21)
    source.write_text("".join(lines + lines[:30]))
    calm, throttled = dynamodb_table().name, dynamodb_table().name
    ran = imdb_tui("run", "--source", str(source), "--db", calm, env=aws, timeout=120)
    assert ran.returncode == 0, ran.stderr
    throttle.set(0.1, seed=3)
    ran = imdb_tui("run", "--source", str(source), "--db", throttled, env=aws, timeout=300)
    assert ran.returncode == 0, ran.stderr
    assert "300 events stored, 30 duplicates, 0 dead letters" in ran.stdout
    assert throttle.refused > 10
    throttle.set(0.0)
    assert figures(throttled, aws) == figures(calm, aws)


def test_a_table_refusing_every_call_shows_waiting_then_carries_on(
    aws: dict[str, str], throttle: Throttle, tmp_path: Path
) -> None:
    """`run --follow` while the table refuses everything for a while: the status says
    WAITING with the reason; once calls go through again, every line is stored once."""
    source = tmp_path / "events.jsonl"
    lines = produced(400, seed=22)
    source.write_text("".join(lines[:200]))
    table = dynamodb_table().name
    run = subprocess.Popen(
        [COMMAND, "run", "--source", str(source), "--follow", "--db", table],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=aws,
    )
    try:
        assert run.stdout is not None

        def wait_for(text: str) -> str:
            for line in run.stdout:  # type: ignore[union-attr]
                if text in line:
                    return line
            raise AssertionError(f"the run ended before {text!r}: {run.stderr.read()}")  # type: ignore[union-attr]

        wait_for("stored 200 ")
        throttle.always = True
        with source.open("a") as out:
            out.write("".join(lines[200:]))
        waiting = wait_for("waiting")
        assert f"{table}: throttled (ProvisionedThroughputExceededException)" in waiting
        throttle.always = False
        wait_for("stored 400 ")
        run.send_signal(signal.SIGINT)
        assert run.wait(timeout=60) == 0
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert stored(table) == (400, 400, 0)


def test_the_top_ten_reads_the_best_of_each_index_shard_not_every_movie_of_the_day(
    store: DynamoStore,
) -> None:
    """A snapshot's cost must not grow with the day's movies: 400 movies viewed, the
    top ten read from each shard's first page of its best (ties with the tenth too)."""
    movies = [n % 400 for n in range(400)] + [m for m in range(20) for _ in range(20 - m)]
    records = [event(n, movie_id=f"tt{2_000_000 + m:07d}") for n, m in enumerate(movies)]
    write(store, validate_many(records)[0])
    read: list[int] = []
    call = store.table.call

    def counting(operation: str, **arguments: object) -> dict[str, object]:
        answer: dict[str, object] = call(operation, **arguments)
        read.append(len(answer.get("Items", ())))  # type: ignore[arg-type]
        return answer

    store.table.call = counting  # type: ignore[method-assign]
    top = store.top_movies("2026-11-23", 10)
    assert [m.views for m in top] == [21 - m for m in range(10)]
    assert [m.movie_id for m in top] == [f"tt{2_000_000 + m:07d}" for m in range(10)]
    assert sum(read) < 100  # not the 400 movies
