"""A program on a pseudo-terminal of its own, and the screen it draws: how the tests
see the monitor as a person does."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import termios
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import pyte

from tests.test_cli import COMMAND

T = TypeVar("T")


STORED = r"stored +([\d,]+)"
"""The Pipeline panel's stored figure, as drawn."""


def stored_in(text: str) -> int:
    """The Pipeline panel's stored figure on a drawn screen (0 before it is drawn)."""
    found = re.search(STORED, text)
    return 0 if found is None else int(found[1].replace(",", ""))


class Terminal:
    """A program on a pseudo-terminal of its own, and the screen it draws (pyte)."""

    def __init__(self, args: list[str], columns: int = 120, rows: int = 40) -> None:
        self._screen_fd, terminal = pty.openpty()
        fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        self.process = subprocess.Popen(
            [COMMAND, *args],
            stdin=terminal,
            stdout=terminal,
            stderr=terminal,
            env={**os.environ, "TERM": "xterm-256color"},
            start_new_session=True,
            preexec_fn=lambda: fcntl.ioctl(2, termios.TIOCSCTTY, 0),
        )
        os.close(terminal)
        self.screen = pyte.Screen(columns, rows)
        self._stream = pyte.ByteStream(self.screen)

    def text(self) -> str:
        return "\n".join(self.screen.display)

    def _read(self, timeout: float) -> None:
        """Feed the screen what the program drew, waiting up to `timeout` for some."""
        if select.select([self._screen_fd], [], [], timeout)[0]:
            with contextlib.suppress(OSError):
                self._stream.feed(os.read(self._screen_fd, 1 << 16))

    def until(self, done: Callable[[], T], what: str, timeout: float = 60.0) -> T:
        """Read what is drawn until `done()` is true; its value."""
        deadline = time.monotonic() + timeout
        while not (result := done()):
            left = deadline - time.monotonic()
            assert left > 0, f"{what}\n{self.text()}"
            self._read(min(left, 0.2))
        return result

    def wait_for(self, pattern: str, timeout: float = 60.0) -> re.Match[str]:
        """Read what is drawn until the screen shows `pattern`."""
        found = self.until(
            lambda: re.search(pattern, self.text()), f"never shown: {pattern!r}", timeout
        )
        assert found is not None
        return found

    def wait_gone(self, pattern: str, timeout: float = 60.0) -> None:
        """Read what is drawn until the screen no longer shows `pattern`."""
        self.until(
            lambda: re.search(pattern, self.text()) is None, f"still shown: {pattern!r}", timeout
        )

    def exit_status(self, timeout: float = 60.0) -> int:
        """Wait for the program to end, reading what it draws (a full terminal blocks it)."""
        self.until(lambda: self.process.poll() is not None, "still running", timeout)
        return self.process.returncode

    def press(self, key: bytes) -> None:
        os.write(self._screen_fd, key)

    def hang_up(self) -> None:
        """Close the terminal, as closing its window does: the kernel sends SIGHUP."""
        os.close(self._screen_fd)
        self._screen_fd = -1

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)
        if self._screen_fd >= 0:
            os.close(self._screen_fd)


@contextlib.contextmanager
def terminal(args: list[str]) -> Iterator[Terminal]:
    shown = Terminal(args)
    try:
        yield shown
    finally:
        shown.close()
