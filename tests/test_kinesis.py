"""Amazon Kinesis as a source, and as where `produce` puts events, against a real
endpoint on 127.0.0.1 (moto's server mode), through the imdb-tui command."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest

from imdb_tui.store import Store, StoreError
from imdb_tui.store import open_store as open_store_file
from tests.conftest import NOW, Database, event, scaled
from tests.streams import (
    COMMAND,
    consume,
    finish,
    one_shard_stream,
    produce,
    query,
    report,
    stored,
    stream,
    until_dead_letters,
    until_stored,
)

T = TypeVar("T")


def assert_aggregates_match_a_recount(db: Path) -> None:
    recounts = {
        "SELECT minute, event_type, events FROM events_per_minute": (
            "SELECT substr(event_time, 1, 16) || 'Z', event_type, count(*) FROM events_with_titles"
            " GROUP BY 1, 2"
        ),
        "SELECT user_id, last_seen FROM user_activity": (
            "SELECT user_id, max(event_time) FROM events_with_titles GROUP BY 1"
        ),
        "SELECT value FROM counters WHERE name = 'events_total'": "SELECT count(*) FROM events",
    }
    for kept, recount in recounts.items():
        assert sorted(query(db, kept)) == sorted(query(db, recount)), kept


def test_a_produced_stream_is_stored_exactly_once(aws: dict[str, str], tmp_path: Path) -> None:
    name = stream()
    said = produce(aws, name, 20_000, "--create-shards", "4", "--seed", "1")
    assert f"put 20,000 records into kinesis://{name}" in said
    db = tmp_path / "k.db"
    consumer = consume(aws, name, db)
    until_stored(db, 20_000, consumer)
    output = finish(consumer)
    assert f"source: kinesis://{name} (Kinesis stream)" in output
    assert query(db, "SELECT count(*), count(DISTINCT event_id) FROM events") == [(20_000, 20_000)]
    assert_aggregates_match_a_recount(db)
    data = json.loads(report(aws, db, "--json"))
    (pipeline,) = data["pipelines"]  # how far behind the stream's tip it read, last
    assert pipeline["source_behind_ms"] is not None and pipeline["source_behind_ms"] >= 0
    assert all(s["position"]["millis_behind_latest"] is not None for s in data["sources"])
    shards = query(db, "SELECT source FROM source_positions ORDER BY source")
    assert shards == [(f"kinesis:{name}/shardId-00000000000{n}",) for n in range(4)]
    # A second run carries on after the checkpoints: nothing is read again.
    again = consume(aws, name, db, "--duration", "2")
    output = again.communicate(timeout=60)[0]
    assert "from 4 of 4 shards after their checkpoints" in output
    assert "done: 0 events stored, 0 duplicates" in output


def test_a_killed_consumer_restarts_and_stores_exactly_the_rest(
    aws: dict[str, str], tmp_path: Path
) -> None:
    name = stream()
    produce(aws, name, 20_000, "--create-shards", "4", "--seed", "2")
    db = tmp_path / "k.db"
    consumer = consume(aws, name, db, "--rate", "4000")
    until_stored(db, 5_000, consumer)
    consumer.send_signal(signal.SIGKILL)  # mid-stream: the batch being written rolls back
    consumer.wait(timeout=30)
    assert stored(db) < 20_000
    again = consume(aws, name, db)
    until_stored(db, 20_000, again)
    output = finish(again)
    assert "after their checkpoints" in output
    assert query(db, "SELECT count(*), count(DISTINCT event_id) FROM events") == [(20_000, 20_000)]
    duplicates = query(db, "SELECT coalesce(sum(value), 0) FROM counters WHERE name = 'duplicates'")
    assert duplicates == [(0,)]  # each shard resumed right after its committed checkpoint
    assert_aggregates_match_a_recount(db)


def test_hostile_records_in_the_stream_are_dead_letters_shown_literally(
    aws: dict[str, str], tmp_path: Path
) -> None:
    import boto3

    name = stream()
    produce(aws, name, 100, "--create-shards", "1", "--seed", "3")
    kinesis = boto3.client("kinesis")
    hostile = [
        b"[bold red]not json[/]",
        b'\x1b[31m{"event_id": 1}\x1b[0m',
        json.dumps({"event_id": "x", "user_id": "[link=http://x]u[/link]"}).encode(),
        b"\xff\xfe not utf-8",
    ]
    for data in hostile:
        kinesis.put_record(StreamName=name, Data=data, PartitionKey="k")
    db = tmp_path / "k.db"
    consumer = consume(aws, name, db)
    until_stored(db, 100, consumer)
    until_dead_letters(db, 4)
    finish(consumer)
    letters = json.loads(report(aws, db, "--dead-letters", "--json"))
    raws = sorted(letter["raw"] for letter in letters)
    expected = sorted(d.decode("utf-8", errors="backslashreplace") for d in hostile)
    assert raws == expected
    # Each says where in the stream it was: the shard and the sequence number.
    assert all(
        re.search(r"\(shardId-000000000000, sequence \d+\)$", letter["reason"])
        for letter in letters
    ), [letter["reason"] for letter in letters]


def test_a_split_stream_is_read_whole(aws: dict[str, str], tmp_path: Path) -> None:
    import boto3

    name = stream()
    produce(aws, name, 3_000, "--create-shards", "1", "--seed", "4", "--users", "50")
    kinesis = boto3.client("kinesis")
    (shard,) = kinesis.list_shards(StreamName=name)["Shards"]
    middle = (
        int(shard["HashKeyRange"]["StartingHashKey"]) + int(shard["HashKeyRange"]["EndingHashKey"])
    ) // 2
    kinesis.split_shard(
        StreamName=name, ShardToSplit=shard["ShardId"], NewStartingHashKey=str(middle)
    )
    produce(aws, name, 3_000, "--seed", "5", "--users", "50")
    db = tmp_path / "k.db"
    consumer = consume(aws, name, db)
    until_stored(db, 6_000, consumer)
    finish(consumer)
    assert query(db, "SELECT count(*) FROM events") == [(6_000,)]
    assert len(query(db, "SELECT source FROM source_positions")) >= 1
    # In the order stored, each user's event times never go back.
    rows = query(db, "SELECT user_id, event_time FROM events_with_titles ORDER BY seq")
    last: dict[str, str] = {}
    for user, when in rows:
        assert when >= last.get(user, ""), (user, when, last[user])
        last[user] = when


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--source", "kinesis://no-such-stream"], "no such stream"),
        (["--source", "kinesis://"], "name a stream"),
        (["--source", "kinesis://x", "--from", "yesterday"], "--from 'yesterday'"),
    ],
)
def test_problems_with_a_stream_are_one_line_at_start(
    aws: dict[str, str], tmp_path: Path, args: list[str], said: str
) -> None:
    result = subprocess.run(
        [COMMAND, "run", "--db", str(tmp_path / "k.db"), *args],
        capture_output=True,
        text=True,
        env=aws,
        timeout=60,
    )
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1 and said in result.stderr, result.stderr


class ReshardedStream:
    """A stream whose one shard was split: the parent holds the records from before
    the split (more than one GetRecords call returns), the children those after.
    moto's split_shard keeps putting records into the parent, so the order rule
    is checked against this stand-in (the same calls and answers as the service)."""

    LIMIT = 10_000

    def __init__(self) -> None:
        self.records = {
            "parent": [f"p{n}".encode() for n in range(12_000)],
            "left": [f"l{n}".encode() for n in range(500)],
            "right": [f"r{n}".encode() for n in range(500)],
        }
        self.parents = {"left": "parent", "right": "parent"}

    def describe_stream_summary(self, StreamName: str) -> dict[str, Any]:
        return {"StreamDescriptionSummary": {"StreamName": StreamName}}

    def list_shards(self, StreamName: str) -> dict[str, Any]:
        shards = [{"ShardId": "parent"}]
        shards += [{"ShardId": s, "ParentShardId": p} for s, p in self.parents.items()]
        return {"Shards": shards}

    def get_shard_iterator(self, ShardId: str, **_: object) -> dict[str, Any]:
        return {"ShardIterator": f"{ShardId}:0"}

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        shard, at = ShardIterator.split(":")
        start = int(at)
        chunk = self.records[shard][start : start + min(Limit, self.LIMIT)]
        end = start + len(chunk)
        closed = shard == "parent" and end == len(self.records[shard])
        return {
            "Records": [
                {"Data": data, "SequenceNumber": str(start + i)} for i, data in enumerate(chunk)
            ],
            "NextShardIterator": None if closed else f"{shard}:{end}",
            "MillisBehindLatest": 0,
        }


async def test_a_split_shards_children_are_read_after_all_of_their_parent() -> None:
    from imdb_tui.sources.kinesis import KinesisSource

    stream = ReshardedStream()
    source = KinesisSource("kinesis://resharded", kinesis=stream)
    await source.start(lambda _: None)
    handed: list[bytes] = []
    stored: dict[str, str] = {}  # each key's newest position, as a store holds them
    while len(handed) < 13_000:
        handed += await source.read(4096)  # type: ignore[arg-type]
        stored |= {p.source: p.position for p in source.positions()}
    source.stop()
    kinds = [data[:1] for data in handed]
    assert kinds.count(b"p") == 12_000 and kinds.index(b"l") > max(
        i for i, kind in enumerate(kinds) if kind == b"p"
    )
    assert kinds.index(b"r") > 12_000 - 1
    assert {key: json.loads(position)["sequence"] for key, position in stored.items()} == {
        "kinesis:resharded/left": "499",
        "kinesis:resharded/parent": "11999",
        "kinesis:resharded/right": "499",
    }


class ThrottledStream(ReshardedStream):
    """One shard whose every other GetRecords is throttled, 100 records a call."""

    LIMIT = 100

    def __init__(self) -> None:
        super().__init__()
        self.records = {"parent": [f"p{n}".encode() for n in range(1_000)]}
        self.parents = {}
        self.calls = 0
        self.throttled = 0

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        self.calls += 1
        if self.calls % 2:
            self.throttled += 1
            error = {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}
            raise ClientError({"Error": error}, "GetRecords")
        return super().get_records(ShardIterator, Limit)


async def test_throttling_slows_reading_but_loses_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from imdb_tui.sources.kinesis import shards

    monkeypatch.setattr(shards, "THROTTLED_PAUSE", 0.01)  # the test need not wait a second
    monkeypatch.setattr(shards, "CALL_INTERVAL", 0.0)
    stream = ThrottledStream()
    source = shards.KinesisSource("kinesis://throttled", kinesis=stream)
    await source.start(lambda _: None)
    handed: list[bytes] = []
    while len(handed) < 1_000:
        handed += await source.read(4096)  # type: ignore[arg-type]
    source.stop()
    assert handed == stream.records["parent"]  # all of them, once, in order
    assert stream.throttled >= 10 and source.trouble is None


class HeldStream(ReshardedStream):
    """One shard of valid events, 100 a GetRecords, whose second call waits until
    let go: a read in flight when the pipeline is told to stop, or when the shard's
    lease goes to another member and comes back."""

    LIMIT = 100

    def __init__(self) -> None:
        super().__init__()
        self.records = {"parent": [json.dumps(event(n)).encode() for n in range(300)]}
        self.parents = {}
        self.calls = 0
        self.calling = threading.Event()
        self.go = threading.Event()

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        self.calls += 1
        if self.calls == 2:
            self.calling.set()
            self.go.wait()
        return super().get_records(ShardIterator, Limit)


async def test_a_stop_while_a_shard_is_being_read_ends_the_run() -> None:
    """Ctrl-C (the pipeline's stop) as a GetRecords is under way: the run drains what
    it had read, stores it and ends; the record in flight is read again next time."""
    from imdb_tui.clock import ManualClock
    from imdb_tui.pipeline import Pipeline, PipelineSettings
    from imdb_tui.sources.kinesis import KinesisSource
    from imdb_tui.store import open_store

    stream = HeldStream()
    store = open_store(":memory:")
    try:
        source = KinesisSource("kinesis://held", kinesis=stream)
        pipeline = Pipeline(source, store, ManualClock(NOW), PipelineSettings(rate=None))
        running = asyncio.create_task(pipeline.run())
        await asyncio.to_thread(stream.calling.wait)
        pipeline.stop()
        stream.go.set()
        summary = await asyncio.wait_for(running, 60)  # a hang fails here, not forever
        assert (summary.stored, summary.input_error) == (100, None)
        [checkpoint] = [json.loads(p.position) for p in store.positions()]
        assert checkpoint["sequence"] == "99"  # the next start reads from the 101st
    finally:
        store.close()


class Refusing:
    """PutRecords that turns down every other record of a call, twice, then takes all."""

    def __init__(self) -> None:
        self.kept: list[bytes] = []
        self.calls = 0

    def describe_stream_summary(self, StreamName: str) -> dict[str, Any]:
        return {}

    def put_records(self, StreamName: str, Records: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls += 1
        results = []
        for n, entry in enumerate(Records):
            if self.calls <= 2 and n % 2:
                results.append({"ErrorCode": "ProvisionedThroughputExceededException"})
            else:
                self.kept.append(entry["Data"])
                results.append({"SequenceNumber": str(len(self.kept))})
        return {"Records": results}


def test_produce_sends_again_what_the_service_turns_down_in_each_users_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from imdb_tui.sources.kinesis import sink as put

    monkeypatch.setattr(put.time, "sleep", lambda _: None)  # the backoff, not waited out
    refusing = Refusing()
    sink = put.KinesisSink("kinesis://refusing", kinesis=refusing)
    records = [{"event_id": f"e{n}", "user_id": f"u{n % 7}"} for n in range(1_200)]
    sink.send(records)
    assert sorted(json.loads(data)["event_id"] for data in refusing.kept) == sorted(
        r["event_id"] for r in records
    )
    assert sink.put == 1_200 and sink.retries > 0
    # Each user's events went in in their order, turned-down ones included.
    kept = [json.loads(data) for data in refusing.kept]
    for user in {r["user_id"] for r in records}:
        mine = [int(r["event_id"][1:]) for r in kept if r["user_id"] == user]
        assert mine == sorted(mine), user


def test_sigterm_stops_produce_into_a_stream_and_it_says_what_it_put(
    aws: dict[str, str],
) -> None:
    """Stopped while it puts (SIGTERM, as Ctrl-C): the put under way ends, and what
    it says it put is what the stream holds."""
    name, kinesis = one_shard_stream()
    command = [COMMAND, "produce", "--to", f"kinesis://{name}", "--rate", "2000"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=aws)
    try:
        iterator = kinesis.get_shard_iterator(
            StreamName=name, ShardId="shardId-000000000000", ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        held: list[Any] = []
        deadline = time.monotonic() + 60
        while len(held) < 500:  # putting: its handlers are set
            assert time.monotonic() < deadline and process.poll() is None
            answer = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
            held += answer["Records"]
            iterator = answer["NextShardIterator"]
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        said = process.communicate(timeout=60)[1]
    finally:
        process.kill()
    assert process.returncode == 128 + signal.SIGTERM
    held += kinesis.get_records(ShardIterator=iterator, Limit=10_000)["Records"]
    assert f"put {len(held):,} records into kinesis://{name}" in said
    assert f"imdb-tui: stopped by SIGTERM after {len(held):,} events" in said


def test_an_endpoint_away_mid_run_is_waited_for_and_nothing_is_lost(tmp_path: Path) -> None:
    """The stream's endpoint stops answering for a while: the status line says so,
    the shards are read again once it is back, and every record is stored once."""
    import os

    from moto.server import ThreadedMotoServer

    from tests.kinesis_server import CREDENTIALS
    from tests.postgres_server import free_port

    port = free_port()
    env = {**os.environ, **CREDENTIALS, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    consumer = None
    try:
        name = stream()
        produce(env, name, 5_000, "--create-shards", "2", "--seed", "6")
        db = tmp_path / "k.db"
        consumer = consume(env, name, db, "--rate", "1000")
        until_stored(db, 1_000, consumer)
        server.stop()  # gone: connections refused
        assert consumer.stdout is not None
        seen = []
        for line in consumer.stdout:
            seen.append(line)
            if "waiting" in line and "input: cannot reach kinesis://" in line:
                break
        assert "input: cannot reach kinesis://" in seen[-1], "".join(seen)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()  # back, with the stream as it was
        until_stored(db, 5_000, consumer)
        finish(consumer)
    finally:
        if consumer is not None:
            consumer.kill()
        server.stop()
    assert query(db, "SELECT count(*), count(DISTINCT event_id) FROM events") == [(5_000, 5_000)]
    assert query(db, "SELECT count(*) FROM counters WHERE name = 'duplicates'") == [(0,)]


class Stalled(AssertionError):
    """A group's wait ran out with its members still running."""


class Group:
    """A consumer group's view of its database, through the store's interfaces: one
    store, opened once the database is made, read from one thread, closed at the end
    (opening one for each look made boto3 clients ten times a second)."""

    def __init__(self, database: Database, name: str) -> None:
        self.database = database
        self.name = name
        self._store: Store | None = None

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def _read(self, look: Callable[[Store], T], empty: T) -> T:
        if self._store is None:
            try:
                self._store = self.database.open(read_only=True)
            except StoreError:  # not made yet
                return empty
        return look(self._store)

    def stored(self) -> int:
        return self._read(lambda store: store.counters().get("events_total", 0), 0)

    def shards_per_owner(self) -> list[int]:
        def count(store: Store) -> list[int]:
            holders = store.lease_holders(self.name, time.time())
            owners = Counter(o for key, o in holders.items() if key.startswith("kinesis:"))
            return sorted(owners.values())

        return self._read(count, [])

    def until(self, check: Callable[[], bool], *processes: subprocess.Popen[str]) -> None:
        # moto's DynamoDB beside the suite's other workers on 2 cores: a few dozen
        # events a second at worst
        deadline = time.monotonic() + 240
        while not check():
            for process in processes:
                assert process.poll() is None, process.communicate()[0]
            if time.monotonic() > deadline:  # stopped: what they said, to say why
                raise Stalled(self.stalled(processes))
            time.sleep(0.2)

    def stalled(self, processes: tuple[subprocess.Popen[str], ...]) -> str:
        """Why the group is stuck, as far as can be seen from outside: its store's
        unfinished batches and leases, and each member's threads (faulthandler's dump
        on SIGABRT: the members run with PYTHONFAULTHANDLER), writer children first."""
        seen = [f"stored {self.stored()}, shards per owner {self.shards_per_owner()}"]
        if self.database.backend == "dynamodb" and self._store is not None:
            table = self._store.table  # type: ignore[attr-defined]
            for listed in table.query("W"):
                writer = listed["s"]
                heard = table.get(f"W#{writer}", "-") or {}
                until = heard.get("w_until", 0) - time.time()
                records = [
                    f"{item['s']} {item['b_state']} try {item['b_try']}"
                    for item in table.query(f"B#{writer}", newest_first=True, limit=12)
                    if "#" not in item["s"]
                ][:3]
                seen.append(f"writer {writer} alive for {until:.0f} s: {records}")
            seen += [f"lease {key}: {owner}" for key, owner in self._leases().items()]
            seen += [f"position {p.source}: {p.position}" for p in self._store.positions()]
        for process in processes:
            for child in _children(process.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGABRT)
            process.send_signal(signal.SIGABRT)
            try:
                said = process.communicate(timeout=30)[0]
            except subprocess.TimeoutExpired:
                process.kill()
                said = process.communicate()[0]
            seen.append(said[-12_000:])
        return "\n".join(seen)

    def _leases(self) -> dict[str, str]:
        assert self._store is not None
        return self._store.lease_holders(self.name, time.time())


def _children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            found += [int(n) for n in (task / "children").read_text().split()]
    return found


@pytest.mark.timeout(600)  # on DynamoDB: a minute alone, minutes beside other workers' tests
def test_two_consumers_share_the_shards_and_one_carries_on_when_the_other_dies(
    aws: dict[str, str], database: Database
) -> None:
    """On SQLite (processes of one machine), on PostgreSQL and DynamoDB (of many)."""
    name = stream()
    total = scaled(database, 20_000)
    # First in KPL aggregates (a shard handed over inside one goes on at its next
    # event), then plain records.
    produce(aws, name, total // 2, "--create-shards", "4", "--seed", "7", "--aggregate")
    produce(aws, name, total - total // 2, "--seed", "8")
    group = Group(database, "dashboards")
    options = ("--consumer-group", "dashboards", "--lease-seconds", "3", "--rate", "2000")
    env = {**aws, "PYTHONFAULTHANDLER": "1"}  # a stalled member's threads: see Group.stalled
    if database.backend == "dynamodb":  # moto's endpoint: slower calls, renewals with them
        options = ("--consumer-group", "dashboards", "--lease-seconds", "10", "--rate", "200")
        # The batch the killed one was writing holds its events until its time is up.
        env |= {"IMDB_TUI_DYNAMODB_LIVE_FOR": "5"}

    def consumer() -> subprocess.Popen[str]:
        command = [COMMAND, "run", "--source", f"kinesis://{name}", *database.args, *options]
        return subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )

    processes: list[subprocess.Popen[str]] = []
    try:
        processes.append(first := consumer())
        group.until(lambda: group.stored() > 0, first)
        processes.append(second := consumer())
        group.until(lambda: group.shards_per_owner() == [2, 2], first, second)  # two each
        group.until(lambda: group.stored() >= total * 3 // 10, first, second)
        first.send_signal(signal.SIGKILL)  # its leases run out; the other takes them
        first.wait(timeout=30)
        group.until(lambda: group.stored() >= total, second)
        group.until(lambda: group.shards_per_owner() == [4], second)
        finish(second)
        held = group.shards_per_owner()
    finally:
        for process in processes:
            process.kill()
        group.close()
    assert held == []  # handed back on a clean stop
    store = database.open(read_only=True)
    counters = store.counters()
    assert counters["events_total"] == total == store.count_events()
    assert counters.get("duplicates", 0) <= 16_384  # at most a batch read twice at the handover
    store.close()
    if database.backend == "sqlite":
        assert_aggregates_match_a_recount(Path(database.name))


class SplitStream(ReshardedStream):
    """Valid events in an open shard and in a closed one split in two, 100 a call;
    each GetRecords that returns records is logged, in the order they are made."""

    LIMIT = 100

    def __init__(self) -> None:
        super().__init__()
        numbers = iter(range(10_000))
        sizes = {"a": 300, "parent": 1_000, "left": 300, "right": 300}
        self.records = {
            shard: [json.dumps(event(next(numbers))).encode() for _ in range(size)]
            for shard, size in sizes.items()
        }
        self.log: list[str] = []
        self.lock = threading.Lock()

    def list_shards(self, StreamName: str) -> dict[str, Any]:
        return {"Shards": [{"ShardId": "a"}, *super().list_shards(StreamName)["Shards"]]}

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        answer = super().get_records(ShardIterator, Limit)
        if answer["Records"]:
            with self.lock:
                self.log.append(ShardIterator.split(":")[0])
        return answer


class TwoShards(ReshardedStream):
    """Two open shards, 100 records a call."""

    LIMIT = 100

    def __init__(self) -> None:
        super().__init__()
        self.records = {shard: [f"{shard}{n}".encode() for n in range(5_000)] for shard in "ab"}
        self.parents = {}

    def list_shards(self, StreamName: str) -> dict[str, Any]:
        return {"Shards": [{"ShardId": "a"}, {"ShardId": "b"}]}


async def test_a_shard_is_handed_on_only_once_what_was_read_from_it_is_committed(
    tmp_path: Path,
) -> None:
    """A pipeline over its share stops reading a shard at once, but keeps its lease
    until the batch holding the shard's last position is committed: else that batch
    could store an older checkpoint over the next reader's, which then reads again."""
    from imdb_tui.sources.kinesis import KinesisSource
    from imdb_tui.store import SourcePosition, open_store

    store = open_store(tmp_path / "l.db")
    stream = TwoShards()
    handed: dict[KinesisSource, list[tuple[set[bytes], tuple[SourcePosition, ...]]]] = {}

    async def member() -> KinesisSource:
        """A pipeline's reading: on and on, as a pipeline reads (its leases renewed)."""
        source = KinesisSource(
            "kinesis://two", kinesis=stream, leases=store.another(), lease_seconds=0.6
        )
        await source.start(lambda _: None)
        handed[source] = []

        async def read() -> None:
            while records := await source.read(100_000):
                kinds = {data[:1] for data in records}
                handed[source].append((kinds, tuple(source.positions())))

        reads.append(asyncio.create_task(read()))
        return source

    def holder(shard: str) -> str | None:
        return store.lease_holders("imdb-tui", time.time()).get(f"kinesis:two/{shard}")

    async def until(check: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 60
        while not check():
            assert time.monotonic() < deadline and not any(r.done() for r in reads)
            await asyncio.sleep(0.02)

    reads: list[asyncio.Task[None]] = []
    first = await member()
    await until(lambda: {b"a", b"b"} <= set().union(*(kinds for kinds, _ in handed[first])))
    second = await member()  # the group is two now: one shard each
    await until(lambda: handed[first][-1][0] == {b"a"})  # b is not read here any more
    after = len(handed[first])
    ends = time.monotonic() + 1.2  # six lease rounds
    while time.monotonic() < ends:
        assert holder("b") == first._owner  # kept: its positions are not committed
        await asyncio.sleep(0.02)
    assert not [kinds for kinds, _ in handed[first][after:] if b"b" in kinds]
    assert not handed[second]
    first.committed([p for _, positions in handed[first] for p in positions])  # stored
    await until(lambda: holder("b") == second._owner)
    await until(lambda: bool(handed[second]))
    assert holder("a") == first._owner
    for source in handed:
        source.stop()
    await asyncio.gather(*reads)
    store.close()


async def test_a_read_under_way_when_a_shard_goes_and_comes_back_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pipeline's shard is taken by another member while a GetRecords on it is under
    way (or done, but not looked at: a full queue holds the reading back), and comes
    back to it later. What it had fetched and not handed out was let go with the
    lease; the old answer, from after those records, must not be used either, or
    they are never read: the shard is read again from its stored checkpoint."""
    from imdb_tui.sources.kinesis import shards

    monkeypatch.setattr(shards, "CALL_INTERVAL", 0.0)
    store = open_store_file(tmp_path / "l.db")
    board = store.another()
    assert board is not None
    stream = HeldStream()
    # Lease rounds are made by the test, one at a time (a round every 20 s otherwise).
    source = shards.KinesisSource(
        "kinesis://one", kinesis=stream, leases=store.another(), lease_seconds=60
    )
    key = source.key("parent")
    try:
        await source.start(lambda _: None)
        handed = await source.read(50)  # the first 100 fetched, 50 handed out
        handed += await source.read(10)  # the second GetRecords is under way
        await asyncio.to_thread(stream.calling.wait)
        # Another member takes the shard (this one's lease ran out meanwhile).
        board.release_leases("imdb-tui", source._owner, [key])
        assert board.take_lease("imdb-tui", key, "other", time.time() + 60, time.time())
        await source._lease_round()  # lost: what it fetched and did not hand out goes
        board.release_leases("imdb-tui", "other", [key])  # it stored nothing, and left
        await source._lease_round()  # taken again, from the stored checkpoint (none)
        stream.go.set()  # the old GetRecords answers now
        while stream.records["parent"][-1] not in handed:  # read in order, to the end
            handed += await asyncio.wait_for(source.read(1_000), 60)
    finally:
        stream.go.set()
        source.stop()
        board.close()
        store.close()
    assert set(handed) == set(stream.records["parent"])  # every record, none skipped


async def test_a_group_reads_a_split_shard_before_its_children_whoever_holds_them(
    database: Database,
) -> None:
    """Two pipelines of a group over a stream with a split shard: the children wait
    until the parent is read to its end, by whichever pipeline read it, and then one
    of the two reads them; every record is stored."""
    from imdb_tui.clock import ManualClock
    from imdb_tui.pipeline import Pipeline, PipelineSettings
    from imdb_tui.sources.kinesis import KinesisSource

    stream = SplitStream()
    total = sum(map(len, stream.records.values()))
    # A lease outlives a renewal's calls: on moto's endpoint, on a loaded machine (the
    # suite's parallel workers on 2 cores), a DynamoDB renewal can take seconds, and
    # the parent is then read again by the pipeline it was taken from.
    lease = 10.0 if database.backend == "dynamodb" else 0.3
    stores = [database.open(), database.open()]
    group = Group(database, "split")
    looking = ThreadPoolExecutor(1)  # the group's store is read on one thread
    try:
        pipelines = [
            Pipeline(
                KinesisSource(
                    "kinesis://split",
                    kinesis=stream,
                    leases=store.another(),
                    group="split",
                    lease_seconds=lease,
                ),
                store,
                ManualClock(NOW),
                PipelineSettings(rate=None, commit_interval=0.05),
            )
            for store in stores
        ]
        runs = [asyncio.create_task(pipeline.run()) for pipeline in pipelines]
        deadline = time.monotonic() + 60  # a shard never read fails here
        loop = asyncio.get_running_loop()
        while await loop.run_in_executor(looking, group.stored) < total:
            assert time.monotonic() < deadline, (stream.log, group.shards_per_owner())
            assert not any(run.done() for run in runs), [run.result() for run in runs]
            await asyncio.sleep(0.05)
        for pipeline in pipelines:
            pipeline.stop()
        await asyncio.gather(*runs)
        checkpoints = {p.source: json.loads(p.position) for p in stores[0].positions()}
    finally:
        for store in stores:
            store.close()
        looking.submit(group.close).result()
        looking.shutdown()
    last_of_parent = max(i for i, shard in enumerate(stream.log) if shard == "parent")
    first_child = min(i for i, shard in enumerate(stream.log) if shard in ("left", "right"))
    assert first_child > last_of_parent, stream.log
    assert checkpoints["kinesis:split/parent"]["ended"] is True
    assert {checkpoints[f"kinesis:split/{s}"]["ended"] for s in ("a", "left", "right")} == {False}
