"""`imdb-tui watch` in a real terminal, beside a `run` in another process."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.terminal import STORED, Terminal, stored_in, terminal
from tests.test_cli import COMMAND, imdb_tui


def data_version_and_rows(db: Path) -> tuple[int, list[tuple[object, ...]]]:
    with contextlib.closing(sqlite3.connect(db)) as connection:
        version = connection.execute("PRAGMA data_version").fetchone()[0]
        rows = connection.execute(
            "SELECT (SELECT count(*) FROM events), (SELECT sum(value) FROM counters),"
            " (SELECT group_concat(id || state || last_seen) FROM pipelines)"
        ).fetchall()
    return version, rows


def stored_on(screen: Terminal) -> int:
    return stored_in(screen.wait_for(STORED)[0])


def test_watch_follows_a_run_in_another_process_and_changes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    assert imdb_tui("run", "--db", str(db), "--count", "100", "--rate", "max").returncode == 0
    with terminal(["watch", "--db", str(db)]) as watching:
        watching.wait_for("no pipeline writing")
        watching.wait_for(r"last seen +[0-9:]{8}")
        watching.wait_for("WATCHING · NO PIPELINE WRITING")
        assert "Pause" not in watching.text()  # no pipeline keys in the footer
        run = subprocess.Popen(
            [COMMAND, "run", "--db", str(db), "--rate", "2000"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            watching.wait_for("WATCHING · RUNNING")  # a writer that starts later is seen
            first = stored_on(watching)
            watching.until(lambda: stored_in(watching.text()) > first, f"stored stays {first}")
            assert "no pipeline writing" not in watching.text()
        finally:
            run.terminate()  # a clean stop marks its row stopped
            assert run.wait(timeout=60) == 0
        with contextlib.closing(sqlite3.connect(db)) as connection:
            states = connection.execute("SELECT state FROM pipelines").fetchall()
        assert ("stopped",) in states  # said at once, not left to go stale
        watching.wait_for("no pipeline writing")
        before = data_version_and_rows(db)
        watching.press(b"w")  # the view keys still work: a refresh at the new window
        watching.wait_for("active in the last 15 min")
        watching.press(b"q")
        assert watching.exit_status() == 0
    assert data_version_and_rows(db) == before  # watching wrote nothing


@pytest.mark.parametrize("content", [None, b"", b"not a database at all\n" * 100])
def test_watch_on_a_missing_or_foreign_file_is_one_line(
    tmp_path: Path, content: bytes | None
) -> None:
    db = tmp_path / "x.db"
    if content is not None:
        db.write_bytes(content)
    with terminal(["watch", "--db", str(db)]) as watching:
        status = watching.exit_status()
        message = watching.wait_for(r"imdb-tui: .+")[0].strip()
    assert status == 2
    expected = "no database at" if content is None else "is empty: no imdb-tui run"
    if content:
        expected = "is not an imdb-tui database"
    assert expected in message or "is not an SQLite database" in message
    assert db.exists() == (content is not None)
