"""`imdb-tui prune`, as a user runs it: the events of days gone deleted from SQLite and
PostgreSQL while the figures of each day and all time stay; an SQLite file emptied."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from imdb_tui.clock import utc_iso
from tests.conftest import Database
from tests.test_cli import COMMAND, imdb_tui

DAY = 86_400.0


def three_days(folder: Path) -> tuple[Path, str]:
    """A file of 900 events, 300 a day over the last three UTC days, and the middle day."""
    today = time.time() // DAY * DAY
    records = []
    for n in range(900):
        moment = today - 2 * DAY + (n // 300) * DAY + 60 * (n % 300)
        records.append(
            {
                "event_id": f"e{n}",
                "event_time": utc_iso(moment),
                "user_id": f"u{n % 40}",
                "session_id": "s",
                "movie_id": f"tt{1 + n % 5:07d}",
                "event_type": "view",
            }
        )
    path = folder / "days.jsonl"
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path, utc_iso(today - DAY)[:10]


def stored(database: Database) -> tuple[int, int]:
    """(events in the events table, events counted in all)."""
    store = database.open(read_only=True)
    try:
        return store.count_events(), store.counters()["events_total"]
    finally:
        store.close()


def test_prune_before_a_day_deletes_its_events_and_keeps_the_figures(
    sql_database: Database, tmp_path: Path
) -> None:
    env = {**os.environ, "TZ": "UTC"}
    source, middle = three_days(tmp_path)
    assert imdb_tui("run", "--source", str(source), *sql_database.args, env=env).returncode == 0
    asked = imdb_tui("prune", "--before", middle, *sql_database.args, env=env)  # no terminal
    assert asked.returncode == 2 and "give --yes" in asked.stderr
    assert stored(sql_database) == (900, 900)  # nothing deleted without --yes
    done = imdb_tui("prune", "--before", middle, "--yes", *sql_database.args, env=env)
    assert done.returncode == 0, done.stderr
    assert (
        done.stdout.strip()
        == f"pruned 300 rows (events and dead letters) of the days before {middle}"
    )
    assert stored(sql_database) == (600, 900)  # the all-time count still counts them
    report = imdb_tui("report", "--json", "--as-of", "latest", *sql_database.args, env=env)
    assert json.loads(report.stdout)["events_today"] == 300
    # Older than an hour before today's midnight: the rest of yesterday's, not today's.
    minutes = (time.time() - (time.time() // DAY * DAY - 3600)) // 60
    kept = imdb_tui("prune", "--keep", f"{minutes:.0f}m", "--yes", *sql_database.args, env=env)
    assert kept.returncode == 0 and kept.stdout.startswith("pruned 300 rows"), kept.stdout
    assert stored(sql_database) == (300, 900)


def test_prune_all_empties_an_sqlite_file_unless_a_pipeline_writes_to_it(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    source, _ = three_days(tmp_path)
    follow = subprocess.Popen(
        [COMMAND, "run", "--source", str(source), "--follow", "--db", str(db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not db.exists() or "stored 900" not in (
            follow.stdout.readline() if follow.stdout else ""
        ):
            assert time.monotonic() < deadline and follow.poll() is None
        refused = imdb_tui("prune", "--all", "--yes", "--db", str(db))
        assert refused.returncode == 2 and "a pipeline is writing to it" in refused.stderr
        assert db.exists()
    finally:
        follow.send_signal(signal.SIGINT)
        follow.communicate(timeout=60)
    emptied = imdb_tui("prune", "--all", "--yes", "--db", str(db))
    assert emptied.returncode == 0, emptied.stderr
    assert (
        emptied.stdout.startswith(f"deleted {db} (")
        and "the next run starts anew" in emptied.stdout
    )
    assert not db.exists() and not Path(f"{db}-wal").exists()
    again = imdb_tui("run", "--count", "10", "--db", str(db))
    assert "now holds 10 events in all" in again.stdout


@pytest.mark.parametrize(
    ("args", "said"),
    [
        ([], "say what to delete: one of --before DAY, --keep DURATION or --all"),
        (["--all", "--keep", "1d"], "say what to delete: one of"),
        (["--before", "last week"], "--before 'last week' is not a day: give it as YYYY-MM-DD"),
        (["--keep", "soon"], "soon"),
        (["--keep", "1d", "--db", "dynamodb://t"], "DynamoDB expires events itself"),
        (["--all", "--db", "postgresql://u:secret@127.0.0.1/x"], "for PostgreSQL, drop the schema"),
        (["--all", "--yes", "--db", "/nonexistent/x.db"], "/nonexistent/x.db: no such file"),
    ],
)
def test_prune_mistakes_are_one_line(args: list[str], said: str) -> None:
    result = imdb_tui("prune", *args)
    assert result.returncode == 2 and said in result.stderr, result.stderr
    assert len(result.stderr.splitlines()) == 1 and "secret" not in result.stderr
