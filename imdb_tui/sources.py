"""Where raw records come from. Every source hands raw records to the pipeline,
which paces, validates and stores them the same way whatever their origin:
the simulator hands out mappings, JSON Lines sources hand out lines as bytes
(the one validation function parses them, and rejects what is not an event)."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import os
import stat
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import BinaryIO, Protocol

from imdb_tui.events import MAX_LINE_BYTES, RawRecord
from imdb_tui.simulator import Simulator

STDIN = "-"
READ_BYTES = 1 << 16
FOLLOW_POLL = 0.2
"""Seconds between looks at a followed file once its end is reached."""


class Source(Protocol):
    name: str

    async def read(self, limit: int) -> list[RawRecord]:
        """Up to `limit` raw records; an empty list once the source has ended."""

    def stop(self) -> None:
        """The pipeline is stopping: a read still waiting for input returns [] now."""


class SourceError(Exception):
    """A source that cannot be opened or read, said in one line."""


class SimulatedSource:
    """The simulator as a source: it never ends."""

    name = "simulator"

    def __init__(self, simulator: Simulator) -> None:
        self._simulator = simulator

    async def read(self, limit: int) -> list[RawRecord]:
        return list(self._simulator.records(limit))

    def stop(self) -> None:
        pass  # its reads never wait


class LineSplitter:
    """Bytes in, lines out (without their newline), in bounded memory.

    A line longer than MAX_LINE_BYTES is handed on as its first MAX_LINE_BYTES + 1
    bytes (validation rejects it as too long, and keeps the start as its raw
    payload) and the rest of it is skipped up to its newline.
    """

    def __init__(self) -> None:
        self._partial = bytearray()
        self._skipping = False

    def feed(self, data: bytes) -> list[bytes]:
        *ended, tail = data.split(b"\n")
        lines: list[bytes] = []
        for piece in ended:
            if self._skipping:
                self._skipping = False
            elif self._partial:
                lines.append(bytes(self._partial) + piece)
                self._partial.clear()
            else:
                lines.append(piece)
        if not self._skipping:
            self._partial += tail
            if len(self._partial) > MAX_LINE_BYTES:
                lines.append(bytes(self._partial[: MAX_LINE_BYTES + 1]))
                self._partial.clear()
                self._skipping = True
        return lines

    def end(self) -> list[bytes]:
        """At the end of the input, a last line without its newline is still a line."""
        last = [] if self._skipping or not self._partial else [bytes(self._partial)]
        self._partial.clear()
        return last


class JsonLinesSource:
    """JSON Lines from a file (gzip if it ends in .gz) or from stdin ("-").

    Regular files are read on a worker thread (a read never waits long); pipes
    and terminals are read by the event loop itself, so that stopping never
    waits for input that may never come. With `follow`, a file is read as it
    grows, like `tail -F`: at its end the source waits for more; a partial last
    line waits for its newline; a truncated file is read again from its start,
    and a replaced (rotated) one is reopened.
    """

    def __init__(self, path: str, file: BinaryIO | None = None, follow: bool = False) -> None:
        """`file`, if given, is read instead of opening `path` (which names it)."""
        self.name = "stdin" if path == STDIN else path
        if follow and (path == STDIN or Path(path).suffix == ".gz"):
            raise SourceError("--follow follows a plain file that grows (not stdin, not .gz)")
        self._path = path
        self._follow = follow
        self._file = file or _open(path)
        self._read_bytes = self._reader(self._file)
        self._lines = LineSplitter()
        self._ready: list[bytes] = []
        self._ended = False
        self._stopped: asyncio.Event | None = None

    async def read(self, limit: int) -> list[RawRecord]:
        while not self._ready and not self._ended:
            data = await self._next_bytes()
            if data:
                self._ready = self._lines.feed(data)
            elif self._follow and not self._stopping():
                self._ready = await self._wait_for_more()
            else:
                self._ended = True
                self._ready = self._lines.end()
                self._close()
        chunk, self._ready = self._ready[:limit], self._ready[limit:]
        return list(chunk)

    def stop(self) -> None:
        if self._stopped is not None:
            self._stopped.set()
        self._ended = True

    def _stopping(self) -> bool:
        return self._stopped is not None and self._stopped.is_set()

    async def _wait_for_more(self) -> list[bytes]:
        """At the end of a followed file: wait a moment, then start again at the top
        of the file if it was truncated or replaced (handing on a partial last line
        of the old one, so that it is rejected rather than lost)."""
        assert self._stopped is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopped.wait(), FOLLOW_POLL)
        try:
            now = os.stat(self._path)
        except OSError:
            return []  # between a rotation's rename and its new file
        current = os.fstat(self._file.fileno())
        if (now.st_ino, now.st_dev) != (current.st_ino, current.st_dev):
            lines = self._lines.feed(self._file.read())  # what came just before the rename
            self._close()
            self._file = _open(self._path)
            self._read_bytes = self._reader(self._file)
            return lines + self._lines.end()
        if now.st_size < self._file.tell():
            self._file.seek(0)
            return self._lines.end()
        return []

    async def _next_bytes(self) -> bytes:
        """The next bytes of input, or b"" at its end or once stopped."""
        if self._stopped is None:
            self._stopped = asyncio.Event()
        if self._stopped.is_set():
            return b""
        reading = asyncio.ensure_future(self._read_bytes())
        stopping = asyncio.ensure_future(self._stopped.wait())
        done, _ = await asyncio.wait({reading, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if reading not in done:
            reading.cancel()
            return b""
        try:
            return reading.result()
        except OSError as error:
            raise SourceError(f"cannot read {self.name}: {error.strerror or error}") from None
        except (EOFError, gzip.BadGzipFile) as error:
            raise SourceError(f"cannot read {self.name}: {error}") from None

    def _reader(self, file: BinaryIO) -> Callable[[], Awaitable[bytes]]:
        if stat.S_ISREG(os.fstat(file.fileno()).st_mode):

            async def from_thread() -> bytes:
                return await asyncio.to_thread(file.read1, READ_BYTES)  # type: ignore[attr-defined]

            return from_thread
        stream: asyncio.StreamReader | None = None

        async def from_pipe() -> bytes:
            nonlocal stream
            if stream is None:
                loop = asyncio.get_running_loop()
                stream = asyncio.StreamReader(limit=READ_BYTES)
                protocol = asyncio.StreamReaderProtocol(stream)
                await loop.connect_read_pipe(lambda: protocol, file)
            return await stream.read(READ_BYTES)

        return from_pipe

    def _close(self) -> None:
        if self._file is not sys.stdin.buffer:
            with contextlib.suppress(OSError):
                self._file.close()


def _open(path: str) -> BinaryIO:
    if path == STDIN:
        return sys.stdin.buffer
    try:
        file: BinaryIO = open(path, "rb")  # noqa: SIM115 (closed at the end of input)
    except OSError as error:
        raise SourceError(f"cannot open {path}: {error.strerror or error}") from None
    if Path(path).suffix == ".gz":
        return gzip.GzipFile(fileobj=file, mode="rb")  # type: ignore[return-value]
    return file
