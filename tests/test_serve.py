"""`imdb-tui serve`: the monitor in web browsers, from a server on 127.0.0.1.

Browsers are stood in for by aiohttp's WebSocket client, connecting to `/ws` as
textual-serve's page does, with what the server sends drawn by a terminal
emulator (pyte); and by a real headless Chromium opening the page."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import unittest.mock
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import aiohttp
import pyte
import pytest

from tests.postgres_server import unavailable
from tests.terminal import STORED, T, stored_in
from tests.test_cli import COMMAND, imdb_tui

SIZES = [(120, 40), (80, 24), (100, 30)]


class Served:
    """`imdb-tui serve` in a process of its own, on a port the system picks, and
    what it prints (read on a thread, so that its pipe never fills)."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [COMMAND, "serve", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.lines: list[str] = []
        self._said = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.url = self.wait_for(r"serving the monitor at (\S+)")[1]
        port = re.search(r":(\d+)/", self.url)
        assert port is not None, self.url
        self.base = f"http://127.0.0.1:{port[1]}"  # whatever the host, come in by loopback

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._said:
                self.lines.append(line)
                self._said.notify_all()
        with self._said:
            self.lines.append("")  # the end
            self._said.notify_all()

    def output(self) -> str:
        with self._said:
            return "".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        with self._said:
            while not (found := re.search(pattern, "".join(self.lines))):
                ended = self.lines[-1:] == [""]
                assert not ended and time.monotonic() < deadline, "".join(self.lines)
                self._said.wait(max(0.0, deadline - time.monotonic()))
        return found

    def stop(self) -> str:
        """Ctrl-C, as a person stops it: what it printed, and its exit status checked."""
        self.process.send_signal(signal.SIGINT)
        assert self.process.wait(timeout=60) == 0, self.output()
        self._reader.join(timeout=10)
        return self.output()

    def __enter__(self) -> Served:
        return self

    def __exit__(self, *_: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)


@contextlib.contextmanager
def serving(*args: str, env: dict[str, str] | None = None) -> Iterator[Served]:
    with Served(*args, env=env) as served:
        yield served


class Tab:
    """A browser tab's connection to `/ws`: what arrives is drawn on a screen of its size."""

    def __init__(
        self, session: aiohttp.ClientSession, base: str, width: int = 120, height: int = 40
    ) -> None:
        self.session = session
        self.url = f"{base}/ws?width={width}&height={height}"
        self.origin = base
        self._screen = pyte.Screen(width, height)
        self._stream = pyte.ByteStream(self._screen)
        self._unread: collections.deque[bytes] = collections.deque()
        self._feeding = threading.Lock()
        self._drawn = asyncio.Event()
        self.closed = asyncio.Event()

    async def __aenter__(self) -> Tab:
        self.websocket = await self.session.ws_connect(self.url, headers={"Origin": self.origin})
        self._reading = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        async for message in self.websocket:
            if message.type == aiohttp.WSMsgType.BINARY:  # what the terminal shows
                # Drawn when looked at: reading stays quick, and the server's pings
                # are answered at once, as a browser does, however busy the machine.
                self._unread.append(message.data)
                self._drawn.set()
        self.closed.set()

    async def __aexit__(self, *_: object) -> None:
        await self.websocket.close()
        await self._reading

    def _feed(self) -> None:
        with self._feeding:  # what has come so far (more comes while pyte draws)
            for _ in range(len(self._unread)):
                self._stream.feed(self._unread.popleft())

    @property
    def screen(self) -> pyte.Screen:
        self._feed()
        return self._screen

    def text(self) -> str:
        return "\n".join(self.screen.display)

    async def until(self, done: Callable[[], T], what: str, timeout: float = 60) -> T:
        """Read what is drawn until `done()` is true; its value."""
        deadline = time.monotonic() + timeout
        while True:
            self._drawn.clear()
            # pyte draws a 400x150 screen slowly: on a thread, so that the event loop
            # stays free to answer the server's pings (it closes a silent socket)
            await asyncio.to_thread(self._feed)
            if result := done():
                return result
            assert time.monotonic() < deadline, f"{what}\n{self.text()}"
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drawn.wait(), max(0.0, deadline - time.monotonic()))

    async def wait_for(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        """Read what is drawn until the screen shows `pattern`."""
        found = await self.until(
            lambda: re.search(pattern, self.text()), f"never shown: {pattern!r}", timeout
        )
        assert found is not None
        return found

    async def stored(self) -> int:
        return stored_in((await self.wait_for(STORED))[0])

    async def stored_past(self, first: int) -> None:
        """Read what is drawn until the Pipeline panel's stored figure is past `first`."""
        await self.until(lambda: stored_in(self.text()) > first, f"stored stays {first:,}")


@contextlib.asynccontextmanager
async def browser_session() -> AsyncIterator[aiohttp.ClientSession]:
    # unsafe: keep cookies from an address (127.0.0.1), as a browser does
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


def report(db: Path) -> dict[str, object]:
    result = imdb_tui("report", "--json", "--db", str(db))
    assert result.returncode == 0, result.stderr
    parsed: dict[str, object] = json.loads(result.stdout)
    return parsed


def viewers_of(db: Path) -> list[int]:
    """The processes whose environment names this database for a viewer."""
    found = []
    wanted = f"IMDB_TUI_DB={db}".encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if wanted in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
    return found


def a_database(tmp_path: Path) -> Path:
    db = tmp_path / "events.db"
    made = imdb_tui("run", "--db", str(db), "--count", "300", "--rate", "max", "--seed", "4")
    assert made.returncode == 0, made.stderr
    return db


async def test_three_tabs_watch_one_pipeline_and_closing_them_leaves_it_running(
    tmp_path: Path,
) -> None:
    db = tmp_path / "events.db"
    with serving("--db", str(db), "--rate", "500") as served:
        async with browser_session() as session, contextlib.AsyncExitStack() as tabs:
            opened = [await tabs.enter_async_context(Tab(session, served.base, *s)) for s in SIZES]
            for tab in opened:
                await tab.wait_for("Active users")
                first = await tab.stored()
                await tab.stored_past(first)  # growing
            for tab, (width, height) in zip(opened, SIZES, strict=True):
                # each tab is drawn at its own size: a panel's border reaches its right edge,
                # and the key bar is on its last line
                assert any(len(line.rstrip()) == width for line in tab.screen.display), tab.text()
                await tab.wait_for(r"Quit")
                assert "Quit" in tab.screen.display[height - 1], tab.text()
                assert "Pause" not in tab.text()  # a viewer: no pipeline keys
            served.wait_for(r"viewers: 3")
            pipelines = report(db)["pipelines"]
            assert isinstance(pipelines, list)
            assert [p["live"] for p in pipelines] == [True]  # one writer, however many tabs
        served.wait_for(r"viewers: 0")
        stored = report(db)["events_total"]
        assert isinstance(stored, int)
        deadline = time.monotonic() + 60
        while report(db)["events_total"] == stored:  # the pipeline goes on without viewers
            assert time.monotonic() < deadline
        output = served.stop()
    assert "served 3 viewers (3 at most at once)" in output
    assert re.search(r"done: [\d,]+ events stored, 0 duplicates, 0 dead letters", output), output
    assert viewers_of(db) == []


async def test_ctrl_c_closes_the_open_tabs_and_ends_their_viewers(tmp_path: Path) -> None:
    db = a_database(tmp_path)
    with serving("--attach", "--db", str(db)) as served:
        async with browser_session() as session, Tab(session, served.base) as tab:
            await tab.wait_for(r"stored +300\b")
            assert len(viewers_of(db)) == 1
            output = served.stop()
            await asyncio.wait_for(tab.closed.wait(), 30)
    assert "attached" in output and "served 1 viewer (1 at most at once)" in output
    assert "done:" not in output  # no pipeline of its own
    deadline = time.monotonic() + 30
    while viewers_of(db):
        assert time.monotonic() < deadline, "a viewer outlived the server"


async def test_off_loopback_every_request_needs_the_token(tmp_path: Path) -> None:
    db = a_database(tmp_path)
    with serving("--attach", "--db", str(db), "--host", "0.0.0.0") as served:
        found = re.search(r"\?token=([\w-]{20,})$", served.url)
        assert found is not None, served.url
        token = found[1]
        base = served.base
        async with browser_session() as session:
            for path in ("/", "/?token=wrong", "/static/js/textual.js"):
                async with session.get(base + path) as response:
                    assert response.status == 403, path
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(f"{base}/ws", headers={"Origin": base})
            assert refused.value.status == 403
            async with session.get(f"{base}/?token={token}") as page:
                assert page.status == 200
                assert "<div>imdb-tui</div>" in await page.text()
            # the page's cookie now carries the token: its WebSocket comes in
            async with Tab(session, base) as tab:
                await tab.wait_for(r"stored +300\b")
            for origin in ("http://elsewhere.example", None):
                headers = {} if origin is None else {"Origin": origin}
                with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                    await session.ws_connect(f"{base}/ws", headers=headers)
                assert refused.value.status == 403, origin
            async with session.get(f"{base}/download/any") as download:
                # textual-serve's downloads are off: no such route, not "no such download"
                assert (download.status, await download.text()) == (404, "404: Not Found")
        served.stop()


async def test_a_token_given_is_never_printed(tmp_path: Path) -> None:
    db = a_database(tmp_path)
    secret = "given-token-4711-given-token"
    env = {"IMDB_TUI_TOKEN": secret}
    with serving("--attach", "--db", str(db), "--host", "0.0.0.0", env=env) as served:
        assert served.url.endswith("/?token=<token>")
        async with browser_session() as session:
            async with session.get(f"{served.base}/?token={secret}") as page:
                assert page.status == 200
            async with Tab(session, served.base) as tab:
                await tab.wait_for(r"stored +300\b")
        output = served.stop()
    assert secret not in output


async def test_on_loopback_other_sites_are_refused(tmp_path: Path) -> None:
    """Without a token, only loopback names are served: a page of another site whose
    name resolves to 127.0.0.1 (DNS rebinding) is refused, as is its WebSocket."""
    db = a_database(tmp_path)
    with serving("--attach", "--db", str(db)) as served:
        base = served.base
        async with browser_session() as session:
            async with session.get(base + "/") as page:
                assert page.status == 200
            async with session.get(base + "/", headers={"Host": "rebound.example"}) as page:
                assert page.status == 403
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(f"{base}/ws", headers={"Origin": "http://rebound.example"})
            assert refused.value.status == 403
        served.stop()


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--attach", "--rate", "5"], "--attach starts no pipeline: --rate"),
        (["--db", ":memory:"], "serve needs a database its viewers can open"),
        (["--attach", "--db", "/nonexistent/e.db"], "/nonexistent/e.db"),
    ],
)
def test_what_cannot_be_served_is_one_line(args: list[str], said: str) -> None:
    result = imdb_tui("serve", "--port", "0", *args)
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1 and said in result.stderr, result.stderr


def test_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    db = a_database(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = imdb_tui("serve", "--attach", "--db", str(db), "--port", str(port))
    assert result.returncode == 2
    assert result.stderr.strip().startswith(f"imdb-tui: cannot listen on 127.0.0.1:{port}:")


CHROMIUM_FLAGS = [
    "--no-sandbox",  # as root
    "--disable-gpu",
    # no connections but to the page: this machine's network is closed
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
BORDER = (1, 120, 212)
"""The panels' borders and the titles' colour, as the monitor draws them."""
TITLE = (254, 166, 43)
COLOURS = """canvas => {
    const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    const counts = {};
    for (let i = 0; i < pixels.length; i += 4) {
        if (pixels[i + 3] < 200) continue;
        const colour = pixels[i] + "," + pixels[i + 1] + "," + pixels[i + 2];
        counts[colour] = (counts[colour] || 0) + 1;
    }
    return counts;
}"""


async def test_chromium_opens_the_page_and_draws_the_monitor(tmp_path: Path) -> None:
    """Debian's chromium, headless, driven by Playwright: the page connects, the
    terminal draws the monitor on its canvas, and a screenshot is taken."""
    executable = shutil.which("chromium")
    if executable is None:
        unavailable("no chromium: apt-get install chromium", "the browser test")
    from playwright.async_api import WebSocket, async_playwright

    db = tmp_path / "events.db"
    shot = tmp_path / "serve.png"
    with serving("--db", str(db), "--rate", "300", "--seed", "5") as served:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=executable, args=CHROMIUM_FLAGS
            )
            try:
                page = await browser.new_page(viewport={"width": 1200, "height": 800})
                terminals: list[pyte.Screen] = []

                def connected(websocket: WebSocket) -> None:
                    size = re.search(r"width=(\d+)&height=(\d+)", websocket.url)
                    assert size is not None, websocket.url
                    screen = pyte.Screen(int(size[1]), int(size[2]))
                    stream = pyte.ByteStream(screen)
                    terminals.append(screen)
                    websocket.on(
                        "framereceived",
                        lambda data: stream.feed(data) if isinstance(data, bytes) else None,
                    )

                requested: list[str] = []
                page.on("request", lambda request: requested.append(request.url))
                page.on("websocket", connected)
                await page.goto(served.url)
                assert await page.title() == "imdb-tui"
                canvas = page.locator("canvas.xterm-text-layer")
                deadline = time.monotonic() + 60
                while True:  # until the monitor is drawn, in its colours
                    colours = await canvas.evaluate(COLOURS)
                    drawn = {c: colours.get(",".join(map(str, c)), 0) for c in (BORDER, TITLE)}
                    text = "\n".join(terminals[0].display) if terminals else ""
                    if min(drawn.values()) > 1_000 and re.search(r"stored +[1-9]", text):
                        break
                    assert time.monotonic() < deadline, (drawn, text)
                    await page.wait_for_timeout(200)
                assert "Active users" in text and "Top movies today" in text
                await page.screenshot(path=shot)
                own = served.base + "/"
                assert requested and all(url.startswith(own) for url in requested), requested
            finally:
                await browser.close()
        served.wait_for(r"viewers: 1")
        served.wait_for(r"viewers: 0")  # the tab closed with the browser
        served.stop()
    assert shot.stat().st_size > 10_000


@pytest.mark.parametrize(
    ("args", "env"),
    [(["--token", ""], {}), (["--token", "   "], {}), (["--token-file", "EMPTY"], {})],
    ids=["empty", "blank", "empty file"],
)
def test_an_empty_token_is_refused(tmp_path: Path, args: list[str], env: dict[str, str]) -> None:
    """`--token "$TOKEN"` with the variable unset must not serve without a token."""
    (tmp_path / "EMPTY").write_text("\n")
    args = [str(tmp_path / a) if a == "EMPTY" else a for a in args]
    result = imdb_tui(
        "serve", "--host", "0.0.0.0", "--port", "0", "--db", str(tmp_path / "x.db"), *args
    )
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1 and "empty" in result.stderr, result.stderr
    assert not (tmp_path / "x.db").exists()


def test_whether_the_token_is_needed_goes_by_the_peer_never_the_host_header() -> None:
    from aiohttp.test_utils import make_mocked_request

    from imdb_tui.serve import Door

    def asking(peer: str, host: str, token: str | None = None) -> str | None:
        transport = unittest.mock.Mock()
        transport.get_extra_info.side_effect = lambda name, default=None: (
            (peer, 40000) if name == "peername" else default
        )
        query = "" if token is None else f"?token={token}"
        request = make_mocked_request(
            "GET", f"/{query}", headers={"Host": host}, transport=transport
        )
        return door.refusal(request)

    door = Door.for_host("127.0.0.1", 8000, None)
    assert asking("127.0.0.1", "localhost:8000") is None
    assert asking("10.1.2.3", "localhost:8000") == "a token is needed from another machine"
    assert asking("127.0.0.1", "rebound.example:8000") == "unknown Host"
    door = Door.for_host("0.0.0.0", 8000, None)
    assert door.token is not None  # off loopback, one is always made
    for peer in ("10.1.2.3", "127.0.0.1"):
        assert asking(peer, "localhost:8000") is not None  # no Host header lets one in
        assert asking(peer, "localhost:8000", door.token) is None


async def test_the_token_can_come_from_a_file_and_stays_out_of_ps(tmp_path: Path) -> None:
    db = a_database(tmp_path)
    secret = "kept-in-a-file-4711-kept-in-a-file"
    (tmp_path / "token").write_text(secret + "\n")
    with serving(
        "--attach", "--db", str(db), "--host", "0.0.0.0", "--token-file", str(tmp_path / "token")
    ) as served:
        assert served.url.endswith("/?token=<token>")
        command_line = Path(f"/proc/{served.process.pid}/cmdline").read_bytes()
        assert secret.encode() not in command_line
        async with browser_session() as session:
            async with session.get(f"{served.base}/") as refused:
                assert refused.status == 403
            async with session.get(f"{served.base}/?token={secret}") as page:
                assert page.status == 200
        output = served.stop()
    assert secret not in output


async def test_the_page_asks_no_other_host_and_sends_no_referrer(tmp_path: Path) -> None:
    db = a_database(tmp_path)
    with serving("--attach", "--db", str(db)) as served:
        async with browser_session() as session, session.get(served.base + "/") as page:
            assert page.headers["Referrer-Policy"] == "no-referrer"
            text = await page.text()
        served.stop()
    fetched = re.findall(r"(?:src|href)=\"([^\"]+)\"", text)  # what the page loads
    assert fetched and all(url.startswith(served.base + "/") for url in fetched), fetched
    assert "googleapis" not in text


async def test_viewers_are_capped_in_number_and_size(tmp_path: Path) -> None:
    db = a_database(tmp_path)
    with serving("--attach", "--db", str(db), "--max-viewers", "2") as served:
        async with browser_session() as session:
            # A tab asking for a screen far too big is drawn at 400 x 150 at most.
            async with Tab(session, served.base, 450, 160) as big, Tab(session, served.base):
                # (on a thread: the tabs go on reading, and answering the server's pings)
                await asyncio.to_thread(served.wait_for, r"viewers: 2")
                async with session.get(served.base + "/") as full:
                    assert full.status == 503, served.output()
                    assert "2 viewers are open" in await full.text()
                with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                    await session.ws_connect(f"{served.base}/ws", headers={"Origin": served.base})
                assert refused.value.status == 503
                await big.wait_for(r"stored +300\b")
                await big.wait_for(r"Quit")
                drawn = [n for n, line in enumerate(big.screen.display) if line.strip()]
                assert max(drawn) == 149, big.text()
                assert max(len(line.rstrip()) for line in big.screen.display) == 400
            served.wait_for(r"viewers: 0")
            async with session.get(served.base + "/") as page:
                assert page.status == 200  # room again
        served.stop()


async def test_a_malformed_message_is_one_log_line_and_the_viewer_goes_on(
    tmp_path: Path,
) -> None:
    db = a_database(tmp_path)
    before = set(Path.cwd().iterdir())
    with serving("--attach", "--db", str(db)) as served:
        async with browser_session() as session, Tab(session, served.base) as tab:
            await tab.wait_for(r"stored +300\b")
            for junk in ("not json", "[]", '["resize", {"width": "wide"}]', '{"a": 1}'):
                await tab.websocket.send_str(junk)
            await tab.websocket.send_str('["resize", {"width": 100, "height": 30}]')
            # The palette of a served viewer has no command that writes a file.
            await tab.websocket.send_str('["stdin", "\\u0010"]')  # ctrl+p
            await tab.wait_for(r"Search for commands")
            await tab.websocket.send_str('["stdin", "screensh"]')
            await asyncio.sleep(0)
            await tab.wait_for(r"No matches found")
            await tab.websocket.send_str('["stdin", "\\u001b"]')
            await tab.wait_for(r"stored +300\b")
        output = served.stop()
    dropped = [line for line in output.splitlines() if "dropped a malformed message" in line]
    assert len(dropped) == 4, output
    assert "Traceback" not in output
    assert set(Path.cwd().iterdir()) == before
