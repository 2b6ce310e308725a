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
the same small results; several writes may be in flight. Each write names the
write before it: one that fails makes the writer refuse the later ones until it
is written again, so a batch (and the source positions it carries) is never
stored ahead of an earlier one.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import marshal
import multiprocessing
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import astuple, dataclass, fields
from datetime import tzinfo
from itertools import repeat
from multiprocessing.connection import Connection
from typing import Any, Final

from imdb_tui.catalog import Movie
from imdb_tui.events import FIELDS, Event, Rejection
from imdb_tui.health import PipelineHealth
from imdb_tui.metrics import Aggregator
from imdb_tui.store import Aggregates, SourcePosition, Store, StoreError

LAG_SAMPLES: Final = 256


class OutOfOrder(StoreError):
    """A batch refused because the one before it is not stored yet: write that first."""


_new_event = tuple.__new__


@dataclass(frozen=True, slots=True)
class Written:
    """What one batch write did."""

    stored: int
    duplicates: int
    rejected: int
    sample_times: list[str]
    """event_time of up to LAG_SAMPLES of the stored events, for the lag figures"""


_AGGREGATES: Final = tuple(f.name for f in fields(Aggregates))
"""Aggregates' fields in order: a batch's aggregates cross to the writer as a tuple."""


class Writer:
    """Writes go as requests of plain values (see `_handle`), the same for either writer."""

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
    ) -> Written:
        """Write (or write again) batch `number`, which is stored only once batch
        `after` is (None: it is the first)."""
        flat = list(itertools.chain.from_iterable(events))
        stored, duplicates, rejected, sample = await self._call(
            "write",
            number,
            after,
            flat,
            [(r.reason, r.raw, r.raw_size) for r in rejections],
            received_at,
            tuple(getattr(aggregates, name) for name in _AGGREGATES),
            [(p.source, p.position) for p in positions],
            None if health is None else astuple(health),
        )
        return Written(stored, duplicates, rejected, sample)

    async def put_health(self, health: PipelineHealth) -> None:
        await self._call("health", astuple(health))

    async def prune(self, before: str, limit: int) -> int:
        deleted: int = await self._call("prune", before, limit)
        return deleted

    async def prune_oldest(self, limit: int) -> int:
        deleted: int = await self._call("prune_oldest", limit)
        return deleted

    async def size_bytes(self) -> int:
        size: int = await self._call("size_bytes")
        return size

    async def prune_aggregates(self, before: str) -> None:
        await self._call("prune_aggregates", before)

    async def save_movies(self, movies: Sequence[Movie]) -> None:
        await self._call("save_movies", [(m.movie_id, m.title, m.year, m.genres) for m in movies])

    async def close(self) -> None:
        raise NotImplementedError


class ThreadWriter(Writer):
    """The store written on one thread of this process."""

    def __init__(
        self, store: Store, tz: tzinfo | None, thread: ThreadPoolExecutor | None = None
    ) -> None:
        self._store = store
        self._aggregate = Aggregator(tz)
        self._order = _Order()
        self._owns_thread = thread is None
        self._thread = thread or ThreadPoolExecutor(1, thread_name_prefix="imdb-tui-writer")

    async def _call(self, *request: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._thread, _handle, self._store, self._aggregate, self._order, request
        )

    async def close(self) -> None:
        if self._owns_thread:
            self._thread.shutdown(wait=True)


class ProcessWriter(Writer):
    """The store written by a child process, fed batches through a pipe.

    Requests are sent in order by one thread and answered in order; a second
    thread reads the answers and settles the oldest waiting future. Batches go as
    marshal data (flat lists of str, int and None): the cheapest encoding there is.
    If the child dies, waiting writes fail with a StoreError and the next request
    starts a new child.
    """

    def __init__(self, opener: Callable[[], Store], tz: tzinfo | None) -> None:
        """`opener` opens the store in the child: it must pickle (functools.partial)."""
        self._opener = opener
        self._tz = tz
        self._sender = ThreadPoolExecutor(1, thread_name_prefix="imdb-tui-send")
        self._waiting: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[Any]]] = deque()
        self._lock = threading.Lock()  # guards the child and `_waiting` when it dies
        self._child: _Child | None = None

    async def _call(self, *request: Any) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        payload = marshal.dumps(request)
        with self._lock:
            if self._child is None or not self._child.alive:
                self._child = _Child(self._opener, self._tz, self._answered)
            child = self._child
            self._waiting.append((loop, future))
        loop.run_in_executor(self._sender, child.send, payload)
        return await future

    def _answered(self, answer: tuple[str, Any] | None) -> None:
        """On the reader thread: settle the oldest request (None: the child is gone)."""
        settled: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[Any], Any]]
        with self._lock:
            if answer is None:
                settled = [(loop, future, None) for loop, future in self._waiting]
                self._waiting.clear()
            elif self._waiting:
                loop, future = self._waiting.popleft()
                settled = [(loop, future, answer)]
            else:
                settled = []
        for loop, future, outcome in settled:
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                loop.call_soon_threadsafe(_settle, future, outcome)

    async def close(self) -> None:
        """Stop the child once it has answered everything sent before."""
        with self._lock:
            child, self._child = self._child, None
        loop = asyncio.get_running_loop()
        if child is not None:
            await loop.run_in_executor(self._sender, child.stop)
        self._sender.shutdown(wait=True)


def _settle(future: asyncio.Future[Any], outcome: tuple[str, Any] | None) -> None:
    if future.done():
        return
    if outcome is None:
        future.set_exception(StoreError("the writer process stopped unexpectedly"))
    elif outcome[0] == "error":
        future.set_exception(StoreError(outcome[1]))
    elif outcome[0] == "order":
        future.set_exception(OutOfOrder(outcome[1]))
    else:
        future.set_result(outcome[1])


class _Child:
    """One writer process, its pipe and the thread reading its answers."""

    def __init__(self, opener: Callable[[], Store], tz: tzinfo | None, answered: Any) -> None:
        context = multiprocessing.get_context("spawn")  # fork is unsafe with threads
        self._connection, theirs = context.Pipe()
        self._process = context.Process(
            target=_serve, args=(theirs, opener, tz), name="imdb-tui-writer", daemon=True
        )
        with _interrupts_ignored(), _stderr_with_descriptor():
            self._process.start()
        theirs.close()
        self.alive = True
        self._answered = answered
        self._reader = threading.Thread(target=self._read, name="imdb-tui-answers", daemon=True)
        self._reader.start()

    def send(self, payload: bytes) -> None:
        try:
            self._connection.send_bytes(payload)
        except OSError:
            self.alive = False  # the reader thread sees the end and fails what waits

    def _read(self) -> None:
        while True:
            try:
                answer = marshal.loads(self._connection.recv_bytes())
            except (EOFError, OSError):
                self.alive = False
                self._answered(None)
                return
            self._answered(answer)

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


def _serve(connection: Connection, opener: Callable[[], Store], tz: tzinfo | None) -> None:
    """The child's loop: answer each request in order until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    store: Store | None = None
    aggregate = Aggregator(tz)
    order = _Order()
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
            answer: tuple[str, Any] = ("ok", _handle(store, aggregate, order, request))
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


class _Order:
    """The number of the last batch this writer stored (None: none yet, so any may go)."""

    last: int | None = None


def _handle(store: Store, aggregate: Aggregator, order: _Order, request: tuple[Any, ...]) -> Any:
    """Carry out one request (on the writer's thread or in the child) and answer it."""
    kind, *args = request
    if kind == "write":
        number, after, flat, rejections, received_at, aggregates, positions, health = args
        if order.last is not None and after is not None and after != order.last:
            raise OutOfOrder(f"batch {after} is not stored yet; batches are stored in order")
        events = list(map(_new_event, repeat(Event), _rows(flat, len(FIELDS))))
        stored = store.write_batch(
            events,
            [Rejection(*r) for r in rejections],
            received_at,
            aggregate,
            aggregate.who(Aggregates(*aggregates), events),  # counts came; who is added here
            [SourcePosition(*p) for p in positions],
            None if health is None else PipelineHealth(*health),
        )
        order.last = number
        step = max(1, len(stored) // LAG_SAMPLES)
        return (
            len(stored),
            len(events) - len(stored),
            len(rejections),
            [event.event_time for event in stored[::step]],
        )
    if kind == "health":
        store.put_health(PipelineHealth(*args[0]))
        return None
    if kind == "prune":
        return store.prune(*args)
    if kind == "prune_oldest":
        return store.prune_oldest(*args)
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
