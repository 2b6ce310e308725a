"""What a command sets up before it runs: the store, the catalogue, the pipeline, stdin.

Each turns the core's one-line errors into a Failure (exit status 2).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import BinaryIO

import click

from imdb_tui.assembly import Inputs, SetupError, build_pipeline
from imdb_tui.catalog import Catalog
from imdb_tui.cli.options import DEFAULT_DB, NO_TERMINAL, Failure
from imdb_tui.imdb import CatalogError, kept_imdb_catalog, load_imdb_catalog
from imdb_tui.pipeline import Pipeline, PipelineSettings
from imdb_tui.store import Store, StoreError
from imdb_tui.store import open_store as open_backend
from imdb_tui.store.dynamodb import is_dynamodb


def pipeline_into(store: Store, settings: PipelineSettings, inputs: Inputs) -> Pipeline:
    """The pipeline the options describe, its IMDb catalogue read (or kept) first."""
    try:
        inputs.check()
        return build_pipeline(store, settings, inputs, load_catalog(inputs, store))
    except SetupError as error:
        raise Failure(str(error)) from None


def load_catalog(inputs: Inputs, store: Store) -> Catalog | None:
    """IMDb's catalogue if --catalog names it: kept in the database from an earlier
    start if the files are the same, else read with a progress bar on stderr and kept."""
    if inputs.catalog is None:
        return None
    files = ";".join(_fingerprint(path) for path in (inputs.catalog, inputs.ratings) if path)
    files += ";adult" if inputs.include_adult else ""  # another catalogue: read again
    try:
        if store.kept_catalog(files) is not None:
            catalog = kept_imdb_catalog(store.catalog_weights())
            click.echo(f"catalogue: {len(catalog):,} movies, kept in the database", err=True)
            return catalog
        store.forget_catalog()
        with click.progressbar(
            length=1, label="reading the IMDb catalogue", file=sys.stderr, show_percent=True
        ) as bar:

            def advance(done: int, total: int) -> None:
                bar.length = max(total, 1)
                bar.update(done - bar.pos)

            loaded = load_imdb_catalog(
                inputs.catalog,
                inputs.ratings,
                inputs.seed,
                advance,
                keep=store,
                include_adult=inputs.include_adult,
            )
        store.keep_catalog(files, loaded.skipped, loaded.rated)
    except (CatalogError, StoreError) as error:
        raise Failure(str(error)) from None
    votes = f", {loaded.rated:,} with votes" if inputs.ratings else ""
    adult = f", {loaded.adult:,} adult left out: --include-adult keeps them" if loaded.adult else ""
    click.echo(
        f"catalogue: {len(loaded.catalog):,} movies{votes}"
        f" ({loaded.skipped:,} malformed rows skipped{adult})",
        err=True,
    )
    return loaded.catalog


def _fingerprint(path: str) -> str:
    """A file as its absolute path, size and modification time: changed, it is read again."""
    status = Path(path).stat()
    return f"{Path(path).resolve()}|{status.st_size}|{status.st_mtime_ns}"


def stdin_for_events() -> BinaryIO:
    """Stdin's data on a descriptor of its own, and the terminal as stdin again, so
    that `produce | imdb-tui --source -` pipes events in while keys still work."""
    if sys.stdin.isatty():
        raise Failure("--source - reads events from a pipe or a file, not from the terminal")
    events = os.fdopen(os.dup(0), "rb")
    try:
        terminal = os.open("/dev/tty", os.O_RDONLY)
    except OSError:
        raise Failure(NO_TERMINAL) from None
    os.dup2(terminal, 0)
    os.close(terminal)
    return events


def open_store(
    db: str,
    create: bool = True,
    read_only: bool = False,
    pg_schema: str | None = None,
    *,
    create_tables: bool = False,
    max_size: int | None = None,
) -> Store:
    """The store --db names. Only the default data folder is created when missing: a
    folder named by hand that is not there is more likely a typo than a wish."""
    if is_dynamodb(db) and max_size is not None:
        raise Failure("--max-size is not for DynamoDB: a table grows on demand (see --retention)")
    try:
        if db == str(DEFAULT_DB) and create and not read_only:
            try:
                DEFAULT_DB.parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise Failure(f"cannot create {DEFAULT_DB.parent}: {error.strerror}") from None
        return open_backend(
            db,
            create=create,
            read_only=read_only,
            pg_schema=pg_schema,
            create_tables=create_tables,
        )
    except StoreError as error:
        raise Failure(str(error)) from None
