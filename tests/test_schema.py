"""The tables declared once: what a new database holds is what the model says, on
every backend, and a database written by the previous version keeps every figure
of `report --json` when this one upgrades it."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from imdb_tui.catalog import Movie
from imdb_tui.events import Event, validate
from imdb_tui.store.dialect import POSTGRES_DIALECT, SQLITE_DIALECT
from imdb_tui.store.model import TABLES, VERSION, VIEWS, Kind, tables_at
from tests.conftest import Database, event
from tests.helpers import write

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
    views = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'view'")}
    assert views == {view.name for view in VIEWS}


def test_a_new_postgres_schema_holds_the_model(postgres_database: Database) -> None:
    import psycopg

    database = postgres_database
    database.open().close()
    with psycopg.connect(database.name) as db:
        rows = db.execute(
            "SELECT c.table_name, c.column_name, c.data_type, c.is_nullable"
            " FROM information_schema.columns AS c JOIN information_schema.tables AS t"
            " USING (table_schema, table_name) WHERE c.table_schema = %s"
            " AND t.table_type = 'BASE TABLE' ORDER BY c.table_name, c.ordinal_position",
            (database.schema,),
        ).fetchall()
        views = {
            row[0]
            for row in db.execute(
                "SELECT table_name FROM information_schema.views WHERE table_schema = %s",
                (database.schema,),
            )
        }
        indexes = {
            row[0]
            for row in db.execute(
                "SELECT indexname FROM pg_indexes WHERE schemaname = %s"
                " AND indexname NOT LIKE '%%_pkey' AND indexname NOT LIKE '%%_key'",
                (database.schema,),
            )
        }
        spelled = {  # as information_schema spells each type
            kind: db.execute("SELECT CAST(%s AS regtype)::text", (name,)).fetchone()[0]
            for kind, name in POSTGRES_DIALECT.types.items()
        }
    found: dict[str, list[tuple[str, str, bool]]] = {}
    for table, column, kind, nullable in rows:
        found.setdefault(table, []).append((column, kind, nullable == "YES"))
    expected = list(tables_at(VERSION, "postgres"))
    assert set(found) == {table.name for table in expected} | {"meta"}
    for table in expected:
        assert found[table.name] == [
            (c.name, "bigint" if c.kind is Kind.SEQ else spelled[c.kind], c.null)
            for c in table.columns_at(VERSION, "postgres")
        ], table.name
    assert indexes == {name for table in expected for name, _, _ in table.indexes}
    assert views == {view.name for view in VIEWS}


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
        for later in ("figures", "alerts"):  # report --json's since the legacy reports
            report.pop(later, None)
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
    sql_database: Database,
) -> None:
    database = sql_database
    _load_legacy(database)
    expected = _expected(database.backend)
    assert _reports(database) == expected  # read as it is, read-only
    database.open().close()  # upgraded
    assert _reports(database) == expected
    reopened = database.open(read_only=True)
    assert reopened._version == VERSION  # type: ignore[attr-defined]
    reopened.close()


def _rows(database: Database, sql: str) -> list[tuple[Any, ...]]:
    """A query as a person runs it with sqlite3 or psql."""
    if database.backend == "sqlite":
        with contextlib.closing(sqlite3.connect(database.name)) as db:
            return db.execute(sql).fetchall()
    import psycopg

    with psycopg.connect(database.name) as db:
        db.execute(f'SET search_path TO "{database.schema}"')
        return [tuple(row) for row in db.execute(sql).fetchall()]  # type: ignore[call-overload]


def test_the_views_give_what_a_recount_of_the_events_gives(sql_database: Database) -> None:
    database = sql_database
    kinds = ("view", "click", "rate", "watchlist_add", "view")
    batch = [
        validate(
            event(
                n,
                event_type=kinds[n % 5],
                event_time=f"2026-11-23T10:{n % 7:02d}:{n % 60:02d}.000Z",
                **({"rating": 1 + n % 10} if kinds[n % 5] == "rate" else {}),
            )
        )
        for n in range(200)
    ]
    store = database.open()
    store.save_movies([Movie("tt1000001", "Literal <b>[red]</b>", 1999, ("Drama",))])
    write(store, batch)  # type: ignore[arg-type]
    store.close()

    titled = _rows(database, "SELECT event_id, movie_id, title, year FROM events_with_titles")
    assert sorted(titled) == sorted(
        (
            e.event_id,
            e.movie_id,
            *(("Literal <b>[red]</b>", 1999) if e.movie_id == "tt1000001" else (None, None)),
        )
        for e in batch
        if isinstance(e, Event)
    )
    views = Counter(e.movie_id for e in batch if isinstance(e, Event) and e.event_type == "view")
    top = _rows(database, "SELECT movie_id, views FROM top_movies_today")
    assert top == sorted(views.items(), key=lambda item: (-item[1], item[0]))
    by_minute: dict[str, Counter[str]] = {}
    for e in batch:
        assert isinstance(e, Event)
        by_minute.setdefault(e.event_time[:16], Counter())[e.event_type] += 1
    per_minute = _rows(
        database,
        "SELECT views, clicks, ratings, watchlist_adds, events FROM events_per_minute_by_type"
        " ORDER BY minute",
    )
    assert per_minute == [
        (c["view"], c["click"], c["rate"], c["watchlist_add"], sum(c.values()))
        for _, c in sorted(by_minute.items())
    ]


def test_a_dashboard_query_on_postgres_needs_no_casts_and_uses_an_index(
    postgres_database: Database,
) -> None:
    """Events per minute by type over the last hour, as Grafana or Metabase write it."""
    store = postgres_database.open()
    batch = [
        validate(
            event(
                n,
                event_time=f"2026-11-{20 + n // 1440:02d}T{n // 60 % 24:02d}:{n % 60:02d}:00.000Z",
            )
        )
        for n in range(4 * 1440)
    ]
    write(store, batch)  # type: ignore[arg-type]
    store.close()
    import psycopg

    dashboard = (
        "SELECT date_trunc('minute', event_time) AS minute, event_type, count(*) FROM events"
        " WHERE event_time >= timestamptz '2026-11-23T23:59:00Z' - interval '1 hour'"
        " GROUP BY 1, 2 ORDER BY 1"
    )
    with psycopg.connect(postgres_database.name, autocommit=True) as db:
        db.execute(f'SET search_path TO "{postgres_database.schema}"')
        db.execute("ANALYZE events")
        rows = db.execute(dashboard).fetchall()
        plan = "\n".join(row[0] for row in db.execute("EXPLAIN " + dashboard))
    assert len(rows) == 61 and all(row[2] == 1 for row in rows)
    assert "events_by_time" in plan, plan
