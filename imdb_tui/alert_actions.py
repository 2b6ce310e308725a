"""What is done when an alert fires or clears, besides showing it: a program run
(`--alert-exec`) and a webhook POSTed (`--alert-webhook`).

Neither can stop or slow the pipeline: each runs as a task of its own, bounded in
time, and its failure is said (once per change) and never raised. The program gets
no shell: its arguments are the state, the rule's name and the figure's value, and
the alert as JSON on its standard input. The webhook gets the same JSON, and is
tried again with backoff while it fails; its URL is shown by its host alone (a
webhook's path and query are often its secret).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import urllib.error
import urllib.request
from collections.abc import Callable, Coroutine
from typing import Any, Final
from urllib.parse import unquote, urlsplit, urlunsplit

from imdb_tui.alerts import AlertChange

EXEC_TIMEOUT: Final = 10.0
WEBHOOK_TIMEOUT: Final = 5.0
WEBHOOK_TRIES: Final = 4
WEBHOOK_BACKOFF: Final = 0.5
"""Seconds before the second try, doubled before each next one."""


def shown_url(url: str) -> str:
    """A webhook's URL as it may be shown: scheme and host, no credentials, path or query."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}/…"


def check_webhook(url: str) -> None:
    """ValueError unless `url` is an http(s) URL with a host."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"--alert-webhook {shown_url(url)}: not an http:// or https:// URL")


class AlertActions:
    """Runs the actions of each change, in the background; `close` waits for them."""

    def __init__(
        self,
        program: str | None,
        webhook: str | None,
        said: Callable[[str], None],
        exec_timeout: float = EXEC_TIMEOUT,
        backoff: float = WEBHOOK_BACKOFF,
    ) -> None:
        self.program = program
        self.webhook = webhook
        self._said = said
        self._exec_timeout = exec_timeout
        self._backoff = backoff
        self._running: set[asyncio.Task[None]] = set()

    def __call__(self, change: AlertChange) -> None:
        """A listener of the pipeline's (or a watcher's) alert changes."""
        payload = json.dumps(change.to_json()).encode()
        if self.program is not None:
            self._start(self._exec(self.program, change, payload))
        if self.webhook is not None:
            self._start(self._post(self.webhook, payload))

    def _start(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def close(self) -> None:
        """Wait for the actions under way (each is bounded in time)."""
        while self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

    async def _exec(self, program: str, change: AlertChange, payload: bytes) -> None:
        where = f"--alert-exec {program}"
        try:
            process = await asyncio.create_subprocess_exec(
                program,
                change.state,
                change.name,
                change.value,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
        except OSError as error:
            self._said(f"{where}: cannot run it: {error.strerror or error}")
            return
        try:
            await asyncio.wait_for(process.communicate(payload), self._exec_timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            self._said(f"{where}: killed after {self._exec_timeout:g} s")
            return
        if process.returncode:
            self._said(f"{where}: exited with status {process.returncode}")

    async def _post(self, url: str, payload: bytes) -> None:
        wait = self._backoff
        problem = ""
        for attempt in range(WEBHOOK_TRIES):
            if attempt:
                await asyncio.sleep(wait)
                wait *= 2
            problem = await asyncio.to_thread(_post_once, url, payload)
            if not problem:
                return
        self._said(f"--alert-webhook {shown_url(url)}: {problem} ({WEBHOOK_TRIES} tries)")


def _post_once(url: str, payload: bytes) -> str:
    """POST the payload; "" if it was taken (2xx), else what went wrong."""
    parts = urlsplit(url)
    headers = {"Content-Type": "application/json"}
    if parts.username is not None:  # user:password@ in the URL: Basic authentication
        secret = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        headers["Authorization"] = "Basic " + base64.b64encode(secret.encode()).decode()
        host = parts.hostname or ""
        netloc = (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port else "")
        url = urlunsplit(parts._replace(netloc=netloc))
    request = urllib.request.Request(url, data=payload, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT) as answer:
            return "" if 200 <= answer.status < 300 else f"HTTP {answer.status}"
    except urllib.error.HTTPError as error:
        return f"HTTP {error.code}"
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        return f"cannot reach it: {getattr(reason, 'strerror', None) or reason}"
