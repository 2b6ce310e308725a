"""`imdb-tui produce`: reproducible test data, and a catalogue to name its movies."""

from __future__ import annotations

import gzip
import hashlib
import json
import select
import signal
import subprocess
from pathlib import Path

from tests.test_cli import COMMAND, imdb_tui

START = "2026-11-20T00:00:00Z"


def produce(*args: str) -> str:
    result = imdb_tui("produce", *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_same_seed_and_start_give_the_same_file_byte_for_byte() -> None:
    first = produce("--count", "2000", "--seed", "3", "--start", START)
    again = produce("--count", "2000", "--seed", "3", "--start", START)
    assert hashlib.sha256(first.encode()).digest() == hashlib.sha256(again.encode()).digest()
    assert first.startswith(produce("--count", "700", "--seed", "3", "--start", START))
    assert first != produce("--count", "2000", "--seed", "4", "--start", START)
    events = [json.loads(line) for line in first.splitlines()]
    assert len({e["event_id"] for e in events}) == 2000
    assert events[0]["event_time"] == "2026-11-20T00:00:00.000Z"
    assert events[1]["event_time"] == "2026-11-20T00:00:00.005Z"  # 200 a second for max
    assert events[-1]["event_time"] == "2026-11-20T00:00:09.995Z"
    paced = produce("--count", "3", "--seed", "3", "--start", START, "--rate", "1000")
    assert [json.loads(line)["event_time"][-7:] for line in paced.splitlines()] == [
        "00.000Z",
        "00.001Z",
        "00.002Z",
    ]


def test_without_start_the_count_only_cuts_the_sequence() -> None:
    fewer = [json.loads(line) for line in produce("--count", "1500", "--seed", "5").splitlines()]
    more = [json.loads(line) for line in produce("--count", "2500", "--seed", "5").splitlines()]
    same = ("user_id", "movie_id", "event_type")  # times and ids follow the clock
    assert [[e[k] for k in same] for e in fewer] == [[e[k] for k in same] for e in more[:1500]]


def test_the_catalogue_written_beside_the_events_names_their_movies(tmp_path: Path) -> None:
    titles = tmp_path / "titles.tsv.gz"
    events = tmp_path / "events.jsonl"
    events.write_text(produce("--count", "500", "--seed", "2", "--catalog-out", str(titles)))
    header, first = gzip.decompress(titles.read_bytes()).decode().splitlines()[:2]
    assert header.split("\t")[:3] == ["tconst", "titleType", "primaryTitle"]
    assert first.split("\t")[1] == "movie"
    db = str(tmp_path / "x.db")
    run = imdb_tui("run", "--source", str(events), "--catalog", str(titles), "--db", db)
    assert run.returncode == 0, run.stderr
    report = json.loads(imdb_tui("report", "--db", db, "--json").stdout)
    assert report["top_movies"]
    for movie in report["top_movies"]:
        assert movie["title"] != movie["movie_id"]  # a name, not a bare tt id


def test_a_bad_start_is_one_line() -> None:
    result = imdb_tui("produce", "--start", "yesterday", "--count", "1")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "2026-11-20T00:00:00Z" in result.stderr


def test_sigterm_stops_a_live_produce_between_lines_and_says_how_many() -> None:
    """A producer feeding a pipe, stopped (a service manager's SIGTERM, or Ctrl-C):
    every line it wrote is whole, and it says how many it sent."""
    process = subprocess.Popen(
        [COMMAND, "produce", "--rate", "2000", "--seed", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = [process.stdout.readline() for _ in range(100)]  # producing: handlers set
        process.send_signal(signal.SIGTERM)
        # Through the same file objects: readline may have read ahead of its lines,
        # which communicate (reading the descriptors) would not see.
        out = "".join(first) + process.stdout.read()
        assert process.stderr is not None
        err = process.stderr.read()
        process.wait(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 128 + signal.SIGTERM
    lines = out.splitlines()
    assert all(json.loads(line)["event_id"] for line in lines)  # none cut in two
    assert err == f"imdb-tui: stopped by SIGTERM after {len(lines):,} events\n"


def test_a_signal_while_a_write_waits_on_a_full_pipe_loses_no_line() -> None:
    """Ctrl-C on `produce | slow-reader`: the signal comes while produce waits for the
    reader to make room in the pipe. Every line it says it sent arrives whole."""
    process = subprocess.Popen(
        [COMMAND, "produce", "--rate", "max", "--seed", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        head = process.stdout.read1(1)  # producing: its handlers are set
        wchan = Path(f"/proc/{process.pid}/wchan")
        for _ in range(6000):  # nothing read: the pipe fills up, and its write waits
            if "pipe_write" in wchan.read_text():  # (anon_pipe_write on newer kernels)
                break
            select.select([], [], [], 0.01)
        else:
            raise AssertionError(f"produce never waited on the full pipe: {wchan.read_text()}")
        process.send_signal(signal.SIGINT)
        out = head + process.stdout.read()
        err = process.stderr.read().decode()
        process.wait(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 128 + signal.SIGINT
    assert out.endswith(b"\n")
    lines = out.splitlines()
    assert all(json.loads(line)["event_id"] for line in lines)  # none cut in two
    assert err == f"imdb-tui: stopped by SIGINT after {len(lines):,} events\n"


def test_a_reader_that_has_enough_ends_produce_quietly() -> None:
    """`produce | head -1`: the reader closes the pipe; produce ends with status 0
    and says nothing, live or stamped."""
    for extra in ((), ("--start", START)):
        process = subprocess.Popen(
            [COMMAND, "produce", "--seed", "3", *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert process.stdout is not None and process.stderr is not None
        assert json.loads(process.stdout.readline())["event_id"]
        process.stdout.close()
        assert process.wait(timeout=60) == 0, extra
        assert process.stderr.read() == b""
