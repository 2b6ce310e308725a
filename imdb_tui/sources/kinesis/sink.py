"""Where `imdb-tui produce --to kinesis://STREAM` puts events."""

from __future__ import annotations

import bisect
import gzip
import hashlib
import json
import time
from collections import deque
from collections.abc import Sequence
from typing import Any, Final

from imdb_tui.sources import SourceError, SourceSpec
from imdb_tui.sources.kinesis.client import client, describe, error_code, is_passing
from imdb_tui.sources.kinesis.records import pack

PUT_RECORDS: Final = 500
PUT_BYTES: Final = 5 * 1024 * 1024


class KinesisSink:
    """Where `produce --to kinesis://STREAM` puts events: PutRecords of at most 500
    records and 5 MiB, the user id as partition key (a user's events stay in order
    on one shard), each record the service turns down sent again, with backoff.

    `aggregate`: the events bound for one shard packed into KPL aggregates (as the
    Kinesis Producer Library does), each put with an explicit hash key of its shard,
    so a user's events still go to one shard, in order. `compress`: each event's
    JSON gzip-compressed (with `aggregate`, each user record of the aggregates)."""

    def __init__(
        self,
        url: str,
        create_shards: int | None = None,
        kinesis: Any = None,
        aggregate: bool = False,
        compress: bool = False,
    ) -> None:
        self._stream = SourceSpec.parse(url).stream
        self._kinesis = kinesis if kinesis is not None else client()
        self._compress = compress
        self.put = 0
        """Records put (an aggregate is one)."""
        self.events = 0
        self.retries = 0
        try:
            if create_shards is not None:
                self._create(create_shards)
            self._kinesis.describe_stream_summary(StreamName=self._stream)
            self._shards = self._open_shards() if aggregate else None
        except SourceError:
            raise
        except Exception as error:
            raise SourceError(describe(error, self._stream)) from None

    def _create(self, shards: int) -> None:
        try:
            self._kinesis.create_stream(StreamName=self._stream, ShardCount=shards)
        except Exception as error:
            if error_code(error) != "ResourceInUseException":  # it exists: use it as it is
                raise
        self._kinesis.get_waiter("stream_exists").wait(
            StreamName=self._stream, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
        )

    def _open_shards(self) -> list[int]:
        """The starting hash keys of the stream's open shards, in order."""
        starts: list[int] = []
        answer = self._kinesis.list_shards(StreamName=self._stream)
        while True:
            starts += [
                int(shard["HashKeyRange"]["StartingHashKey"])
                for shard in answer["Shards"]
                if "EndingSequenceNumber" not in shard["SequenceNumberRange"]
            ]
            if not answer.get("NextToken"):
                return sorted(starts)
            answer = self._kinesis.list_shards(NextToken=answer["NextToken"])

    def send(self, records: Sequence[dict[str, Any]]) -> None:
        """Put these records, in order within each partition key, until all are in.

        A call holds at most one record of a partition key (or, aggregated, of a
        shard): a record the service turns down goes again before the next of its
        key, so a user's events keep their order even when some are turned down."""
        waiting: dict[str, deque[tuple[dict[str, Any], int]]] = {}
        for queue, entry, events in self._entries(records):
            waiting.setdefault(queue, deque()).append((entry, events))
        delay = 0.05
        while waiting:
            call: list[tuple[str, dict[str, Any], int]] = []
            size = 0
            for queue, entries in waiting.items():
                entry, events = entries[0]
                size += len(entry["Data"]) + len(entry["PartitionKey"])
                if len(call) == PUT_RECORDS or (size > PUT_BYTES and call):
                    break
                call.append((queue, entry, events))
            taken = self._put([entry for _, entry, _ in call])
            for (queue, _, events), done in zip(call, taken, strict=True):
                if done:
                    self.events += events
                    waiting[queue].popleft()
                    if not waiting[queue]:
                        del waiting[queue]
            if not all(taken):
                self.retries += taken.count(False)
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
            else:
                delay = 0.05

    def _entries(self, records: Sequence[dict[str, Any]]) -> list[tuple[str, dict[str, Any], int]]:
        """(the queue it waits in, the PutRecords entry, the events it holds), in order."""
        users: list[tuple[str, bytes]] = []
        for record in records:
            data = json.dumps(record, separators=(",", ":")).encode()
            if self._compress:
                data = gzip.compress(data, mtime=0)
            users.append((str(record.get("user_id") or "-")[:256], data))
        if self._shards is None:
            return [(key, {"Data": data, "PartitionKey": key}, 1) for key, data in users]
        by_shard: dict[int, list[tuple[str, bytes]]] = {}
        for key, data in users:
            by_shard.setdefault(self._shard_of(key), []).append((key, data))
        return [
            (str(start), {"Data": data, "PartitionKey": key, "ExplicitHashKey": str(start)}, n)
            for start, user_records in by_shard.items()
            for key, data, n in pack(user_records)
        ]

    def _shard_of(self, key: str) -> int:
        """The starting hash key of the shard a partition key goes to."""
        assert self._shards is not None
        hashed = int.from_bytes(hashlib.md5(key.encode(), usedforsecurity=False).digest())
        return self._shards[bisect.bisect_right(self._shards, hashed) - 1]

    def _put(self, entries: list[dict[str, Any]]) -> list[bool]:
        """One PutRecords: which of the entries the service took."""
        try:
            answer = self._kinesis.put_records(StreamName=self._stream, Records=entries)
        except Exception as error:
            throttled = error_code(error) == "ProvisionedThroughputExceededException"
            if not (throttled or is_passing(error)):
                raise SourceError(describe(error, self._stream)) from None
            return [False] * len(entries)
        taken = [not result.get("ErrorCode") for result in answer["Records"]]
        self.put += taken.count(True)
        return taken
