"""The `imdb-tui` commands: monitor (the default), run, watch, produce, report and export."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from datetime import tzinfo

import click

from imdb_tui import __version__
from imdb_tui.alert_actions import AlertActions
from imdb_tui.alerts import stored_alerts
from imdb_tui.assembly import Inputs, simulator
from imdb_tui.catalog import build_catalog
from imdb_tui.cli.options import (
    DEFAULT_DB,
    NO_TERMINAL,
    START_RATE,
    AlertOptions,
    DurationParam,
    Failure,
    MomentParam,
    Number,
    Options,
    RateParam,
    alert_options,
    check_day,
    db_option,
    pipeline_options,
    refresh_option,
    seed_option,
    titles_option,
    users_option,
    window_option,
)
from imdb_tui.cli.output import (
    alert_line,
    dead_letters_text,
    movie_text,
    print_summary,
    report_json,
    report_text,
    status_line,
)
from imdb_tui.cli.setup import open_store, pipeline_into, stdin_for_events
from imdb_tui.clock import ManualClock, SystemClock, local_day
from imdb_tui.display import literal, plural
from imdb_tui.events import is_movie_id, seconds
from imdb_tui.export import TABLES as EXPORT_TABLES
from imdb_tui.export import ExportError
from imdb_tui.export import Progress as ExportProgress
from imdb_tui.export import export as export_days
from imdb_tui.export.athena import athena_ddl
from imdb_tui.export.destinations import DestinationError
from imdb_tui.export.destinations import destination as export_to
from imdb_tui.imdb import write_title_basics
from imdb_tui.metrics import not_kept, oldest_day, read_movie, read_snapshot
from imdb_tui.pipeline import Pipeline, PipelineSettings, RunSummary
from imdb_tui.produce import Lines, produce_live, produce_stamped
from imdb_tui.search import read_index, titled
from imdb_tui.sources import SourceError, SourceKind, SourceSpec
from imdb_tui.store import Store, StoreError


@click.group(
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=f"Default database: {DEFAULT_DB} (change it with --db).",
)
@click.version_option(__version__, "-V", "--version", prog_name="imdb-tui")
@pipeline_options
@alert_options
@refresh_option
@click.pass_context
def cli(ctx: click.Context, /, options: Options, alerting: AlertOptions, refresh: float) -> None:
    """Real-time analytics for IMDb-style user engagement, in the terminal.

    A stream of views, clicks, ratings and watchlist adds (simulated, or JSON
    Lines from a file or a pipe) flows through a bounded queue into a
    validating, deduplicating consumer that stores it in SQLite; records that
    are not events go to the dead letters; live metrics are computed from small
    aggregate tables.

    With no command, the full-screen monitor opens (the same as `imdb-tui
    monitor`) and takes the options below.

    \b
    Examples:
      imdb-tui --rate 2000                  # the monitor, at 2,000 events a second
      imdb-tui run --duration 60            # run headless for a minute
      imdb-tui run --rate max --count 1e6   # push a million events as fast as possible
      imdb-tui watch                        # the monitor, read-only, beside a run elsewhere
      imdb-tui report --json                # the stored metrics as one JSON object
      imdb-tui produce --count 1000 | imdb-tui run --source -   # events through a pipe
      imdb-tui --source march.jsonl.gz --replay-speed 60        # history, an hour a minute
    """
    if ctx.invoked_subcommand is None:
        _monitor(options, alerting, refresh)


@cli.command()
@pipeline_options
@alert_options
@refresh_option
def monitor(options: Options, alerting: AlertOptions, refresh: float) -> None:
    """Open the full-screen monitor (the default when no command is given).

    Keys: p pause/resume, + - rate, m max, r exact rate, w window, [ ] refresh,
    f freeze, v top movies or trending, enter a movie's day, t live tail (/
    filters), < > past days, d dead letters, a alerts, s find a movie, ? help,
    ctrl+p palette, q quit (the queue is drained and committed first).
    """
    _monitor(options, alerting, refresh)


def _monitor(options: Options, alerting: AlertOptions, refresh: float) -> None:
    alerts = alerting.alerts()
    events = None
    if (
        options.spec.kind is SourceKind.STDIN
    ):  # events come down the pipe; keys come from the terminal
        events = stdin_for_events()
    if not (sys.stdin.isatty() and sys.stderr.isatty()):  # Textual reads one, draws on the other
        raise Failure(NO_TERMINAL)
    from imdb_tui.tui.app import MonitorApp, monitor_settings  # Textual loads only here
    from imdb_tui.viewer import in_process

    settings = monitor_settings(**options.settings())
    store = open_store(
        options.db,
        pg_schema=options.pg_schema,
        create_tables=options.create_tables,
        max_size=options.max_size,
    )
    pipeline = pipeline_into(store, settings, options.inputs(events))
    pipeline.alerts = alerts
    logging.getLogger().handlers.clear()  # nothing may write over the screen
    app = MonitorApp(*in_process(pipeline, store.name), refresh, bell=alerting.bell)
    alerting.act_on(alerts, app.alert_action_failed)
    try:
        outcome = app.run()
    finally:
        store.close()
    if outcome is not None:
        print_summary(outcome, f"database: {store.name}", pipeline.source.name)


@cli.command()
@pipeline_options
@alert_options
@click.option(
    "--fail-on-alert",
    is_flag=True,
    help="Exit with status 3 at the end if any alert fired (for CI and cron).",
)
@click.option(
    "--duration",
    type=DurationParam("s"),
    default=None,
    metavar="DURATION",
    help="Stop after this long (e.g. 90, 5m). Default: run until Ctrl-C.",
)
@click.option(
    "--count",
    type=Number(1, None, "events"),
    default=None,
    metavar="N",
    help="Stop after this many events (1000, 1e6).",
)
def run(
    options: Options,
    alerting: AlertOptions,
    fail_on_alert: bool,
    duration: float | None,
    count: int | None,
) -> None:
    """Run the pipeline headless: one status line a second, then a summary.

    Ctrl-C, SIGTERM or SIGHUP stops it cleanly: the queue is drained and committed first.
    An alert that fires or clears is a line of its own (ALERT firing ...).
    """
    alerts = alerting.alerts()
    if fail_on_alert and alerts is None:
        raise Failure("--fail-on-alert needs alert rules: --alert or --alerts")
    settings = PipelineSettings(count=count, **options.settings())
    store = open_store(
        options.db,
        pg_schema=options.pg_schema,
        create_tables=options.create_tables,
        max_size=options.max_size,
    )
    pipeline = pipeline_into(store, settings, options.inputs())
    pipeline.alerts = alerts
    if alerts is not None:
        alerts.listeners.append(lambda change: click.echo(alert_line(change)))
    actions = alerting.act_on(
        alerts, lambda problem: click.echo(f"alert action: {problem}", err=True)
    )
    describe_inputs(store, pipeline, options)
    try:
        outcome = asyncio.run(_run_headless(pipeline, duration, actions))
        final = read_snapshot(store, time.time(), None, options.window)
    except StoreError as error:
        raise Failure(str(error)) from None
    finally:
        store.close()
    held = f"now holds {plural(final.events_total, 'event')} in all"
    print_summary(outcome, f"database: {store.name} {held}", pipeline.source.name)
    if alerts is not None and alerts.fired:
        click.echo(f"alerts: {plural(alerts.fired, 'alert')} fired")
        if fail_on_alert:
            sys.exit(3)


@cli.command()
@functools.partial(
    db_option,
    help="The database another imdb-tui (run, or a monitor) is writing: a file, or a"
    " PostgreSQL URL.",
)
@window_option
@alert_options
@refresh_option
def watch(db: str, pg_schema: str, window: int, alerting: AlertOptions, refresh: float) -> None:
    """Watch a database another process is writing: the monitor, read-only.

    The same panels and view keys (w window, [ ] refresh, f freeze, v top or
    trending, enter a movie's day, t live tail, < > a day back or on, d dead
    letters, a alerts, s find a movie, ? help, q quit), no pipeline controls. The Pipeline
    panel shows the writing pipeline's health, or says that no pipeline is
    writing; a pipeline that starts later is picked up. Nothing in the database
    changes. --alert rules are evaluated here, at each refresh, beside the
    alerts of the writing pipeline.
    """
    alerts = alerting.alerts()
    in_browser = "TEXTUAL_DRIVER" in os.environ  # a viewer of `imdb-tui serve`
    if not (in_browser or (sys.stdin.isatty() and sys.stderr.isatty())):
        raise Failure("watch needs a terminal; without one, use `imdb-tui report`")
    store = open_store(db, read_only=True, pg_schema=pg_schema)
    from imdb_tui.tui.app import MonitorApp  # Textual loads only here
    from imdb_tui.viewer import StoreWatcher

    watcher = StoreWatcher(store, SystemClock(), window)
    logging.getLogger().handlers.clear()  # nothing may write over the screen
    app = MonitorApp(watcher, None, refresh, bell=alerting.bell, alerts=alerts)
    alerting.act_on(alerts, app.alert_action_failed)
    try:
        app.run()
    finally:
        watcher.close()


def describe_inputs(store: Store, pipeline: Pipeline, options: Options) -> None:
    """The lines a headless pipeline starts with: where it writes, what it reads."""
    click.echo(f"database: {store.name}")
    if options.spec.kind is SourceKind.SIMULATOR:
        assert pipeline.catalog is not None
        movies = f"{len(pipeline.catalog):,}{' IMDb' if options.catalog else ''}"
        click.echo(
            f"source: simulator (seed {options.seed}, {movies} titles, {options.users:,} users)"
        )
    else:
        kind = options.spec.kind
        shown = "JSON Lines" if kind is SourceKind.STDIN else kind.value
        click.echo(f"source: {pipeline.source.name} ({shown})")


async def _run_headless(
    pipeline: Pipeline, duration: float | None, actions: AlertActions | None = None
) -> RunSummary:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(signum, pipeline.stop)
    if duration is not None:  # the time is up, not the input: a pipe's writer goes on
        loop.call_later(duration, functools.partial(pipeline.stop, read_rest=False))
    running = asyncio.create_task(pipeline.run())
    said_where = False
    while not running.done():
        await asyncio.wait([running], timeout=1.0)
        if not said_where and pipeline.resumed is not None:  # at once, not only at the end
            said_where = True
            click.echo(
                f"resuming: {literal(pipeline.source.name)} from {pipeline.resumed}, where the"
                " last run into this database stopped (--from-start reads it all)"
            )
        if not running.done():
            try:
                click.echo(status_line(await pipeline.snapshot(), pipeline.tz))
            except StoreError as error:  # the pipeline retries; say so, and go on
                health = pipeline.health()
                click.echo(f"{time.strftime('%H:%M:%S')} {health.state:<8} {error}")
    if actions is not None:
        await actions.close()
    return running.result()


def _movie_named(store: Store, text: str, day: str) -> str:
    """The id of the one movie a title names (one whose title is exactly it, or the
    only match); a Failure listing the candidates when there are more."""
    index = read_index(store, day)
    found = index.find(text, limit=len(index))
    exact = titled(found, text)
    if len(exact) == 1 or len(found) == 1:
        return (exact or found)[0].movie_id
    if not found:
        raise Failure(f"--movie {literal(text)!r}: no movie's title matches it")
    shown = "; ".join(f"{m.movie_id} {literal(m.label)}" for m in (exact or found)[:10])
    more = f" and {len(found) - 10:,} more" if len(found) > 10 and not exact else ""
    raise Failure(
        f"--movie {literal(text)!r} matches {len(exact or found):,} movies: {shown}{more};"
        " give its id, or more words of its title or its year"
    )


@cli.command()
@click.option(
    "--count",
    type=Number(1, None, "events"),
    default=None,
    metavar="N",
    help="Stop after this many events (1000, 1e6). Default: until stopped.",
)
@click.option(
    "--rate",
    type=RateParam(),
    default="max",
    metavar="N|max",
    show_default=True,
    help="Events per second, or 'max' for as fast as the reader takes them. With --start:"
    " the pace of the events' times (200 a second for max), not of the writing.",
)
@click.option(
    "--start",
    type=MomentParam(),
    default=None,
    metavar="TIME",
    help="Stamp the events on a simulated clock from TIME (2026-11-20T00:00:00Z; UTC"
    " if no zone), written as fast as possible: with --seed, the same options give"
    " the same file byte for byte, ids included.",
)
@click.option(
    "--catalog-out",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    metavar="PATH",
    help="Also write the simulated catalogue as IMDb's title.basics (.gz if the name"
    " says so), for --catalog to name the movies of these events.",
)
@click.option(
    "--to",
    "to",
    default="-",
    metavar="-|kinesis://STREAM",
    show_default=True,
    help="Where the events go: stdout (-), or an Amazon Kinesis stream (PutRecords,"
    " the user id as partition key; AWS settings from the environment and ~/.aws).",
)
@click.option(
    "--create-shards",
    "create_shards",
    type=Number(1, 10_000, "shards"),
    default=None,
    metavar="N",
    help="With --to kinesis://STREAM: create the stream with N shards if it does not"
    " exist, and wait until it is active.",
)
@click.option(
    "--aggregate",
    is_flag=True,
    help="With --to kinesis://STREAM: pack the events bound for each shard into KPL"
    " aggregates (up to 1 MiB a record), as the Kinesis Producer Library does: a shard"
    " takes 1,000 records a second, so many more events. Each user's events keep their"
    " shard and order. The Kinesis Client Library and imdb-tui unpack them.",
)
@click.option(
    "--compress",
    type=click.Choice(["gzip"]),
    default=None,
    help="With --to kinesis://STREAM: gzip each event's JSON (with --aggregate, each"
    " user record of the aggregates).",
)
@seed_option
@users_option
@titles_option
def produce(
    count: int | None,
    rate: float | None,
    start: float | None,
    catalog_out: str | None,
    to: str,
    create_shards: int | None,
    aggregate: bool,
    compress: str | None,
    seed: int,
    users: int,
    titles: int,
) -> None:
    """Write simulated events to stdout as JSON Lines, one event per line, or put
    them into a Kinesis stream.

    \b
    Examples:
      imdb-tui produce --count 1000 --seed 3 > events.jsonl
      imdb-tui produce --rate 500 | imdb-tui --source -     # the monitor, fed by a pipe
      imdb-tui produce --count 1e5 --seed 3 --start 2026-11-20T00:00:00Z \\
          --catalog-out titles.tsv.gz > day.jsonl            # reproducible, with names
      imdb-tui produce --to kinesis://clicks --create-shards 4 --count 20000
      imdb-tui produce --to kinesis://clicks --aggregate --rate 20000   # KPL aggregates
    """
    inputs = Inputs(seed=seed, users=users, titles=titles)
    catalog = build_catalog(seed, titles)
    if catalog_out is not None:
        try:
            write_title_basics(catalog.movies, catalog_out)
        except OSError as error:
            raise Failure(f"cannot write {catalog_out}: {error.strerror}") from None
    kinesis: KinesisOut | None = None
    sink = SourceSpec.parse(to).kind
    if sink is not SourceKind.STDIN:
        if sink is not SourceKind.KINESIS:
            raise Failure(f"--to {to}: stdout (-) or kinesis://STREAM")
        if start is not None:
            raise Failure("--start writes a reproducible file: it goes with stdout, not --to")
        kinesis = KinesisOut(to, create_shards, aggregate, compress is not None)
    else:
        for given, option in ((create_shards, "--create-shards"), (aggregate, "--aggregate"),
                              (compress, "--compress")):  # fmt: skip
            if given:
                raise Failure(f"{option} goes with --to kinesis://STREAM")
    if start is not None:
        clock = ManualClock(start)
        events = simulator(inputs, catalog, clock)
        with _read_enough():
            produce_stamped(clock, 1 / (rate or START_RATE), events, count, sys.stdout)
        return
    events = simulator(inputs, catalog, SystemClock())
    with _stopped_between_chunks() as stopped, _read_enough():
        sent = produce_live(events, kinesis or Lines(sys.stdout), count, rate, stopped.is_set)
    if kinesis is not None:
        kinesis.close()
    if stopped.signal is not None:  # every line or put whole, what was sent said
        name = signal.Signals(stopped.signal).name
        click.echo(f"imdb-tui: stopped by {name} after {plural(sent, 'event')}", err=True)
        sys.exit(128 + stopped.signal)


@contextlib.contextmanager
def _read_enough() -> Iterator[None]:
    """The reader closed the pipe (`produce | head`): it has what it wanted, and
    produce ends quietly, with status 0, as it does when --count is reached."""
    try:
        yield
    except BrokenPipeError:
        # Nothing left in stdout's buffer may be flushed into the closed pipe at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)


class _Stop(threading.Event):
    signal: int | None = None


@contextlib.contextmanager
def _stopped_between_chunks() -> Iterator[_Stop]:
    """Ctrl-C or SIGTERM asks produce to stop after the chunk under way, so that no
    line is cut in two and a stream's puts are counted; a second one stops at once."""
    stop = _Stop()

    def asked(number: int, _: object) -> None:
        stop.signal = number
        stop.set()
        for each in (signal.SIGINT, signal.SIGTERM):
            signal.signal(each, previous[each])

    previous = {each: signal.signal(each, asked) for each in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for each, handler in previous.items():
            signal.signal(each, handler)


class KinesisOut:
    """produce's events into a stream, said in one line each at the end."""

    def __init__(
        self, url: str, create_shards: int | None, aggregate: bool, compress: bool
    ) -> None:
        from imdb_tui.sources.kinesis import KinesisSink

        try:
            self._sink = KinesisSink(url, create_shards, aggregate=aggregate, compress=compress)
        except SourceError as error:
            raise Failure(str(error)) from None
        self._url = url

    def send(self, records: list[dict[str, object]]) -> None:
        try:
            self._sink.send(records)
        except SourceError as error:
            raise Failure(str(error)) from None

    def close(self) -> None:
        sink = self._sink
        packed = f"{plural(sink.events, 'event')} in " if sink.events != sink.put else ""
        click.echo(
            f"put {packed}{plural(sink.put, 'record')} into {self._url}"
            f" ({self._sink.retries:,} sent again after the service turned them down)",
            err=True,
        )


@cli.command()
@db_option
@window_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@click.option(
    "--dead-letters",
    "dead_letters",
    is_flag=True,
    help="List the newest rejected records (reason, time, the raw line) instead.",
)
@click.option(
    "--limit",
    type=Number(1, 100_000, "dead letters"),
    default=20,
    show_default=True,
    metavar="N",
    help="How many dead letters --dead-letters lists.",
)
@click.option(
    "--movie",
    "movie_id",
    metavar="MOVIE_ID|TITLE",
    help="One movie's day instead: views, events by type, users, its views per minute"
    " over the last hour, and its ratings (the monitor's Enter on a movie). A title"
    " (words of it, a year) does too when one movie matches; else the candidates are"
    " listed.",
)
@click.option(
    "--day",
    metavar="YYYY-MM-DD",
    help="A past local day's daily figures (events, by type, by hour, top movies,"
    " ratings, users; with --movie, that movie's) instead of today's, as far back"
    " as the aggregates are kept (the monitor's < and >).",
)
@click.option(
    "--as-of",
    "as_of",
    type=click.Choice(["now", "latest"]),
    default="now",
    show_default=True,
    help="The moment to read the metrics at: now, or latest, the newest stored event's"
    " time (for history read from a file).",
)
def report(
    db: str,
    pg_schema: str,
    window: int,
    as_json: bool,
    dead_letters: bool,
    limit: int,
    movie_id: str | None,
    day: str | None,
    as_of: str,
) -> None:
    """Print the metrics stored in a database, without running anything.

    The database is opened read-only: nothing in it changes. --json adds the
    pipelines' health rows (`pipelines`, with a `live` flag) and the sources'
    stored positions (`sources`).
    """
    if dead_letters and (movie_id is not None or day is not None):
        given = "--movie" if movie_id is not None else "--day"
        raise Failure(f"--dead-letters lists the newest of every movie and day: leave out {given}")
    if movie_id is not None and not movie_id.strip():
        raise Failure("--movie needs a movie id (tt0111161) or words of a title")
    store = open_store(db, read_only=True, pg_schema=pg_schema)
    clock = SystemClock()
    try:
        if dead_letters:
            click.echo(dead_letters_text(store.dead_letters(limit), as_json))
            return
        moment = _moment(as_of, store, clock)
        if day is not None:
            _check_day(day, store, moment, clock.tz)
        # At --as-of latest the day read is the newest stored: nothing older to point at.
        older = None if day or as_of == "latest" else _older_history(store, moment, clock.tz)
        if movie_id is not None:
            if not is_movie_id(movie_id):
                movie_id = _movie_named(store, movie_id, day or local_day(moment, clock.tz))
            movie = read_movie(store, movie_id, moment, clock.tz, day)
            quiet = not any(movie.by_type.values())
            if movie.title == movie_id and quiet:
                raise Failure(
                    f"no movie {movie_id} {'today' if day is None else f'on {day}'}: the"
                    " catalogue does not know it, and it has no events that day"
                    + (f"; {older}" if older else "")
                )
            hint = f"\n\nnothing today: {older}" if older and quiet else ""
            click.echo(json.dumps(movie.to_json()) if as_json else movie_text(movie) + hint)
            return
        snapshot = read_snapshot(store, moment, clock.tz, window, day=day)
        if as_json:
            output = report_json(snapshot, store.pipelines(clock.now()), store.positions())
        else:
            output = report_text(snapshot, store.name, stored_alerts(store.pipelines(clock.now())))
            if older and not snapshot.events_today:
                output += f"\n\nnothing today: {older}"
    except StoreError as error:
        raise Failure(str(error)) from None
    finally:
        store.close()
    click.echo(output)


@cli.command()
@db_option
@click.option(
    "--to",
    "to",
    required=True,
    metavar="DIR|s3://BUCKET/PREFIX",
    help="Where to write: a folder (made if missing) or an S3 prefix (the standard AWS"
    " configuration). One folder a table in it, one a day in each (dt=YYYY-MM-DD).",
)
@click.option("--since", metavar="YYYY-MM-DD", help="The first UTC day. Default: the oldest kept.")
@click.option("--until", metavar="YYYY-MM-DD", help="The last UTC day. Default: the newest.")
@click.option(
    "--tables",
    default=",".join(EXPORT_TABLES),
    show_default=True,
    metavar="NAMES",
    help="Which tables, comma-separated: " + ", ".join(EXPORT_TABLES) + ".",
)
@click.option(
    "--every",
    type=DurationParam("s"),
    metavar="DURATION",
    help="Keep exporting what changed every DURATION (30s, 5m) until Ctrl-C or SIGTERM,"
    " which finish the day begun and exit 0.",
)
@click.option(
    "--format",
    "file_format",
    type=click.Choice(["parquet", "csv"]),
    default="parquet",
    show_default=True,
    help="The files' format: Parquet (typed, compressed), or CSV with a header.",
)
@click.option(
    "--quicksight-manifest",
    "quicksight",
    is_flag=True,
    help="Also write the counts' tables as CSV (quicksight/TABLE/dt=DAY.csv) with a"
    " manifest each (quicksight/TABLE.manifest.json): what QuickSight reads from S3.",
)
@click.option(
    "--athena-ddl",
    "athena",
    is_flag=True,
    help="Print, instead of exporting, the CREATE EXTERNAL TABLE statements that let"
    " Athena read the tables at --to (an s3:// prefix), with partition projection on dt.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print what was done as one JSON object (a line a round).",
)
def export(
    db: str,
    pg_schema: str,
    to: str,
    since: str | None,
    until: str | None,
    tables: str,
    every: float | None,
    file_format: str,
    quicksight: bool,
    athena: bool,
    as_json: bool,
) -> None:
    """Write the stored events and their counts as Parquet, for BI tools.

    Each table is a folder of UTC days, Hive-style (events/dt=2026-11-23/
    part-00000.parquet), with typed columns: what Athena, Redshift Spectrum,
    DuckDB and Spark read as they are. A day exported again replaces its folder
    whole (written aside first), so running it again never duplicates rows.
    Without --since and --until, only the days that changed since the last export
    to the same folder are written (noted in DIR/_imdb_tui_export.json). The
    database is opened read-only.

    \b
    Examples:
      imdb-tui export --to bi/
      imdb-tui export --db postgresql://dash@db/engagement --to bi/ --since 2026-11-01
    DuckDB, for one, reads them as read_parquet('bi/events/*/*.parquet',
    hive_partitioning = true).
    """
    chosen = [name.strip() for name in tables.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in EXPORT_TABLES]
    if unknown or not chosen:
        known = ", ".join(EXPORT_TABLES)
        raise Failure(f"--tables {literal(tables)!r}: name some of {known}")
    if athena:
        if not to.startswith("s3://"):
            raise Failure(
                f"--athena-ddl: Athena reads S3: give --to as s3://BUCKET/PREFIX, not {to}"
            )
        try:
            click.echo(athena_ddl(to, chosen), nl=False)
        except ExportError as error:
            raise Failure(str(error)) from None
        return
    try:
        where = export_to(to)
    except DestinationError as error:
        raise Failure(str(error)) from None
    store = open_store(db, read_only=True, pg_schema=pg_schema)
    stop = threading.Event()
    if every is not None:  # the day begun is finished, then the command ends with 0
        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, lambda *_: stop.set())
    try:
        while True:
            done = export_days(
                store,
                where,
                since,
                until,
                chosen,
                progress=_export_progress if sys.stderr.isatty() else lambda _: None,
                stopping=stop.is_set,
                quicksight=quicksight,
                file_format=file_format,
            )
            if sys.stderr.isatty():
                click.echo("\r\x1b[K", nl=False, err=True)  # the progress line goes
            if as_json:
                click.echo(json.dumps(done.to_json()))
            else:
                rows = ", ".join(f"{name} {done.rows[name]:,}" for name in chosen)
                days = plural(len(done.days), "day")
                when = f"{time.strftime('%H:%M:%S')} " if every is not None else ""
                click.echo(f"{when}exported {days} to {to} in {done.seconds:.1f} s: {rows} rows")
            if every is None or stop.wait(every):
                break
    except (ExportError, DestinationError, StoreError) as error:
        raise Failure(str(error)) from None
    finally:
        store.close()


def _export_progress(progress: ExportProgress) -> None:
    """One line on a terminal, written over: days and events done, rate, time left."""
    rate = progress.events / progress.seconds if progress.seconds > 0 else 0.0
    left = (progress.events_total - progress.events) / rate if rate else 0.0
    click.echo(
        f"\r\x1b[K{progress.days:,} of {progress.days_total:,} days ·"
        f" {progress.events:,} of {progress.events_total:,} events · {rate:,.0f} a second"
        f" · {left:,.0f} s left",
        nl=False,
        err=True,
    )


def _check_day(day: str, store: Store, moment: float, tz: tzinfo | None) -> None:
    """--day names a local day from the oldest kept to today, else a one-line Failure."""
    check_day("--day", day)
    today = local_day(moment, tz)
    if day > today:
        raise Failure(f"--day {day} is after today ({today})")
    reason = not_kept(day, oldest_day(store, tz))
    if reason is not None:
        raise Failure(reason)


def _older_history(store: Store, moment: float, tz: tzinfo | None) -> str | None:
    """Where to look when the day read has nothing and every stored event is older
    (history loaded from a file): said for a person, or None."""
    newest = store.newest_event_time()
    if newest is None:
        return None
    last = local_day(seconds(newest), tz)
    if last >= local_day(moment, tz):
        return None
    return f"the newest stored events are of {last} (--as-of latest reads there, --day {last})"


def _moment(as_of: str, store: Store, clock: SystemClock) -> float:
    """--as-of as epoch seconds: now, or the newest stored event's time.

    No other moment: the aggregates keep each user's last time seen, and each
    day's totals, so only a moment after every stored event reads true.
    """
    newest = store.newest_event_time() if as_of == "latest" else None
    return clock.now() if newest is None else seconds(newest)


def main() -> None:
    """Console entry point: errors are one line on stderr, never a traceback."""
    logging.basicConfig(level=logging.WARNING, format="imdb-tui: %(message)s")
    try:
        code = cli.main(prog_name="imdb-tui", standalone_mode=False)
    except click.UsageError as error:
        hint = f" (see '{error.ctx.command_path} --help')" if error.ctx else ""
        click.echo(f"imdb-tui: {error.format_message()}{hint}", err=True)
        code = error.exit_code
    except click.ClickException as error:
        click.echo(f"imdb-tui: {error.format_message()}", err=True)
        code = error.exit_code
    except click.Abort:
        click.echo("imdb-tui: aborted", err=True)
        code = 130
    except BrokenPipeError:
        code = 0
    sys.exit(code if isinstance(code, int) else 0)
