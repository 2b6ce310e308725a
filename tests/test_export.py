"""`imdb-tui export`: Parquet that DuckDB reads as a BI user would, with the same
figures as `report`, from every store, and a day exported again replaced whole."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from pathlib import Path
from unittest.mock import ANY

import pytest

from imdb_tui.export.destinations import FILE
from tests.conftest import Database
from tests.test_cli import COMMAND, imdb_tui

DAYS = ("2026-11-19", "2026-11-20", "2026-11-21")


def produced(count: int, seed: int, start: str) -> str:
    made = imdb_tui("produce", "--count", str(count), "--seed", str(seed), "--start", start)
    assert made.returncode == 0, made.stderr
    return made.stdout


def stored(
    tmp_path: Path, per_day: int, days: tuple[str, ...] = DAYS, env: dict[str, str] | None = None
) -> Path:
    """An SQLite store (tmp_path/e.db) holding `per_day` produced events on each day."""
    db, source = tmp_path / "e.db", tmp_path / "events.jsonl"
    source.write_text(
        "".join(produced(per_day, n, f"{day}T10:00:00Z") for n, day in enumerate(days))
    )
    ran = imdb_tui("run", "--source", str(source), "--db", str(db), env=env)
    assert ran.returncode == 0, ran.stderr
    return db


def duckdb_rows(sql: str) -> list[tuple[object, ...]]:
    duckdb = pytest.importorskip("duckdb")
    rows: list[tuple[object, ...]] = duckdb.sql(sql).fetchall()
    return rows


def by_day_and_type(folder: Path) -> dict[str, dict[str, int]]:
    """What DuckDB reads from the exported events: rows per day and type."""
    found: dict[str, dict[str, int]] = {}
    rows = duckdb_rows(
        f"SELECT dt, event_type, count(*) FROM read_parquet('{folder}/events/*/*.parquet',"  # noqa: S608
        " hive_partitioning = true) GROUP BY ALL"
    )
    for day, kind, n in rows:
        found.setdefault(str(day), {})[str(kind)] = int(str(n))
    return found


def test_an_export_reads_in_duckdb_as_report_says_and_a_day_again_is_replaced(
    database: Database, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    env = {**os.environ, "TZ": "UTC"}  # local days are the export's UTC days
    if database.backend == "dynamodb":
        env |= request.getfixturevalue("aws")
    source = tmp_path / "events.jsonl"
    source.write_text("".join(produced(150, n, f"{day}T10:00:00Z") for n, day in enumerate(DAYS)))
    ran = imdb_tui("run", "--source", str(source), *database.args, env=env, timeout=120)
    assert ran.returncode == 0, ran.stderr
    folder = tmp_path / "bi"

    def export(*args: str) -> dict[str, object]:
        done = imdb_tui("export", *database.args, "--to", str(folder), "--json", *args, env=env)
        assert done.returncode == 0, done.stderr
        answer: dict[str, object] = json.loads(done.stdout)
        return answer

    def reported(day: str) -> dict[str, int]:
        args = ("report", *database.args, "--json", "--as-of", "latest", "--day", day)
        report = imdb_tui(*args, env=env)
        assert report.returncode == 0, report.stderr
        return {kind: n for kind, n in json.loads(report.stdout)["by_type"].items() if n}

    first = export()
    assert first["days"] == list(DAYS)
    assert by_day_and_type(folder) == {day: reported(day) for day in DAYS}
    hourly = duckdb_rows(
        f"SELECT dt, sum(events) FROM read_parquet('{folder}/events_hourly/*/*.parquet',"  # noqa: S608
        " hive_partitioning = true) GROUP BY ALL ORDER BY ALL"
    )
    assert [(str(day), int(str(n))) for day, n in hourly] == [(day, 150) for day in DAYS]
    types = duckdb_rows(
        f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet("  # noqa: S608
        f"'{folder}/events/*/*.parquet', hive_partitioning = true))"
    )
    assert dict(types) == {
        "event_id": "VARCHAR",
        "event_time": "TIMESTAMP WITH TIME ZONE",
        "user_id": "VARCHAR",
        "session_id": "VARCHAR",
        "movie_id": "VARCHAR",
        "event_type": "VARCHAR",
        "rating": "TINYINT",
        "dt": "DATE",
    }

    for day in DAYS:  # each movie's day as report says it
        args = ("report", *database.args, "--json", "--as-of", "latest", "--day", day)
        report = json.loads(imdb_tui(*args, env=env).stdout)
        movies = {
            movie: (views, clicks, users, ratings)
            for movie, views, clicks, users, ratings in duckdb_rows(
                "SELECT movie_id, views, clicks, users, ratings FROM read_parquet("  # noqa: S608
                f"'{folder}/movie_daily/dt={day}/*.parquet')"
            )
        }
        assert {m["movie_id"]: m["views"] for m in report["top_movies"]} == {
            m["movie_id"]: movies[m["movie_id"]][0] for m in report["top_movies"]
        }
        assert sum(ratings for *_, ratings in movies.values()) == report["ratings"]["count"]
        top = report["top_movies"][0]["movie_id"]
        one = json.loads(imdb_tui(*args, "--movie", top, env=env).stdout)
        assert movies[top][:3] == (one["views"], one["by_type"]["click"], one["users"])

    # Again, and after more events on the last day: no row twice, the day brought up to date.
    assert export() == {"days": [], "rows": dict.fromkeys(first["rows"], 0), "seconds": ANY}
    assert sum(map(sum, (kinds.values() for kinds in by_day_and_type(folder).values()))) == 450
    more = tmp_path / "more.jsonl"
    more.write_text(produced(60, 9, f"{DAYS[-1]}T20:00:00Z"))
    ran = imdb_tui("run", "--source", str(more), *database.args, env=env, timeout=120)
    assert ran.returncode == 0, ran.stderr
    assert export()["days"] == [DAYS[-1]]  # what changed since, only
    assert by_day_and_type(folder) == {day: reported(day) for day in DAYS}
    assert sum(by_day_and_type(folder)[DAYS[-1]].values()) == 210
    assert export("--since", DAYS[0], "--until", DAYS[0])["days"] == [DAYS[0]]  # asked for
    assert by_day_and_type(folder) == {day: reported(day) for day in DAYS}
    assert not [p for p in folder.rglob(".*")]  # nothing left aside


def test_every_keeps_exporting_beside_a_run_and_sigterm_ends_it_with_0(tmp_path: Path) -> None:
    db, folder = stored(tmp_path, 100, DAYS[:1]), tmp_path / "bi"
    command = [COMMAND, "export", "--db", str(db), "--to", str(folder), "--every", "0.2", "--json"]
    exporting = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert exporting.stdout is not None
        assert json.loads(exporting.stdout.readline())["days"] == [DAYS[0]]
        later = tmp_path / "later.jsonl"
        later.write_text(produced(80, 2, f"{DAYS[1]}T10:00:00Z"))
        assert imdb_tui("run", "--source", str(later), "--db", str(db)).returncode == 0
        while (line := json.loads(exporting.stdout.readline()))["days"] != [DAYS[1]]:
            assert line["days"] == [], line  # nothing changed in between
        exporting.send_signal(signal.SIGTERM)
        assert exporting.wait(timeout=30) == 0, exporting.stderr.read()
    finally:
        exporting.kill()
    assert {day: sum(kinds.values()) for day, kinds in by_day_and_type(folder).items()} == {
        DAYS[0]: 100,
        DAYS[1]: 80,
    }


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--since", "2026-11-21", "--until", "2026-11-20"], "is after --until"),
        (["--since", "yesterday"], "a day, as YYYY-MM-DD"),
        (["--tables", "events,moviez"], "--tables 'events,moviez': name some of events"),
    ],
)
def test_bad_export_options_are_one_line(tmp_path: Path, args: list[str], said: str) -> None:
    db = stored(tmp_path, 20, DAYS[:1])
    result = imdb_tui("export", "--db", str(db), "--to", str(tmp_path / "bi"), *args)
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1 and said in result.stderr, result.stderr


def test_a_destination_that_cannot_be_written_is_one_line(tmp_path: Path) -> None:
    db = stored(tmp_path, 20, DAYS[:1])
    blocked = tmp_path / "bi"
    blocked.mkdir()
    (blocked / "events").write_text("a file where the table's folder goes")
    result = imdb_tui("export", "--db", str(db), "--to", str(blocked))
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1 and str(blocked / "events") in result.stderr


def test_an_export_to_s3_puts_one_object_a_table_and_day(
    aws: dict[str, str], tmp_path: Path
) -> None:
    """On moto's S3: the same layout as a folder, each day one object (replaced whole
    by an upload); a bucket that is not there is one line."""
    import io

    import boto3
    import pyarrow.parquet as pq

    db = stored(tmp_path, 100, env=aws)
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="lake")

    def export(*args: str) -> subprocess.CompletedProcess[str]:
        return imdb_tui("export", "--db", str(db), "--to", "s3://lake/imdb", *args, env=aws)

    assert export("--quicksight-manifest").returncode == 0
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="lake")["Contents"]}
    tables = ("events", "events_hourly", "events_daily", "movie_daily")
    days = {f"imdb/{t}/dt={day}/part-00000.parquet" for t in tables for day in DAYS}
    counts = tables[1:]
    csv = {f"imdb/quicksight/{t}/dt={day}.csv" for t in counts for day in DAYS}
    manifests = {f"imdb/quicksight/{t}.manifest.json" for t in counts}
    assert keys == days | csv | manifests | {"imdb/_imdb_tui_export.json"}
    for table in counts:  # each manifest names the prefix of its table's CSV files
        manifest = json.loads(
            s3.get_object(Bucket="lake", Key=f"imdb/quicksight/{table}.manifest.json")[
                "Body"
            ].read()
        )
        (prefix,) = manifest["fileLocations"][0]["URIPrefixes"]
        assert prefix == f"s3://lake/imdb/quicksight/{table}/"
        assert manifest["globalUploadSettings"]["containsHeader"] == "true"
    movies = s3.get_object(Bucket="lake", Key=f"imdb/quicksight/movie_daily/dt={DAYS[0]}.csv")
    header, *lines = movies["Body"].read().decode().splitlines()
    assert header.startswith('"day","movie_id","title","year","genres","views"')
    parquet = s3.get_object(Bucket="lake", Key=f"imdb/movie_daily/dt={DAYS[0]}/part-00000.parquet")
    assert len(lines) == pq.read_table(io.BytesIO(parquet["Body"].read())).num_rows
    rows = 0
    for day in DAYS:
        body = s3.get_object(Bucket="lake", Key=f"imdb/events/dt={day}/part-00000.parquet")
        rows += pq.read_table(io.BytesIO(body["Body"].read())).num_rows
    assert rows == 300
    again = export("--json")
    assert json.loads(again.stdout)["days"] == []  # nothing changed: nothing written

    # Athena's tables: the columns of the files, and the days where they are.
    ddl = export("--athena-ddl").stdout
    statements = ddl.split(";\n")[:-1]
    assert len(statements) == len(tables)
    for table, statement in zip(tables, statements, strict=True):
        template = re.search(r"'storage.location.template' = '(.+)'", statement)
        assert template is not None, statement
        object_key = template[1].replace("${dt}", DAYS[0]).removeprefix("s3://lake/") + FILE
        body = s3.get_object(Bucket="lake", Key=object_key)["Body"].read()
        names = pq.read_schema(io.BytesIO(body)).names
        assert re.findall(r"^  `(\w+)` ", statement, re.MULTILINE) == names, table
        assert f"`imdb_{table}`" in statement and "PARTITIONED BY (`dt` string)" in statement

    missing = imdb_tui("export", "--db", str(db), "--to", "s3://no-such-bucket/x", env=aws)
    assert missing.returncode == 2
    assert missing.stderr.strip() == "imdb-tui: s3://no-such-bucket/x: no such bucket"


def test_a_failed_upload_leaves_the_day_as_it_was_and_the_next_export_completes_it(
    aws: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second day's upload fails (the endpoint goes away): its old object stays,
    whole, and the note of what was exported does not move past it, so the next
    export writes that day (and only what changed)."""
    import boto3

    from imdb_tui.export import export
    from imdb_tui.export.destinations import DestinationError, S3Prefix
    from imdb_tui.store import open_store

    db = stored(tmp_path, 50, env=aws)
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="failing")
    store = open_store(db, read_only=True)
    try:
        export(store, S3Prefix("s3://failing/bi"), tables=["events"])
        key = f"bi/events/dt={DAYS[1]}/part-00000.parquet"
        before = s3.get_object(Bucket="failing", Key=key)["Body"].read()
        more = tmp_path / "more.jsonl"
        more.write_text(
            "".join(produced(20, 7 + n, f"{day}T20:00:00Z") for n, day in enumerate(DAYS))
        )
        assert imdb_tui("run", "--source", str(more), "--db", str(db), env=aws).returncode == 0

        call = S3Prefix._call

        def away(self: S3Prefix, operation: str, **arguments: object) -> object:
            if operation == "upload_file" and arguments["Key"] == key:
                raise DestinationError("s3://failing/bi: cannot reach the endpoint")
            return call(self, operation, **arguments)

        monkeypatch.setattr(S3Prefix, "_call", away)
        with pytest.raises(DestinationError):
            export(store, S3Prefix("s3://failing/bi"), tables=["events"])
        assert s3.get_object(Bucket="failing", Key=key)["Body"].read() == before  # untouched
        monkeypatch.setattr(S3Prefix, "_call", call)
        done = export(store, S3Prefix("s3://failing/bi"), tables=["events"])
        assert done.days == list(DAYS[1:]) and done.rows == {"events": 140}
    finally:
        store.close()


def test_csv_holds_the_same_rows_with_a_header(tmp_path: Path) -> None:
    db = stored(tmp_path, 60)
    for name, file_format in (("parquet", "parquet"), ("csv", "csv")):
        args = ("--to", str(tmp_path / name), "--format", file_format)
        assert imdb_tui("export", "--db", str(db), *args).returncode == 0
    read = {"parquet": "read_parquet", "csv": "read_csv"}
    for table in ("events", "movie_daily"):
        counts = [
            duckdb_rows(
                f"SELECT dt, count(*) FROM {read[name]}('{tmp_path}/{name}/{table}/*/*.{name}',"  # noqa: S608
                " hive_partitioning = true) GROUP BY ALL ORDER BY ALL"
            )
            for name in ("parquet", "csv")
        ]
        assert counts[0] == counts[1] and len(counts[0]) == 3, table
    header = (
        (tmp_path / "csv" / "movie_daily" / f"dt={DAYS[0]}" / "part-00000.csv").open().readline()
    )
    assert header.startswith('"day","movie_id","title","year","genres","views","clicks"')
