"""`imdb-tui report` reads a database without changing it."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

from tests.conftest import Database, dynamodb_table
from tests.test_cli import imdb_tui


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_an_empty_file_is_not_a_database_and_stays_empty(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    for extra in ([], ["--json"], ["--dead-letters"]):
        result = imdb_tui("report", "--db", str(empty), *extra)
        assert result.returncode == 2
        assert (
            result.stderr
            == f"imdb-tui: {empty} is empty: no imdb-tui run has made its tables yet\n"
        )
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


def test_the_same_file_gives_the_same_report_in_every_store(
    tmp_path: Path, postgres_database: Database, aws: dict[str, str]
) -> None:
    """One file (over a UTC midnight, 40 lines sent twice, 2 not events) run into
    SQLite, PostgreSQL and DynamoDB: `report --json` is the same from each, plain,
    for the first day and for a movie; only what is about the runs differs (their
    pipelines' ids and times, the positions' times, the database's size)."""
    made = imdb_tui(
        "produce", "--count", "1200", "--seed", "5", "--start", "2026-11-19T23:59:00Z",
        "--rate", "10",
    ).stdout.splitlines(keepends=True)  # fmt: skip
    source = tmp_path / "events.jsonl"
    source.write_text("".join(made + made[:40]) + '{"event_id": "broken\nnot json\n')
    movie = json.loads(made[0])["movie_id"]
    stores = [Database("sqlite", str(tmp_path / "events.db")), postgres_database]
    stores.append(dynamodb_table())
    reports = []
    for database in stores:
        ran = imdb_tui("run", "--source", str(source), *database.args, env=aws, timeout=120)
        assert ran.returncode == 0, ran.stderr
        assert "1,200 events stored, 40 duplicates, 2 dead letters" in ran.stdout
        found = []
        for extra in ([], ["--day", "2026-11-19"], ["--movie", movie]):
            result = imdb_tui(
                "report", *database.args, "--json", "--as-of", "latest", *extra, env=aws
            )
            assert result.returncode == 0, result.stderr
            report = json.loads(result.stdout)
            report.pop("database_bytes", None)
            report.pop("figures", None)  # the same counts as above, with the size and the run's
            for pipeline in report.get("pipelines", []):
                for about_the_run in ("id", "pid", "started_at", "last_seen", "lag_p50_ms",
                                      "lag_p99_ms", "ingest_rate"):  # fmt: skip
                    pipeline.pop(about_the_run)
            for position in report.get("sources", []):
                position.pop("updated_at")
            found.append(report)
        reports.append(found)
    assert reports[0][0]["events_total"] == 1200 and reports[0][0]["dead_letters"] == 2
    assert reports[0][0]["duplicates"] == 40
    assert reports[1] == reports[0]  # PostgreSQL
    assert reports[2] == reports[0]  # DynamoDB
