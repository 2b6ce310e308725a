"""Writing to DynamoDB: imdb-tui's exactly-once batches against a bare boto3 writer
that only puts the same events, and what a snapshot costs as the table grows.

    python bench/dynamodb.py [--events 5000] [--grow 2]

Both against the same endpoint in this run: AWS_ENDPOINT_URL if set (DynamoDB
itself, or DynamoDB Local), else the tests' moto server (tests/kinesis_server.py)
in a process of its own on a free loopback port.
- reference: the events put as items of their own (the attributes imdb-tui keeps
  of an event), BatchWriteItem of 25, 16 calls at once (imdb-tui's pool), into a
  fresh table: a writer with no dedupe, no counts and no exactly-once;
- imdb-tui: `imdb-tui run --source FILE --db dynamodb://TABLE --create-tables`:
  each event claimed once, its counts, users, time index, positions, all of it.
Then a snapshot (what the monitor reads each second) is read at `--events` and at
`--grow` times as many, with the requests made and the items read counted: it
must not grow with the events.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common import COMMAND, ROOT, aws_endpoint, run_headless

START = "2026-11-20T00:00:00Z"


def produce(path: Path, count: int, seed: int, start: str) -> None:
    with path.open("w") as out:
        subprocess.run(
            [COMMAND, "produce", "--count", str(count), "--seed", str(seed), "--start", start],
            stdout=out,
            check=True,
        )


def bare(path: Path) -> tuple[int, float]:
    """The reference writer: (events, seconds from the first call to the last)."""
    sys.path.insert(0, str(ROOT))
    from imdb_tui.events import validate_many
    from imdb_tui.store.dynamodb import DynamoStore
    from imdb_tui.store.dynamodb.layout import event_item
    from imdb_tui.store.dynamodb.table import wire_item

    name = f"dynamodb://bench-bare-{uuid.uuid4().hex[:8]}"
    store = DynamoStore.open(name, create=True)  # the same table, made the same way
    client, table = store.table.client, store.table.name
    events, _, _ = validate_many([json.loads(line) for line in path.read_text().splitlines()])
    items = [wire_item(event_item(event)) for event in events]
    chunks = [items[i : i + 25] for i in range(0, len(items), 25)]

    def put(chunk: list[dict[str, Any]]) -> None:
        pending: dict[str, Any] = {table: [{"PutRequest": {"Item": item}} for item in chunk]}
        while pending:
            answer = client.batch_write_item(RequestItems=pending)
            pending = answer.get("UnprocessedItems") or {}

    started = time.perf_counter()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, chunks))
    seconds = time.perf_counter() - started
    store.close()
    return len(items), seconds


def snapshot_cost(name: str) -> tuple[int, int, int, float]:
    """(events stored, requests, items read, seconds) of one snapshot at the newest
    event's time, as the monitor reads it."""
    sys.path.insert(0, str(ROOT))
    from imdb_tui.metrics import read_snapshot
    from imdb_tui.store import open_store

    store = open_store(name, read_only=True)
    table = store.table  # type: ignore[attr-defined]
    counted = {"requests": 0, "items": 0}
    call = table.call

    def counting(operation: str, **arguments: Any) -> Any:
        answer = call(operation, **arguments)
        counted["requests"] += 1
        if "Items" in answer:
            counted["items"] += int(answer.get("ScannedCount", len(answer["Items"])))
        elif "Count" in answer:
            counted["items"] += int(answer.get("ScannedCount", answer["Count"]))
        elif "Item" in answer:
            counted["items"] += 1
        elif "Responses" in answer:
            counted["items"] += sum(len(found) for found in answer["Responses"].values())
        return answer

    table.call = counting
    newest = store.newest_event_time()  # type: ignore[attr-defined]
    as_of = datetime.fromisoformat(newest.replace("Z", "+00:00")).timestamp()
    total = store.counters()["events_total"]
    counted.update(requests=0, items=0)
    started = time.perf_counter()
    read_snapshot(store, as_of, UTC, 5)
    seconds = time.perf_counter() - started
    store.close()
    return total, counted["requests"], counted["items"], seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5_000)
    parser.add_argument("--grow", type=int, default=2, help="the larger table: so many times")
    args = parser.parse_args()
    with aws_endpoint(), tempfile.TemporaryDirectory() as folder:
        first = Path(folder) / "events.jsonl"
        produce(first, args.events, seed=3, start=START)
        events, seconds = bare(first)
        reference = events / seconds
        print(f"bare boto3 BatchWriteItem : {reference:>9,.0f} events/s ({events:,})")
        name = f"dynamodb://bench-{uuid.uuid4().hex[:8]}"
        stored, seconds = run_headless("--source", str(first), "--db", name, "--create-tables")
        ours = stored / seconds
        print(f"imdb-tui run, stored      : {ours:>9,.0f} events/s ({stored:,})")
        print(f"ratio to the bare writer  : {ours / reference:8.2f}x")
        sizes = [snapshot_cost(name)]
        more = Path(folder) / "more.jsonl"
        produce(more, args.events * (args.grow - 1), seed=4, start="2026-11-20T01:00:00Z")
        grown, seconds = run_headless("--source", str(more), "--db", name)
        print(f"imdb-tui run, the next    : {grown / seconds:>9,.0f} events/s ({grown:,})")
        sizes.append(snapshot_cost(name))
        for total, requests, items, spent in sizes:
            print(
                f"snapshot at {total:>9,} events: {requests:4} requests,"
                f" {items:6,} items read, {spent * 1000:6.0f} ms"
            )


if __name__ == "__main__":
    main()
