"""Amazon Kinesis: a stream as a source (every shard, resumed from checkpoints),
and a stream as where `imdb-tui produce --to kinesis://STREAM` puts events.

A shard's checkpoint is the sequence number of the last record handed out from
it; the pipeline commits it with the batch holding that record, so a restart
carries on after it and stores exactly the records not stored yet. A shard made
by a resharding is read once its parents are read to their end, so a user's
events (one partition key: one shard at a time) stay in order.

Region, credentials and endpoint come from the standard AWS configuration (the
environment, ~/.aws, an instance role; AWS_ENDPOINT_URL for a local endpoint).
boto3 is imported only when a kinesis:// URL is used (`pip install 'imdb-tui[aws]'`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from imdb_tui.events import Located, RawRecord
from imdb_tui.sources import KINESIS, Lookup, SourceError, SourceSpec
from imdb_tui.store import LeaseBoard, SourcePosition, StoreError

CALL_INTERVAL: Final = 0.2
"""GetRecords is allowed 5 calls a second on a shard: one every 0.2 s, at most."""
THROTTLED_PAUSE: Final = 1.0
PREFETCH: Final = 10_000
"""A shard is read ahead while fewer records than this wait to be handed out."""
TROUBLE_PAUSE: Final = 1.0
"""How long a shard waits after a passing failure (no connection, a service error)."""
SHARDS_REFRESH: Final = 10.0
"""How often the stream's shards are listed again (a resharding adds some)."""
DEFAULT_GROUP: Final = "imdb-tui"
LEASE_SECONDS: Final = 10.0
"""A shard's lease lasts this long unless renewed (every third of it): a pipeline
that dies hands its shards on after at most this long."""
PUT_RECORDS: Final = 500
PUT_BYTES: Final = 5 * 1024 * 1024


def client() -> Any:
    """A Kinesis client from the standard AWS configuration."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise SourceError("Kinesis needs boto3: pip install 'imdb-tui[aws]'") from None
    # GetRecords answers at once (it is no long poll): a call that hangs is given up
    # after 10 s and tried again by the source, rather than holding a stop for a minute.
    config = Config(
        retries={"mode": "standard", "max_attempts": 2}, connect_timeout=5, read_timeout=10
    )
    # AWS_REGION is what the other AWS SDKs and the CLI read; botocore reads only
    # AWS_DEFAULT_REGION and the profile's region.
    region = boto3.session.Session().region_name or os.environ.get("AWS_REGION")
    try:
        return boto3.client("kinesis", config=config, region_name=region)
    except Exception as error:  # NoRegionError and kin: said in one line
        raise SourceError(describe(error)) from None


def describe(error: BaseException, stream: str | None = None) -> str:
    """One line for an AWS failure a user can act on."""
    name = type(error).__name__
    code = _code(error)
    where = f"kinesis://{stream}" if stream else "Kinesis"
    if name == "NoRegionError":
        return "no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION, or a profile's region)"
    if name in ("NoCredentialsError", "PartialCredentialsError"):
        return "no AWS credentials: set them in the environment, ~/.aws or an instance role"
    if code == "ResourceNotFoundException":
        return f"{where}: no such stream (create it, or produce with --create-shards N)"
    if code in ("AccessDeniedException", "UnrecognizedClientException"):
        return f"{where}: access denied ({code})"
    if name in ("EndpointConnectionError", "ConnectTimeoutError", "ConnectionClosedError"):
        return f"cannot reach {where}: {error}"
    return f"{where}: {error}"


@dataclass(frozen=True)
class _Seen:
    """A shard as a lease round sees it."""

    shard_id: str
    parents: tuple[str, ...]
    drained: bool
    """Read to its end here, and all of it handed out."""


@dataclass(frozen=True)
class _Shares:
    """What a lease round found: the shards held now, those read to their end (a
    stored checkpoint says so), and the checkpoints of the shards just taken."""

    held: frozenset[str]
    ended: frozenset[str]
    checkpoints: dict[str, str | None]


@dataclass
class _Shard:
    shard_id: str
    parents: tuple[str, ...]
    iterator: str | None = None
    checkpoint: str | None = None
    """The sequence number of the last record fetched (handed out or waiting to be)."""
    finished: bool = False
    """Closed by a resharding and read to its end."""
    next_call: float = 0.0
    behind_ms: int | None = None
    fetched: deque[tuple[bytes, str]] = field(default_factory=deque)


class KinesisSource:
    """Every shard of a stream, read in turn; each one's position is its checkpoint."""

    def __init__(
        self,
        url: str,
        start_from: str = "trim-horizon",
        kinesis: Any = None,
        leases: LeaseBoard | None = None,
        group: str = DEFAULT_GROUP,
        lease_seconds: float = LEASE_SECONDS,
    ) -> None:
        """Connects and checks the stream at once, so a problem is said at start.

        `leases`, if given (a connection of its own to the store), shares the shards
        with the other pipelines of `group`: this one reads only the shards it holds
        a lease on, renewed every third of `lease_seconds`."""
        self._stream = SourceSpec.parse(url).stream
        self._leases = leases
        self._group = group
        self._lease_seconds = lease_seconds
        self._owner = f"{socket.gethostname()}:{os.getpid()}:{time.time():.3f}"
        self._held: set[str] = set()
        self._leased = 0.0
        self._board_lock = threading.Lock()  # the board's connection: one thread at a time
        self._renewing: asyncio.Future[None] | None = None
        self.name = f"{KINESIS}{self._stream}"
        self._from = start_from
        self._timestamp = _moment(start_from)
        self._kinesis = kinesis if kinesis is not None else client()
        self._shards: dict[str, _Shard] = {}
        self._handed: dict[str, str] = {}  # shard -> sequence number of the last handed out
        self._listed = 0.0
        self._stopped: asyncio.Event | None = None
        self._fetching: dict[str, asyncio.Future[Any]] = {}
        self.trouble: str | None = None
        try:
            self._kinesis.describe_stream_summary(StreamName=self._stream)
        except Exception as error:
            raise SourceError(describe(error, self._stream)) from None

    def key(self, shard_id: str) -> str:
        return f"kinesis:{self._stream}/{shard_id}"

    async def start(self, stored: Lookup) -> str | None:
        self._stopped = asyncio.Event()
        await self._list_shards()
        await self._lease_round()
        resumed = 0
        for shard in self._shards.values():
            position = stored(self.key(shard.shard_id))
            if position is None:
                continue
            shard.checkpoint = _sequence(position)
            shard.finished = _ended(position)
            if shard.checkpoint is not None:
                self._handed[shard.shard_id] = shard.checkpoint
                resumed += 1
        if not resumed:
            return None
        return f"{resumed} of {len(self._shards)} shards after their checkpoints"

    async def read(self, limit: int) -> list[RawRecord]:
        """Records already fetched, at once; meanwhile each readable shard's next
        GetRecords is under way on a thread of its own, so reading overlaps storing."""
        while not self._stopping():
            if time.monotonic() - self._listed > SHARDS_REFRESH:
                await self._list_shards()
            renewing = self._renewing is not None and not self._renewing.done()
            if not renewing and time.monotonic() - self._leased > self._lease_seconds / 3:
                # In the background: a round may wait on the store's lock for a while.
                self._renewing = asyncio.ensure_future(self._lease_round())
            self._fetch_due()
            records = self._take(limit)
            if records:
                return records
            assert self._stopped is not None
            waits = [s.next_call for s in self._readable()] or [time.monotonic() + CALL_INTERVAL]
            pause = max(0.0, min(waits) - time.monotonic())
            stopped: asyncio.Future[Any] = asyncio.ensure_future(self._stopped.wait())
            await asyncio.wait(
                [stopped, *self._fetching.values()],
                timeout=pause if not self._fetching else None,
                return_when=asyncio.FIRST_COMPLETED,
            )
            stopped.cancel()
            self._collect()
        return []

    def _fetch_due(self) -> None:
        """Start a GetRecords on each readable shard whose turn it is."""
        now = time.monotonic()
        for shard in self._readable():
            if shard.next_call <= now and shard.shard_id not in self._fetching:
                shard.next_call = now + CALL_INTERVAL
                self._fetching[shard.shard_id] = asyncio.ensure_future(
                    asyncio.to_thread(self._call, shard)
                )

    def _collect(self) -> None:
        """Take in the GetRecords that have ended (on the loop: shards change only here)."""
        for shard_id, task in list(self._fetching.items()):
            if task.done():
                del self._fetching[shard_id]
                if self._leases is not None and shard_id not in self._held:  # lease lost
                    self._shards[shard_id].iterator = None
                    continue
                self._apply(self._shards[shard_id], task.result())  # a SourceError: raised

    # Leases --------------------------------------------------------------------

    async def _lease_round(self) -> None:
        """Renew this pipeline's leases, take free or expired ones up to its share of
        the shards to read (shared out among the group's live owners), and hand back
        what is over its share, for a pipeline that has too few."""
        self._leased = time.monotonic()
        if self._leases is None:
            return
        shards = [
            _Seen(s.shard_id, s.parents, s.finished and not s.fetched)
            for s in self._shards.values()
        ]
        try:
            found = await asyncio.to_thread(self._share, shards, frozenset(self._held))
        except StoreError as error:
            self.trouble = f"leases: {error}"  # keep reading what is held; renew next time
            return
        for shard_id in found.ended:  # read to its end, by this pipeline or another
            self._shards[shard_id].finished = True
        for shard_id in self._held - found.held:  # another pipeline reads it from now
            shard = self._shards[shard_id]
            shard.fetched.clear()
            shard.iterator = None
            self._handed.pop(shard_id, None)
        for shard_id in found.held - self._held:  # taken: from its stored checkpoint
            shard = self._shards[shard_id]
            shard.fetched.clear()
            shard.iterator = None
            shard.checkpoint = found.checkpoints.get(shard_id)
            if shard.checkpoint is not None:
                self._handed[shard_id] = shard.checkpoint
        self._held = set(found.held)

    def _share(self, shards: list[_Seen], held: frozenset[str]) -> _Shares:
        """One lease round, on a worker thread (the lease board's own connection)."""
        with self._board_lock:
            board = self._leases
            if board is None:  # released meanwhile: stopping
                return _Shares(frozenset(), frozenset(), {})
            return self._share_on(board, shards, held)

    def _share_on(self, board: LeaseBoard, shards: list[_Seen], held: frozenset[str]) -> _Shares:
        """The shards to read are those not read to their end (a checkpoint says so)
        whose parents are: a resharded stream's children wait for their parents, and
        are not leased before then. A shard this pipeline has read to its end keeps
        its lease, outside its share, until the checkpoint saying so is committed."""
        now = time.time()
        until = now + self._lease_seconds
        known = {seen.shard_id for seen in shards}
        ended = {s.shard_id for s in shards if _ended(board.position(self.key(s.shard_id)))}
        done = {seen.shard_id for seen in shards if seen.drained and seen.shard_id in held} - ended
        through = ended | done  # children may be read
        keys = {
            self.key(seen.shard_id): seen.shard_id
            for seen in shards
            if seen.shard_id not in ended and all(p in through for p in seen.parents if p in known)
        }
        # A row of its own says the pipeline is in the group, shards or none yet.
        board.take_lease(self._group, f"member:{self._owner}", self._owner, until, now)
        holders = board.lease_holders(self._group, now)
        owners = set(holders.values()) | {self._owner}
        to_read = [key for key in sorted(keys) if keys[key] not in done]
        share = -(-len(to_read) // len(owners))  # rounded up
        mine = [
            key
            for key in sorted(keys)
            if holders.get(key) == self._owner
            and board.take_lease(self._group, key, self._owner, until, now)
        ]
        reading = [key for key in mine if keys[key] not in done]
        letting_go = reading[share:] + [self.key(shard_id) for shard_id in held & ended]
        if letting_go:
            board.release_leases(self._group, self._owner, letting_go)
        taken = {keys[key] for key in mine if key not in reading[share:]}
        checkpoints: dict[str, str | None] = {}
        for key in to_read:
            if len(reading) >= share:
                break
            if key not in holders and board.take_lease(self._group, key, self._owner, until, now):
                reading.append(key)
                taken.add(keys[key])
                checkpoints[keys[key]] = _sequence(board.position(key))
        return _Shares(frozenset(taken), frozenset(ended), checkpoints)

    def _release(self) -> None:
        """Stopping: hand the leases back, so the group's others carry on at once (from
        the checkpoints stored; a batch still in flight may be read twice then)."""
        board, self._leases = self._leases, None
        if board is None:
            return
        keys = [self.key(shard_id) for shard_id in sorted(self._held)]
        keys.append(f"member:{self._owner}")
        with self._board_lock, contextlib.suppress(StoreError):
            board.release_leases(self._group, self._owner, keys)
            board.close()
        self._held = set()

    def positions(self) -> Sequence[SourcePosition]:
        """Each shard's checkpoint, with how far behind the stream's tip its last read
        was (MillisBehindLatest: `report --json` shows it under `sources`), and whether
        it is read to its end (closed by a resharding, and all of it handed out)."""
        handed: dict[str, str | None] = dict(self._handed)
        for shard in self._shards.values():
            ended = shard.finished and not shard.fetched
            if ended and (self._leases is None or shard.shard_id in self._held):
                handed[shard.shard_id] = shard.checkpoint
        return tuple(
            SourcePosition(
                self.key(shard_id),
                json.dumps(
                    {
                        "sequence": sequence,
                        "millis_behind_latest": self._shards[shard_id].behind_ms,
                        "ended": self._shards[shard_id].finished
                        and not self._shards[shard_id].fetched,
                    }
                ),
            )
            for shard_id, sequence in sorted(handed.items())
        )

    @property
    def behind_ms(self) -> float | None:
        """The most any shard read here was behind the stream's tip at its last read."""
        behind = [
            s.behind_ms
            for s in self._shards.values()
            if s.behind_ms is not None and (self._leases is None or s.shard_id in self._held)
        ]
        return float(max(behind)) if behind else None

    def acknowledge(self, positions: Sequence[SourcePosition]) -> None:
        pass  # the checkpoints are in the store, committed with their records

    def stop(self) -> None:
        if self._stopped is not None:
            self._stopped.set()
        if self._renewing is not None:
            self._renewing.cancel()
        self._release()
        for task in self._fetching.values():
            task.cancel()  # its records were not handed out: read again next time
        self._fetching.clear()  # not to be collected: a cancelled call has no answer

    # Reading -------------------------------------------------------------------

    def _stopping(self) -> bool:
        return self._stopped is not None and self._stopped.is_set()

    def _take(self, limit: int) -> list[RawRecord]:
        """Up to `limit` fetched records, shard after shard, noting what each handed out."""
        records: list[RawRecord] = []
        for shard in self._shards.values():
            while shard.fetched and len(records) < limit:
                data, sequence = shard.fetched.popleft()
                records.append(Located.at(data, f"{shard.shard_id}, sequence {sequence}"))
                self._handed[shard.shard_id] = sequence
            if len(records) >= limit:
                break
        return records

    def _readable(self) -> list[_Shard]:
        """Open shards with room for more fetched records, whose parents (if still in the
        stream) have been read to their end and handed out."""
        return [
            shard
            for shard in self._shards.values()
            if (self._leases is None or shard.shard_id in self._held)
            and not shard.finished
            and len(shard.fetched) < PREFETCH
            and all(
                self._shards[p].finished and not self._shards[p].fetched
                for p in shard.parents
                if p in self._shards
            )
        ]

    def _call(self, shard: _Shard) -> dict[str, Any] | BaseException:
        """One GetRecords call on a shard, on a worker thread: its answer, or its error."""
        try:
            iterator = shard.iterator or self._iterator(shard)
            answer: dict[str, Any] = self._kinesis.get_records(ShardIterator=iterator, Limit=10_000)
        except Exception as error:
            return error
        return answer

    def _apply(self, shard: _Shard, answer: dict[str, Any] | BaseException) -> None:
        """A GetRecords's outcome: its records queued in order, or its error dealt with."""
        if isinstance(answer, BaseException):
            code = _code(answer)
            if code == "ProvisionedThroughputExceededException":
                shard.next_call = time.monotonic() + THROTTLED_PAUSE
            elif code == "ExpiredIteratorException":
                shard.iterator = None  # a new one after the checkpoint, next time
            elif _passing(answer):  # the same call again, after a pause, until it goes
                self.trouble = describe(answer, self._stream)
                shard.iterator = None
                shard.next_call = time.monotonic() + TROUBLE_PAUSE
            else:
                raise SourceError(describe(answer, self._stream))
            return
        self.trouble = None
        for record in answer.get("Records", ()):
            shard.fetched.append((record["Data"], record["SequenceNumber"]))
            shard.checkpoint = record["SequenceNumber"]
        shard.iterator = answer.get("NextShardIterator")
        shard.behind_ms = answer.get("MillisBehindLatest")
        if shard.iterator is None:
            shard.finished = True  # closed by a resharding, and read to its end

    def _iterator(self, shard: _Shard) -> str:
        options: dict[str, Any] = {"StreamName": self._stream, "ShardId": shard.shard_id}
        if shard.checkpoint is not None:
            options |= {
                "ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
                "StartingSequenceNumber": shard.checkpoint,
            }
        elif shard.parents and any(p in self._shards for p in shard.parents):
            options["ShardIteratorType"] = "TRIM_HORIZON"  # a child: all of it, after its parents
        elif self._timestamp is not None:
            options |= {"ShardIteratorType": "AT_TIMESTAMP", "Timestamp": self._timestamp}
        elif self._from == "latest":
            options["ShardIteratorType"] = "LATEST"
        else:
            options["ShardIteratorType"] = "TRIM_HORIZON"
        iterator: str = self._kinesis.get_shard_iterator(**options)["ShardIterator"]
        return iterator

    async def _list_shards(self) -> None:
        self._listed = time.monotonic()
        try:
            found = await asyncio.to_thread(self._all_shards)
        except Exception as error:
            if self._shards and _passing(error):  # go on with the shards known
                self.trouble = describe(error, self._stream)
                return
            raise SourceError(describe(error, self._stream)) from None
        for shard in found:
            shard_id = shard["ShardId"]
            if shard_id not in self._shards:
                parents = tuple(
                    p for p in (shard.get("ParentShardId"), shard.get("AdjacentParentShardId")) if p
                )
                self._shards[shard_id] = _Shard(shard_id, parents)

    def _all_shards(self) -> list[dict[str, Any]]:
        shards: list[dict[str, Any]] = []
        answer = self._kinesis.list_shards(StreamName=self._stream)
        shards += answer["Shards"]
        while answer.get("NextToken"):
            answer = self._kinesis.list_shards(NextToken=answer["NextToken"])
            shards += answer["Shards"]
        return shards


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
            if _code(error) != "ResourceInUseException":  # it exists: use it as it is
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
            throttled = _code(error) == "ProvisionedThroughputExceededException"
            if not (throttled or _passing(error)):
                raise SourceError(describe(error, self._stream)) from None
            return [False] * len(entries)
        taken = [not result.get("ErrorCode") for result in answer["Records"]]
        self.put += taken.count(True)
        return taken


def _sequence(position: str | None) -> str | None:
    """The sequence number of a stored checkpoint (None: none, or not one of ours)."""
    if position is None:
        return None
    try:
        sequence = json.loads(position)["sequence"]
    except (ValueError, KeyError, TypeError):
        return None
    return None if sequence is None else str(sequence)


def _ended(position: str | None) -> bool:
    """Whether a stored checkpoint says its shard was read to its end."""
    if position is None:
        return False
    try:
        return json.loads(position).get("ended") is True
    except (ValueError, AttributeError):
        return False


def _code(error: BaseException) -> str:
    """An AWS error's code (ResourceNotFoundException, ...), or ''."""
    code: str = getattr(error, "response", {}).get("Error", {}).get("Code", "")
    return code


_PASSING_CODES: Final = frozenset(
    {
        "InternalFailure",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "LimitExceededException",
    }
)


def _passing(error: BaseException) -> bool:
    """A failure that goes away by itself: the endpoint unreachable for a while, the
    service's own errors. Not a missing stream, nor a denied access."""
    try:
        from botocore.exceptions import ConnectionError as NoConnection
        from botocore.exceptions import HTTPClientError
    except ImportError:  # pragma: no cover - boto3 brings botocore
        return False
    if isinstance(error, NoConnection | HTTPClientError):
        return True
    status = getattr(error, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return _code(error) in _PASSING_CODES or status >= 500


def _moment(start_from: str) -> datetime | None:
    """--from as a time, if it is one (else trim-horizon or latest)."""
    if start_from in ("trim-horizon", "latest"):
        return None
    try:
        moment = datetime.fromisoformat(start_from.replace("Z", "+00:00"))
    except ValueError:
        raise SourceError(
            f"--from {start_from!r}: trim-horizon, latest, or a time (2026-11-20T10:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        raise SourceError(f"--from {start_from!r}: give the time zone (Z for UTC)")
    return moment
