"""`imdb-tui report` reads a database without changing it."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

from tests.test_cli import imdb_tui


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_an_empty_file_is_not_a_database_and_stays_empty(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    for extra in ([], ["--json"], ["--dead-letters"]):
        result = imdb_tui("report", "--db", str(empty), *extra)
        assert result.returncode == 2
        assert result.stderr == f"imdb-tui: {empty} is not an imdb-tui database\n"
    assert empty.stat().st_size == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.db"]


def test_another_programs_database_is_refused_untouched(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE invoices (id)")
    before = digest(other)
    result = imdb_tui("report", "--db", str(other))
    assert result.returncode == 2 and "is not an imdb-tui database" in result.stderr
    assert digest(other) == before


def test_memory_and_missing_databases_are_one_line_each(tmp_path: Path) -> None:
    memory = imdb_tui("report", "--db", ":memory:")
    assert memory.returncode == 2
    assert memory.stderr == "imdb-tui: :memory: holds nothing to read: give the database file\n"
    missing = imdb_tui("report", "--db", str(tmp_path / "nope.db"))
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1
    assert not (tmp_path / "nope.db").exists()


def test_report_changes_nothing_and_lists_the_pipelines(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    assert imdb_tui("run", "--db", str(db), "--count", "300", "--rate", "max").returncode == 0
    before = digest(db)
    report = json.loads(imdb_tui("report", "--db", str(db), "--json").stdout)
    imdb_tui("report", "--db", str(db))
    imdb_tui("report", "--db", str(db), "--dead-letters")
    assert digest(db) == before
    (pipeline,) = report["pipelines"]
    assert pipeline["state"] == "finished" and pipeline["live"] is False
    assert pipeline["stored"] == 300 and pipeline["source"] == "simulator"
    assert report["sources"] == []  # the simulator has no positions
    assert report["events_total"] == 300
    assert report["database_bytes"] > 0
    text = imdb_tui("report", "--db", str(db)).stdout
    assert f"database      {db} (" in text and " of data)" in text
