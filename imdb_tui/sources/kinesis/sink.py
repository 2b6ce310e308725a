"""Where `imdb-tui produce --to kinesis://STREAM` puts events."""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Sequence
from typing import Any, Final

from imdb_tui.sources import SourceError, SourceSpec
from imdb_tui.sources.kinesis.client import client, describe, error_code, is_passing

PUT_RECORDS: Final = 500
PUT_BYTES: Final = 5 * 1024 * 1024


class KinesisSink:
    """Where `produce --to kinesis://STREAM` puts events: PutRecords of at most 500
    records and 5 MiB, the user id as partition key (a user's events stay in order
    on one shard), each record the service turns down sent again, with backoff."""

    def __init__(self, url: str, create_shards: int | None = None, kinesis: Any = None) -> None:
        self._stream = SourceSpec.parse(url).stream
        self._kinesis = kinesis if kinesis is not None else client()
        self.put = 0
        self.retries = 0
        try:
            if create_shards is not None:
                self._create(create_shards)
            self._kinesis.describe_stream_summary(StreamName=self._stream)
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

    def send(self, records: Sequence[dict[str, Any]]) -> None:
        """Put these records, in order within each partition key, until all are in.

        A call holds at most one record of a partition key: a record the service
        turns down goes again before the next of its key, so a user's events keep
        their order even when some are turned down."""
        waiting: dict[str, deque[dict[str, Any]]] = {}
        for record in records:
            key = str(record.get("user_id") or "-")[:256]
            data = json.dumps(record, separators=(",", ":")).encode()
            waiting.setdefault(key, deque()).append({"Data": data, "PartitionKey": key})
        delay = 0.05
        while waiting:
            call: list[dict[str, Any]] = []
            size = 0
            for queue in waiting.values():
                entry = queue[0]
                size += len(entry["Data"]) + len(entry["PartitionKey"])
                if len(call) == PUT_RECORDS or (size > PUT_BYTES and call):
                    break
                call.append(entry)
            taken = self._put(call)
            for entry, done in zip(call, taken, strict=True):
                if done:
                    queue = waiting[entry["PartitionKey"]]
                    queue.popleft()
                    if not queue:
                        del waiting[entry["PartitionKey"]]
            if not all(taken):
                self.retries += taken.count(False)
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
            else:
                delay = 0.05

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
