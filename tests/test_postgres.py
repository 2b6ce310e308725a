"""PostgreSQL as the shared store: many writers at once, a server that goes away,
a writer killed mid-batch, and what a user sees of the connection string.

Each test drives the real `imdb-tui` command in subprocesses against a real
server (the session's throwaway one, or one of its own when the test stops it).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from imdb_tui.aggregates import Aggregator
from imdb_tui.store import open_store
from tests.conftest import Database
from tests.postgres_server import Server, throwaway_server

COMMAND = str(Path(sys.executable).with_name("imdb-tui"))
ENV = {**os.environ, "TZ": "UTC"}  # local days are UTC days, for the recount


def produce(path: Path, count: int, seed: int, start: str = "2026-11-23T08:00:00Z") -> Path:
    with path.open("w") as out:
        subprocess.run(
            [
                COMMAND,
                "produce",
                "--count",
                str(count),
                "--seed",
                str(seed),
                "--start",
                start,
                "--rate",
                "1000",
            ],
            stdout=out,
            check=True,
            env=ENV,
        )
    return path


def run(database: Database, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [COMMAND, "run", *database.args, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=ENV,
    )


def query(database: Database, sql: str) -> list[tuple[object, ...]]:
    import psycopg

    with psycopg.connect(database.name, autocommit=True) as db:
        db.execute(f'SET search_path TO "{database.schema}"')
        return db.execute(sql).fetchall()  # type: ignore[arg-type]


def distinct_ids(*files: Path) -> int:
    import json

    return len({json.loads(line)["event_id"] for f in files for line in f.open()})


def assert_aggregates_match_a_recount(database: Database) -> None:
    """Every aggregate table equals what counting the events table gives."""
    per_minute = "SELECT date_trunc('minute', event_time), event_type, count(*) FROM events"
    views = (
        "SELECT CAST(event_time AT TIME ZONE 'UTC' AS date), movie_id, count(*) FROM events"
        " WHERE event_type = 'view'"
    )
    last_seen = "SELECT user_id, max(event_time) AS seen FROM events GROUP BY 1"
    recounts = {
        "SELECT minute, event_type, events FROM events_per_minute": per_minute + " GROUP BY 1, 2",
        "SELECT day, movie_id, views FROM movie_views_daily": views + " GROUP BY 1, 2",
        "SELECT user_id, last_seen FROM user_activity": last_seen,
        "SELECT minute, users FROM users_per_last_minute WHERE users <> 0": (
            "SELECT date_trunc('minute', seen), count(*) FROM (SELECT max(event_time) AS seen"
            " FROM events GROUP BY user_id) AS u GROUP BY 1"
        ),
        "SELECT value FROM counters WHERE name = 'events_total'": "SELECT count(*) FROM events",
    }
    for kept, recount in recounts.items():
        assert sorted(query(database, kept)) == sorted(query(database, recount)), kept


@pytest.mark.parametrize("writers", [2, 4])
def test_many_writers_store_each_event_once_with_exact_aggregates(
    postgres_database: Database, tmp_path: Path, writers: int
) -> None:
    first = produce(tmp_path / "a.jsonl", 6000, seed=1)
    second = produce(tmp_path / "b.jsonl", 6000, seed=2, start="2026-11-23T08:30:00Z")
    files = [first, first, second, second][:writers]  # each file fed to two writers
    postgres_database.open().close()  # the tables, made once before the race
    processes = [run(postgres_database, "--source", str(f), "--from-start") for f in files]
    outputs = [p.communicate(timeout=120)[0] for p in processes]
    assert [p.returncode for p in processes] == [0] * writers, outputs
    lines = sum(len(f.read_text().splitlines()) for f in files)
    unique = distinct_ids(*files)
    store = postgres_database.open(read_only=True)
    counters = store.counters()
    assert counters["events_total"] == unique == store.count_events()
    assert counters["duplicates"] == lines - unique
    health = store.pipelines(time.time())
    assert len(health) == writers and {h.state for h in health} == {"finished"}
    store.close()
    assert_aggregates_match_a_recount(postgres_database)


@pytest.fixture
def own_server() -> Iterator[Server]:
    """A server of this test's own, which it may stop and start."""
    with throwaway_server() as server:
        yield server


def wait_for(process: subprocess.Popen[str], text: str, seen: list[str]) -> None:
    """Read the process's output until a line holds `text` (or it ends: a failure)."""
    assert process.stdout is not None
    for line in process.stdout:
        seen.append(line)
        if text in line:
            return
    pytest.fail(f"{text!r} never appeared:\n{''.join(seen)}")


def wait_for_stored(process: subprocess.Popen[str], least: int, seen: list[str]) -> None:
    """Read the process's status lines until one says `least` events or more are stored
    (a line a second: on a busy machine a line may say a few thousand more than the last)."""
    assert process.stdout is not None
    for line in process.stdout:
        seen.append(line)
        stored = re.search(r" stored ([\d,]+) ", line)
        if stored and int(stored[1].replace(",", "")) >= least:
            return
    pytest.fail(f"never {least:,} stored:\n{''.join(seen)}")


def test_a_server_away_for_seconds_loses_nothing_and_doubles_nothing(
    own_server: Server, tmp_path: Path
) -> None:
    database = Database("postgres", own_server.url(), "imdb_tui")
    events = produce(tmp_path / "e.jsonl", 3000, seed=3)
    writer = run(database, "--source", str(events), "--rate", "500")
    seen: list[str] = []
    try:
        wait_for_stored(writer, 1000, seen)
        stopped = time.monotonic()
        own_server.stop("fast")
        wait_for(writer, "cannot reach PostgreSQL", seen)  # shown while it lasts
        time.sleep(max(0.0, 5.0 - (time.monotonic() - stopped)))  # the outage: 5 s
        own_server.resume()
        output = "".join(seen) + writer.communicate(timeout=60)[0]
    finally:
        writer.kill()
    assert writer.returncode == 0, output
    store = database.open(read_only=True)
    assert store.count_events() == 3000 == store.counters()["events_total"]
    store.close()
    assert_aggregates_match_a_recount(database)


def test_a_killed_writer_is_rerun_and_stores_exactly_the_rest(
    postgres_database: Database, tmp_path: Path
) -> None:
    events = produce(tmp_path / "e.jsonl", 4000, seed=4)
    writer = run(postgres_database, "--source", str(events), "--rate", "500")
    seen: list[str] = []
    try:
        wait_for_stored(writer, 1000, seen)
        writer.send_signal(signal.SIGKILL)  # mid-run: its open transaction rolls back
        writer.wait(timeout=30)
    finally:
        writer.kill()
    before = open_store(postgres_database.name, read_only=True, pg_schema=postgres_database.schema)
    stored = before.counters()["events_total"]
    before.close()
    assert 1000 <= stored < 4000
    rerun = run(postgres_database, "--source", str(events))
    output = rerun.communicate(timeout=120)[0]
    assert rerun.returncode == 0, output
    assert f"resumed: {events} from line " in output and " (byte " in output
    store = postgres_database.open(read_only=True)
    counters = store.counters()
    assert counters["events_total"] == 4000 == store.count_events()
    assert counters.get("duplicates", 0) == 0  # the rest exactly: nothing read twice
    store.close()
    assert_aggregates_match_a_recount(postgres_database)


def test_the_password_never_shows(own_server: Server, tmp_path: Path) -> None:
    """In the summary, the report, and the error of a wrong password."""
    secret = "pa55-w0rd"
    import psycopg

    with psycopg.connect(own_server.url(), autocommit=True) as admin:
        admin.execute(f"CREATE USER alice PASSWORD '{secret}' CREATEDB")
        admin.execute("ALTER DATABASE imdb_tui_test OWNER TO alice")
    hba = own_server.data / "pg_hba.conf"
    rules = "host all alice 127.0.0.1/32 scram-sha-256\n" + hba.read_text()
    hba.write_text(rules)
    own_server.reload()
    url = own_server.url().replace("postgres@", f"alice:{secret}@")
    database = Database("postgres", url, "imdb_tui")
    writer = run(database, "--duration", "1")
    output = writer.communicate(timeout=60)[0]
    assert writer.returncode == 0, output
    assert "postgresql://alice@127.0.0.1" in output
    report = subprocess.run(
        [COMMAND, "report", *database.args], capture_output=True, text=True, env=ENV
    )
    wrong = subprocess.run(
        [COMMAND, "report", "--db", url.replace(secret, secret + "x")],
        capture_output=True,
        text=True,
        env=ENV,
    )
    assert report.returncode == 0 and wrong.returncode == 2
    assert "authentication failed" in wrong.stderr
    for text in (output, report.stdout, report.stderr, wrong.stdout, wrong.stderr):
        assert secret not in text


def test_the_same_events_give_the_same_report_on_both_backends(
    postgres_database: Database, tmp_path: Path
) -> None:
    import json

    events = produce(tmp_path / "e.jsonl", 3000, seed=5)
    with events.open("a") as broken:  # and some dead letters
        broken.write('{"event_id": "x"}\nnot json\n')
    sqlite = Database("sqlite", str(tmp_path / "e.db"))
    reports = []
    for database in (sqlite, postgres_database):
        writer = run(database, "--source", str(events))
        assert writer.wait(timeout=120) == 0
        report = subprocess.run(
            [COMMAND, "report", *database.args, "--json", "--as-of", "latest"],
            capture_output=True,
            text=True,
            env=ENV,
            check=True,
        )
        data = json.loads(report.stdout)
        data.pop("database_bytes")  # each backend's own way of storing
        data.pop("figures")  # the same counts as the rest, with that size
        data["sources"] = [source["position"] for source in data["sources"]]
        data["pipelines"] = [(p["state"], p["stored"]) for p in data["pipelines"]]
        reports.append(data)
    assert reports[0] == reports[1]
    assert reports[0]["events_total"] == 3000 and reports[0]["dead_letters"] == 2


def test_problems_at_start_are_one_line_and_exit_2(postgres_url: str) -> None:
    import psycopg

    from tests.postgres_server import free_port

    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute("DROP ROLE IF EXISTS visitor")
        admin.execute("CREATE ROLE visitor LOGIN")
        admin.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    server = postgres_url.rsplit("/", 1)[0].replace("postgres@", "")
    cases = {
        f"postgresql://nobody:pw@127.0.0.1:{free_port()}/x": "cannot reach PostgreSQL at",
        f"{postgres_url.rsplit('/', 1)[0]}/no_such_db": '"no_such_db" does not exist',
        f"{server.replace('//', '//visitor@')}/imdb_tui_test": "the right to create tables",
    }
    for url, said in cases.items():
        result = subprocess.run(
            [COMMAND, "run", "--db", url, "--pg-schema", "fresh", "--duration", "1"],
            capture_output=True,
            text=True,
            env=ENV,
        )
        assert result.returncode == 2, result
        assert result.stdout == "" and len(result.stderr.splitlines()) == 1, result.stderr
        assert said in result.stderr and "Traceback" not in result.stderr


def test_a_deadlock_is_retried_inside_and_never_escapes(postgres_database: Database) -> None:
    """Another transaction holds one of a batch's ids and then wants one the batch
    holds: PostgreSQL aborts the batch's transaction, which is run again, whole."""
    import threading

    import psycopg

    from tests.helpers import events

    store = postgres_database.open()
    first, second = events(range(2))
    other = psycopg.connect(postgres_database.name)  # a transaction of its own
    other.execute(f'SET search_path TO "{postgres_database.schema}"')
    other.execute("SET deadlock_timeout = '30s'")  # so the batch is the one aborted
    insert = (
        "INSERT INTO events (event_id, event_time, user_id, session_id, movie_id, event_type)"
        " VALUES (%s, %s, 'u', 's', 'tt0000001', 'view')"
    )
    other.execute(insert, (second.event_id, second.event_time))
    result: list[object] = []
    batch = threading.Thread(
        target=lambda: result.append(
            store.write_batch([first, second], [], "2026-11-23T10:00:00.000Z", Aggregator(None))
        )
    )
    batch.start()  # inserts `first`, then waits on `second`
    waiting = psycopg.connect(postgres_database.name, autocommit=True)
    while not waiting.execute(
        "SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = 'transactionid'"
    ).fetchone()[0]:  # type: ignore[index]
        time.sleep(0.01)
    waiting.close()
    other.execute(insert, (first.event_id, first.event_time))  # the deadlock
    other.commit()
    other.close()
    batch.join(timeout=60)
    assert result == [[]]  # run again after the other committed: both ids were stored
    assert store.counters() == {"duplicates": 2}
    assert store.count_events() == 2
    store.close()


def test_watch_says_when_the_database_is_away_and_when_it_is_back(
    own_server: Server, tmp_path: Path
) -> None:
    """With the server stopped, watch says so at once in its status line and Pipeline
    panel (no RUNNING and measured rate as if live), and says when it answers again."""
    from tests.test_watch import terminal

    database = Database("postgres", own_server.url(), "imdb_tui")
    made = subprocess.run(
        [COMMAND, "run", *database.args, "--count", "500", "--seed", "3"],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    with terminal(["watch", *database.args, "--refresh", "0.5"]) as shown:
        shown.wait_for(r"stored +500\b")
        shown.wait_for(r"measured +–")  # the run ended: no rate as if it were live
        own_server.stop()
        found = shown.wait_for(r"cannot reach the database since (\d\d:\d\d:\d\d)")
        assert "WATCHING · UNREACHABLE" in shown.text()
        shown.wait_for(f"database away +│\n.*│ since {found[1]} ")  # the panel
        own_server.resume()
        shown.wait_for(r"the database answers again", timeout=60)
        assert f"since {found[1]}" not in shown.text()  # neither line says it any more
        shown.press(b"q")
        assert shown.exit_status() == 0
