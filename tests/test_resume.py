"""Resumable inputs, as a user meets them: `imdb-tui run --source FILE` stopped (Ctrl-C,
or kill -9) and run again with the same command carries on where it was."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import query
from tests.test_cli import COMMAND, imdb_tui

BATCH = 16_384  # PipelineSettings.batch_size: at most this many may be in flight


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """300,000 produced events, one a line."""
    path = tmp_path_factory.mktemp("big") / "big.jsonl"
    with path.open("w") as out:
        subprocess.run(
            [COMMAND, "produce", "--count", "300000", "--seed", "5"],
            stdout=out,
            check=True,
            timeout=120,
        )
    return path


def stored(db: Path) -> int:
    """Events committed so far, read as another program would (0 before the schema)."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as connection:
            return int(connection.execute("SELECT count(*) FROM events").fetchone()[0])
    except sqlite3.Error:
        return 0


def stopped_part_way(db: Path, source: Path, stop: Callable[[subprocess.Popen[str]], None]) -> str:
    """Start `run --source FILE` at a rate that takes ~6 s, stop it once some of it is
    stored, and return what it printed."""
    process = subprocess.Popen(
        [COMMAND, "run", "--source", str(source), "--db", str(db), "--rate", "50000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while stored(db) < 20_000:
            assert process.poll() is None, process.communicate()[0]
            assert time.monotonic() < deadline, "nothing was stored"
            time.sleep(0.05)
        stop(process)
        out, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert stored(db) < 300_000, "the run finished before it could be stopped"
    return out


def done(out: str) -> tuple[int, int]:
    match = re.search(r"done: ([\d,]+) events? stored, ([\d,]+) duplicates?", out)
    assert match, out
    return int(match[1].replace(",", "")), int(match[2].replace(",", ""))


def kill_9(process: subprocess.Popen[str]) -> None:
    os.killpg(process.pid, signal.SIGKILL)  # the writer child goes with it


def ctrl_c(process: subprocess.Popen[str]) -> None:
    os.killpg(process.pid, signal.SIGINT)  # as the terminal sends it, to the group


@pytest.mark.parametrize("stop", [kill_9, ctrl_c], ids=["kill -9", "Ctrl-C"])
def test_a_stopped_run_carries_on_where_it_was(
    tmp_path: Path, big: Path, stop: Callable[[subprocess.Popen[str]], None]
) -> None:
    db = tmp_path / "events.db"
    stopped_part_way(db, big, stop)
    before = stored(db)
    again = imdb_tui("run", "--source", str(big), "--db", str(db), timeout=120)
    assert again.returncode == 0, again.stderr
    resumed = re.search(
        r"resumed: .*big\.jsonl from line ([\d,]+) \(byte ([\d,]+)\).* ([\d,]+) records read",
        again.stdout,
    )
    assert resumed, again.stdout
    line, byte, read = (int(resumed[k].replace(",", "")) for k in (1, 2, 3))
    assert big.read_bytes()[:byte].count(b"\n") == line - 1  # the line where it goes on
    new, duplicates = done(again.stdout)
    assert duplicates <= BATCH, again.stdout  # at most the batch in flight, not the file
    assert read == new + duplicates < 300_000, again.stdout  # only the remainder was read
    assert query(db, "SELECT count(*), count(DISTINCT event_id) FROM events") == [
        (300_000, 300_000)
    ]
    assert new == 300_000 - before
    report = json.loads(imdb_tui("report", "--db", str(db), "--json").stdout)
    (source,) = report["sources"]
    assert source["source"] == f"file:{big.resolve()}"
    assert source["position"]["offset"] == big.stat().st_size
    assert source["position"]["line"] == 300_000


def test_the_same_file_again_reads_nothing_and_from_start_reads_it_all(tmp_path: Path) -> None:
    db, path = tmp_path / "events.db", tmp_path / "e.jsonl"
    path.write_text(imdb_tui("produce", "--count", "500", "--seed", "2").stdout)
    first = imdb_tui("run", "--source", str(path), "--db", str(db))
    assert done(first.stdout) == (500, 0) and "resumed" not in first.stdout
    again = imdb_tui("run", "--source", str(path), "--db", str(db))
    assert done(again.stdout) == (0, 0) and "0 records read since" in again.stdout
    with path.open("a") as grown:  # appended to: only the new lines are read
        grown.write(imdb_tui("produce", "--count", "20", "--seed", "9").stdout)
    assert done(imdb_tui("run", "--source", str(path), "--db", str(db)).stdout) == (20, 0)
    everything = imdb_tui("run", "--source", str(path), "--db", str(db), "--from-start")
    assert done(everything.stdout) == (0, 520) and "resumed" not in everything.stdout


def test_a_replaced_or_truncated_file_is_read_from_its_start(tmp_path: Path) -> None:
    db, path = tmp_path / "events.db", tmp_path / "e.jsonl"
    original = imdb_tui("produce", "--count", "300", "--seed", "2").stdout
    path.write_text(original)
    assert done(imdb_tui("run", "--source", str(path), "--db", str(db)).stdout) == (300, 0)
    # Replaced by a shorter file of other events: all of it is new.
    path.write_text(imdb_tui("produce", "--count", "50", "--seed", "8").stdout)
    replaced = imdb_tui("run", "--source", str(path), "--db", str(db))
    assert done(replaced.stdout) == (50, 0) and "resumed" not in replaced.stdout
    # The first file, cut short: its first line is not the stored position's.
    path.write_text("".join(original.splitlines(True)[:40]))
    assert done(imdb_tui("run", "--source", str(path), "--db", str(db)).stdout) == (0, 40)
    # Cut again (the same first line as the stored position's, the file shorter than
    # its offset): read from the start, not from past its end.
    path.write_text("".join(original.splitlines(True)[:20]))
    assert done(imdb_tui("run", "--source", str(path), "--db", str(db)).stdout) == (0, 20)
    assert query(db, "SELECT count(*) FROM events") == [(350,)]


def test_gzip_files_resume_too(tmp_path: Path) -> None:
    import gzip

    db, path = tmp_path / "events.db", tmp_path / "e.jsonl.gz"
    first = imdb_tui("produce", "--count", "200", "--seed", "4").stdout
    more = imdb_tui("produce", "--count", "30", "--seed", "6").stdout
    path.write_bytes(gzip.compress(first.encode()))
    assert done(imdb_tui("run", "--source", str(path), "--db", str(db)).stdout) == (200, 0)
    path.write_bytes(gzip.compress((first + more).encode()))  # rewritten, longer
    again = imdb_tui("run", "--source", str(path), "--db", str(db))
    assert done(again.stdout) == (30, 0) and "resumed" in again.stdout


def test_a_followed_file_says_at_once_that_it_resumes(tmp_path: Path) -> None:
    """`run --follow` runs until stopped: where it resumed from is said as it starts,
    not only in the summary after Ctrl-C."""
    db, path = tmp_path / "events.db", tmp_path / "e.jsonl"
    path.write_text(imdb_tui("produce", "--count", "100", "--seed", "2").stdout)
    assert done(imdb_tui("run", "--source", str(path), "--db", str(db)).stdout) == (100, 0)
    process = subprocess.Popen(
        [COMMAND, "run", "--source", str(path), "--db", str(db), "--follow"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        seen = []
        for line in process.stdout:  # status lines come each second: never waits long
            seen.append(line)
            if line.startswith("resuming: "):
                break
        said = seen[-1]
        assert "e.jsonl from line 101 (byte" in said and "--from-start reads it all" in said, seen
        process.send_signal(signal.SIGINT)
        rest = process.communicate(timeout=60)[0]
    finally:
        process.kill()
    assert done(rest) == (0, 0)
