"""The tables declared once: what a new database holds is what the model says, on
every backend, and a database written by the previous version keeps every figure
of `report --json` when this one upgrades it."""

from __future__ import annotations

import gzip
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from imdb_tui.store.dialect import POSTGRES_DIALECT, SQLITE_DIALECT
from imdb_tui.store.model import TABLES, VERSION, Kind, tables_at
from tests.conftest import Database

LEGACY = Path(__file__).parent / "data" / "legacy"
"""Databases the previous version wrote (SQLite schema 12, PostgreSQL 8) from the
same 3,203 lines (3,000 events over a UTC midnight, 201 repeated, 2 not events),
and its `report --json --as-of latest` of each, in UTC: plain, --day 2026-11-20
and --movie tt5275466."""
LATEST = ("--as-of", "latest")
REPORTS = {
    "report": [],
    "report-day": ["--day", "2026-11-20"],
    "report-movie": ["--movie", "tt5275466"],
}


def test_every_table_is_declared_once_with_its_key_among_its_columns() -> None:
    names = [table.name for table in TABLES]
    assert len(names) == len(set(names))
    for table in TABLES:
        columns = [column.name for column in table.columns]
        assert len(columns) == len(set(columns)), table.name
        assert set(table.key) <= set(columns), table.name
        assert table.kept_by is None or table.kept_by in columns, table.name


def _sqlite_columns(db: sqlite3.Connection, table: str) -> list[tuple[str, str, bool, bool]]:
    return [
        (name, kind, bool(notnull) or bool(pk), bool(pk))
        for _, name, kind, notnull, _, pk in db.execute(f"PRAGMA table_info({table})")
    ]


def test_a_new_sqlite_file_holds_the_model(db_path: Path) -> None:
    Database("sqlite", str(db_path)).open().close()
    db = sqlite3.connect(db_path)
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    expected = list(tables_at(VERSION, "sqlite"))
    assert tables == {table.name for table in expected}
    for table in expected:
        columns = table.columns_at(VERSION, "sqlite")
        assert _sqlite_columns(db, table.name) == [
            (
                c.name,
                SQLITE_DIALECT.column_type(c),
                not c.null,
                c.name in table.key,
            )
            for c in columns
        ], table.name
    indexes = {
        row[0]
        for row in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        )
    }
    assert indexes == {name for table in expected for name, _, _ in table.indexes}


def test_a_new_postgres_schema_holds_the_model(postgres_database: Database) -> None:
    import psycopg

    database = postgres_database
    database.open().close()
    with psycopg.connect(database.name) as db:
        rows = db.execute(
            "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns"
            " WHERE table_schema = %s ORDER BY table_name, ordinal_position",
            (database.schema,),
        ).fetchall()
        indexes = {
            row[0]
            for row in db.execute(
                "SELECT indexname FROM pg_indexes WHERE schemaname = %s"
                " AND indexname NOT LIKE '%%_pkey' AND indexname NOT LIKE '%%_key'",
                (database.schema,),
            )
        }
    found: dict[str, list[tuple[str, str, bool]]] = {}
    for table, column, kind, nullable in rows:
        found.setdefault(table, []).append((column, kind, nullable == "YES"))
    expected = list(tables_at(VERSION, "postgres"))
    assert set(found) == {table.name for table in expected} | {"meta"}
    for table in expected:
        assert found[table.name] == [
            (
                c.name,
                "bigint" if c.kind is Kind.SEQ else POSTGRES_DIALECT.column_type(c),
                c.null,
            )
            for c in table.columns_at(VERSION, "postgres")
        ], table.name
    assert indexes == {name for table in expected for name, _, _ in table.indexes}


def _reports(database: Database) -> dict[str, Any]:
    """`report --json --as-of latest` as the user runs it, in UTC, for each of REPORTS."""
    found = {}
    for name, extra in REPORTS.items():
        result = subprocess.run(
            [sys.executable, "-m", "imdb_tui", "report", *database.args, "--json", *LATEST, *extra],
            capture_output=True,
            text=True,
            env={**os.environ, "TZ": "UTC"},
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        report.pop("database_bytes", None)  # its size, not a figure: migrating changes it
        found[name] = report
    return found


def _expected(backend: str) -> dict[str, Any]:
    return {name: json.loads((LEGACY / f"{backend}-{name}.json").read_text()) for name in REPORTS}


def _load_legacy(database: Database) -> None:
    if database.backend == "sqlite":
        script = gzip.decompress((LEGACY / "sqlite-v12.sql.gz").read_bytes()).decode()
        with sqlite3.connect(database.name) as db:
            db.executescript(script)
        return
    import psycopg

    script = gzip.decompress((LEGACY / "postgres-v8.sql.gz").read_bytes()).decode()
    script = script.replace("imdb_tui.", f"{database.schema}.")
    script = script.replace("SCHEMA imdb_tui;", f"SCHEMA {database.schema};")
    with psycopg.connect(database.name, autocommit=True) as db:
        for statement in script.split(";\n"):
            if statement.strip():
                db.execute(statement)  # type: ignore[call-overload]


def test_a_database_of_the_previous_version_keeps_its_figures_when_upgraded(
    database: Database,
) -> None:
    _load_legacy(database)
    expected = _expected(database.backend)
    assert _reports(database) == expected  # read as it is, read-only
    database.open().close()  # upgraded
    assert _reports(database) == expected
    reopened = database.open(read_only=True)
    assert reopened._version == VERSION  # type: ignore[attr-defined]
    reopened.close()
