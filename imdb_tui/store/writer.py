"""Where batches are written: the store on a thread, or on a process of its own.

The store chooses (see Store.writer); any backend can use either.

Producing, validating and counting events need Python's GIL, and so does binding
a batch's values to SQLite's statements. On one interpreter the event loop and
the writer take turns; on a file database the writes go to a child process with
an interpreter of its own, and both run at once (about 1.4x the events a second
on two cores). An in-memory database cannot be shared between processes, so it
is written on a thread.

Either writer takes the same requests (plain values, so that they can cross a
pipe), carries them out with the same `_handle`, in order, and answers each with
the same small results; several writes may be in flight.

Nothing is lost or doubled whatever dies, whenever:

- Each batch goes with a BatchMark (this writer's id, its number, the number before
  it), stored in its transaction. The store refuses a batch whose predecessor is not
  stored (OutOfOrder) and answers a batch it already has with what it did then
  (AlreadyStored), so positions never run ahead of an unstored batch, and a batch
  sent twice is stored once and counted once.
- A child that dies (killed, out of memory, a crash) is replaced at once by the
  thread that reads its answers, and every request it had not answered is sent to
  the new one, in order: one that it did commit comes back as already stored. Only
  after RESTARTS deaths in a row with no answer between do the waiting writes fail,
  with a StoreError saying how the child died.
- A child whose parent dies exits at once (a thread waits on the parent), so the
  next run, reading the stored positions, does not race a batch still being written.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import marshal
import multiprocessing
import os
import signal
import sys
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import astuple, dataclass, fields
from datetime import tzinfo
from itertools import repeat
from multiprocessing.connection import Connection
from typing import Any, Final

from imdb_tui.aggregates import Aggregates, Aggregator
from imdb_tui.catalog import Movie
from imdb_tui.events import FIELDS, Event, Rejection
from imdb_tui.health import PipelineHealth
from imdb_tui.store import (
    AlreadyStored,
    BatchMark,
    OutOfOrder,
    SourcePosition,
    Store,
    StoreError,
    Written,
    marks,
)

__all__ = ["ProcessWriter", "RequestWriter", "ThreadWriter"]

log = logging.getLogger(__name__)

LAG_SAMPLES: Final = 256
RESTARTS: Final = 3
"""Writer children that may die in a row, with nothing answered between, before the
writes waiting on them fail."""
FAULT: Final = "IMDB_TUI_WRITER_FAULT"
"""For tests: `WHO:STEP@BATCH[+term]` makes the first writer child kill itself
(WHO=child), its parent (parent) or both with SIGKILL at STEP (received, committing,
committed, or a step of the store's own: see marks.before_step) of batch number
BATCH; see `_Fault`."""


_new_event = tuple.__new__


_AGGREGATES: Final = tuple(f.name for f in fields(Aggregates))
"""Aggregates' fields in order: a batch's aggregates cross to the writer as a tuple."""

# The requests a writer carries out, as plain values: a child gets them through a
# pipe as marshal data (flat lists of str, int and None: the cheapest encoding).


@dataclass(frozen=True, slots=True)
class WriteBatch:
    writer: str
    number: int
    after: int | None
    events: list[str | int | None]
    """Every event's fields, one after another (FIELDS of each)."""
    rejections: list[tuple[str, str, int]]
    received_at: str
    aggregates: tuple[object, ...]
    """Aggregates' fields, in order (its counts: who had events is added by the writer)."""
    positions: list[tuple[str, str]]
    health: tuple[object, ...] | None
    max_bytes: int | None
    retention: float | None


@dataclass(frozen=True, slots=True)
class PutHealth:
    health: tuple[object, ...]


@dataclass(frozen=True, slots=True)
class Forget:
    writer: str


@dataclass(frozen=True, slots=True)
class Prune:
    before: str
    limit: int


@dataclass(frozen=True, slots=True)
class HoldSize:
    limit: int


@dataclass(frozen=True, slots=True)
class SizeBytes:
    pass


@dataclass(frozen=True, slots=True)
class PruneAggregates:
    before: str


@dataclass(frozen=True, slots=True)
class SaveMovies:
    movies: list[tuple[str, str, int | None, tuple[str, ...]]]


@dataclass(frozen=True, slots=True)
class Stop:
    """The child stops once it has answered every request before this one."""


Request = (
    WriteBatch | PutHealth | Forget | Prune | HoldSize | SizeBytes | PruneAggregates | SaveMovies
)
Answer = tuple[int, int, int, list[str], bool] | int | None
"""A write's (stored, duplicates, rejected, sampled event times, stored before), a
count, or nothing."""
Outcome = tuple[str, Answer | str]
"""("ok", answer), or ("error" | "order", what went wrong): what a child sends back."""
_KINDS: Final = (
    WriteBatch,
    PutHealth,
    Forget,
    Prune,
    HoldSize,
    SizeBytes,
    PruneAggregates,
    SaveMovies,
    Stop,
)


def _encode(request: Request | Stop) -> bytes:
    """A request as marshal data: its kind's number, then its fields (not copied)."""
    values = [getattr(request, f.name) for f in fields(request)]
    return marshal.dumps((_KINDS.index(type(request)), *values))


def _decode(payload: bytes) -> Request | Stop:
    kind, *values = marshal.loads(payload)
    request: Request | Stop = _KINDS[kind](*values)
    return request


class RequestWriter:
    """A Writer (see store.Writer) whose writes go as requests of plain values (see
    `_handle`), the same for either kind."""

    def __init__(self) -> None:
        self.id = uuid.uuid4().hex
        """This writer's name in the batch marks: one a run."""
        self.restarts = 0
        """Writer children started again after one died."""

    async def _call(self, request: Request) -> Answer:
        raise NotImplementedError

    async def write(
        self,
        number: int,
        after: int | None,
        events: Sequence[Event],
        rejections: Sequence[Rejection],
        received_at: str,
        aggregates: Aggregates,
        positions: Sequence[SourcePosition] = (),
        health: PipelineHealth | None = None,
        max_bytes: int | None = None,
        retention: float | None = None,
    ) -> Written:
        """Write (or write again) batch `number`, which is stored only once batch
        `after` is (None: it is the first); `max_bytes` and `retention`: see
        BatchWriter.write_batch."""
        answer = await self._call(
            WriteBatch(
                self.id,
                number,
                after,
                list(itertools.chain.from_iterable(events)),
                [(r.reason, r.raw, r.raw_size) for r in rejections],
                received_at,
                tuple(getattr(aggregates, name) for name in _AGGREGATES),
                [(p.source, p.position) for p in positions],
                None if health is None else astuple(health),
                max_bytes,
                retention,
            )
        )
        assert isinstance(answer, tuple)
        return Written(*answer)

    async def put_health(self, health: PipelineHealth) -> None:
        await self._call(PutHealth(astuple(health)))

    async def prune(self, before: str, limit: int) -> int:
        return _count(await self._call(Prune(before, limit)))

    async def hold_size(self, limit: int) -> int:
        return _count(await self._call(HoldSize(limit)))

    async def size_bytes(self) -> int:
        return _count(await self._call(SizeBytes()))

    async def prune_aggregates(self, before: str) -> None:
        await self._call(PruneAggregates(before))

    async def save_movies(self, movies: Sequence[Movie]) -> None:
        await self._call(SaveMovies([(m.movie_id, m.title, m.year, m.genres) for m in movies]))

    async def forget(self) -> None:
        """Drop this writer's batch marks: called once its last batch is answered."""
        with contextlib.suppress(StoreError):  # a killed run's marks go with retention
            await self._call(Forget(self.id))

    async def close(self) -> None:
        raise NotImplementedError


class ThreadWriter(RequestWriter):
    """The store written on one thread of this process."""

    def __init__(
        self, store: Store, tz: tzinfo | None, thread: ThreadPoolExecutor | None = None
    ) -> None:
        super().__init__()
        self._store = store
        self._aggregate = Aggregator(tz)
        self._owns_thread = thread is None
        self._thread = thread or ThreadPoolExecutor(1, thread_name_prefix="imdb-tui-writer")

    async def _call(self, request: Request) -> Answer:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._thread, _handle, self._store, self._aggregate, request
        )

    async def close(self) -> None:
        await self.forget()
        if self._owns_thread:
            self._thread.shutdown(wait=True)


class ProcessWriter(RequestWriter):
    """The store written by a child process, fed batches through a pipe.

    Requests are sent in order by one thread and answered in order; each child has a
    thread reading its answers, which settles the oldest waiting future and, when the
    child dies, starts the next one and sends it what is still unanswered. Batches go
    as marshal data (see _encode).
    """

    def __init__(self, opener: Callable[[], Store], tz: tzinfo | None) -> None:
        """`opener` opens the store in the child: it must pickle (functools.partial)."""
        super().__init__()
        self._opener = opener
        self._tz = tz
        self._sender = ThreadPoolExecutor(1, thread_name_prefix="imdb-tui-send")
        # Unanswered requests, oldest first: sent again, in order, to a new child.
        self._waiting: deque[_Waiting] = deque()
        self._lock = threading.Lock()  # guards the child and `_waiting`
        self._child: _Child | None = None
        self._deaths = 0  # children died in a row, with nothing answered between
        self._started = 0  # children started

    async def _call(self, request: Request) -> Answer:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Answer] = loop.create_future()
        payload = _encode(request)
        with self._lock:
            if self._child is None:
                self._child = self._start()
            self._waiting.append((loop, future, payload))
            self._sender.submit(self._child.send, payload)  # in order: one sending thread
        return await future

    def _start(self) -> _Child:
        """A new child (the lock held)."""
        self._started += 1
        fault = os.environ.get(FAULT) if self._started == 1 else None
        return _Child(self._opener, self._tz, self._answered, self._died, fault)

    def _answered(self, answer: Outcome) -> None:
        """On the reader thread: settle the oldest request."""
        with self._lock:
            self._deaths = 0
            if not self._waiting:  # pragma: no cover - an answer nothing asked for
                return
            loop, future, _ = self._waiting.popleft()
        with contextlib.suppress(RuntimeError):  # the loop is already closed
            loop.call_soon_threadsafe(_settle, future, answer)

    def _died(self, child: _Child) -> None:
        """On the dead child's reader thread, once every answer it sent is read."""
        how = child.reap()
        failed: list[_Waiting] = []
        with self._lock:
            # Its pipe is closed by the sending thread, after any send to it under way:
            # closed here, its descriptor could be reused by the next child's pipe while
            # a send still wrote to it, and that child would read half a message.
            with contextlib.suppress(RuntimeError):  # the sender is shut: closed already
                self._sender.submit(child.close)
            if self._child is not child:  # closed, or replaced already
                return
            self._child = None
            if not self._waiting:
                return  # the next request starts a new child
            self._deaths += 1
            if self._deaths > RESTARTS:
                failed = list(self._waiting)
                self._waiting.clear()
                self._deaths = 0
            else:
                self._child = new = self._start()
                self.restarts += 1
                for _, _, payload in self._waiting:
                    self._sender.submit(new.send, payload)
                unanswered = len(self._waiting)
        if not failed:
            log.warning(
                "the writer process %s; a new one takes the %d writes it had not answered",
                how,
                unanswered,
            )
            return
        message = f"the writer process {how}, {RESTARTS + 1} times in a row"
        log.error("%s", message)
        for loop, future, _ in failed:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, future, ("error", message))

    async def close(self) -> None:
        """Stop the child once it has answered everything sent before."""
        await self.forget()
        with self._lock:
            child, self._child = self._child, None
        loop = asyncio.get_running_loop()
        if child is not None:
            await loop.run_in_executor(self._sender, child.stop)
        self._sender.shutdown(wait=True)


_Waiting = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Answer]", bytes]
"""A request sent to a child and not answered yet: its loop, its future, its payload."""


def _settle(future: asyncio.Future[Answer], outcome: Outcome) -> None:
    if future.done():
        return
    kind, answer = outcome
    if kind == "ok":
        assert not isinstance(answer, str)
        future.set_result(answer)
    else:
        failure = OutOfOrder if kind == "order" else StoreError
        future.set_exception(failure(str(answer)))


class _Child:
    """One writer process, its pipe and the thread reading its answers."""

    def __init__(
        self,
        opener: Callable[[], Store],
        tz: tzinfo | None,
        answered: Callable[[Outcome], None],
        died: Callable[[_Child], None],
        fault: str | None,
    ) -> None:
        context = multiprocessing.get_context("spawn")  # fork is unsafe with threads
        self._connection, theirs = context.Pipe()
        self._process = context.Process(
            target=_serve,
            args=(theirs, opener, tz, fault),
            name="imdb-tui-writer",
            daemon=True,
        )
        with _interrupts_ignored(), _stderr_with_descriptor():
            self._process.start()
        theirs.close()
        self._answered = answered
        self._died = died
        self._reader = threading.Thread(target=self._read, name="imdb-tui-answers", daemon=True)
        self._reader.start()

    def send(self, payload: bytes) -> None:
        with contextlib.suppress(OSError):  # it died: its reader thread starts the next
            self._connection.send_bytes(payload)

    def _read(self) -> None:
        while True:
            try:
                answer = marshal.loads(self._connection.recv_bytes())
            except (EOFError, OSError):
                self._died(self)
                return
            self._answered(answer)

    def reap(self) -> str:
        """Wait for the dead child and say how it ended (its pipe stays open: see close)."""
        self._process.join(timeout=10)
        code = self._process.exitcode
        if code is None:  # pragma: no cover - it closed its pipe and lives on
            self._process.kill()
            self._process.join()
            return "stopped answering"
        if code < 0:
            with contextlib.suppress(ValueError):
                return f"was killed by {signal.Signals(-code).name}"
            return f"was killed by signal {-code}"
        return f"exited with status {code}"

    def close(self) -> None:
        """Close its end of the pipe (on the sending thread, after every send to it)."""
        self._connection.close()

    def stop(self) -> None:
        self.send(_encode(Stop()))
        self._process.join(timeout=30)
        if self._process.is_alive():  # pragma: no cover - a stuck child
            self._process.kill()
            self._process.join()
        self._reader.join(timeout=5)
        self._connection.close()


@contextlib.contextmanager
def _interrupts_ignored() -> Any:
    """SIGINT ignored while a child starts, so it inherits that (main thread only):
    Ctrl-C reaches the whole process group; the parent drains, then stops the child."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def _stderr_with_descriptor() -> Any:
    """The real stderr while a child starts. Hosts such as Textual replace sys.stderr
    by an object whose fileno() is -1, and multiprocessing hands sys.stderr's
    descriptor to its resource tracker ("bad value(s) in fds_to_keep")."""
    replaced = sys.stderr
    try:
        usable = replaced is not None and replaced.fileno() >= 0
    except (AttributeError, OSError, ValueError):
        usable = False
    if usable or sys.__stderr__ is None:
        yield
        return
    sys.stderr = sys.__stderr__
    try:
        yield
    finally:
        sys.stderr = replaced


def _serve(
    connection: Connection, opener: Callable[[], Store], tz: tzinfo | None, fault: str | None
) -> None:
    """The child's loop: answer each request in order until told to stop."""
    # A group of its own: Ctrl-C and a closed terminal reach the parent, which drains
    # and then stops it (one that dies before this line is started again).
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _exit_with_parent()
    store: Store | None = None
    aggregate = Aggregator(tz)
    hurt = _Fault(fault)
    if hurt.step not in ("received", "committed"):  # a step inside the store's write
        marks.before_step = lambda step, mark: hurt.at(step, mark.number)
    while True:
        try:
            request = _decode(connection.recv_bytes())
        except (EOFError, OSError):  # the parent is gone
            break
        if isinstance(request, Stop):
            break
        number = request.number if isinstance(request, WriteBatch) else None
        try:
            if store is None:
                store = opener()
            hurt.at("received", number)
            answer: Outcome = ("ok", _handle(store, aggregate, request))
            hurt.at("committed", number)
        except OutOfOrder as error:
            answer = ("order", str(error))
        except StoreError as error:
            answer = ("error", str(error))
        except Exception as error:  # a bug: say it, and keep serving
            answer = ("error", f"writer failed: {error!r}")
        try:
            connection.send_bytes(marshal.dumps(answer))
        except OSError:  # the parent is gone; what was committed stays
            break
    if store is not None:
        store.close()


def _exit_with_parent() -> None:
    """Exit at once when the parent process dies (a transaction under way is rolled
    back), so that a run started next never races a batch of the dead one."""
    parent = multiprocessing.parent_process()
    if parent is None:  # pragma: no cover - always a spawned child
        return

    def wait() -> None:
        parent.join()
        os._exit(1)

    threading.Thread(target=wait, name="imdb-tui-parent", daemon=True).start()


class _Fault:
    """A test hook (FAULT): stop at a chosen step of a chosen batch, as a crash would."""

    def __init__(self, spec: str | None) -> None:
        """`spec`: WHO:STEP@BATCH, and `+term` to send the parent SIGTERM first (a stop
        arriving while the next child starts)."""
        self.who = self.step = ""
        self.batch = -1
        self.term = False
        if spec:
            spec, _, term = spec.partition("+")
            who_step, _, batch = spec.partition("@")
            self.who, _, self.step = who_step.partition(":")
            self.batch = int(batch)
            self.term = term == "term"

    def at(self, step: str, batch: int | None) -> None:
        """At `step` of a request (`batch`: a write's number, None for another)."""
        if step != self.step or batch != self.batch:
            return
        if self.term:
            os.kill(os.getppid(), signal.SIGTERM)
        if self.who in ("parent", "both"):
            os.kill(os.getppid(), signal.SIGKILL)
        if self.who in ("child", "both"):
            os.kill(os.getpid(), signal.SIGKILL)


def _handle(store: Store, aggregate: Aggregator, request: Request) -> Answer:
    """Carry out one request (on the writer's thread or in the child) and answer it."""
    if isinstance(request, WriteBatch):
        events = list(map(_new_event, repeat(Event), _rows(request.events, len(FIELDS))))
        mark = BatchMark(request.writer, request.number, request.after)
        counts = Aggregates(*request.aggregates)  # type: ignore[arg-type]  # its own fields
        try:
            stored = store.write_batch(
                events,
                [Rejection(*r) for r in request.rejections],
                request.received_at,
                aggregate,
                aggregate.who(counts, events),  # the counts came; who is added here
                [SourcePosition(*p) for p in request.positions],
                None if request.health is None else PipelineHealth(*request.health),  # type: ignore[arg-type]
                mark,
                request.max_bytes,
                request.retention,
            )
        except AlreadyStored as done:
            return (done.stored, done.duplicates, done.rejected, [], True)
        step = max(1, len(stored) // LAG_SAMPLES)
        return (
            len(stored),
            len(events) - len(stored),
            len(request.rejections),
            [event.event_time for event in stored[::step]],
            False,
        )
    if isinstance(request, PutHealth):
        store.put_health(PipelineHealth(*request.health))  # type: ignore[arg-type]
    elif isinstance(request, Forget):
        store.forget_writer(request.writer)
    elif isinstance(request, Prune):
        return store.prune(request.before, request.limit)
    elif isinstance(request, HoldSize):
        return store.hold_size(request.limit)
    elif isinstance(request, SizeBytes):
        return store.size_bytes()
    elif isinstance(request, PruneAggregates):
        store.prune_aggregates(request.before)
    else:
        store.save_movies([Movie(*fields) for fields in request.movies])
    return None


def _count(answer: Answer) -> int:
    assert isinstance(answer, int)
    return answer


def _rows(flat: Sequence[object], width: int) -> Iterable[tuple[object, ...]]:
    """A flat list back in rows of `width`."""
    return zip(*[iter(flat)] * width, strict=True)
