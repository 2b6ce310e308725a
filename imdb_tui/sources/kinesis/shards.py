"""Reading every shard of a stream, resumed from checkpoints (see the package)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from imdb_tui.events import Located, RawRecord
from imdb_tui.sources import KINESIS, Lookup, SourceError, SourceSpec
from imdb_tui.sources.kinesis.client import client, describe, error_code, is_passing
from imdb_tui.sources.kinesis.leases import (
    Checkpoint,
    Seen,
    Shares,
    read_to_end,
    share_on,
    stored_checkpoint,
)
from imdb_tui.sources.kinesis.records import unpack
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


@dataclass
class _Shard:
    shard_id: str
    parents: tuple[str, ...]
    iterator: str | None = None
    checkpoint: Checkpoint | None = None
    """After the last record fetched (handed out or waiting to be)."""
    skip: Checkpoint | None = None
    """Reading again from inside a record: its parts up to here are stored."""
    finished: bool = False
    """Closed by a resharding and read to its end."""
    next_call: float = 0.0
    behind_ms: int | None = None
    fetched: deque[tuple[Located, Checkpoint]] = field(default_factory=deque)
    """The parts fetched, each with the checkpoint after it."""
    turn: int = 0
    """Counts the times this pipeline's reading of the shard started over (its lease
    lost or taken): a GetRecords begun in an earlier turn is not used."""

    def start_over(self) -> None:
        """Forget what was fetched and where reading stood: read next from the
        checkpoint; a GetRecords under way (or answered, not yet looked at) is of the
        turn before, and its records, which may come after those just forgotten, are
        not used."""
        self.fetched.clear()
        self.iterator = None
        self.skip = None
        self.turn += 1


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
        # Unique even for two sources of one process made in the same millisecond.
        self._owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self._held: set[str] = set()
        self._leaving: set[str] = set()  # held until what was read from them is committed
        self._board_lock = threading.Lock()  # the board's connection: one thread at a time
        self._renewing: asyncio.Task[None] | None = None
        self.name = f"{KINESIS}{self._stream}"
        self._from = start_from
        self._timestamp = _moment(start_from)
        self._kinesis = kinesis if kinesis is not None else client()
        self._shards: dict[str, _Shard] = {}
        self._handed: dict[str, Checkpoint] = {}  # shard -> after the last part handed out
        self._said: dict[str, str] = {}  # shard -> its position as last given to the pipeline
        self._unsaved: dict[str, str] = {}  # shard -> that position, until committed
        self._listed = 0.0
        self._stopped: asyncio.Event | None = None
        self._fetching: dict[str, asyncio.Future[tuple[int, Any]]] = {}
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
        if self._leases is not None:
            self._renewing = asyncio.create_task(self._keep_leases())
        resumed = 0
        for shard in self._shards.values():
            position = stored(self.key(shard.shard_id))
            if position is None:
                continue
            shard.checkpoint = stored_checkpoint(position)
            shard.finished = read_to_end(position)
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
                self._fetching[shard.shard_id] = asyncio.ensure_future(self._fetch(shard))

    async def _fetch(self, shard: _Shard) -> tuple[int, dict[str, Any] | BaseException]:
        """One GetRecords on a worker thread, with the turn it was begun in."""
        turn = shard.turn
        return turn, await asyncio.to_thread(self._call, shard)

    def _collect(self) -> None:
        """Take in the GetRecords that have ended (on the loop: shards change only here)."""
        for shard_id, task in list(self._fetching.items()):
            if task.done():
                del self._fetching[shard_id]
                shard = self._shards[shard_id]
                turn, answer = task.result()
                if turn != shard.turn:  # begun before it started over
                    continue
                if self._leases is not None and shard_id not in self._held:  # lease lost
                    shard.iterator = None
                    continue
                self._apply(shard, answer)  # a SourceError: raised

    # Leases --------------------------------------------------------------------

    async def _keep_leases(self) -> None:
        """A lease round every third of the lease, in the background, whatever reading
        does: a pipeline waiting on a slow store (its queue full, so nothing read for a
        while) keeps its shards, and no other pipeline reads them meanwhile."""
        assert self._stopped is not None
        while not self._stopping():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), self._lease_seconds / 3)
            if not self._stopping():
                await self._lease_round()

    async def _lease_round(self) -> None:
        """Renew this pipeline's leases, take free or expired ones up to its share of
        the shards to read (shared out among the group's live owners), and hand back
        what is over its share, for a pipeline that has too few."""
        if self._leases is None:
            return
        shards = [
            Seen(
                s.shard_id,
                s.parents,
                s.finished and not s.fetched,
                settled=s.shard_id not in self._unsaved,
            )
            for s in self._shards.values()
        ]
        try:
            found = await asyncio.to_thread(self._share, shards, frozenset(self._held))
        except StoreError as error:
            self.trouble = f"leases: {error}"  # keep reading what is held; renew next time
            return
        for shard_id in found.ended:  # read to its end, by this pipeline or another
            self._shards[shard_id].finished = True
        for shard_id in (self._held | self._leaving) - found.held:  # not to be read here now
            shard = self._shards[shard_id]
            shard.start_over()
            # What was fetched and not handed out is not read: not to its end any more.
            shard.finished = shard_id in found.ended
            if shard_id not in found.leaving:  # handed back: another pipeline reads it
                self._forget(shard_id)
        for shard_id in found.held - self._held:  # taken: from its stored checkpoint
            shard = self._shards[shard_id]
            shard.start_over()
            # Or, if it was being handed back, after what was handed out from it.
            shard.checkpoint = found.checkpoints.get(shard_id, self._handed.get(shard_id))
            if shard.checkpoint is not None:
                self._handed[shard_id] = shard.checkpoint
        self._held = set(found.held)
        self._leaving = set(found.leaving)

    def _forget(self, shard_id: str) -> None:
        self._handed.pop(shard_id, None)
        self._said.pop(shard_id, None)
        self._unsaved.pop(shard_id, None)

    def _share(self, shards: list[Seen], held: frozenset[str]) -> Shares:
        """One lease round, on a worker thread (the lease board's own connection)."""
        with self._board_lock:
            board = self._leases
            if board is None or self._stopping():  # handing back: no new round
                return Shares(frozenset(), frozenset(), {})
            return share_on(
                board, self._group, self._owner, self._lease_seconds, self.key, shards, held
            )

    def _release(self) -> None:
        """Stopping: hand back the leases of the shards whose positions are all committed,
        so the group's others carry on at once; the others as their batches commit
        (or, if those never do, when their leases run out)."""
        board = self._leases
        if board is None:
            return
        held = self._held | self._leaving
        going = [shard_id for shard_id in sorted(held) if shard_id not in self._unsaved]
        if held and not going:
            return
        keys = [self.key(shard_id) for shard_id in going]
        if len(going) == len(held):
            keys.append(f"member:{self._owner}")
            self._leases = None
        with self._board_lock, contextlib.suppress(StoreError):
            board.release_leases(self._group, self._owner, keys)
            if self._leases is None:
                board.close()
        self._held -= set(going)
        self._leaving -= set(going)

    def positions(self) -> Sequence[SourcePosition]:
        """The checkpoints that moved since the last call (each is committed once, so the
        pipeline can tell when a shard's last one is: see `committed`), each with how
        far behind the stream's tip its last read was (MillisBehindLatest: `report
        --json` shows it under `sources`), and whether the shard is read to its end
        (closed by a resharding, and all of it handed out)."""
        handed: dict[str, Checkpoint | None] = dict(self._handed)
        for shard in self._shards.values():
            ended = shard.finished and not shard.fetched
            if ended and (self._leases is None or shard.shard_id in self._held):
                handed[shard.shard_id] = shard.checkpoint
        moved = []
        for shard_id, checkpoint in sorted(handed.items()):
            shard = self._shards[shard_id]
            position = json.dumps(
                {
                    **(checkpoint.after() if checkpoint else {"sequence": None}),
                    "millis_behind_latest": shard.behind_ms,
                    "ended": shard.finished and not shard.fetched,
                }
            )
            if self._said.get(shard_id) != position:
                self._said[shard_id] = self._unsaved[shard_id] = position
                moved.append(SourcePosition(self.key(shard_id), position))
        return tuple(moved)

    def committed(self, positions: Sequence[SourcePosition]) -> None:
        """A batch holding these positions is committed: a shard whose newest position
        is among them may be handed on (when stopping: now)."""
        prefix = self.key("")
        for position in positions:
            shard_id = position.source.removeprefix(prefix)
            if self._unsaved.get(shard_id) == position.position:
                del self._unsaved[shard_id]
        if self._stopping():
            self._release()

    @property
    def behind_ms(self) -> float | None:
        """The most any shard read here was behind the stream's tip at its last read."""
        behind = [
            s.behind_ms
            for s in self._shards.values()
            if s.behind_ms is not None and (self._leases is None or s.shard_id in self._held)
        ]
        return float(max(behind)) if behind else None

    def stop(self) -> None:
        if self._stopped is not None:
            self._stopped.set()
        if self._renewing is not None:
            self._renewing.cancel()
        self._release()
        for task in self._fetching.values():
            task.cancel()  # its records were not handed out: read again next time
        self._fetching.clear()  # not to be collected: a cancelled call has no answer

    async def rest(self, limit: int) -> list[RawRecord]:
        return []  # what was not handed out is read again from the checkpoints

    # Reading -------------------------------------------------------------------

    def _stopping(self) -> bool:
        return self._stopped is not None and self._stopped.is_set()

    def _take(self, limit: int) -> list[RawRecord]:
        """Up to `limit` fetched records, shard after shard, noting what each handed out."""
        records: list[RawRecord] = []
        for shard in self._shards.values():
            while shard.fetched and len(records) < limit:
                part, after = shard.fetched.popleft()
                records.append(part)
                self._handed[shard.shard_id] = after
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
            code = error_code(answer)
            if code == "ProvisionedThroughputExceededException":
                shard.next_call = time.monotonic() + THROTTLED_PAUSE
            elif code == "ExpiredIteratorException":
                shard.iterator = None  # a new one after the checkpoint, next time
            elif is_passing(answer):  # the same call again, after a pause, until it goes
                self.trouble = describe(answer, self._stream)
                shard.iterator = None
                shard.next_call = time.monotonic() + TROUBLE_PAUSE
            else:
                raise SourceError(describe(answer, self._stream))
            return
        self.trouble = None
        for record in answer.get("Records", ()):
            sequence = record["SequenceNumber"]
            parts = unpack(record["Data"], f"{shard.shard_id}, sequence {sequence}")
            last = len(parts) - 1
            first = 0
            if shard.skip is not None and shard.skip.sequence == sequence:
                first = (shard.skip.subsequence or 0) + 1  # those stored before
            shard.skip = None
            for number in range(first, last + 1):
                after = Checkpoint(sequence, number if number < last else None)
                shard.fetched.append((parts[number], after))
            shard.checkpoint = Checkpoint(sequence)
        shard.iterator = answer.get("NextShardIterator")
        shard.behind_ms = answer.get("MillisBehindLatest")
        if shard.iterator is None:
            shard.finished = True  # closed by a resharding, and read to its end

    def _iterator(self, shard: _Shard) -> str:
        options: dict[str, Any] = {"StreamName": self._stream, "ShardId": shard.shard_id}
        checkpoint = shard.checkpoint
        if checkpoint is not None:
            inside = checkpoint.subsequence is not None  # the rest of a record's parts
            shard.skip = checkpoint if inside else None
            options |= {
                "ShardIteratorType": "AT_SEQUENCE_NUMBER" if inside else "AFTER_SEQUENCE_NUMBER",
                "StartingSequenceNumber": checkpoint.sequence,
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
            if self._shards and is_passing(error):  # go on with the shards known
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
