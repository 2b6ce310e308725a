"""JSON Lines from a file (gzip if it ends in .gz) or from stdin: lines as bytes,
which the one validation function parses (rejecting what is not an event).

A file is a resumable source: its position is the byte offset (in the
uncompressed stream) just past the last line handed out, with a fingerprint of
the file's first line, so that a file replaced by another, or truncated, is read
from its start again rather than from an offset that no longer means anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import itertools
import json
import logging
import os
import stat
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import BinaryIO

from imdb_tui.events import MAX_LINE_BYTES, Placed, RawRecord
from imdb_tui.sources import STDIN, Lookup, SourceError
from imdb_tui.store import SourcePosition

log = logging.getLogger(__name__)

READ_BYTES = 1 << 16
FOLLOW_POLL = 0.2
"""Seconds between looks at a followed file once its end is reached."""
HEAD_BYTES = 4096
"""A file is known by a hash of its first line, or of this many bytes if it is longer."""
DRAIN_IDLE = 0.5
"""Once stopped, a pipe is read on while more comes within this many seconds..."""
DRAIN_FOR = 2.0
"""... for this many seconds at most (its writer may not have been stopped)..."""
DRAIN_BYTES = 1 << 26
"""... and this many bytes at most (held in memory, then stored)."""


class LineSplitter:
    """Bytes in, lines out (without their newline), in bounded memory.

    A line longer than MAX_LINE_BYTES is handed on as its first MAX_LINE_BYTES + 1
    bytes (validation rejects it as too long, and keeps the start as its raw
    payload) and the rest of it is skipped up to its newline.
    """

    def __init__(self, offset: int = 0, newlines: int | None = 0) -> None:
        self._partial = bytearray()
        self._skipping = False
        self._fed = offset  # bytes of the stream fed so far
        self._newlines = newlines  # newlines fed so far (None: not known, resumed)
        self.ends: list[int] = []
        """The stream offset just past each line handed out by the last feed or end
        (a cut line's is its start: read again from there, it is rejected again)."""
        self.starts: list[int] = []
        """The stream offset where each line handed out by the last feed or end starts."""
        self.numbers: list[int | None] = []
        """Their line numbers, from 1 (None: not known, in a file resumed from a
        position stored without its line)."""

    def feed(self, data: bytes) -> list[bytes]:
        *ended, tail = data.split(b"\n")
        base = self._fed - len(self._partial)  # where the pending line started
        self._fed += len(data)
        ends = list(
            itertools.accumulate((len(p) + 1 for p in ended), initial=self._fed - len(data))
        )
        newlines = self._newlines
        self.ends = kept = []
        self.starts = starts = []
        self.numbers = numbers = []
        if not ended:
            lines: list[bytes] = []
        else:  # only the first piece can end a pending line, or a cut one being skipped
            first = newlines if newlines is None else newlines + 1
            if self._skipping:
                self._skipping = False
                lines = []
            elif self._partial:
                lines = [bytes(self._partial) + ended[0]]
                kept.append(ends[1])
                starts.append(base)
                numbers.append(first)
                self._partial.clear()
            else:
                lines = [ended[0]]
                kept.append(ends[1])
                starts.append(ends[0])
                numbers.append(first)
            lines += ended[1:]
            kept += ends[2:]
            starts += ends[1:-1]
            if newlines is None:
                numbers += [None] * (len(ended) - 1)
            else:
                numbers += range(newlines + 2, newlines + len(ended) + 1)
        if newlines is not None:
            self._newlines = newlines + len(ended)
        if not self._skipping:
            start = ends[-1] if ended else base
            self._partial += tail
            if len(self._partial) > MAX_LINE_BYTES:
                lines.append(bytes(self._partial[: MAX_LINE_BYTES + 1]))
                kept.append(start)
                starts.append(start)
                numbers.append(self._number())
                self._partial.clear()
                self._skipping = True
        return lines

    def last(self, data: bytes) -> list[bytes]:
        """The input's last bytes: their lines, and a last line without its newline
        (`feed`, then `end`); ends, starts and numbers are those of every one."""
        lines = self.feed(data)
        ends, starts, numbers = self.ends, self.starts, self.numbers
        lines += self.end()
        self.ends, self.starts = ends + self.ends, starts + self.starts
        self.numbers = numbers + self.numbers
        return lines

    def end(self) -> list[bytes]:
        """At the end of the input, a last line without its newline is still a line."""
        last = [] if self._skipping or not self._partial else [bytes(self._partial)]
        self.ends = [self._fed] if last else []
        self.starts = [self._fed - len(self._partial)] if last else []
        self.numbers = [self._number()] if last else []
        self._partial.clear()
        return last

    def _number(self) -> int | None:
        """The number of the line after the last newline fed."""
        return None if self._newlines is None else self._newlines + 1


def newlines_to(line: bytes, start: int, number: int | None, end: int) -> int | None:
    """The newlines before `end`, a line's end offset as handed out: past its newline,
    or at its start (a cut line) or its end (a last line without one)."""
    if number is None:
        return None
    return number if end == start + len(line) + 1 else number - 1


class JsonLinesSource:
    """JSON Lines from a file (gzip if it ends in .gz) or from stdin ("-").

    Regular files are read on a worker thread (a read never waits long); pipes
    and terminals are read by the event loop itself, so that stopping never
    waits for input that may never come. With `follow`, a file is read as it
    grows, like `tail -F`: at its end the source waits for more; a partial last
    line waits for its newline; a truncated file (also one truncated and written
    again past where it was read to: its first bytes tell) is read again from its
    start, and a replaced or renamed (rotated) one is read to its end, then reopened.

    An input that fails part way (a truncated .gz, a read error) hands out what
    came before it, its partial last line included, and then raises SourceError.

    Stopped (Ctrl-C), a regular file is read on from its position next time; a
    pipe's bytes cannot be read again, so `rest` reads it on to its end, which
    comes at once when the same Ctrl-C stopped its writer (`produce | run`,
    `tail -f | run`), within DRAIN_IDLE, DRAIN_FOR and DRAIN_BYTES, or until a
    second stop; what it read is then handed out, its last line cut or not.
    """

    trouble: str | None = None  # reading never waits on a passing problem
    behind_ms: float | None = None  # no newest data to be behind

    def __init__(self, path: str, file: BinaryIO | None = None, follow: bool = False) -> None:
        """`file`, if given, is read instead of opening `path` (which names it)."""
        self.name = "stdin" if path == STDIN else path
        if follow and (path == STDIN or Path(path).suffix == ".gz"):
            raise SourceError("--follow follows a plain file that grows (not stdin, not .gz)")
        self._path = path
        self._follow = follow
        self._file = file or _open(path)
        self._read_bytes = self._reader(self._file)
        # Only a regular file has positions: a pipe's bytes cannot be read again.
        regular = path != STDIN and stat.S_ISREG(os.fstat(self._file.fileno()).st_mode)
        self.key = f"file:{Path(path).resolve()}" if regular else None
        self._lines = LineSplitter()
        self._ready: list[bytes] = []
        self._ends: list[int] = []  # in step with _ready, as the splitter's lists
        self._starts: list[int] = []
        self._numbers: list[int | None] = []
        self._head = bytearray()  # the stream's first bytes, for its fingerprint
        self._head_fixed = False  # read from the file when resuming
        self._handed = 0  # the stream offset just past the last line handed out
        self._handed_lines: int | None = 0  # the newlines before it
        self._failure: SourceError | None = None
        self._ended = False
        self._stopped: asyncio.Event | None = None
        self._stops = 0
        self._closed = False

    async def start(self, stored: Lookup) -> str | None:
        """Carry on from the stored position if it is this file's: its first line the
        same and its stream at least that long; else read from the start."""
        if self.key is None:
            return None
        position = stored(self.key)
        if position is None:
            return None
        try:
            saved = json.loads(position)
            offset, fingerprint = int(saved["offset"]), str(saved["fingerprint"])
            newlines = saved.get("line")
            newlines = newlines if type(newlines) is int and newlines >= 0 else None
        except (ValueError, KeyError, TypeError, AttributeError):
            return None  # not one of ours: read it all (dedupe keeps that safe)
        if offset <= 0 or not await asyncio.to_thread(self._skip_to, offset, fingerprint):
            return None
        self._handed, self._handed_lines = offset, newlines
        self._lines = LineSplitter(offset, newlines)
        where = f"byte {offset:,}"
        return where if newlines is None else f"line {newlines + 1:,} ({where})"

    def _skip_to(self, offset: int, fingerprint: str) -> bool:
        """Read the head and move to `offset` if the file is the one positioned;
        else stay at the start of the stream."""
        try:
            head = self._file.read(HEAD_BYTES)
            if _fingerprint(head) != fingerprint:
                self._file.seek(0)
                return False
            # A plain file seeks past its end; a .gz one stops at its end.
            packed = isinstance(self._file, gzip.GzipFile)
            if self._file.seek(offset) == offset and (
                packed or os.fstat(self._file.fileno()).st_size >= offset
            ):
                self._head[:] = head
                self._head_fixed = True
                return True
            self._file.seek(0)
        except (OSError, EOFError, gzip.BadGzipFile):
            with contextlib.suppress(OSError, EOFError, gzip.BadGzipFile):
                self._file.seek(0)
        self._head.clear()
        return False

    async def read(self, limit: int) -> list[RawRecord]:
        while not self._ready and not self._ended:
            if self._follow and self._rewritten():  # copytruncate, even while behind
                self._take(self._from_the_top())
                continue
            try:
                data = await self._next_bytes()
            except SourceError as error:  # hand out what came before it, then fail
                self._failure = error
                data = b""
            if data:
                if len(self._head) < HEAD_BYTES and not self._head_fixed:
                    self._head += data[: HEAD_BYTES - len(self._head)]
                self._take(self._lines.feed(data))
            elif self._follow and not self._stopping() and self._failure is None:
                self._take(await self._wait_for_more())
            else:
                self._ended = True
                stopped = self._stopping()
                if stopped and self.key is None and self._failure is None:
                    break  # a pipe: `rest` reads on, and may yet finish its last line
                if stopped and self.key is not None:
                    # Stopped, not ended: a partial last line is read whole next time,
                    # from the position of the line before it.
                    self._ready, self._ends, self._starts, self._numbers = [], [], [], []
                else:
                    self._take(self._lines.end())
                self._close()
        return self._hand_out(limit)

    def _hand_out(self, limit: int) -> list[RawRecord]:
        """Up to `limit` of the lines read, with where they are; at the end of them,
        the input's failure, if it failed."""
        if not self._ready and self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure
        chunk, self._ready = self._ready[:limit], self._ready[limit:]
        if not chunk:
            return []
        n = len(chunk)
        starts, self._starts = self._starts[:n], self._starts[n:]
        numbers, self._numbers = self._numbers[:n], self._numbers[n:]
        self._handed = self._ends[n - 1]
        self._ends = self._ends[n:]
        self._handed_lines = (
            newlines_to(chunk[-1], starts[-1], numbers[-1], self._handed) if self._handed else 0
        )
        return Placed(chunk, self.name, starts, numbers)

    def _take(self, lines: list[bytes]) -> None:
        """Lines from the splitter, with where they are."""
        self._ready = lines
        self._ends = self._lines.ends
        self._starts = self._lines.starts
        self._numbers = self._lines.numbers

    def positions(self) -> Sequence[SourcePosition]:
        if self.key is None or self._handed <= 0:
            return ()
        where: dict[str, int | str] = {
            "offset": self._handed,
            "fingerprint": _fingerprint(bytes(self._head)),
        }
        if self._handed_lines is not None:
            where["line"] = self._handed_lines
        return (SourcePosition(self.key, json.dumps(where)),)

    def committed(self, positions: Sequence[SourcePosition]) -> None:
        pass  # one reader per file: nothing waits on its commits

    def stop(self) -> None:
        self._stops += 1
        if self._stopped is not None:
            self._stopped.set()
        self._ended = True

    async def rest(self, limit: int) -> list[RawRecord]:
        if not self._ready and self.key is None and not self._closed:
            await self._read_to_end()  # a pipe stopped before its end
        return self._hand_out(limit)

    async def _read_to_end(self) -> None:
        """A pipe stopped before its end: read on (see the class), then its lines."""
        data = bytearray()
        if self._stops == 1:
            loop = asyncio.get_running_loop()
            self._stopped = asyncio.Event()  # a second stop sets it
            deadline = loop.time() + DRAIN_FOR
            while len(data) < DRAIN_BYTES and (left := deadline - loop.time()) > 0:
                try:
                    more = await self._next_bytes(min(DRAIN_IDLE, left))
                except SourceError as error:  # handed out after what came before it
                    self._failure = error
                    break
                if not more:
                    break
                data += more
        self._take(self._lines.last(bytes(data)))  # a cut last line: rejected, not lost
        self._close()

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
            lines = self._lines.last(self._file.read())  # what came just before the rename
            starts, numbers = self._lines.starts, self._lines.numbers
            self._close()
            self._file = _open(self._path)
            self._read_bytes = self._reader(self._file)
            self._new_stream()
            # The old file's last lines are positioned at the start of the new one:
            # they are stored before any of it, and the new file has no offset yet.
            self._lines.ends = [0] * len(lines)
            self._lines.starts, self._lines.numbers = starts, numbers  # in the old file
            return lines
        if self._rewritten():
            return self._from_the_top()
        return []

    def _rewritten(self) -> bool:
        """Whether the followed file was truncated, or truncated and written again past
        where it was read to (copytruncate), whatever its size: its first bytes are no
        longer the ones read."""
        try:
            descriptor = self._file.fileno()
            if os.fstat(descriptor).st_size < self._file.tell():
                return True
            head = bytes(self._head)
            return bool(head) and os.pread(descriptor, len(head), 0) != head
        except (OSError, ValueError):  # closed: the end of the input is handled there
            return False

    def _from_the_top(self) -> list[bytes]:
        """Read a truncated or rewritten file from its start: the partial last line of
        what came before is handed on (to be rejected rather than lost)."""
        self._file.seek(0)
        lines = self._lines.end()
        starts, numbers = self._lines.starts, self._lines.numbers
        self._new_stream()
        self._lines.ends = [0] * len(lines)
        self._lines.starts, self._lines.numbers = starts, numbers  # before the truncation
        log.warning("%s was truncated: reading it from its start", self.name)
        return lines

    def _new_stream(self) -> None:
        """A truncated or replaced file: offsets count from its start again."""
        self._lines = LineSplitter()
        self._head.clear()
        self._head_fixed = False
        self._handed, self._handed_lines = 0, 0

    async def _next_bytes(self, wait: float | None = None) -> bytes:
        """The next bytes of input, or b"" at its end, once stopped, or when none came
        within `wait` seconds."""
        if self._stopped is None:
            self._stopped = asyncio.Event()
        if self._stopped.is_set():
            return b""
        reading = asyncio.ensure_future(self._read_bytes())
        stopping = asyncio.ensure_future(self._stopped.wait())
        await asyncio.wait({reading, stopping}, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        # Not whether it was done when the wait returned: it may have read its bytes
        # since, and they would be lost. Cancelled before then, a pipe's read takes
        # nothing from the pipe.
        if not reading.done():
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
        self._closed = True
        if self._file is not sys.stdin.buffer:
            with contextlib.suppress(OSError):
                self._file.close()


def _fingerprint(head: bytes) -> str:
    """A hash of a stream's first line (or of its first HEAD_BYTES if that is longer)."""
    newline = head.find(b"\n", 0, HEAD_BYTES)
    first = head[: newline + 1] if newline >= 0 else head[:HEAD_BYTES]
    return hashlib.sha256(first).hexdigest()[:32]


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
