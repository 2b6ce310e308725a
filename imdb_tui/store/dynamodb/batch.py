"""A batch written to DynamoDB exactly once, whatever stops part way.

DynamoDB has no transaction a batch fits in (at most 100 items and 4 MB, no two
actions on one item), and its idempotency token lasts ten minutes and is not
honoured by a local endpoint: correctness rests on neither. A batch is written in
steps instead, each of which can be done again, or finished by another writer,
with the same result. Its record, `B#<writer>/<number>`, says how far it went:

    pending --(its plan written)--> applying --(counts added)--> done
    pending --(its writer dead, by another writer)--> aborted --> pending (attempt + 1)

1. **Begin.** The record is read. `done`: the batch was stored, and AlreadyStored
   answers with what it did then. The record of the batch before it must be `done`
   (else OutOfOrder). No record: it is put (`pending`, attempt 1) if still absent.
   `aborted`: the next attempt starts (`pending`, attempt + 1, if still aborted).
   `applying`: it is finished from its plan (step 4), then answered as done.
2. **Claim.** The ids of the events the attempt will claim are written first
   (`<number>#ids#<attempt>#<k>`). Then each event is put, CLAIMS to a transaction
   (those whose condition fails are left out and the rest put again), if its id is
   absent or already this attempt's: `E#<event_id>` holds the event and `b`, the attempt that
   claimed it. A put whose condition fails meets another attempt's claim:
   - that attempt's batch is `done` (or its record trimmed, which only happens to
     done ones): the event is a duplicate;
   - that attempt was aborted, or is not its batch's attempt any more: the claim is
     stale and taken over (put if `b` is still that attempt);
   - its batch is `pending` or `applying` and its writer is alive (its `W#` item's
     `w_until` is ahead, less GRACE): wait for it, as a database waits for another
     transaction's commit;
   - its writer is dead: a `pending` batch is aborted (its claims are deleted, each
     only if still its own), then the claim is taken over; an `applying` one is
     finished (step 4) and the event is a duplicate.
   What an attempt claimed is what it stores: those events, first of each id in
   the batch's order, are the new ones.
3. **Plan.** What the new events add (`Aggregates`: counts by minute, quarter hour,
   movie and day, ratings, trending, a movie's minutes; the counters), the dead
   letters, the positions, the health row and the retention its items go by (TTL)
   are written as the attempt's plan
   (`<number>#plan#<attempt>#<k>`), then the record moves to `applying` if it is
   still `pending` at this attempt (else it was aborted: back to step 1).
4. **Apply.** Each count is added by one update (a hundred to a transaction: those
   whose condition fails are left out, the rest made again), pre-combined for the
   batch (a hot minute or movie takes one update a batch, not one an event), guarded by the
   item's mark of the writer (`h:<writer>`): added only if the item's mark is below
   the batch's number, and the mark set to it in the same update. A writer's
   batches apply in order (step 1), so an update done before a crash is never done
   again, by this writer or by another finishing the batch. Dead letters have keys
   of their own (arrival, writer, number, place), and so do the events' entries in
   the time index (`T#<minute>`, event time and id): putting them again changes
   nothing. Who had events (each user's newest time, each movie's users a day) is
   recorded by who.py: each change in a transaction with the counts it moves, and
   found out by the items themselves when made again.
5. **Commit.** One transaction moves the record to `done` (if still `applying` at
   this attempt) and puts the positions and the health row: a position is stored
   exactly when the events it counts are stored and counted. A commit cancelled
   because the record is already `done` was finished by another writer.

An event is stored once: its item is put only while absent or its own attempt's,
and an attempt's claims are either all counted (the batch goes on to `done`) or
deleted or taken over (it was aborted, only while `pending`, before anything was
added). It is counted once: counts are added only from a plan, each count by an
update that marks the writer's batch in the item it adds to; the plan of an
attempt is fixed before any is added, and its claims cannot be taken over once it
is `applying`. A writer taken for dead while it was only slow finds its record
aborted (at the plan, step 3) or done (at the commit, step 5), never both counted.

A run starting finishes the batches that dead writers left applying (`recover`),
before it reads its sources' positions: a killed run's last batch is committed,
positions and all, and the next run carries on after it instead of sending its
lines again (as duplicates). A batch left pending holds its events until its
writer's time is up (LIVE_FOR and GRACE), then is undone by the first writer that
needs one of them.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import random
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Final

from imdb_tui.aggregates import AggregateFn, Aggregates
from imdb_tui.events import Event, Rejection
from imdb_tui.health import PipelineHealth
from imdb_tui.store import (
    BATCH_MARKS_KEPT,
    AlreadyStored,
    BatchMark,
    OutOfOrder,
    SourcePosition,
    StoreError,
    health_row,
    marks,
)
from imdb_tui.store.dynamodb.layout import (
    COUNTERS,
    commit_items,
    event_item,
    event_of,
    expiry,
    plan_of,
    time_item,
)
from imdb_tui.store.dynamodb.table import Cancelled, Conflict, Table, key, wire, wire_item
from imdb_tui.store.dynamodb.who import add_movie_users, see_users

LIVE_FOR: Final = float(os.environ.get("IMDB_TUI_DYNAMODB_LIVE_FOR", "15"))
"""Seconds a writer says it is alive for, each time it is heard from (shorter in
tests, so that a run after a killed one does not wait long: docs/development.md)."""
GRACE: Final = LIVE_FOR
"""Seconds past a writer's `until` after which it is taken for dead."""
CHUNK: Final = 300_000
"""Characters of a batch's ids or plan an item holds (DynamoDB's limit is 400 kB)."""
CLAIMS: Final = 100
"""Events claimed a transaction (DynamoDB's most items in one)."""
COUNTS = 100
"""Counts added a transaction."""
PUTS: Final = 25
"""Items put a call (BatchWriteItem's most)."""
ATTEMPTS: Final = 20
"""Attempts of one batch (each after another writer aborted the one before)."""
WAIT: Final = 0.2
"""Seconds between looks at another writer's batch that holds an event."""
FORGOTTEN_AFTER: Final = 86400.0
"""Seconds a writer with nothing pending is silent before a starting run forgets it."""
DONE_KEPT_SECONDS: Final = 7 * 86400
"""How long a done batch's record is kept for TTL to delete (correctness never rests
on it: records are trimmed by their writer; a missing record reads as done)."""


@dataclass(frozen=True, slots=True)
class Attempt:
    writer: str
    number: int
    attempt: int

    @property
    def tag(self) -> str:
        return f"{self.writer}/{self.number}/{self.attempt}"

    @classmethod
    def of(cls, tag: str) -> Attempt:
        writer, number, attempt = tag.rsplit("/", 2)
        return cls(writer, int(number), int(attempt))


def record_key(writer: str, number: int) -> tuple[str, str]:
    return f"B#{writer}", f"{number:012d}"


WRITERS: Final = "W"
"""The writers that wrote batches here and were not forgotten, one item each."""


def writer_key(writer: str) -> tuple[str, str]:
    return f"W#{writer}", "-"


def event_key(event_id: str) -> tuple[str, str]:
    return f"E#{event_id}", "-"


class _Yield(Exception):
    """This batch gives its claims up to an older one under way (see _claim)."""


class BatchWrites:
    """The steps of a batch's write (see the module's docstring), on one table."""

    def __init__(self, table: Table, threads: int = 16) -> None:
        self.table = table
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="dynamodb")
        self.clock: Callable[[], float] = time.time
        self._listed: set[str] = set()

    def close(self) -> None:
        self._pool.shutdown(wait=False)

    # The batch -----------------------------------------------------------------------

    def write(
        self,
        events: Sequence[Event],
        rejections: Sequence[Rejection],
        received_at: str,
        aggregate: AggregateFn,
        aggregates: Aggregates | None,
        positions: Sequence[SourcePosition],
        health: PipelineHealth | None,
        mark: BatchMark | None,
        retention: float | None = None,
    ) -> list[Event]:
        once = mark is None
        self._expire(retention)
        if mark is None:
            mark = BatchMark(f"once-{uuid.uuid4().hex}", 1, None)
        self.heard(mark.writer)
        attempts = 0
        while attempts < ATTEMPTS:
            attempt = self._begin(mark)
            self._step("claim", mark)
            try:
                new = self._claim(attempt, events)
            except _Yield:
                # Two pending batches may each hold an event the other needs: the
                # younger (by writer and number) gives its claims up and tries again,
                # the older waits, so one of them always goes on (wait-die).
                with contextlib.suppress(Conflict):
                    self._abort(attempt)
                time.sleep(WAIT * random.uniform(1, 3))
                continue
            attempts += 1
            if aggregates is None or len(new) != len(events):
                aggregates = aggregate(new)
            plan = plan_of(
                aggregates,
                stored=len(new),
                events=len(events),
                rejections=rejections,
                received_at=received_at,
                writer=mark.writer,
                number=mark.number,
                positions=positions,
                health=health_row(health) if health is not None else None,
            )
            plan["retention"] = retention  # what finishes it stamps its items the same
            self._step("plan", mark)
            if not self._plan(attempt, plan):
                continue  # aborted by another writer, which took us for dead
            self._step("apply", mark)
            self._apply(attempt, plan, new)
            self._step("commit", mark)
            marks.written(mark)
            self._commit(attempt, plan)
            self._trim(mark, once)
            return new
        raise StoreError(f"batch {mark.number} aborted {ATTEMPTS} times by other writers")

    def _expire(self, retention: float | None) -> None:
        """What is written from now on goes `retention` after its time (None: never)."""
        self.table.expiry = None if retention is None else expiry(retention, lambda: self.clock())

    def _step(self, step: str, mark: BatchMark) -> None:
        self.heard(mark.writer)
        marks.reached(step, mark)  # a test hook: stop the writer here

    def heard(self, writer: str) -> None:
        """Say the writer is alive for LIVE_FOR seconds more."""
        if writer not in self._listed:
            self.table.put({"p": WRITERS, "s": writer})
            self._listed.add(writer)
        p, s = writer_key(writer)
        self.table.put({"p": p, "s": s, "w_until": self.clock() + LIVE_FOR})

    def recover(self) -> None:
        """Finish the batches left applying by writers that died (or are finishing
        them now: a plan applied twice adds once), so that the positions they commit
        are read by the run starting; and forget writers silent for a day with
        nothing pending (one only slow keeps its records: its next batch needs them)."""
        for listed in list(self.table.query(WRITERS)):
            writer = listed["s"]
            record = next(
                (
                    item
                    for item in self.table.query(record_key(writer, 0)[0], newest_first=True)
                    if "#" not in item["s"]
                ),
                None,
            )
            if record is not None and record["b_state"] == "applying":
                self._finish(Attempt(writer, int(record["s"]), record["b_try"]))
            elif record is None or record["b_state"] == "done":
                heard = self.table.get(*writer_key(writer))
                if heard is None or heard["w_until"] + FORGOTTEN_AFTER < self.clock():
                    self.forget(writer)

    # 1. Begin --------------------------------------------------------------------------

    def _begin(self, mark: BatchMark) -> Attempt:
        p, s = record_key(mark.writer, mark.number)
        while True:
            record = self.table.get(p, s)
            if record is not None and record["b_state"] == "done":
                raise AlreadyStored(record["b_stored"], record["b_dups"], record["b_rejected"])
            if mark.after is not None:
                before = self.table.get(*record_key(mark.writer, mark.after))
                if before is None or before["b_state"] != "done":
                    raise OutOfOrder(
                        f"batch {mark.after} is not stored yet; batches are stored in order"
                    )
            attempt = Attempt(mark.writer, mark.number, 1 if record is None else record["b_try"])
            try:
                if record is None:
                    self.table.put(
                        {"p": p, "s": s, "b_state": "pending", "b_try": 1},
                        "attribute_not_exists(p)",
                    )
                elif record["b_state"] == "aborted":
                    attempt = Attempt(mark.writer, mark.number, record["b_try"] + 1)
                    self.table.update(
                        p,
                        s,
                        "SET b_state = :pending, b_try = :next",
                        "b_state = :aborted AND b_try = :a",
                        pending="pending",
                        next=attempt.attempt,
                        aborted="aborted",
                        a=record["b_try"],
                    )
                elif record["b_state"] == "applying":
                    self._finish(Attempt(mark.writer, mark.number, record["b_try"]))
                    continue  # done now: answered as such
            except Conflict:
                continue  # it changed meanwhile: read it again
            return attempt

    # 2. Claim --------------------------------------------------------------------------

    def _claim(self, attempt: Attempt, events: Sequence[Event]) -> list[Event]:
        """Claim the batch's events; the ones this attempt stores, first of each id.

        Puts run on the pool; what another attempt's claim means is settled here,
        once for each such attempt, between rounds of puts."""
        first: dict[str, Event] = {}
        for event in events:
            first.setdefault(event.event_id, event)
        self._put_chunks(attempt, "ids", json.dumps(list(first)))
        mine: set[str] = set()
        stale: dict[str, str] = {}  # event id -> the stale claim to take over
        todo = list(first.values())
        rounds = 0
        while todo:
            chunks = [todo[i : i + CLAIMS] for i in range(0, len(todo), CLAIMS)]
            holders = [
                holder
                for found in self._pool.map(lambda c: self._claim_chunk(attempt, c, stale), chunks)
                for holder in found
            ]
            held: dict[str, list[Event]] = {}
            again: list[Event] = []
            for event, holder in zip(todo, holders, strict=True):
                if holder is None:
                    mine.add(event.event_id)
                elif holder == "":  # deleted meanwhile (an aborted claim): claim again
                    again.append(event)
                else:
                    held.setdefault(holder, []).append(event)
            waiting = False
            for tag, held_events in held.items():
                other = Attempt.of(tag)
                verdict = self._settle(other)
                if verdict == "duplicate":
                    continue
                if verdict == "wait" and (other.writer, other.number) < (
                    attempt.writer,
                    attempt.number,
                ):
                    raise _Yield  # an older batch holds it: give ours up (wait-die)
                for event in held_events:
                    if verdict == "stale":
                        stale[event.event_id] = tag
                    else:
                        stale.pop(event.event_id, None)
                again += held_events
                waiting = waiting or verdict == "wait"
            todo = again
            if waiting:
                rounds += 1
                if rounds % 25 == 0:
                    self.heard(attempt.writer)
                time.sleep(WAIT)
        return [event for event in first.values() if event.event_id in mine]

    def _claim_chunk(
        self, attempt: Attempt, events: Sequence[Event], stale: dict[str, str]
    ) -> list[str | None]:
        """Put these events in one transaction, each if absent, this attempt's, or a
        stale claim's: for each, None if put, else the attempt that holds it ("" if it
        was deleted meanwhile). Those whose condition fails are left out and the rest
        put again."""
        found: list[str | None] = [None] * len(events)
        failed = self.table.transact_each(
            [self._claim_action(attempt, event, stale) for event in events]
        )
        items = self.table.get_many([event_key(events[i].event_id) for i in failed])
        for i in failed:
            item = items.get(event_key(events[i].event_id))
            found[i] = str(item.get("b", "")) if item is not None else ""
        return found

    def _claim_action(
        self, attempt: Attempt, event: Event, stale: dict[str, str]
    ) -> dict[str, Any]:
        old = stale.get(event.event_id)
        values = {":me": wire(attempt.tag)} | ({":old": wire(old)} if old else {})
        return {
            "Put": {
                "Item": wire_item(event_item(event) | {"b": attempt.tag}),
                "ConditionExpression": "attribute_not_exists(p) OR b = :me"
                + (" OR b = :old" if old else ""),
                "ExpressionAttributeValues": values,
            }
        }

    def _settle(self, holder: Attempt) -> str:
        """What a claim by another attempt means for an event: "duplicate" (its batch is
        stored), "stale" (that attempt will never store it: take it over) or "wait"."""
        record = self.table.get(*record_key(holder.writer, holder.number))
        if record is None:
            return "duplicate"  # trimmed, which only done records are
        if record["b_try"] != holder.attempt or record["b_state"] == "aborted":
            return "stale"
        if record["b_state"] == "done":
            return "duplicate"
        if self._alive(holder.writer):
            return "wait"
        try:
            if record["b_state"] == "pending":
                self._abort(holder)
                return "stale"
            self._finish(holder)
            return "duplicate"
        except Conflict:
            return "wait"  # it moved meanwhile: look again

    def _alive(self, writer: str) -> bool:
        item = self.table.get(*writer_key(writer))
        return item is not None and item["w_until"] + GRACE > self.clock()

    def _abort(self, holder: Attempt) -> None:
        """Abort a dead writer's pending attempt, and delete what it claimed."""
        p, s = record_key(holder.writer, holder.number)
        self.table.update(
            p,
            s,
            "SET b_state = :aborted",
            "b_state = :pending AND b_try = :a",
            aborted="aborted",
            pending="pending",
            a=holder.attempt,
        )
        ids = json.loads(self._read_chunks(holder, "ids") or "[]")

        def release(event_id: str) -> None:
            with contextlib.suppress(Conflict):  # not its claim
                self.table.delete(*event_key(event_id), "b = :them", them=holder.tag)

        list(self._pool.map(release, ids))

    # 3. Plan ---------------------------------------------------------------------------

    def _plan(self, attempt: Attempt, plan: dict[str, Any]) -> bool:
        """Write the plan and move to applying; False: the attempt was aborted."""
        self._put_chunks(attempt, "plan", json.dumps(plan, ensure_ascii=False))
        p, s = record_key(attempt.writer, attempt.number)
        try:
            self.table.update(
                p,
                s,
                "SET b_state = :applying,"
                " b_stored = :stored, b_dups = :dups, b_rejected = :rejected",
                "b_state = :pending AND b_try = :a",
                applying="applying",
                pending="pending",
                a=attempt.attempt,
                stored=plan["stored"],
                dups=plan["duplicates"],
                rejected=plan["rejected"],
            )
        except Conflict:
            return False
        return True

    # 4. Apply, 5. Commit ---------------------------------------------------------------

    def _finish(self, attempt: Attempt) -> None:
        """Finish an applying attempt from its plan (its writer is dead, or was us)."""
        text = self._read_chunks(attempt, "plan")
        if text is None:
            raise StoreError(f"batch {attempt.tag} is applying but its plan is missing")
        plan = json.loads(text)
        self._apply(attempt, plan, self._claimed(attempt))
        self._commit(attempt, plan)

    def _claimed(self, attempt: Attempt) -> list[Event]:
        """The events an attempt claimed (read back, to finish it for a dead writer)."""
        ids = json.loads(self._read_chunks(attempt, "ids") or "[]")
        items = self.table.get_many([event_key(event_id) for event_id in ids])
        return [
            event_of(item)
            for event_id in ids
            if (item := items.get(event_key(event_id))) is not None and item["b"] == attempt.tag
        ]

    def _apply(self, attempt: Attempt, plan: dict[str, Any], new: Sequence[Event]) -> None:
        self._expire(plan.get("retention"))  # as its writer would (this may finish another's)
        mark = f"h:{attempt.writer}"

        def add(count: list[Any]) -> dict[str, Any]:
            p, s, adds, sets = count
            names = {"#h": mark} | {f"#a{i}": name for i, name in enumerate(adds)}
            names |= {f"#s{i}": name for i, name in enumerate(sets)}
            values = {f":a{i}": wire(n) for i, n in enumerate(adds.values())}
            values |= {f":s{i}": wire(v) for i, v in enumerate(sets.values())}
            expression = "ADD " + ", ".join(f"#a{i} :a{i}" for i in range(len(adds)))
            expression += " SET #h = :number" + "".join(
                f", #s{i} = :s{i}" for i in range(len(sets))
            )
            return {
                "Update": {
                    "Key": key(p, s),
                    "UpdateExpression": expression,
                    "ConditionExpression": "attribute_not_exists(#h) OR #h < :number",
                    "ExpressionAttributeNames": names,
                    "ExpressionAttributeValues": values | {":number": wire(attempt.number)},
                }
            }

        def extreme(operator: str, setting: list[Any]) -> None:
            """Set a newest (operator "<") or oldest (">") value only if it goes further:
            a maximum or a minimum, the same when done twice."""
            p, s, name, value = setting
            with contextlib.suppress(Conflict):  # as far already
                self.table.update(
                    p,
                    s,
                    "SET #v = :v",
                    f"attribute_not_exists(#v) OR #v {operator} :v",
                    names={"#v": name},
                    v=value,
                )

        counts = [add(count) for count in plan["counts"]]
        chunks = [counts[i : i + COUNTS] for i in range(0, len(counts), COUNTS)]
        # Those already added (before a crash) fail their condition and are left out.
        list(self._pool.map(self.table.transact_each, chunks))
        list(self._pool.map(functools.partial(extreme, "<"), plan["newest"]))
        list(self._pool.map(functools.partial(extreme, ">"), plan["oldest"]))
        self._put_all(plan["letters"] + [time_item(event) for event in new])
        see_users(self.table, self._pool, plan["last_seen"], plan["user_days"])
        add_movie_users(self.table, self._pool, plan["movie_users"])

    def _commit(self, attempt: Attempt, plan: dict[str, Any]) -> None:
        p, s = record_key(attempt.writer, attempt.number)
        actions: list[dict[str, Any]] = [
            {
                "Update": {
                    "Key": {"p": {"S": p}, "s": {"S": s}},
                    "UpdateExpression": "SET b_state = :done, x = :expires",
                    "ConditionExpression": "b_state = :applying AND b_try = :a",
                    "ExpressionAttributeValues": {
                        ":done": {"S": "done"},
                        ":applying": {"S": "applying"},
                        ":a": {"N": str(attempt.attempt)},
                        ":expires": {"N": str(int(self.clock() + DONE_KEPT_SECONDS))},
                    },
                }
            }
        ]
        actions += [{"Put": {"Item": item}} for item in commit_items(plan)]
        try:
            self.table.transact(actions)
        except Cancelled:
            record = self.table.get(p, s)
            if record is None or record["b_state"] != "done":
                raise StoreError(f"batch {attempt.tag} could not be committed") from None

    def _put_all(self, items: Sequence[dict[str, Any]]) -> None:
        """Put items of keys of their own (the same when put twice), calls at once."""
        chunks = [items[i : i + PUTS] for i in range(0, len(items), PUTS)]
        list(self._pool.map(self.table.put_many, chunks))

    # Records ---------------------------------------------------------------------------

    def _put_chunks(self, attempt: Attempt, kind: str, text: str) -> None:
        p, s = record_key(attempt.writer, attempt.number)
        pieces = [text[i : i + CHUNK] for i in range(0, len(text), CHUNK)] or [""]
        self.table.put_many(
            [
                {"p": p, "s": f"{s}#{kind}#{attempt.attempt}#{k:04d}", "d": piece}
                for k, piece in enumerate(pieces)
            ]
        )

    def _read_chunks(self, attempt: Attempt, kind: str) -> str | None:
        p, s = record_key(attempt.writer, attempt.number)
        items = list(self.table.query(p, prefix=f"{s}#{kind}#{attempt.attempt}#"))
        return "".join(item["d"] for item in items) if items else None

    def _trim(self, mark: BatchMark, once: bool) -> None:
        """Delete the records older than the writer's kept ones (all, for a one-off)."""
        if once:
            self.forget(mark.writer)
            return
        old = mark.number - BATCH_MARKS_KEPT
        if old >= 1:
            p, s = record_key(mark.writer, old)
            for item in list(self.table.query(p, prefix=s)):
                self.table.delete(item["p"], item["s"])

    def forget(self, writer: str) -> None:
        """Drop a writer's records (it closed: none of its batches comes again), and its
        mark in the counters, whose items are kept forever: other items are a minute's,
        a day's or a period's, and carry the marks of that time's writers only."""
        p, _ = record_key(writer, 0)
        for item in list(self.table.query(p)):
            self.table.delete(item["p"], item["s"])
        for item in list(self.table.query(COUNTERS)):
            self.table.update(item["p"], item["s"], "REMOVE #h", names={"#h": f"h:{writer}"})
        self.table.delete(*writer_key(writer))
        self.table.delete(WRITERS, writer)
        self._listed.discard(writer)
