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
from dataclasses import astuple, fields
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
committed) of batch number BATCH; see `_Fault`."""


_new_event = tuple.__new__


_AGGREGATES: Final = tuple(f.name for f in fields(Aggregates))
"""Aggregates' fields in order: a batch's aggregates cross to the writer as a tuple."""


class RequestWriter:
    """A Writer (see store.Writer) whose writes go as requests of plain values (see
    `_handle`), the same for either kind."""

    def __init__(self) -> None:
        self.id = uuid.uuid4().hex
        """This writer's name in the batch marks: one a run."""
        self.restarts = 0
        """Writer children started again after one died."""

    async def _call(self, *request: Any) -> Any:
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
    ) -> Written:
        """Write (or write again) batch `number`, which is stored only once batch
        `after` is (None: it is the first); `max_bytes`: see BatchWriter.write_batch."""
        flat = list(itertools.chain.from_iterable(events))
        stored, duplicates, rejected, sample, again = await self._call(
            "write",
            self.id,
            number,
            after,
            flat,
            [(r.reason, r.raw, r.raw_size) for r in rejections],
            received_at,
            tuple(getattr(aggregates, name) for name in _AGGREGATES),
            [(p.source, p.position) for p in positions],
            None if health is None else astuple(health),
            max_bytes,
        )
        return Written(stored, duplicates, rejected, sample, again)

    async def put_health(self, health: PipelineHealth) -> None:
        await self._call("health", astuple(health))

    async def prune(self, before: str, limit: int) -> int:
        deleted: int = await self._call("prune", before, limit)
        return deleted

    async def hold_size(self, limit: int) -> int:
        deleted: int = await self._call("hold_size", limit)
        return deleted

    async def size_bytes(self) -> int:
        size: int = await self._call("size_bytes")
        return size

    async def prune_aggregates(self, before: str) -> None:
        await self._call("prune_aggregates", before)

    async def save_movies(self, movies: Sequence[Movie]) -> None:
        await self._call("save_movies", [(m.movie_id, m.title, m.year, m.genres) for m in movies])

    async def forget(self) -> None:
        """Drop this writer's batch marks: called once its last batch is answered."""
        with contextlib.suppress(StoreError):  # a killed run's marks go with retention
            await self._call("forget", self.id)

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

    async def _call(self, *request: Any) -> Any:
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
    as marshal data (flat lists of str, int and None): the cheapest encoding there is.
    """

    def __init__(self, opener: Callable[[], Store], tz: tzinfo | None) -> None:
        """`opener` opens the store in the child: it must pickle (functools.partial)."""
        super().__init__()
        self._opener = opener
        self._tz = tz
        self._sender = ThreadPoolExecutor(1, thread_name_prefix="imdb-tui-send")
        # Unanswered requests, oldest first: sent again, in order, to a new child.
        self._waiting: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[Any], bytes]] = deque()
        self._lock = threading.Lock()  # guards the child and `_waiting`
        self._child: _Child | None = None
        self._deaths = 0  # children died in a row, with nothing answered between
        self._started = 0  # children started

    async def _call(self, *request: Any) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        payload = marshal.dumps(request)
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

    def _answered(self, answer: tuple[str, Any]) -> None:
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
        failed: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[Any], bytes]] = []
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


def _settle(future: asyncio.Future[Any], outcome: tuple[str, Any]) -> None:
    if future.done():
        return
    if outcome[0] == "error":
        future.set_exception(StoreError(outcome[1]))
    elif outcome[0] == "order":
        future.set_exception(OutOfOrder(outcome[1]))
    else:
        future.set_result(outcome[1])


class _Child:
    """One writer process, its pipe and the thread reading its answers."""

    def __init__(
        self,
        opener: Callable[[], Store],
        tz: tzinfo | None,
        answered: Callable[[tuple[str, Any]], None],
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
        self.send(marshal.dumps(("stop",)))
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
    if hurt.step == "committing":
        marks.before_commit = lambda mark: hurt.at("committing", ("write", "", mark.number))
    while True:
        try:
            request = marshal.loads(connection.recv_bytes())
        except (EOFError, OSError):  # the parent is gone
            break
        if request[0] == "stop":
            break
        try:
            if store is None:
                store = opener()
            hurt.at("received", request)
            answer: tuple[str, Any] = ("ok", _handle(store, aggregate, request))
            hurt.at("committed", request)
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

    def at(self, step: str, request: tuple[Any, ...]) -> None:
        if step != self.step or request[0] != "write" or request[2] != self.batch:
            return
        if self.term:
            os.kill(os.getppid(), signal.SIGTERM)
        if self.who in ("parent", "both"):
            os.kill(os.getppid(), signal.SIGKILL)
        if self.who in ("child", "both"):
            os.kill(os.getpid(), signal.SIGKILL)


def _handle(store: Store, aggregate: Aggregator, request: tuple[Any, ...]) -> Any:
    """Carry out one request (on the writer's thread or in the child) and answer it."""
    kind, *args = request
    if kind == "write":
        (
            writer,
            number,
            after,
            flat,
            rejections,
            received_at,
            aggregates,
            positions,
            health,
            max_bytes,
        ) = args
        events = list(map(_new_event, repeat(Event), _rows(flat, len(FIELDS))))
        mark = BatchMark(writer, number, after)
        try:
            stored = store.write_batch(
                events,
                [Rejection(*r) for r in rejections],
                received_at,
                aggregate,
                aggregate.who(Aggregates(*aggregates), events),  # counts came; who is added here
                [SourcePosition(*p) for p in positions],
                None if health is None else PipelineHealth(*health),
                mark,
                max_bytes,
            )
        except AlreadyStored as done:
            return (done.stored, done.duplicates, done.rejected, [], True)
        step = max(1, len(stored) // LAG_SAMPLES)
        return (
            len(stored),
            len(events) - len(stored),
            len(rejections),
            [event.event_time for event in stored[::step]],
            False,
        )
    if kind == "health":
        store.put_health(PipelineHealth(*args[0]))
        return None
    if kind == "forget":
        store.forget_writer(args[0])
        return None
    if kind == "prune":
        return store.prune(*args)
    if kind == "hold_size":
        return store.hold_size(*args)
    if kind == "size_bytes":
        return store.size_bytes()
    if kind == "prune_aggregates":
        store.prune_aggregates(*args)
        return None
    if kind == "save_movies":
        store.save_movies([Movie(*fields) for fields in args[0]])
        return None
    raise ValueError(f"unknown request {kind!r}")


def _rows(flat: list[object], width: int) -> Iterable[tuple[object, ...]]:
    """A flat list back in rows of `width`."""
    return zip(*[iter(flat)] * width, strict=True)
