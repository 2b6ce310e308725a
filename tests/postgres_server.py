"""A throwaway PostgreSQL server for the tests, from the installed binaries.

initdb and pg_ctl make and start a cluster in a temporary folder, listening on a
free port on 127.0.0.1 only, with trust authentication (and as the `postgres`
user when the tests run as root, which PostgreSQL refuses to run as). It is
stopped when the test session ends, however it ends. IMDB_TUI_TEST_POSTGRES (a
URL) names a server to use instead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from glob import glob
from pathlib import Path

import pytest

GIVEN = "IMDB_TUI_TEST_POSTGRES"
DATABASE = "imdb_tui_test"


def _binaries() -> Path | None:
    """The folder holding initdb and pg_ctl: Debian keeps them off the PATH, in
    /usr/lib/postgresql/VERSION/bin (the newest is taken); elsewhere, the PATH's."""
    folders = sorted(glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    found = shutil.which("pg_ctl")
    candidates = [Path(f) for f in reversed(folders)]
    if found:
        candidates.append(Path(found).resolve().parent)
    for folder in candidates:
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def unavailable(reason: str, tests: str = "the PostgreSQL tests") -> None:
    """Skip, except under CI, where the tests that need a service must run."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run {tests}: {reason}")
    pytest.skip(reason)


class Server:
    """A cluster in `folder`, run by `user` (None: whoever runs the tests)."""

    def __init__(self, folder: Path, bin_dir: Path, user: str | None) -> None:
        self.folder = folder
        self.data = folder / "data"
        self.bin = bin_dir
        self.user = user
        self.port = free_port()

    def _run(self, *command: str) -> None:
        prefix = ["runuser", "-u", self.user, "--"] if self.user else []
        subprocess.run(
            [*prefix, *command],
            check=True,
            capture_output=True,
            cwd=self.folder,
            timeout=120,
        )

    def start(self) -> None:
        self._run(
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
        )
        self.resume()

    def resume(self) -> None:
        """Start (or start again) the cluster, waiting until it takes connections."""
        options = f"-h 127.0.0.1 -p {self.port} -k {self.folder} -c fsync=off"
        log = str(self.folder / "server.log")
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", log, "-w", "start"
        )

    def reload(self) -> None:
        """Read pg_hba.conf and the settings again."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "reload")

    def stop(self, mode: str = "fast") -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def url(self, database: str = DATABASE) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"


@contextlib.contextmanager
def throwaway_server() -> Iterator[Server]:
    """A started server with an empty test database; stopped and removed after."""
    bin_dir = _binaries()
    if bin_dir is None:
        unavailable("no PostgreSQL server binaries (initdb, pg_ctl): apt-get install postgresql")
        raise AssertionError  # unreachable: skip and fail raise
    user = None
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            unavailable("running as root, and no runuser to start PostgreSQL as postgres")
        user = "postgres"
    folder = Path(tempfile.mkdtemp(prefix="imdb-tui-pg-"))
    if user:
        shutil.chown(folder, user)
    server = Server(folder, bin_dir, user)
    try:
        server.start()
        import psycopg

        with psycopg.connect(server.url("postgres"), autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {DATABASE}")
        yield server
    finally:
        server.stop("immediate")
        shutil.rmtree(folder, ignore_errors=True)
