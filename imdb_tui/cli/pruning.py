"""`imdb-tui prune`: the stored events before a day or older than a duration deleted
(as --retention does while a pipeline runs), or a whole SQLite file emptied."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from imdb_tui.cli.commands import cli
from imdb_tui.cli.options import DurationParam, Failure, check_day, db_option
from imdb_tui.cli.setup import open_store
from imdb_tui.clock import SystemClock, date_start, utc_iso
from imdb_tui.display import plural, size_text
from imdb_tui.store import Store, StoreError
from imdb_tui.store.dynamodb import is_dynamodb
from imdb_tui.store.postgres import is_postgres

STEP = 50_000
"""Rows deleted a transaction: a pipeline writing meanwhile waits no longer than that."""


@cli.command()
@db_option
@click.option(
    "--before", metavar="YYYY-MM-DD", help="Delete the events of the days before this one."
)
@click.option(
    "--keep",
    type=DurationParam("d"),
    default=None,
    metavar="DURATION",
    help="Delete the events older than this (30d, 12h; days if no unit).",
)
@click.option(
    "--all",
    "everything",
    is_flag=True,
    help="Empty an SQLite database: its file is deleted, and the next run starts anew.",
)
@click.option("--yes", is_flag=True, help="Do not ask first (for scripts).")
def prune(
    db: str,
    pg_schema: str,
    before: str | None,
    keep: float | None,
    everything: bool,
    yes: bool,
) -> None:
    """Delete stored events: those of the days before --before, those older than
    --keep, or, with --all, the whole SQLite file.

    As --retention does while a pipeline runs, the raw events and dead letters go,
    and the per-minute figures of those times; each day's totals and the all-time
    counts stay. A pipeline may be writing meanwhile. Asks first, unless --yes.

    \b
    Examples:
      imdb-tui prune --keep 7d
      imdb-tui prune --before 2026-12-01 --db postgresql://app@db/analytics
      imdb-tui prune --all --yes              # the default database, emptied
    """
    if sum((before is not None, keep is not None, everything)) != 1:
        raise Failure("say what to delete: one of --before DAY, --keep DURATION or --all")
    if is_dynamodb(db):
        raise Failure(
            "DynamoDB expires events itself (its time-to-live, set by --retention):"
            " prune is for SQLite and PostgreSQL"
        )
    clock = SystemClock()
    if everything:
        _empty(db, yes, clock)
        return
    if before is not None:
        cutoff = date_start(check_day("--before", before), clock.tz)
        said = f"the days before {before}"
    else:
        assert keep is not None
        cutoff = clock.now() - keep
        said = f"the events older than {time.strftime('%Y-%m-%d %H:%M', time.localtime(cutoff))}"
    store = open_store(db, create=False, pg_schema=pg_schema)
    try:
        _ask(yes, f"Delete {said} from {store.name}?")
        deleted = 0
        while (step := store.prune(utc_iso(cutoff), STEP)) > 0:
            deleted += step
        store.prune_aggregates(utc_iso(cutoff))
    except StoreError as error:
        raise Failure(str(error)) from None
    finally:
        store.close()
    click.echo(f"pruned {plural(deleted, 'row')} (events and dead letters) of {said}")


def _empty(db: str, yes: bool, clock: SystemClock) -> None:
    """--all: the SQLite file (and its WAL) deleted, once no pipeline writes to it."""
    if is_postgres(db) or db == ":memory:":
        raise Failure(
            "--all empties an SQLite file; for PostgreSQL, drop the schema"
            " (DROP SCHEMA imdb_tui CASCADE) or prune with --before or --keep"
        )
    path = Path(db)
    if not path.exists():
        raise Failure(f"{db}: no such file")
    store: Store = open_store(db, read_only=True)
    try:
        live = [p for p in store.pipelines(clock.now()) if p.live]
        held = store.counters().get("events_total", 0)
    except StoreError as error:
        raise Failure(str(error)) from None
    finally:
        store.close()
    if live:
        raise Failure(f"{db}: a pipeline is writing to it ({live[0].pipeline_id}); stop it first")
    files = [Path(f"{db}{end}") for end in ("", "-wal")]
    size = sum(file.stat().st_size for file in files if file.exists())
    _ask(yes, f"Delete {db} ({size_text(size)}, {plural(held, 'event')} stored in all)?")
    for end in ("-wal", "-shm", ""):
        Path(f"{db}{end}").unlink(missing_ok=True)
    click.echo(f"deleted {db} ({size_text(size)}): the next run starts anew")


def _ask(yes: bool, question: str) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise Failure(f"{question[:-1]}: give --yes to do it without a terminal to ask on")
    if not click.confirm(question, default=False):
        raise Failure("nothing deleted")
