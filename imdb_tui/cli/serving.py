"""`imdb-tui serve`: one pipeline, its monitor in every browser that opens the URL."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from typing import Any

import click

from imdb_tui.cli.commands import cli, describe_inputs
from imdb_tui.cli.options import (
    Failure,
    Number,
    Options,
    pipeline_options,
    refresh_option,
)
from imdb_tui.cli.output import print_summary
from imdb_tui.cli.setup import open_store, pipeline_into
from imdb_tui.display import plural
from imdb_tui.metrics import read_snapshot
from imdb_tui.pipeline import Pipeline, PipelineSettings, RunSummary
from imdb_tui.serve import (
    MAX_VIEWERS,
    TOKEN_VARIABLE,
    Door,
    ServeError,
    Viewers,
    make_server,
    start_site,
    token_from_file,
    viewer_command,
    wait_for_signal,
)
from imdb_tui.store import StoreError

DB_VARIABLE = "IMDB_TUI_DB"
SCHEMA_VARIABLE = "IMDB_TUI_PG_SCHEMA"
ATTACHED = frozenset({"db", "pg_schema", "window"})
"""The pipeline options that --attach takes: which database, and how to view it."""


@cli.command()
@pipeline_options
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="The address to serve on. Any but loopback needs a token (made at start,"
    " unless --token gives it).",
)
@click.option(
    "--port",
    type=Number(0, 65_535, "port"),
    default=8000,
    show_default=True,
    help="The port to serve on (0: one the system picks, printed at start).",
)
@click.option(
    "--token",
    envvar=TOKEN_VARIABLE,
    show_envvar=True,
    default=None,
    metavar="TEXT",
    help="The token a browser must bring (in the URL, then kept in a cookie). A command"
    " line shows in ps: prefer the variable or --token-file.",
)
@click.option(
    "--token-file",
    default=None,
    metavar="PATH",
    help="Read the token from the first line of this file.",
)
@click.option(
    "--max-viewers",
    type=Number(1, 1000, "viewers"),
    default=MAX_VIEWERS,
    show_default=True,
    metavar="N",
    help="Browser tabs served at once (each is a process); the next one gets a page"
    " saying the limit.",
)
@click.option(
    "--attach",
    is_flag=True,
    help="Serve the database another process (run, or a monitor) writes: no pipeline here.",
)
@click.option(
    "--count",
    type=Number(1, None, "events"),
    default=None,
    metavar="N",
    help="Stop the pipeline after this many events (the page goes on being served).",
)
@refresh_option
@click.pass_context
def serve(
    ctx: click.Context,
    /,
    options: Options,
    host: str,
    port: int,
    token: str | None,
    token_file: str | None,
    max_viewers: int,
    attach: bool,
    count: int | None,
    refresh: float,
) -> None:
    """Serve the monitor to web browsers, with one pipeline however many tabs.

    The pipeline runs headless (as `run` does, with the same options); every tab
    is a read-only `watch` view of the database, so no key reaches the pipeline.

    It binds 127.0.0.1 unless --host says otherwise; on any other address each
    request needs the token in the URL printed at start. Ctrl-C, SIGTERM or
    SIGHUP stops serving, and drains and commits the pipeline's queue first.

    \b
    Examples:
      imdb-tui serve                                # http://127.0.0.1:8000/
      imdb-tui serve --source kinesis://clicks --port 8080
      imdb-tui serve --host 0.0.0.0                 # for the team: a token is made
      imdb-tui serve --host 0.0.0.0 --token-file ~/.imdb-tui-token
      imdb-tui serve --attach --db postgresql://dash@db/engagement   # no pipeline here
    """
    if attach:
        given = [
            f"--{name.replace('_', '-')}"
            for name in (*(f.name for f in dataclasses.fields(Options)), "count")
            if name not in ATTACHED
            and ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE
        ]
        if given:
            raise Failure(f"--attach starts no pipeline: {', '.join(given)} is for one that runs")
    if options.db == ":memory:":
        raise Failure("serve needs a database its viewers can open: a file or a PostgreSQL URL")
    viewers = Viewers(lambda now: click.echo(f"{time.strftime('%H:%M:%S')} viewers: {now}"))
    try:
        if token_file is not None:
            if token is not None:
                raise ServeError("give the token once: --token (or its variable) or --token-file")
            token = token_from_file(token_file)
        door = Door.for_host(host, port, token, max_viewers)
        server = make_server(door, viewer_command(options.window, refresh), viewers)
    except ServeError as error:
        raise Failure(str(error)) from None
    store = open_store(
        options.db,
        read_only=attach,
        pg_schema=options.pg_schema,
        create_tables=options.create_tables,
        max_size=options.max_size,
    )
    pipeline: Pipeline | None = None
    try:
        if not attach:
            settings = PipelineSettings(count=count, **options.settings())
            pipeline = pipeline_into(store, settings, options.inputs())
            describe_inputs(store, pipeline, options)
        else:
            click.echo(f"database: {store.name} (attached: another process writes it)")
        # Each viewer reads the database named in its environment, not on its command line.
        os.environ[DB_VARIABLE] = options.db
        os.environ[SCHEMA_VARIABLE] = options.pg_schema
        outcome = asyncio.run(_serve(server, door, pipeline))
        final = read_snapshot(store, time.time(), None, options.window)
    except StoreError as error:
        raise Failure(str(error)) from None
    finally:
        store.close()
    click.echo(f"served {plural(viewers.total, 'viewer')} ({viewers.most:,} at most at once)")
    if outcome is not None and pipeline is not None:
        held = f"now holds {plural(final.events_total, 'event')} in all"
        print_summary(outcome, f"database: {store.name} {held}", pipeline.source.name)


async def _serve(server: Any, door: Door, pipeline: Pipeline | None) -> RunSummary | None:
    """Serve until Ctrl-C; the pipeline, if any, runs meanwhile and is drained first."""
    try:
        runner, port = await start_site(server, door)
    except ServeError as error:
        raise Failure(str(error)) from None
    try:
        given = door.token is not None and not door.token_made
        note = "<token> is the one given; " if given else ""
        click.echo(f"serving the monitor at {door.url(port)}  ({note}Ctrl-C stops)")
        if pipeline is None:
            await wait_for_signal()
            return None
        running = asyncio.create_task(pipeline.run())
        stopping = asyncio.create_task(wait_for_signal())
        await asyncio.wait([running, stopping], return_when=asyncio.FIRST_COMPLETED)
        if running.done() and not running.exception():
            # The source ended, or --count was reached: the page goes on being served.
            stamp = time.strftime("%H:%M:%S")
            click.echo(f"{stamp} pipeline {pipeline.state}; Ctrl-C stops serving")
            await stopping
        pipeline.stop()
        stopping.cancel()
        return await running
    finally:
        await runner.cleanup()
