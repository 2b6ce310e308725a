"""Reading a Kinesis stream: imdb-tui against a bare boto3 loop that only drains it.

    python bench/kinesis.py [--events 100000] [--shards 4] [--aggregate 100]

Both in this run, against the same stream on a local endpoint (moto's server, a
process of its own on a free loopback port, or AWS_ENDPOINT_URL if set):
- reference: a boto3 loop, one thread a shard, GetRecords (10,000 at most) from
  the oldest record until the shard is drained, records discarded; at most 5
  calls a shard a second, as the service allows;
- imdb-tui: `imdb-tui run --source kinesis://STREAM` into a fresh SQLite file,
  validation, dedupe, aggregates and checkpoints included.
Each rate is counted from the first record to the last, so start-up is left out.
The local endpoint is the bottleneck of both: the ratio is imdb-tui's overhead.

With --aggregate N the stream holds KPL aggregates of N events each, made by the
reference library (aws-kinesis-agg), and the bare loop de-aggregates what it reads
with that library's de-aggregator, counting user records. Then `produce --aggregate`
is timed against plain `produce`, each into a fresh stream of its own.
"""

from __future__ import annotations

import argparse
import json
import signal
import sqlite3
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import COMMAND, aws_endpoint, run_headless

STREAM = "bench-clicks"


def drain(shards: list[str], aggregated: bool) -> tuple[int, float]:
    """The bare loop: (records, or user records if aggregated, and seconds from the
    first record to the last)."""
    import boto3
    from aws_kinesis_agg.deaggregator import iter_deaggregate_records

    kinesis = boto3.client("kinesis")
    lock = threading.Lock()
    seen = {"count": 0, "first": 0.0, "last": 0.0}

    def one(shard: str) -> None:
        iterator = kinesis.get_shard_iterator(
            StreamName=STREAM, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            called = time.monotonic()
            answer = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
            records = answer["Records"]
            if not records:
                return
            if aggregated:
                count = sum(1 for _ in iter_deaggregate_records(records, data_format="Boto3"))
            else:
                count = len(records)
            with lock:
                now = time.monotonic()
                seen["first"] = seen["first"] or now
                seen["last"] = now
                seen["count"] += count
            iterator = answer.get("NextShardIterator")
            time.sleep(max(0.0, called + 0.2 - time.monotonic()))

    with ThreadPoolExecutor(len(shards)) as pool:
        list(pool.map(one, shards))
    return seen["count"], seen["last"] - seen["first"]


def stored(db: Path) -> int:
    try:
        with sqlite3.connect(db) as connection:
            row = connection.execute(
                "SELECT value FROM counters WHERE name = 'events_total'"
            ).fetchone()
    except sqlite3.Error:
        return 0
    return int(row[0]) if row else 0


def imdb_tui(count: int, folder: Path) -> tuple[int, float]:
    """`run --source kinesis://` until `count` are stored: (events, seconds from the
    first batch stored to the last)."""
    db = folder / "k.db"
    process = subprocess.Popen(
        [COMMAND, "run", "--source", f"kinesis://{STREAM}", "--db", str(db)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    first_at, first = 0.0, 0
    try:
        while (now := stored(db)) < count:
            if now and not first:
                first_at, first = time.monotonic(), now
            if process.poll() is not None:
                raise SystemExit("imdb-tui run ended early")
            time.sleep(0.02)
        done = time.monotonic()
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
    return count - first, done - first_at


def produce(stream: str, shards: int, events: int, *extra: str) -> float:
    """`imdb-tui produce --to kinesis://STREAM`: seconds taken."""
    started = time.perf_counter()
    subprocess.run(
        [
            COMMAND,
            "produce",
            "--to",
            f"kinesis://{stream}",
            "--create-shards",
            str(shards),
            "--count",
            str(events),
            "--seed",
            "1",
            *extra,
        ],
        check=True,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def put_aggregates(events: int, shards: int, per_record: int) -> list[bytes]:
    """The stream filled with KPL aggregates of `per_record` produced events each, made
    by the reference library, each put with its first event's user as partition key:
    the events' lines."""
    import boto3
    from aws_kinesis_agg.aggregator import RecordAggregator

    kinesis = boto3.client("kinesis")
    kinesis.create_stream(StreamName=STREAM, ShardCount=shards)
    kinesis.get_waiter("stream_exists").wait(StreamName=STREAM, WaiterConfig={"Delay": 1})
    lines = subprocess.run(
        [COMMAND, "produce", "--count", str(events), "--seed", "1"],
        check=True,
        capture_output=True,
    ).stdout.splitlines()
    entries = []
    for start in range(0, len(lines), per_record):
        aggregator = RecordAggregator()
        for line in lines[start : start + per_record]:
            aggregator.add_user_record(json.loads(line)["user_id"], line)
        key, _, data = aggregator.clear_and_get().get_contents()
        entries.append({"Data": bytes(data), "PartitionKey": key})
    for start in range(0, len(entries), 100):
        kinesis.put_records(StreamName=STREAM, Records=entries[start : start + 100])
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--aggregate", type=int, default=0, metavar="N", help="events a record")
    parser.add_argument(
        "--produce-events",
        type=int,
        default=20_000,
        help="with --aggregate: produce timed on so many",
    )
    args = parser.parse_args()
    with aws_endpoint():
        started = time.perf_counter()
        lines: list[bytes] = []
        if args.aggregate:
            lines = put_aggregates(args.events, args.shards, args.aggregate)
            what = f"in aggregates of {args.aggregate}"
        else:
            produce(STREAM, args.shards, args.events)
            what = "one a record"
        print(
            f"put {args.events:,} events ({what}) into {args.shards} shards"
            f" in {time.perf_counter() - started:.1f} s",
            flush=True,
        )
        import boto3

        shards = [
            s["ShardId"] for s in boto3.client("kinesis").list_shards(StreamName=STREAM)["Shards"]
        ]
        records, seconds = drain(shards, aggregated=args.aggregate > 0)
        reference = records / seconds
        kind = "de-aggregated" if args.aggregate else "records"
        print(f"bare boto3 drain, {kind:13}: {reference:>9,.0f} events/s ({records:,})", flush=True)
        with tempfile.TemporaryDirectory() as folder:
            events, seconds = imdb_tui(args.events, Path(folder))
        ours = events / seconds
        print(f"imdb-tui run, stored         : {ours:>9,.0f} events/s", flush=True)
        print(f"ratio to the bare drain      : {ours / reference:8.2f}x   (goal >= 0.8x)")
        if args.aggregate:
            with tempfile.TemporaryDirectory() as folder:  # the store's own ceiling
                source = Path(folder) / "events.jsonl"
                source.write_bytes(b"\n".join(lines) + b"\n")
                stored, seconds = run_headless("--source", str(source), "--db", f"{folder}/f.db")
            print(
                f"imdb-tui run, the same events from a file: {stored / seconds:,.0f} events/s"
                f" (Kinesis {ours / (stored / seconds):.2f}x of it)"
            )
            count = args.produce_events  # moto's PutRecords slows as a stream grows
            plain = count / produce("bench-plain", args.shards, count)
            packed = count / produce("bench-packed", args.shards, count, "--aggregate")
            print(f"produce                      : {plain:>9,.0f} events/s")
            print(
                f"produce --aggregate          : {packed:>9,.0f} events/s ({packed / plain:.1f}x)"
            )


if __name__ == "__main__":
    main()
