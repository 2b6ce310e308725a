"""The `imdb-tui` command, run as a user runs it: a subprocess."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import random
import re
import select
import signal
import sqlite3
import struct
import subprocess
import sys
import termios
import time
from datetime import date, timedelta
from pathlib import Path
from typing import BinaryIO
from zoneinfo import ZoneInfo

import pytest

from imdb_tui.clock import local_day, utc_iso
from imdb_tui.events import seconds
from tests.helpers import query

COMMAND = str(Path(sys.executable).with_name("imdb-tui"))


def imdb_tui(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    kwargs.setdefault("timeout", 60)
    return subprocess.run(
        [COMMAND, *args],
        capture_output=True,
        text=True,
        **kwargs,  # type: ignore[call-overload]
    )


def test_help_explains_the_commands_and_the_default_database() -> None:
    result = imdb_tui("--help")
    assert result.returncode == 0
    assert "run" in result.stdout and "report" in result.stdout
    assert "Default database:" in result.stdout and "events.db" in result.stdout
    run_help = imdb_tui("run", "--help").stdout
    for option in ("--rate", "--duration", "--count", "--seed", "--db", "--window", "--retention"):
        assert option in run_help
    assert "events.db" in run_help
    # Only the commands that write make the PostgreSQL schema.
    for command in ("run", "monitor", "watch", "report", "export"):
        made = "(created if missing)" in " ".join(imdb_tui(command, "--help").stdout.split())
        assert made == (command in ("run", "monitor")), command


def test_help_never_cuts_a_word_at_its_hyphen() -> None:
    """The default database's path and imdb-tui's name stay whole at any width (click
    broke them as 'imdb-' and 'tui/events.db')."""
    for columns in ("60", "80", "100"):
        env = {**os.environ, "COLUMNS": columns}
        for command in ([], ["run"], ["report"]):
            shown = imdb_tui(*command, "--help", env=env).stdout
            assert not [line for line in shown.splitlines() if line.endswith("imdb-")], shown


def test_version() -> None:
    result = imdb_tui("--version")
    assert result.returncode == 0 and "imdb-tui" in result.stdout


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["run", "--bogus"], "No such option"),
        (["run", "--rate", "fast"], "'fast' is not a number of events per second or 'max'"),
        (["run", "--rate", "0"], "'0' is outside 1 to 1,000,000 events per second"),
        (["run", "--retention", "soon"], "soon"),
        (["report", "--window", "0"], "'0' is outside 1 to 1,440 minutes"),
        (["run", "--count", "1.5"], "'1.5' is not a whole number of events"),
        (["run", "--count", "abc"], "'abc' is not a whole number of events"),
        (["run", "--count", "0"], "'0' is less than 1"),
        (["run", "--users", "1e9"], "'1e9' is outside 1 to 10,000,000 users"),
        (["run", "--replay-speed", "fast"], "'fast' is not a number of times the pace"),
        (["--refresh", "9"], "'9' is outside 0.25 to 5 seconds"),
        (["report", "--limit", "x"], "'x' is not a whole number of dead letters"),
        (["run", "--seed", "x"], "'x' is not a whole number"),
        (["run", "--max-size", "huge"], "'huge' is not a size like 500MB or 2GB"),
        (["run", "--max-size", "10kB"], "'10kB' is less than 1MB"),
        (["nonsense"], "No such command"),
    ],
)
def test_bad_options_give_one_line_and_status_2(args: list[str], says: str, tmp_path: Path) -> None:
    result = imdb_tui(*args, "--db", str(tmp_path / "x.db"))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("imdb-tui: ")
    assert says in result.stderr
    for click_words in ("valid float", "valid integer", "in the range", "x>="):
        assert click_words not in result.stderr
    assert "Traceback" not in result.stderr


def test_count_takes_whole_numbers_in_any_spelling(tmp_path: Path) -> None:
    for count, stored in (("1e3", "1,000"), ("1_500", "1,500"), ("2,000", "2,000")):
        result = imdb_tui("run", "--count", count, "--rate", "max", "--db", str(tmp_path / "x.db"))
        assert f"done: {stored} events stored" in result.stdout


def test_a_db_in_a_folder_that_is_missing_or_not_a_folder_is_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "x.db"
    result = imdb_tui("run", "--count", "1", "--db", str(missing))
    assert result.returncode == 2
    assert (
        result.stderr == f"imdb-tui: cannot create {missing}: there is no folder {missing.parent}\n"
    )
    assert not (tmp_path / "no").exists()  # nothing created on the way
    (tmp_path / "notes.txt").write_text("x")
    inside_a_file = tmp_path / "notes.txt" / "x.db"
    result = imdb_tui("run", "--count", "1", "--db", str(inside_a_file))
    assert result.returncode == 2
    assert (
        result.stderr
        == f"imdb-tui: cannot create {inside_a_file}: {tmp_path / 'notes.txt'} is not a folder\n"
    )


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a database\n" * 200)
    for args in (["run", "--count", "10"], ["report"]):
        result = imdb_tui(*args, "--db", str(notes))
        assert result.returncode == 2
        assert result.stderr.strip() == f"imdb-tui: {notes} is not an SQLite database"
    assert notes.read_text() == "not a database\n" * 200


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_a_database_that_cannot_be_written_is_refused(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    result = imdb_tui("run", "--count", "10", "--db", str(locked / "events.db"))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1


def test_a_sqlite_uri_is_refused_not_taken_for_a_path(tmp_path: Path) -> None:
    result = imdb_tui("run", "--count", "10", "--db", "file:events.db?mode=ro", cwd=tmp_path)
    assert result.returncode == 2
    assert "a file path, not an SQLite URI" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_report_on_a_missing_database(tmp_path: Path) -> None:
    result = imdb_tui("report", "--db", str(tmp_path / "none.db"))
    assert result.returncode == 2
    assert "no database at" in result.stderr
    assert not (tmp_path / "none.db").exists()


def test_run_count_then_report(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    result = imdb_tui("run", "--count", "5000", "--rate", "max", "--seed", "3", "--db", str(db))
    assert result.returncode == 0, result.stderr
    assert f"database: {db}" in result.stdout
    assert "done: 5,000 events stored, 0 duplicates, 0 dead letters" in result.stdout
    assert query(db, "SELECT count(*) FROM events") == [(5000,)]
    assert query(db, "PRAGMA integrity_check") == [("ok",)]
    # Both reports read at the newest event's time: the same moment, whatever the clock
    # says between them (trending's movement is measured at five-minute marks).
    report = imdb_tui("report", "--db", str(db), "--json", "--as-of", "latest")
    assert report.returncode == 0
    data = json.loads(report.stdout)
    assert data["events_total"] == data["events_today"] == 5000
    assert sum(data["by_type"].values()) == 5000
    assert data["top_movies"] and data["duplicates"] == data["dead_letters"] == 0
    # Every view is recent, and no hour before: trending ranks the views of the run
    # (new, unless the run went past a five-minute mark: then its rank at the mark).
    top = data["top_movies"][0]
    movement = data["trending"][0].pop("movement")
    assert data["trending"][0] == {
        "movie_id": top["movie_id"],
        "title": top["title"],
        "views_recent": top["views"],
        "views_before": 0,
        "change": top["views"],
    }
    text = imdb_tui("report", "--db", str(db), "--as-of", "latest")
    assert "5,000 stored in all" in text.stdout and "top movies today" in text.stdout
    ratings = data["ratings"]
    assert f"ratings today {ratings['count']:,}, average {ratings['average']:.2f}" in text.stdout
    lines = text.stdout.splitlines()
    heading = lines.index("trending: views in the last 15 min against the hour before")
    assert lines[heading + 1].split() == ["15", "min", "before", "change"]  # the columns
    first = lines[heading + 2]
    shown = "new" if movement is None else "=" if movement == 0 else f"▲{movement}"  # first: up
    assert first.split()[:2] == ["1", shown] and top["title"] in first
    assert first.split()[-3:] == [f"{top['views']:,}", "0", f"+{top['views']:,}"]
    # The top movie's own day, as its screen in the monitor shows it.
    movie = json.loads(
        imdb_tui("report", "--db", str(db), "--movie", top["movie_id"], "--json").stdout
    )
    assert movie["title"] == top["title"] and movie["views"] == top["views"]
    assert sum(m["views"] for m in movie["per_minute"]) == top["views"]  # all this last hour
    with sqlite3.connect(db) as connection:
        (users,) = connection.execute(
            "SELECT count(DISTINCT user_id) FROM events WHERE movie_id = ?", (top["movie_id"],)
        ).fetchone()
    assert movie["users"] == users and movie["avg_rating"] == top["avg_rating"]
    text = imdb_tui("report", "--db", str(db), "--movie", top["movie_id"]).stdout
    assert f"views         {top['views']:,}" in text and f"users         {users:,}" in text
    unknown = imdb_tui("report", "--db", str(db), "--movie", "tt9999999")
    assert unknown.returncode == 2 and unknown.stderr.startswith(
        "imdb-tui: no movie tt9999999 today: the catalogue does not know it"
    )


def test_memory_database(tmp_path: Path) -> None:
    result = imdb_tui("run", "--count", "1000", "--rate", "max", "--db", ":memory:", cwd=tmp_path)
    assert result.returncode == 0
    assert "done: 1,000 events stored" in result.stdout
    assert list(tmp_path.iterdir()) == []


def test_duration_prints_a_status_line_a_second(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    result = imdb_tui("run", "--duration", "2.5", "--rate", "500", "--db", str(db))
    assert result.returncode == 0
    status = [line for line in result.stdout.splitlines() if " lag " in line]
    assert status  # one a second: how many fit in 2.5 s is the machine's business
    assert " of 500/s " in status[0] and " stored " in status[0] and " queue " in status[0]
    assert all(len(line) <= 80 for line in status)


def start_run(db: Path) -> subprocess.Popen[str]:
    """A max-rate run, returned once it has printed its first status line (it has committed).

    In a session of its own, as a terminal runs it: a process group that Ctrl-C reaches whole.
    """
    process = subprocess.Popen(
        [COMMAND, "run", "--rate", "max", "--db", str(db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    for line in process.stdout:
        stored = re.search(r" stored +([\d,]+) ", line)
        if stored and int(stored[1].replace(",", "")) > 0:
            return process
    raise AssertionError(process.stderr.read() if process.stderr else "no status line")


def test_sigterm_drains_the_queue_and_stores_everything(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    process = start_run(db)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    done = next(line for line in out.splitlines() if line.startswith("done: "))
    stored = int(done.split()[1].replace(",", ""))
    assert stored > 0
    assert query(db, "SELECT count(*) FROM events") == [(stored,)]
    assert query(db, "SELECT value FROM counters WHERE name = 'events_total'") == [(stored,)]


def test_ctrl_c_in_a_terminal_drains_and_stores_everything(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    process = start_run(db)
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C does: the whole foreground group
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert err == ""  # no traceback from the writer process either
    done = next(line for line in out.splitlines() if line.startswith("done: "))
    stored = int(done.split()[1].replace(",", ""))
    assert query(db, "SELECT count(*) FROM events") == [(stored,)]


def wait_for_exit(pid: int) -> None:
    """Block until a process that is not our child has ended."""
    try:
        descriptor = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        select.select([descriptor], [], [], 30)
    finally:
        os.close(descriptor)


def test_after_kill_9_the_file_is_sound_and_the_next_run_works(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    process = start_run(db)
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
    process.kill()
    process.wait(timeout=30)
    for child in children:  # the writer process finishes the batch it holds, then ends
        wait_for_exit(int(child))
    with sqlite3.connect(db) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        stored, counted, minutes = connection.execute(
            "SELECT (SELECT count(*) FROM events),"
            " (SELECT value FROM counters WHERE name = 'events_total'),"
            " (SELECT sum(events) FROM events_per_minute)"
        ).fetchone()
    assert stored == counted == minutes > 0  # events and metrics were committed together
    result = imdb_tui("run", "--count", "100", "--rate", "max", "--db", str(db))
    assert result.returncode == 0
    assert query(db, "SELECT count(*) FROM events") == [(stored + 100,)]


def test_the_monitor_without_a_terminal_says_what_to_do_instead(tmp_path: Path) -> None:
    result = imdb_tui("--db", str(tmp_path / "x.db"), stdin=subprocess.DEVNULL)
    assert result.returncode == 2
    assert result.stderr.startswith("imdb-tui: the monitor needs a terminal")
    assert "imdb-tui run" in result.stderr
    assert not (tmp_path / "x.db").exists()


def monitor_in_a_terminal(
    args: list[str],
    shown: list[bytes],
    stdin: BinaryIO | None = None,
    stop: int | None = None,
    drawn_after: list[bytes] | None = None,
) -> tuple[int, str]:
    """Run `imdb-tui ARGS` on an 80x24 pseudo-terminal (its controlling terminal, and
    its stdin unless `stdin` is given), wait until every word of `shown` is drawn,
    press q (or send it the signal `stop`); return the exit status and what it printed
    on stdout (what it drew after that goes into `drawn_after`)."""
    screen, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    monitor = subprocess.Popen(
        [COMMAND, *args],
        stdin=stdin or terminal,
        stderr=terminal,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "TERM": "xterm-256color"},
        start_new_session=True,
        preexec_fn=lambda: fcntl.ioctl(2, termios.TIOCSCTTY, 0),
    )
    os.close(terminal)
    drawn = b""
    try:
        while not all(word in drawn for word in shown):
            ready, _, _ = select.select([screen], [], [], 30)
            assert ready, f"the monitor did not show {shown} in 30 s"
            drawn += os.read(screen, 65536)
        if stop is None:
            os.write(screen, b"q")
        else:
            monitor.send_signal(stop)
        while monitor.poll() is None:  # keep reading, or a full terminal blocks it
            if select.select([screen], [], [], 0.1)[0]:
                with contextlib.suppress(OSError):
                    after = os.read(screen, 65536)
                    if drawn_after is not None:
                        drawn_after.append(after)
        while drawn_after is not None and select.select([screen], [], [], 0.2)[0]:
            try:
                drawn_after.append(os.read(screen, 65536))
            except OSError:
                break
        return monitor.returncode, monitor.stdout.read() if monitor.stdout else ""
    finally:
        monitor.kill()
        os.close(screen)


def test_the_monitor_in_a_terminal_quits_on_q_with_everything_stored(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    status, summary = monitor_in_a_terminal(
        ["--db", str(db), "--rate", "2000"], [b"Events per minute", b"RUNNING"]
    )
    assert status == 0
    stored = re.search(r"done: ([\d,]+) events stored", summary)
    assert stored, summary
    assert query(db, "SELECT count(*) FROM events") == [(int(stored[1].replace(",", "")),)]


def test_sigterm_to_the_monitor_drains_and_restores_the_terminal(tmp_path: Path) -> None:
    """As q does: the queue drained and committed, the summary printed, the terminal
    left as it was (off the alternate screen, the cursor shown, the mouse off)."""
    db = tmp_path / "events.db"
    after: list[bytes] = []
    status, summary = monitor_in_a_terminal(
        ["--db", str(db), "--rate", "2000"],
        [b"Events per minute", b"RUNNING"],
        stop=signal.SIGTERM,
        drawn_after=after,
    )
    assert status == 0
    stored = re.search(r"done: ([\d,]+) events stored", summary)
    assert stored, summary
    assert query(db, "SELECT count(*) FROM events") == [(int(stored[1].replace(",", "")),)]
    assert query(db, "SELECT state FROM pipelines") == [("stopped",)]
    restored = b"".join(after)
    for sequence in (b"\x1b[?1049l", b"\x1b[?25h", b"\x1b[?1000l"):
        assert sequence in restored, (sequence, restored[-400:])


def test_a_closed_terminal_ends_the_monitor_drained(tmp_path: Path) -> None:
    """SIGHUP, as a terminal closing sends it: drained, the health row marked, and the
    process gone (never left spinning on a terminal that is not there)."""
    from tests.test_watch import terminal  # its module imports this one

    db = tmp_path / "events.db"
    with terminal(["--db", str(db), "--rate", "2000"]) as shown:
        shown.wait_for(r"RUNNING")
        shown.hang_up()
        assert shown.process.wait(timeout=30) == 0
    assert query(db, "SELECT state FROM pipelines") == [("stopped",)]
    (kept,) = query(db, "SELECT stored FROM pipelines")[0]
    assert query(db, "SELECT count(*) FROM events") == [(kept,)]


# Writes its first lines, waits for Ctrl-C, then writes the rest (the last without a
# newline) and ends: as `produce` finishes the chunk under way when Ctrl-C reaches it.
_PIPE_WRITER = """
import signal, sys
lines = open(sys.argv[1], "rb").read().splitlines(keepends=True)
first = int(sys.argv[2])
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
sys.stdout.buffer.writelines(lines[:first])
sys.stdout.buffer.flush()
signal.sigwait({signal.SIGINT})
if sys.argv[3] == "finish":
    sys.stdout.buffer.writelines(lines[first:])
    sys.stdout.buffer.flush()
else:
    signal.sigwait({signal.SIGINT})  # silent, its end never comes: until killed
"""


def _piped_run(
    tmp_path: Path, finish: bool
) -> tuple[subprocess.CompletedProcess[str], Path, int | None]:
    """`writer | imdb-tui run --source -` in a group of their own, as a terminal runs a
    pipeline; Ctrl-C (SIGINT to the group) once run has stored the first lines. Also
    how the writer ended, if it did."""
    lines = imdb_tui("produce", "--count", "3000", "--seed", "5").stdout.splitlines()
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(lines))  # the last line without its newline
    db = tmp_path / "events.db"
    how = "finish" if finish else "hang"
    writer = subprocess.Popen(
        [sys.executable, "-c", _PIPE_WRITER, str(events), "1000", how],
        stdout=subprocess.PIPE,
        process_group=0,
    )
    try:
        run = subprocess.Popen(
            [COMMAND, "run", "--source", "-", "--db", str(db)],
            stdin=writer.stdout,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            process_group=writer.pid,
        )
        assert writer.stdout is not None
        writer.stdout.close()  # run's now
        assert run.stdout is not None
        for line in run.stdout:
            if re.search(r" stored +1,000 ", line):
                break
        os.killpg(writer.pid, signal.SIGINT)
        out, err = run.communicate(timeout=60)
        ended = writer.wait(timeout=30) if finish else writer.poll()
        return subprocess.CompletedProcess(run.args, run.returncode, out, err), db, ended
    finally:
        writer.kill()
        writer.wait()


def test_ctrl_c_on_a_pipeline_stores_what_its_writer_finished_writing(tmp_path: Path) -> None:
    """Ctrl-C reaches `produce | run` together: what produce writes as it stops, the
    chunk under way, is in the pipe after run was told to stop. Nobody can read a
    pipe's lines later, so run reads on to the pipe's end before it ends."""
    result, db, writer = _piped_run(tmp_path, finish=True)
    assert result.returncode == 0, result.stderr
    assert "done: 3,000 events stored, 0 duplicates, 0 dead letters" in result.stdout
    assert query(db, "SELECT count(*) FROM events") == [(3000,)]
    assert writer == 0  # every line it wrote was read: no broken pipe


def test_ctrl_c_on_a_pipeline_whose_writer_goes_on_does_not_wait_for_its_end(
    tmp_path: Path,
) -> None:
    """A writer that is not stopped (`tail -f` when only run is signalled) and writes
    nothing more: run stores what came, and ends without waiting for an end."""
    result, db, writer = _piped_run(tmp_path, finish=False)
    assert result.returncode == 0, result.stderr
    assert "done: 1,000 events stored, 0 duplicates, 0 dead letters" in result.stdout
    assert query(db, "SELECT count(*) FROM events") == [(1000,)]
    assert writer is None  # still writing, for all run knew


def test_produce_piped_into_run_stores_exactly_that_many_and_a_rerun_stores_none(
    tmp_path: Path,
) -> None:
    db = tmp_path / "events.db"
    produce = subprocess.Popen(
        [COMMAND, "produce", "--count", "1000", "--seed", "3"], stdout=subprocess.PIPE
    )
    first = imdb_tui("run", "--source", "-", "--db", str(db), stdin=produce.stdout)
    produce.wait(timeout=60)
    assert first.returncode == 0, first.stderr
    assert "done: 1,000 events stored, 0 duplicates, 0 dead letters" in first.stdout
    saved = tmp_path / "events.jsonl"
    saved.write_text(imdb_tui("produce", "--count", "1000", "--seed", "3").stdout)
    assert len(saved.read_text().splitlines()) == 1000
    for run in range(2):  # the same file twice, from its start: stored once
        again = ["--from-start"] if run else []
        result = imdb_tui("run", "--source", str(saved), "--db", str(tmp_path / "twice.db"), *again)
        expected = "1,000 events stored, 0 dup" if run == 0 else "0 events stored, 1,000 dup"
        assert expected in result.stdout
    assert query(tmp_path / "twice.db", "SELECT count(*) FROM events") == [(1000,)]


def test_bad_lines_are_listed_by_report_dead_letters_literally(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    lines = b'{"event_id": "\x1b[31mred"}\nnot json [bold]x[/]\n\n'
    result = imdb_tui("run", "--source", "-", "--db", str(db), input=lines.decode())
    assert "0 events stored, 0 duplicates, 2 dead letters, 1 blank line skipped" in result.stdout
    report = imdb_tui("report", "--dead-letters", "--db", str(db))
    assert report.returncode == 0
    assert "\x1b" not in report.stdout and "\\x1b[31mred" in report.stdout
    assert "not json [bold]x[/]" in report.stdout
    listed = json.loads(imdb_tui("report", "--dead-letters", "--json", "--db", str(db)).stdout)
    assert len(listed) == 2 and all(letter["reason"] for letter in listed)


def test_a_missing_source_file_is_one_line(tmp_path: Path) -> None:
    result = imdb_tui("run", "--source", str(tmp_path / "nope.jsonl"), "--db", str(tmp_path / "x"))
    assert result.returncode == 2
    assert result.stderr.startswith("imdb-tui: cannot open") and "Traceback" not in result.stderr


def test_the_monitor_reads_events_from_a_pipe_and_keys_from_the_terminal(
    tmp_path: Path,
) -> None:
    db = tmp_path / "events.db"
    events = tmp_path / "events.jsonl"
    events.write_text(imdb_tui("produce", "--count", "500", "--seed", "5").stdout)
    with events.open("rb") as feed:  # stdin is a file: the keys come from /dev/tty
        # The file ends, and the final picture stays until q.
        status, summary = monitor_in_a_terminal(
            ["--source", "-", "--db", str(db)], [b"FINISHED"], stdin=feed
        )
    assert status == 0
    assert "done: 500 events stored" in summary
    assert query(db, "SELECT count(*) FROM events") == [(500,)]


def test_run_follow_stores_lines_appended_later_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    db, log = tmp_path / "events.db", tmp_path / "live.jsonl"
    batches = imdb_tui("produce", "--count", "300", "--seed", "8").stdout.splitlines(True)
    log.write_text("".join(batches[:100]))
    follower = subprocess.Popen(
        [COMMAND, "run", "--source", str(log), "--follow", "--db", str(db)],
        stdout=subprocess.PIPE,
        text=True,
    )

    def stored() -> int:
        try:
            return int(query(db, "SELECT count(*) FROM events")[0][0])  # type: ignore[call-overload]
        except sqlite3.OperationalError:  # not created yet
            return 0

    def until_stored(count: int) -> None:
        deadline = time.monotonic() + 60
        while stored() != count:
            assert time.monotonic() < deadline, f"{count} events never arrived"
            time.sleep(0.05)

    try:
        until_stored(100)
        with log.open("a") as more:
            more.write("".join(batches[100:]))
        until_stored(300)
        follower.send_signal(signal.SIGINT)
        out, _ = follower.communicate(timeout=30)
    finally:
        follower.kill()
    assert follower.returncode == 0
    assert "done: 300 events stored, 0 duplicates" in out


def test_the_imdb_catalogue_names_the_movies(tmp_path: Path) -> None:
    from tests.test_imdb import BASICS, RATINGS, write

    basics = write(tmp_path / "title.basics.tsv.gz", BASICS)
    ratings = write(tmp_path / "title.ratings.tsv.gz", RATINGS)
    db = tmp_path / "events.db"
    args = ["--catalog", str(basics), "--ratings", str(ratings), "--db", str(db)]
    result = imdb_tui("run", "--count", "300", "--rate", "max", *args)
    assert result.returncode == 0, result.stderr
    assert "catalogue: 3 movies, 2 with votes (4 malformed rows skipped)" in result.stderr
    report = imdb_tui("report", "--json", "--db", str(db))
    titles = {movie["title"] for movie in json.loads(report.stdout)["top_movies"]}
    assert titles <= {"The Shawshank Redemption", 'The "Godfather', "No Year Yet"}
    assert "The Shawshank Redemption" in titles
    again = imdb_tui("run", "--count", "10", "--rate", "max", *args)
    assert "catalogue: 3 movies, kept in the database" in again.stderr  # not parsed again
    assert query(db, "SELECT count(*) FROM movies WHERE popularity > 0") == [(3,)]
    os.utime(ratings, ns=(0, 0))  # a changed file is read again
    changed = imdb_tui("run", "--count", "10", "--rate", "max", *args)
    assert "catalogue: 3 movies, 2 with votes" in changed.stderr
    bad = imdb_tui(
        "run", "--count", "1", "--catalog", str(tmp_path / "nope.tsv.gz"), "--db", str(db)
    )
    assert bad.returncode == 2 and "does not exist" in bad.stderr
    assert len(bad.stderr.splitlines()) == 1


def test_adult_titles_are_left_out_of_the_catalogue_unless_asked_for(tmp_path: Path) -> None:
    from tests.test_imdb import BASICS, write

    adult = "tt0000009\tmovie\tAn Adult Title\tx\t1\t2001\t\\N\t90\tAdult"
    basics = write(tmp_path / "title.basics.tsv.gz", [*BASICS, adult])
    db = tmp_path / "events.db"
    args = ["run", "--count", "300", "--rate", "max", "--catalog", str(basics), "--db", str(db)]
    result = imdb_tui(*args)
    assert (
        "catalogue: 3 movies (3 malformed rows skipped,"
        " 1 adult left out: --include-adult keeps them)" in result.stderr
    )
    assert query(db, "SELECT count(*) FROM movies WHERE movie_id = 'tt0000009'") == [(0,)]
    kept = imdb_tui(*args, "--include-adult")  # another catalogue: read again
    assert "catalogue: 4 movies (3 malformed rows skipped)" in kept.stderr, kept.stderr
    assert query(db, "SELECT title FROM movies WHERE movie_id = 'tt0000009'") == [
        ("An Adult Title",)
    ]
    alone = imdb_tui("run", "--count", "1", "--include-adult", "--db", str(db))
    assert alone.returncode == 2 and "--include-adult goes with --catalog" in alone.stderr


def test_history_is_replayed_and_reported_at_its_own_time(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    history = tmp_path / "march.jsonl"
    records = [
        {
            "event_id": f"h{n}",
            "event_time": f"2024-03-01T08:{n:02d}:00.000Z",
            "user_id": f"u{n % 3}",
            "session_id": "s1",
            "movie_id": "tt0111161",
            "event_type": "view",
        }
        for n in range(25)
    ]
    history.write_text("".join(json.dumps(record) + "\n" for record in records))
    # 24 minutes of events at 720x: two seconds and a bit, a status line a second.
    result = imdb_tui("run", "--source", str(history), "--replay-speed", "720", "--db", str(db))
    assert result.returncode == 0, result.stderr
    assert "done: 25 events stored" in result.stdout
    assert re.search(r"stream time 2024-03-01 \d\d:\d\d:\d\d · replay 720x", result.stdout)
    now = imdb_tui("report", "--db", str(db), "--json")
    assert json.loads(now.stdout)["events_today"] == 0  # the present has none
    then = json.loads(imdb_tui("report", "--db", str(db), "--json", "--as-of", "latest").stdout)
    assert then["events_today"] == 25 and then["active_users"]["count"] == 3
    # Today has nothing: the text says where the history is, and how to read it.
    hint = (
        "the newest stored events are of 2024-03-01 (--as-of latest reads there, --day 2024-03-01)"
    )
    assert f"nothing today: {hint}" in imdb_tui("report", "--db", str(db)).stdout
    movie = imdb_tui("report", "--db", str(db), "--movie", "tt0111161")
    assert movie.returncode == 2 and hint in movie.stderr, movie.stderr
    assert movie.stderr.startswith("imdb-tui: no movie tt0111161 today")
    assert (
        json.loads(
            imdb_tui(
                "report", "--db", str(db), "--movie", "tt0111161", "--day", "2024-03-01", "--json"
            ).stdout
        )["views"]
        == 25
    )
    assert query(db, "SELECT count(*) FROM events") == [(25,)]  # not pruned as old


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--replay-speed", "10"], "--replay-speed replays a --source file"),
        (["run", "--replay-speed", "-1"], "--replay-speed"),
        (["report", "--as-of", "yesterday"], "'yesterday' is not one of 'now', 'latest'"),
        (["report", "--movie", "zzqx"], "--movie 'zzqx': no movie's title matches it"),
        (
            ["report", "--dead-letters", "--movie", "tt0111161"],
            "--dead-letters lists the newest of every movie and day: leave out --movie",
        ),
        (["report", "--dead-letters", "--day", "2026-01-01"], "leave out --day"),
    ],
)
def test_replay_and_as_of_mistakes_are_one_line(
    tmp_path: Path, args: list[str], message: str
) -> None:
    db = tmp_path / "events.db"
    imdb_tui("run", "--count", "1", "--db", str(db))
    result = imdb_tui(*args, "--db", str(db))
    assert result.returncode == 2 and message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) == 1


def test_stream_time_is_a_dash_until_an_event_is_read(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.touch()
    result = imdb_tui(
        "run",
        "--source",
        str(empty),
        "--follow",
        "--duration",
        "1.5",
        "--db",
        str(tmp_path / "x.db"),
    )
    assert result.returncode == 0, result.stderr
    status = [line for line in result.stdout.splitlines() if " stored " in line]
    assert status and all(line.endswith("stream time —") for line in status)


def test_counts_of_one_are_singular(tmp_path: Path) -> None:
    one = json.dumps(
        {
            "event_id": "e1",
            "event_time": "2026-11-23T10:00:00.000Z",
            "user_id": "u1",
            "session_id": "s1",
            "movie_id": "tt0000001",
            "event_type": "view",
        }
    )
    result = imdb_tui("run", "--source", "-", "--db", str(tmp_path / "x.db"), input=f"{one}\nbad\n")
    assert "done: 1 event stored, 0 duplicates, 1 dead letter in" in result.stdout
    assert "now holds 1 event in all" in result.stdout


def test_the_thread_writer_stores_the_same(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    result = imdb_tui(
        "run", "--writer", "thread", "--count", "3000", "--rate", "max", "--db", str(db)
    )
    assert "done: 3,000 events stored, 0 duplicates" in result.stdout
    assert query(db, "SELECT count(*) FROM events") == [(3000,)]


def test_a_postgresql_url_without_the_driver_says_what_to_install() -> None:
    code = (
        "import sys\n"
        "sys.modules['psycopg'] = None  # as if the extra were not installed\n"
        "from imdb_tui.cli import main\n"
        "sys.argv = ['imdb-tui', 'report', '--db', 'postgresql://u:secret@127.0.0.1/x']\n"
        "main()\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "imdb-tui: PostgreSQL needs the psycopg driver: pip install 'imdb-tui[postgres]'"
    )


def test_report_day_prints_a_past_days_figures(tmp_path: Path) -> None:
    """`report --day`: a past local day's figures, as a recount of its events gives them
    (local days in Kolkata, from TZ as a user sets it); a bad day is one line, exit 2."""
    kolkata = ZoneInfo("Asia/Kolkata")
    now = time.time()
    randoms = random.Random(5)
    lines, records = [], []
    for n in range(1_500):
        moment = now - 3 * 86400 + randoms.uniform(0, 3 * 86400 - 60)
        record = {
            "event_id": f"e{n}",
            "event_time": utc_iso(moment),
            "user_id": f"u{randoms.randrange(200)}",
            "session_id": "s",
            "movie_id": f"tt{1 + n % 7:07d}",
            "event_type": randoms.choice(["view", "view", "click", "watchlist_add"]),
        }
        records.append(record)
    records.sort(key=lambda r: r["event_time"])
    lines = [json.dumps(r) for r in records]
    source, db = tmp_path / "days.jsonl", tmp_path / "days.db"
    source.write_text("\n".join(lines) + "\n")
    env = {**os.environ, "TZ": "Asia/Kolkata"}
    assert imdb_tui("run", "--source", str(source), "--db", str(db), env=env).returncode == 0
    day = local_day(now - 86400, kolkata)
    of_day = [r for r in records if local_day(seconds(r["event_time"]), kolkata) == day]
    report = json.loads(imdb_tui("report", "--db", str(db), "--day", day, "--json", env=env).stdout)
    assert report["day"] == day and report["events_today"] == len(of_day) > 300
    assert report["users_today"] == len({r["user_id"] for r in of_day})
    assert report["by_type"]["view"] == sum(r["event_type"] == "view" for r in of_day)
    assert report["events_total"] == 1_500  # all time, whatever the day
    text = imdb_tui("report", "--db", str(db), "--day", day, env=env).stdout
    assert f"{len(of_day):,} on {day}" in text and f"top movies on {day}" in text
    assert f"ratings on {day} none\n" in text  # no rate events; not "none yet" for a past day
    movie = json.loads(
        imdb_tui(
            "report", "--db", str(db), "--day", day, "--movie", "tt0000001", "--json", env=env
        ).stdout
    )
    views = sum(r["movie_id"] == "tt0000001" and r["event_type"] == "view" for r in of_day)
    assert movie["day"] == day and movie["views"] == views > 10
    oldest = local_day(seconds(records[0]["event_time"]), kolkata)
    before = (date.fromisoformat(oldest) - timedelta(days=1)).isoformat()
    tomorrow = local_day(now + 86400, kolkata)
    for bad, said in (
        ("2026-13-01", "--day '2026-13-01' is not a day: give it as YYYY-MM-DD"),
        ("yesterday", "--day 'yesterday' is not a day"),
        (tomorrow, f"--day {tomorrow} is after today"),
        (before, f"no figures for {before}: the oldest day kept is {oldest}"),
    ):
        result = imdb_tui("report", "--db", str(db), "--day", bad, env=env)
        assert result.returncode == 2 and result.stdout == ""
        assert result.stderr.startswith(f"imdb-tui: {said}") and "Traceback" not in result.stderr


def test_runs_started_together_on_a_new_file_all_start(tmp_path: Path) -> None:
    """25 runs, five at a time on a new file each: the schema is made once, under the
    write lock, and every run stores all it made."""
    for group in range(5):
        db = tmp_path / f"new-{group}.db"
        runs = [
            subprocess.Popen(
                [COMMAND, "run", "--count", "300", "--seed", str(group * 5 + n), "--db", str(db)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for n in range(5)
        ]
        for process in runs:
            out, err = process.communicate(timeout=120)
            assert process.returncode == 0, err
            assert "done: 300 events stored" in out
        assert query(db, "SELECT count(*) FROM events") == [(1500,)]


def test_a_refused_file_is_left_byte_for_byte_as_it_was(tmp_path: Path) -> None:
    """Another program's database (one with a user_version of its own too) and a file
    that is no database at all: run, report, watch and the monitor refuse each, and
    leave it as it was, with no journal files beside it."""
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE invoices (id)")
        connection.execute("PRAGMA user_version = 3")
    connection.close()
    text = tmp_path / "notes.db"
    text.write_text("hello, not a database\n" * 100)
    before = {path: path.read_bytes() for path in (other, text)}
    for path in before:
        for args in (["run", "--count", "5"], ["report"], ["watch"], []):
            primary, secondary = os.openpty()  # watch and the monitor need a terminal
            try:
                process = subprocess.run(
                    [COMMAND, *args, "--db", str(path)],
                    stdin=secondary,
                    stdout=secondary,
                    stderr=secondary,
                    timeout=60,
                )
                said = b""
                while select.select([primary], [], [], 0.2)[0]:
                    said += os.read(primary, 65536)
            finally:
                os.close(secondary)
                os.close(primary)
            assert process.returncode == 2, (args, said)
            assert b"another program" in said or b"is not an" in said, (args, said)
    assert {path: path.read_bytes() for path in before} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.db", "other.db"]
