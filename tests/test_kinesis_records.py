"""Kinesis records as producers write them: KPL aggregates (built by the reference
library, aws-kinesis-agg), gzip, several events in one record, and hostile ones;
`produce --aggregate`; a checkpoint inside an aggregate."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from imdb_tui.events import validate
from imdb_tui.sources.kinesis.records import KPL_MAGIC, MAX_UNZIPPED, unpack
from tests.conftest import event
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


def aggregate(*datas: bytes, key: str = "k") -> bytes:
    """One KPL aggregate of these user records, made by the reference library."""
    from aws_kinesis_agg.aggregator import RecordAggregator

    aggregator = RecordAggregator()
    for data in datas:
        assert aggregator.add_user_record(key, data) is None  # not full
    _, _, packed = aggregator.clear_and_get().get_contents()
    return bytes(packed)


def line(n: int) -> bytes:
    return json.dumps(event(n)).encode()


def ok(n: int) -> tuple[str, None]:
    return (f"evt-{n:08d}", None)


def with_digest(body: bytes) -> bytes:
    return KPL_MAGIC + body + hashlib.md5(body).digest()


def described(data: bytes) -> list[tuple[str, str | None]]:
    """Each part of a record: the event id it holds, or its dead letter's reason."""
    parts = []
    for part in unpack(data, "s, sequence 9"):
        checked = validate(part)
        parts.append(
            (checked.event_id, None) if hasattr(checked, "event_id") else ("-", checked.reason)  # type: ignore[union-attr]
        )
    return parts


BOMB = gzip.compress(b" " * (MAX_UNZIPPED + 1))


@pytest.mark.parametrize(
    ("data", "parts"),
    [
        (line(1), [ok(1)]),
        (line(1) + b"\n", [ok(1)]),
        (json.dumps(event(1), indent=2).encode(), [ok(1)]),  # one object, pretty
        (line(1) + b"\n\n" + line(2) + b"\n", [ok(1), ok(2)]),
        (
            line(1) + b"\nnot json\n" + line(3),
            [
                ok(1),
                (
                    "-",
                    "invalid JSON: invalid literal, expected 'null' at column 1"
                    " (s, sequence 9, line 2)",
                ),
                ok(3),
            ],
        ),
        (
            json.dumps([event(1), 7, {**event(3), "rating": 99}, event(4)]).encode(),
            [
                ok(1),
                ("-", "JSON is a number, not an object (s, sequence 9, element 1)"),
                ("-", "rating is only allowed on rate events, not view (s, sequence 9, element 2)"),
                ok(4),
            ],
        ),
        (b"[]", []),
        (gzip.compress(line(1) + b"\n" + line(2)), [ok(1), ok(2)]),
        (BOMB, [("-", "gzip record over 8 MiB decompressed (s, sequence 9)")]),
        (gzip.compress(line(1))[:-9], [("-", "gzip record cut short (s, sequence 9)")]),
        (
            aggregate(line(1), gzip.compress(line(2)), json.dumps([event(3)]).encode()),
            [ok(1), ok(2), ok(3)],
        ),
        (
            aggregate(line(1), b"\xff"),
            [ok(1), ("-", "invalid UTF-8 at byte 0 (s, sequence 9, sub-sequence 1)")],
        ),
        (
            aggregate(line(1))[:-1] + b"\x00",
            [("-", "KPL aggregate: its MD5 checksum does not match (s, sequence 9)")],
        ),
        (
            with_digest(b"\x1a\x05\x08\x00\x1a\x01"),  # a record cut inside its data
            [("-", "KPL aggregate: its body is no AggregatedRecord (s, sequence 9)")],
        ),
    ],
    ids=[
        "plain",
        "newline",
        "pretty",
        "ndjson",
        "ndjson-bad-line",
        "array",
        "empty-array",
        "gzip-ndjson",
        "gzip-bomb",
        "gzip-cut",
        "aggregate",
        "aggregate-bad-user-record",
        "checksum",
        "broken-aggregate",
    ],
)
def test_each_form_of_record_is_its_events_or_dead_letters_saying_where(
    data: bytes, parts: list[tuple[str, str | None]]
) -> None:
    assert described(data) == parts


class OneShard:
    """A stream of one shard holding these records (sequence numbers 0, 1, ...), with
    the iterators of the service: at or after a sequence number, or from the start."""

    def __init__(self, records: list[bytes]) -> None:
        self.records = records
        self.iterators: list[tuple[str, str | None]] = []

    def describe_stream_summary(self, StreamName: str) -> dict[str, Any]:
        return {}

    def list_shards(self, StreamName: str) -> dict[str, Any]:
        return {"Shards": [{"ShardId": "s"}]}

    def get_shard_iterator(self, ShardIteratorType: str, **options: Any) -> dict[str, Any]:
        sequence = options.get("StartingSequenceNumber")
        self.iterators.append((ShardIteratorType, sequence))
        start = {"AT_SEQUENCE_NUMBER": 0, "AFTER_SEQUENCE_NUMBER": 1}.get(ShardIteratorType)
        return {"ShardIterator": str(0 if start is None else int(str(sequence)) + start)}

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        start = int(ShardIterator)
        return {
            "Records": [
                {"Data": data, "SequenceNumber": str(start + n)}
                for n, data in enumerate(self.records[start : start + 2])
            ],
            "NextShardIterator": str(min(start + 2, len(self.records))),
            "MillisBehindLatest": 0,
        }


async def test_a_checkpoint_inside_an_aggregate_resumes_at_its_next_user_record() -> None:
    """The KCL's extended sequence number: a batch ending inside an aggregate stores
    how many of its user records are stored; the next start reads that record again
    and hands out only the rest, neither skipping nor repeating one."""
    from imdb_tui.sources.kinesis import KinesisSource

    numbers = iter(range(1_000))
    records = [aggregate(*(line(next(numbers)) for _ in range(10))) for _ in range(3)]
    stream = OneShard(records)
    handed: list[str] = []
    stored: dict[str, str] = {}
    for limit in (4, 13, 100):  # each start hands out one batch, and its position is stored
        source = KinesisSource("kinesis://one", kinesis=stream)
        await source.start(stored.get)
        handed += [validate(part).event_id for part in await source.read(limit)]  # type: ignore[union-attr]
        stored |= {p.source: p.position for p in source.positions()}
        source.stop()
    assert handed == [f"evt-{n:08d}" for n in range(30)]
    assert stream.iterators == [
        ("TRIM_HORIZON", None),
        ("AT_SEQUENCE_NUMBER", "0"),  # the first aggregate again: its 4 are stored
        ("AT_SEQUENCE_NUMBER", "1"),  # the second: 7 of its 10
    ]
    assert json.loads(stored["kinesis:one/s"])["sequence"] == "2"
    assert "subsequence" not in json.loads(stored["kinesis:one/s"])  # all of the last one


def test_a_stream_of_every_form_is_stored_once_each_bad_part_a_dead_letter_with_its_place(
    aws: dict[str, str], tmp_path: Path
) -> None:
    name, kinesis = one_shard_stream()
    numbers = iter(range(100_000))

    def lines(count: int) -> list[bytes]:
        return [line(next(numbers)) for _ in range(count)]

    records = [
        *lines(20),
        *(aggregate(*lines(size)) for size in (1, 2, 100, 500)),
        *(gzip.compress(data) for data in lines(10)),
        b"\n".join(lines(50)),
        json.dumps([json.loads(data) for data in lines(50)]).encode(),
        # Hostile: 3 dead letters of their own, 2 inside records whose other parts store.
        aggregate(*lines(3))[:-1] + b"\x00",
        with_digest(b"\x1a\x05\x08\x00\x1a\x01"),
        BOMB,
        json.dumps([json.loads(lines(1)[0]), "\x1b[31m\n", json.loads(lines(1)[0])]).encode(),
        aggregate(lines(1)[0], b"\x00\x1b[2J\n\xff"),
    ]
    valid = 20 + 603 + 10 + 50 + 50 + 2 + 1
    for data in records:
        kinesis.put_record(StreamName=name, Data=data, PartitionKey="k")
    db = tmp_path / "k.db"
    consumer = consume(aws, name, db)
    until_stored(db, valid, consumer)
    until_dead_letters(db, 5)
    finish(consumer)
    assert query(db, "SELECT count(*), count(DISTINCT event_id) FROM events") == [(valid, valid)]
    letters = json.loads(report(aws, db, "--dead-letters", "--json"))
    reasons = sorted(letter["reason"] for letter in letters)
    places = [reason.partition("(shardId-000000000000, sequence ")[2] for reason in reasons]
    assert [reason.partition(" (")[0] for reason in reasons] == [
        "JSON is a string, not an object",
        "KPL aggregate: its MD5 checksum does not match",
        "KPL aggregate: its body is no AggregatedRecord",
        "gzip record over 8 MiB decompressed",
        "invalid UTF-8 at byte 6",
    ]
    assert places[0].endswith(", element 1)") and places[4].endswith(", sub-sequence 1)")
    # The text report shows binary and control bytes escaped: one line a letter.
    text = report(aws, db, "--dead-letters")
    assert "\x1b" not in text and "\x00" not in text
    assert "\\x1b[2J" in text


def partial_position(db: Path) -> dict[str, Any] | None:
    for (position,) in query(db, "SELECT position FROM source_positions"):
        checkpoint = json.loads(position)
        if "subsequence" in checkpoint:
            return checkpoint  # type: ignore[no-any-return]
    return None


def test_a_consumer_killed_inside_an_aggregate_stores_exactly_the_rest_on_restart(
    aws: dict[str, str], tmp_path: Path
) -> None:
    name, kinesis = one_shard_stream()
    numbers = iter(range(100_000))
    for _ in range(20):  # 10,000 events, 500 to an aggregate
        data = aggregate(*(line(next(numbers)) for _ in range(500)))
        kinesis.put_record(StreamName=name, Data=data, PartitionKey="k")
    db = tmp_path / "k.db"
    consumer = consume(aws, name, db, "--rate", "2000")
    try:
        until_stored(db, 1_000, consumer)
        deadline = time.monotonic() + 60
        while True:  # frozen where its stored checkpoint is inside an aggregate: killed there
            consumer.send_signal(signal.SIGSTOP)
            checkpoint = partial_position(db)
            if checkpoint is not None:
                break
            consumer.send_signal(signal.SIGCONT)
            assert time.monotonic() < deadline and stored(db) < 10_000
            time.sleep(0.05)
        consumer.send_signal(signal.SIGKILL)
        consumer.wait(timeout=30)
    finally:
        consumer.kill()
    before = stored(db)
    assert 0 < checkpoint["subsequence"] < 499 and before < 10_000
    again = consume(aws, name, db)
    until_stored(db, 10_000, again)
    finish(again)
    assert query(db, "SELECT count(*), count(DISTINCT event_id) FROM events") == [(10_000, 10_000)]
    assert query(db, "SELECT coalesce(sum(value), 0) FROM counters WHERE name = 'duplicates'") == [
        (0,)
    ]  # nothing read twice: the restart carried on inside the aggregate


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_produce_aggregate_is_read_back_by_the_reference_library_and_by_run(
    aws: dict[str, str], tmp_path: Path, compress: bool
) -> None:
    import boto3
    from aws_kinesis_agg.deaggregator import iter_deaggregate_records

    name = stream()
    extra = ("--compress", "gzip") if compress else ()
    said = produce(aws, name, 5_000, "--create-shards", "3", "--aggregate", "--seed", "9", *extra)
    assert "put 5,000 events in " in said and f"records into kinesis://{name}" in said
    kinesis = boto3.client("kinesis")
    records: list[dict[str, Any]] = []
    for shard in kinesis.list_shards(StreamName=name)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=name, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        answer = kinesis.get_records(ShardIterator=iterator)
        assert 0 < len(answer["Records"]) < 5_000 / 50  # packed: many events a record
        records += answer["Records"]
    users: dict[str, list[dict[str, Any]]] = {}
    for user_record in iter_deaggregate_records(records, data_format="Boto3"):
        assert user_record["kinesis"]["aggregated"]
        data = base64.b64decode(user_record["kinesis"]["data"])  # as it gives them
        found = json.loads(gzip.decompress(data) if compress else data)
        assert found["user_id"] == user_record["kinesis"]["partitionKey"]
        users.setdefault(found["user_id"], []).append(found)
    assert sum(len(events) for events in users.values()) == 5_000
    for events in users.values():  # each user's events in their order, on one shard
        times = [found["event_time"] for found in events]
        assert times == sorted(times)
    db = tmp_path / "k.db"
    consumer = consume(aws, name, db)
    until_stored(db, 5_000, consumer)
    finish(consumer)
    ids = {found["event_id"] for events in users.values() for found in events}
    assert {row[0] for row in query(db, "SELECT event_id FROM events_with_titles")} == ids
    assert query(db, "SELECT count(*) FROM dead_letters") == [(0,)]


def test_aggregate_and_compress_go_with_a_stream_only() -> None:
    for option in (["--aggregate"], ["--compress", "gzip"]):
        result = subprocess.run(
            [COMMAND, "produce", "--count", "1", *option], capture_output=True, text=True
        )
        assert result.returncode == 2
        assert result.stderr.strip().endswith(f"{option[0]} goes with --to kinesis://STREAM")
