"""`imdb-tui serve`: the watch view in web browsers, over textual-serve.

textual-serve starts one process per browser connection: here each one is
`imdb-tui watch` on the served database, a read-only viewer, so however many
tabs are open there is one pipeline (or none, with --attach), and no key
reaches it. This module keeps the door:

- Without a token (only ever on loopback), a request must come from a loopback
  address and name a loopback host (a page of another site whose name resolves to
  127.0.0.1, DNS rebinding, names that site). With one (always off loopback), every
  request brings it, in the query or the cookie the page sets. The WebSocket's
  Origin must be this very server.
- At most `max_viewers` viewers at once: the next tab gets a page saying so. A
  viewer is at most MAX_WIDTH x MAX_HEIGHT cells, whatever the browser asks.
- A message that is not what the page sends is logged in one line and dropped.
- The page asks nothing of any other host (no web font), and sends no Referrer.
  textual-serve's downloads are off, and served viewers save no screenshot.

textual-serve (and aiohttp) are imported only when serving: `pip install 'imdb-tui[serve]'`.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import os
import re
import secrets
import shlex
import socket
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from aiohttp import web

TITLE: Final = "imdb-tui"
COOKIE: Final = "imdb_tui_token"
TOKEN_VARIABLE: Final = "IMDB_TUI_TOKEN"
LOOPBACK_NAMES: Final = frozenset({"localhost", "127.0.0.1", "::1"})
MAX_VIEWERS: Final = 8
MAX_WIDTH: Final = 400
MAX_HEIGHT: Final = 150
_WEB_FONT: Final = re.compile(r"<link[^>]*fonts\.googleapis\.com[^>]*/>\s*", re.DOTALL)

log = logging.getLogger(__name__)


class ServeError(Exception):
    """Serving cannot start: said in one line."""


@dataclass(frozen=True)
class Door:
    """Who may come in: the address served, and the token, if one is needed."""

    host: str
    port: int
    token: str | None
    token_made: bool
    """The token was made here (so it is shown in the URL printed at start)."""

    max_viewers: int = MAX_VIEWERS

    @classmethod
    def for_host(
        cls, host: str, port: int, token: str | None, max_viewers: int = MAX_VIEWERS
    ) -> Door:
        """A token is needed on any address but loopback: the one given, else a new one.
        An empty token is no token: refused (a variable left unset, most likely)."""
        if token is not None and not token.strip():
            raise ServeError("the token is empty: give one, or leave --token out to have one made")
        if token is None and not is_loopback(host):
            return cls(host, port, secrets.token_urlsafe(18), True, max_viewers)
        return cls(host, port, token, False, max_viewers)

    def url(self, port: int) -> str:
        """The URL to open, printed at start: the token shown if it was made here."""
        host = socket.gethostname() if self.host in ("0.0.0.0", "::", "") else self.host
        if ":" in host:
            host = f"[{host}]"
        query = ""
        if self.token is not None:
            query = f"?token={self.token if self.token_made else '<token>'}"
        return f"http://{host}:{port}/{query}"

    def refusal(self, request: web.Request) -> str | None:
        """Why this request may not come in, or None."""
        if self.token is None:
            # Only loopback is served without a token, to loopback peers alone; and a
            # page on another site that resolves its own name to 127.0.0.1 (DNS
            # rebinding) names that site.
            if not is_loopback(request.remote or ""):
                return "a token is needed from another machine"
            if _hostname(request.host) not in LOOPBACK_NAMES:
                return "unknown Host"
        else:
            given = request.query.get("token") or request.cookies.get(COOKIE) or ""
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                return "a token is needed: open the URL imdb-tui serve printed"
        origin = request.headers.get("Origin")
        if request.path == "/ws" and origin is None:
            return "no Origin"
        if origin is not None and origin != f"{request.scheme}://{request.host}":
            return "another site's page may not connect"
        return None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def token_from_environment() -> str | None:
    return os.environ.get(TOKEN_VARIABLE) or None


def token_from_file(path: str) -> str:
    """The token kept in a file (its first line), so that it need not be on a command
    line, where `ps` shows it."""
    try:
        with open(path, encoding="utf-8") as file:
            token = file.readline().strip()
    except OSError as error:
        raise ServeError(f"cannot read the token file {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ServeError(f"the token file {path} is not text") from None
    if not token:
        raise ServeError(f"the token file {path} is empty")
    return token


def viewer_command(window: int, refresh: float) -> str:
    """The command each browser connection runs: `imdb-tui watch` on the database
    named by IMDB_TUI_DB in its environment (never on a command line: ps shows those)."""
    return "exec " + shlex.join(  # the shell textual-serve starts it with gives way to it
        [
            sys.executable,
            "-m",
            "imdb_tui",
            "watch",
            "--window",
            str(window),
            "--refresh",
            str(refresh),
        ]
    )


class Viewers:
    """The browser connections: how many now, how many in all, the most at once."""

    def __init__(self, on_change: Callable[[int], None]) -> None:
        self.now = 0
        self.total = 0
        self.most = 0
        self._on_change = on_change

    def came(self) -> None:
        self.now += 1
        self.total += 1
        self.most = max(self.most, self.now)
        self._on_change(self.now)

    def left(self) -> None:
        self.now -= 1
        self._on_change(self.now)


def make_server(door: Door, command: str, viewers: Viewers) -> Any:
    """textual-serve's server for `command`, behind the door, without downloads."""
    try:
        import aiohttp_jinja2
        from aiohttp import WSCloseCode, WSMsgType, web
        from textual_serve.app_service import AppService
        from textual_serve.server import Server
    except ImportError:
        raise ServeError("serve needs textual-serve: pip install 'imdb-tui[serve]'") from None

    class ViewerServer(Server):
        def __init__(self) -> None:
            super().__init__(command, host=door.host, port=door.port, title=TITLE)
            self.sockets: set[web.WebSocketResponse] = set()

        async def _make_app(self) -> web.Application:
            app = web.Application(middlewares=[self.guard])
            aiohttp_jinja2.setup(app, loader=_templates(self.templates_path))
            app.add_routes(
                [
                    web.get("/", self.handle_index, name="index"),
                    web.get("/ws", self.handle_websocket, name="websocket"),
                    web.static("/static", self.statics_path, name="static"),
                ]
            )
            app.on_shutdown.append(self.on_shutdown)
            return app

        @web.middleware
        async def guard(
            self,
            request: web.Request,
            handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
        ) -> web.StreamResponse:
            refusal = door.refusal(request)
            if refusal is not None:
                raise web.HTTPForbidden(
                    text=f"403: {refusal}\n", headers={"Referrer-Policy": "no-referrer"}
                )
            if request.path in ("/", "/ws") and viewers.now >= door.max_viewers:
                raise web.HTTPServiceUnavailable(
                    text=_FULL.format(viewers=door.max_viewers),
                    content_type="text/html",
                    headers={"Referrer-Policy": "no-referrer", "Retry-After": "30"},
                )
            response = await handler(request)
            response.headers["Referrer-Policy"] = "no-referrer"
            if door.token is not None and request.path == "/" and "token" in request.query:
                # The page keeps the token for its WebSocket (and reloads).
                assert isinstance(response, web.Response)
                response.set_cookie(COOKIE, door.token, httponly=True, samesite="Strict")
            return response

        async def handle_index(self, request: web.Request) -> web.StreamResponse:
            """textual-serve's page, with its URLs made from the address the browser
            used (not the one bound: 0.0.0.0 is nowhere to connect to)."""
            base = f"{request.scheme}://{request.host}"
            websocket = ("wss" if request.scheme == "https" else "ws") + f"://{request.host}/ws"
            context = {
                "font_size": _font_size(request.query.get("fontsize", "16")),
                "app_websocket_url": websocket,
                "config": {"static": {"url": f"{base}/static/"}},
                "application": {"name": TITLE},
            }
            page = aiohttp_jinja2.render_string("app_index.html", request, context)
            page = _WEB_FONT.sub("", page)  # no request to another host: the local monospace
            if "<title>" not in page:  # the tab's name, too
                page = page.replace("<head>", f"<head>\n    <title>{TITLE}</title>", 1)
            return web.Response(text=page, content_type="text/html")

        async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
            """textual-serve's, with the viewer's size capped and each viewer counted."""
            viewers.came()
            websocket = web.WebSocketResponse(heartbeat=15)
            width, height = _size(request.query.get("width"), request.query.get("height"))
            service: Any = None
            try:
                await websocket.prepare(request)
                service = AppService(
                    self.command,
                    write_bytes=websocket.send_bytes,
                    write_str=websocket.send_str,
                    close=websocket.close,  # type: ignore[arg-type]  # as textual-serve does
                    download_manager=self.download_manager,
                    debug=self.debug,
                )
                await service.start(width, height)
                await self._process_messages(websocket, service)
            except asyncio.CancelledError:
                await websocket.close()
            except Exception as error:  # one line, as every other trouble here
                log.warning("a viewer failed: %s", error)
            finally:
                if service is not None:
                    await service.stop()
                    await _reap(service)
                viewers.left()
            return websocket

        async def _process_messages(self, websocket: web.WebSocketResponse, service: Any) -> None:
            """What the page sends: keys, sizes (capped), pings, focus. Anything else
            is logged in one line and dropped; the viewer goes on."""
            self.sockets.add(websocket)
            try:
                async for message in websocket:
                    if message.type != WSMsgType.TEXT:
                        continue
                    try:
                        await _pass_on(message.data, websocket, service)
                    except (ValueError, TypeError, KeyError, IndexError) as error:
                        log.warning("dropped a malformed message from a viewer: %s", error)
            finally:
                self.sockets.discard(websocket)

        async def on_shutdown(self, app: web.Application) -> None:
            """Each viewer is told to quit, and its process ends with its connection."""
            for websocket in list(self.sockets):
                await websocket.close(code=WSCloseCode.GOING_AWAY, message=b"server stopped")

    return ViewerServer()


async def start_site(server: Any, door: Door) -> tuple[Any, int]:
    """The server listening on the door's address: its runner, and the port (which
    the system picked, for --port 0)."""
    from aiohttp import web

    runner = web.AppRunner(await server._make_app(), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, door.host, door.port).start()
    except OSError as error:
        await runner.cleanup()
        reason = error.strerror or str(error)
        raise ServeError(f"cannot listen on {door.host}:{door.port}: {reason}") from None
    port = int(runner.addresses[0][1])
    return runner, port


_FULL: Final = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>imdb-tui: viewers full</title></head>
<body style="background:#0c181f;color:#e0e0e0;font-family:monospace;padding:2em">
<h1>imdb-tui serve: {viewers} viewers are open</h1>
<p>That is the most this server lets watch at once (<code>--max-viewers</code>).
Close another tab, or ask whoever runs it for a higher limit, then reload.</p>
</body></html>
"""


async def _reap(service: Any) -> None:
    """Wait for a viewer's process to end (killed if it does not), so that none is left
    behind, nor its pipes to be closed after the event loop."""
    process = getattr(service, "_process", None)
    if process is None:
        return
    try:
        await asyncio.wait_for(process.wait(), 10)
    except TimeoutError:
        process.kill()
        await process.wait()


def _size(width: object, height: object) -> tuple[int, int]:
    """A viewer's size in cells, as asked, within 1..MAX_WIDTH x 1..MAX_HEIGHT."""
    return _cells(width, 80, MAX_WIDTH), _cells(height, 24, MAX_HEIGHT)


def _cells(value: object, default: int, most: int) -> int:
    try:
        cells = int(float(str(value)))
    except (TypeError, ValueError, OverflowError):
        return default
    return min(max(cells, 1), most)


async def _pass_on(text: str, websocket: Any, service: Any) -> None:
    """One message of the page's to the viewer; ValueError and friends if malformed."""
    envelope = json.loads(text)
    if not isinstance(envelope, list) or not envelope:
        raise ValueError("not a list")
    kind = envelope[0]
    if kind == "stdin":
        data = envelope[1]
        if not isinstance(data, str):
            raise TypeError("stdin data is not text")
        await service.send_bytes(data.encode("utf-8"))
    elif kind == "resize":
        size = envelope[1]
        await service.set_terminal_size(*_size(size["width"], size["height"]))
    elif kind == "ping":
        await websocket.send_json(["pong", envelope[1]])
    elif kind == "blur":
        await service.blur()
    elif kind == "focus":
        await service.focus()
    else:
        raise ValueError(f"unknown message {str(kind)[:40]!r}")


def _templates(path: object) -> Any:
    import jinja2

    return jinja2.FileSystemLoader(str(path))


def _font_size(text: str) -> int:
    try:
        return min(max(int(text), 6), 64)
    except ValueError:
        return 16


def _hostname(host: str) -> str:
    """The name in a Host header, without its port ([::1]:8000 -> ::1)."""
    if host.startswith("["):
        return host[1 : host.find("]")]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


async def wait_for_signal() -> None:
    """Until Ctrl-C, SIGTERM or SIGHUP."""
    import signal

    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(signum, stopped.set)
    await stopped.wait()
