"""The `imdb-tui` command."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from datetime import tzinfo
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import click
import platformdirs

from imdb_tui import __version__
from imdb_tui.catalog import Catalog, build_catalog
from imdb_tui.clock import SystemClock, parse_duration
from imdb_tui.display import clock_text, literal, rate_text, sparkline
from imdb_tui.events import seconds
from imdb_tui.imdb import CatalogError, kept_imdb_catalog, load_imdb_catalog
from imdb_tui.metrics import MetricsSnapshot, read_snapshot
from imdb_tui.pipeline import MAX_RATE, Pacer, Pipeline, PipelineSettings, RunSummary
from imdb_tui.simulator import Simulator, SimulatorSettings
from imdb_tui.sources import STDIN, SourceError
from imdb_tui.sources.jsonlines import JsonLinesSource
from imdb_tui.sources.simulated import SimulatedSource
from imdb_tui.store import DeadLetter, Store, StoreError
from imdb_tui.store import open_store as open_backend

DEFAULT_DB = Path(platformdirs.user_data_dir("imdb-tui")) / "events.db"
F = TypeVar("F", bound=Callable[..., Any])


class Failure(click.ClickException):
    """An error the user can fix: one line on stderr, exit status 2."""

    exit_code = 2


class InputFailure(click.ClickException):
    """The input failed part way: what came before it is stored; exit status 1."""

    exit_code = 1


DEFAULT_RATE = 200.0
NO_TERMINAL = "the monitor needs a terminal; without one, use `imdb-tui run`"
AUTO = "auto"
"""The default rate: 200 events a second from the simulator, unthrottled from a file."""
SIMULATOR = "sim"


class RateParam(click.ParamType):  # type: ignore[type-arg]  # generic only in click 8.4+
    name = "rate"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value is None or isinstance(value, float):
            return value
        text = str(value).strip().lower()
        if text == "max":
            return None
        if text == AUTO:
            return AUTO
        try:
            rate = float(text.replace("_", "").replace(",", ""))
        except ValueError:
            self.fail(f"{value!r} is not a number of events per second or 'max'", param, ctx)
        if not 1 <= rate <= MAX_RATE:
            self.fail(f"{value!r} is outside 1 to {MAX_RATE:,.0f} events per second", param, ctx)
        return rate


class DurationParam(click.ParamType):  # type: ignore[type-arg]
    name = "DURATION"

    def __init__(self, default_unit: str) -> None:
        self.default_unit = default_unit

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, float):
            return value
        try:
            return parse_duration(str(value), self.default_unit)
        except ValueError as error:
            self.fail(str(error), param, ctx)


def db_option(f: F) -> F:
    return click.option(
        "--db",
        "db",
        default=str(DEFAULT_DB),
        show_default=True,
        metavar="PATH",
        help="SQLite database file (:memory: for a throwaway one).",
    )(f)


def window_option(f: F) -> F:
    return click.option(
        "--window",
        type=click.IntRange(1, 1440),
        default=5,
        show_default=True,
        metavar="MINUTES",
        help="Active users are those with an event in the last MINUTES.",
    )(f)


# The simulator's options, shared by the commands that run the pipeline and by produce.
seed_option = click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed for the catalogue and the simulated traffic.",
)
users_option = click.option(
    "--users",
    type=click.IntRange(1, 10_000_000),
    default=20_000,
    metavar="N",
    show_default=True,
    help="Size of the simulated user population.",
)
titles_option = click.option(
    "--titles",
    type=click.IntRange(1, 1_000_000),
    default=1_000,
    metavar="N",
    show_default=True,
    help="Size of the simulated catalogue.",
)


def pipeline_options(f: F) -> F:
    """The options every command that runs the pipeline takes."""
    options = [
        click.option(
            "--source",
            default=SIMULATOR,
            metavar="sim|PATH|-",
            show_default=True,
            help="Where events come from: the simulator, a JSON Lines file (.gz too)"
            " or - for stdin. A file's lines that are not events go to the dead letters.",
        ),
        click.option(
            "--catalog",
            type=click.Path(exists=True, dir_okay=False),
            default=None,
            metavar="PATH",
            help="IMDb's title.basics.tsv.gz: simulate (and name) its movies instead of"
            " made-up ones. From https://datasets.imdbws.com (personal, non-commercial use).",
        ),
        click.option(
            "--ratings",
            type=click.Path(exists=True, dir_okay=False),
            default=None,
            metavar="PATH",
            help="IMDb's title.ratings.tsv.gz, with --catalog: popularity follows numVotes.",
        ),
        click.option(
            "--follow",
            is_flag=True,
            help="Keep reading the --source file as it grows, like tail -F (a rotated or"
            " truncated file is read again from its start).",
        ),
        click.option(
            "--from-start",
            is_flag=True,
            help="Read the --source file from its start, not from where the last run into"
            " this database stopped (events already stored count as duplicates).",
        ),
        click.option(
            "--replay-speed",
            type=click.FloatRange(0, 1_000_000),
            default=0,
            metavar="X",
            help="Release a file's events at X times the pace of their own timestamps"
            " (0: as fast as they are read).",
        ),
        click.option(
            "--rate",
            type=RateParam(),
            default=AUTO,
            metavar="N|max",
            show_default=True,
            help="Target events per second, or 'max' for unthrottled"
            " (auto: 200 from the simulator, max from a file).",
        ),
        seed_option,
        db_option,
        window_option,
        click.option(
            "--retention",
            type=DurationParam("d"),
            default="7d",
            metavar="DURATION",
            show_default=True,
            help="Delete raw events older than this (e.g. 12h, 30d; a bare number is days).",
        ),
        users_option,
        titles_option,
    ]

    @functools.wraps(f)
    def collect(*args: Any, **values: Any) -> Any:
        fields = {field.name: values.pop(field.name) for field in dataclasses.fields(Options)}
        return f(*args, options=Options(**fields), **values)

    for option in reversed(options):
        collect = option(collect)
    return collect  # type: ignore[return-value]


@dataclasses.dataclass(frozen=True, slots=True)
class Options:
    """The values of `pipeline_options`, as one argument of the commands."""

    source: str
    catalog: str | None
    ratings: str | None
    follow: bool
    from_start: bool
    replay_speed: float
    rate: float | str | None
    seed: int
    db: str
    window: int
    retention: float
    users: int
    titles: int

    def settings(self) -> dict[str, Any]:
        """Their PipelineSettings keywords. Events from a file or a pipe may be history:
        their metrics are read at stream time (the newest event time seen), and
        --replay-speed paces them by their times."""
        if self.replay_speed and self.source == SIMULATOR:
            raise Failure("--replay-speed replays a --source file of recorded events")
        rate = self.rate
        if rate == AUTO:
            rate = DEFAULT_RATE if self.source == SIMULATOR else None
        return {
            "rate": rate,
            "window_minutes": self.window,
            "retention_seconds": self.retention,
            "stream_time": self.source != SIMULATOR,
            "replay_speed": self.replay_speed,
            "from_start": self.from_start,
        }

    def inputs(self, events: BinaryIO | None = None) -> Inputs:
        return Inputs(
            self.source,
            self.seed,
            self.users,
            self.titles,
            self.catalog,
            self.ratings,
            self.follow,
            events,
        )


def refresh_option(f: F) -> F:
    return click.option(
        "--refresh",
        type=click.FloatRange(0.25, 5.0),
        default=1.0,
        show_default=True,
        metavar="SECONDS",
        help="How often the monitor redraws its panels ([ and ] change it while running).",
    )(f)


@click.group(
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=f"Default database: {DEFAULT_DB} (change it with --db).",
)
@click.version_option(__version__, "-V", "--version", prog_name="imdb-tui")
@pipeline_options
@refresh_option
@click.pass_context
def cli(ctx: click.Context, /, options: Options, refresh: float) -> None:
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
      imdb-tui report --json                # the stored metrics as one JSON object
      imdb-tui produce --count 1000 | imdb-tui run --source -   # events through a pipe
      imdb-tui --source march.jsonl.gz --replay-speed 60        # history, an hour a minute
    """
    if ctx.invoked_subcommand is None:
        _monitor(options, refresh)


@cli.command()
@pipeline_options
@refresh_option
def monitor(options: Options, refresh: float) -> None:
    """Open the full-screen monitor (the default when no command is given).

    Keys: p pause/resume, + - rate, m max, r exact rate, w window, [ ] refresh,
    f freeze, ? help, q quit (the queue is drained and committed first).
    """
    _monitor(options, refresh)


def _monitor(options: Options, refresh: float) -> None:
    events = None
    if options.source == STDIN:  # events come down the pipe; keys come from the terminal
        events = _stdin_for_events()
    if not (sys.stdin.isatty() and sys.stderr.isatty()):  # Textual reads one, draws on the other
        raise Failure(NO_TERMINAL)
    from imdb_tui.tui.app import MonitorApp, monitor_settings  # Textual loads only here
    from imdb_tui.viewer import in_process

    settings = monitor_settings(**options.settings())
    store = open_store(options.db)
    pipeline = build_pipeline(store, settings, options.inputs(events))
    logging.getLogger().handlers.clear()  # nothing may write over the screen
    try:
        summary = MonitorApp(*in_process(pipeline, store.name), refresh).run()
    finally:
        store.close()
    if summary is not None:
        _report_summary(summary, f"database: {options.db}", pipeline.source.name)


@cli.command()
@pipeline_options
@click.option(
    "--duration",
    type=DurationParam("s"),
    default=None,
    metavar="DURATION",
    help="Stop after this long (e.g. 90, 5m). Default: run until Ctrl-C.",
)
@click.option(
    "--count",
    type=click.FloatRange(1, None),
    default=None,
    metavar="N",
    help="Stop after this many events (1000, 1e6).",
)
def run(options: Options, duration: float | None, count: float | None) -> None:
    """Run the pipeline headless: one status line a second, then a summary.

    Ctrl-C or SIGTERM stops it cleanly: the queue is drained and committed first.
    """
    settings = PipelineSettings(count=None if count is None else int(count), **options.settings())
    store = open_store(options.db)
    pipeline = build_pipeline(store, settings, options.inputs())
    click.echo(f"database: {store.name}")
    if options.source == SIMULATOR:
        assert pipeline.catalog is not None
        movies = f"{len(pipeline.catalog):,}{' IMDb' if options.catalog else ''}"
        click.echo(
            f"source: simulator (seed {options.seed}, {movies} titles, {options.users:,} users)"
        )
    else:
        click.echo(f"source: {pipeline.source.name} (JSON Lines)")
    try:
        summary = asyncio.run(_run_headless(pipeline, duration))
        final = read_snapshot(store, time.time(), None, options.window)
    except StoreError as error:
        raise Failure(str(error)) from None
    finally:
        store.close()
    held = f"now holds {final.events_total:,} events in all"
    _report_summary(summary, f"database: {options.db} {held}", pipeline.source.name)


@dataclasses.dataclass(frozen=True, slots=True)
class Inputs:
    """Where a pipeline's events and movies come from, as the options say."""

    source: str = SIMULATOR
    seed: int = 0
    users: int = 20_000
    titles: int = 1_000
    catalog: str | None = None
    ratings: str | None = None
    follow: bool = False
    events: BinaryIO | None = None
    """Stdin's data, when the terminal's keys were moved off it (the monitor)."""


def build_pipeline(store: Store, settings: PipelineSettings, inputs: Inputs) -> Pipeline:
    """A pipeline into `store` on the real clock, from the simulator or a JSON Lines file."""
    clock = SystemClock()
    if inputs.follow and inputs.source == SIMULATOR:
        raise Failure("--follow needs a --source file to follow")
    if inputs.ratings and not inputs.catalog:
        raise Failure("--ratings goes with --catalog (IMDb's title.basics.tsv.gz)")
    imdb = load_catalog(inputs, store)  # its titles are in the store already
    if inputs.source != SIMULATOR:
        try:
            source = JsonLinesSource(inputs.source, inputs.events, inputs.follow)
        except SourceError as error:
            raise Failure(str(error)) from None
        return Pipeline(source, store, clock, settings)
    catalog = imdb or build_catalog(inputs.seed, inputs.titles)
    simulator = _simulator(inputs.seed, inputs.users, catalog, clock)
    return Pipeline(SimulatedSource(simulator), store, clock, settings, catalog)


def _simulator(seed: int, users: int, catalog: Catalog, clock: SystemClock) -> Simulator:
    return Simulator(catalog, SimulatorSettings(seed=seed, users=users), clock)


def load_catalog(inputs: Inputs, store: Store) -> Catalog | None:
    """IMDb's catalogue if --catalog names it: kept in the database from an earlier
    start if the files are the same, else read with a progress bar on stderr and kept."""
    if inputs.catalog is None:
        return None
    files = ";".join(_fingerprint(path) for path in (inputs.catalog, inputs.ratings) if path)
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
                inputs.catalog, inputs.ratings, inputs.seed, advance, keep=store
            )
        store.keep_catalog(files, loaded.skipped, loaded.rated)
    except (CatalogError, StoreError) as error:
        raise Failure(str(error)) from None
    votes = f", {loaded.rated:,} with votes" if inputs.ratings else ""
    click.echo(
        f"catalogue: {len(loaded.catalog):,} movies{votes}"
        f" ({loaded.skipped:,} malformed rows skipped)",
        err=True,
    )
    return loaded.catalog


def _fingerprint(path: str) -> str:
    """A file as its absolute path, size and modification time: changed, it is read again."""
    status = Path(path).stat()
    return f"{Path(path).resolve()}|{status.st_size}|{status.st_mtime_ns}"


def _stdin_for_events() -> BinaryIO:
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


def _report_summary(summary: RunSummary, where: str, source: str) -> None:
    if summary.resumed is not None:
        click.echo(
            f"resumed: {literal(source)} from {summary.resumed}, where the last run into"
            f" this database stopped; {summary.emitted:,} records read since"
            " (--from-start reads it all)"
        )
    click.echo(
        f"done: {summary.stored:,} events stored, {summary.duplicates:,} duplicates,"
        f" {summary.rejected:,} dead letters in {summary.elapsed:,.1f} s"
        f" ({summary.stored / max(summary.elapsed, 1e-9):,.0f}/s)"
    )
    click.echo(where)
    if summary.input_error is not None:
        raise InputFailure(f"input error: {summary.input_error}")
    if summary.lost:
        raise Failure(f"{summary.lost:,} events could not be stored: {summary.error}")


async def _run_headless(pipeline: Pipeline, duration: float | None) -> RunSummary:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, pipeline.stop)
    if duration is not None:
        loop.call_later(duration, pipeline.stop)
    running = asyncio.create_task(pipeline.run())
    while not running.done():
        await asyncio.wait([running], timeout=1.0)
        if not running.done():
            click.echo(_status_line(await pipeline.snapshot(), pipeline.tz))
    return running.result()


def _status_line(snapshot: MetricsSnapshot, tz: tzinfo | None) -> str:
    """One line a second, under 80 columns for everyday figures."""
    health = snapshot.health
    assert health is not None
    p50, p99 = (
        f"{v:,.0f}" if v is not None else "-" for v in (health.lag_p50_ms, health.lag_p99_ms)
    )
    line = (
        f"{time.strftime('%H:%M:%S')} {health.state:<8} {health.ingest_rate:,.0f}/s"
        f" of {rate_text(health.target_rate)}  stored {snapshot.events_total:,}"
        f"  queue {health.queue_depth:,}  lag {p50}/{p99} ms"
    )
    if health.stream_time:
        line += f"  {clock_text(snapshot.as_of, tz, health.replay_speed)}"
    if health.error:
        line += f"  {health.error}"
    return line


@cli.command()
@click.option(
    "--count",
    type=click.FloatRange(1, None),
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
    help="Events per second, or 'max' for as fast as the reader takes them.",
)
@seed_option
@users_option
@titles_option
def produce(count: float | None, rate: float | None, seed: int, users: int, titles: int) -> None:
    """Write simulated events to stdout as JSON Lines, one event per line.

    \b
    Examples:
      imdb-tui produce --count 1000 --seed 3 > events.jsonl
      imdb-tui produce --rate 500 | imdb-tui --source -     # the monitor, fed by a pipe
    """
    simulator = _simulator(seed, users, build_catalog(seed, titles), SystemClock())
    left = None if count is None else int(count)
    pacer = Pacer(rate or MAX_RATE, time.monotonic())
    out = sys.stdout
    while left is None or left > 0:
        chunk = 1_000 if left is None else min(1_000, left)
        if rate is not None:
            now = time.monotonic()
            due = pacer.due(now)
            if due <= 0:
                time.sleep(min(max(pacer.wait(now), 0.002), 0.05))
                continue
            chunk = min(chunk, due)
        records = simulator.records(chunk)
        out.write("".join(json.dumps(record, separators=(",", ":")) + "\n" for record in records))
        out.flush()
        pacer.sent(len(records))
        if left is not None:
            left -= len(records)


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
    type=click.IntRange(1, 100_000),
    default=20,
    show_default=True,
    metavar="N",
    help="How many dead letters --dead-letters lists.",
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
def report(db: str, window: int, as_json: bool, dead_letters: bool, limit: int, as_of: str) -> None:
    """Print the metrics stored in a database, without running anything."""
    store = open_store(db, read_only=True)
    clock = SystemClock()
    try:
        if dead_letters:
            _report_dead_letters(store.dead_letters(limit), as_json)
            return
        moment = _moment(as_of, store, clock)
        snapshot = read_snapshot(store, moment, clock.tz, window)
    except StoreError as error:
        raise Failure(str(error)) from None
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(snapshot.to_json()))
    else:
        click.echo(_report_text(snapshot, db))


def _moment(as_of: str, store: Store, clock: SystemClock) -> float:
    """--as-of as epoch seconds: now, or the newest stored event's time.

    No other moment: the aggregates keep each user's last time seen, and each
    day's totals, so only a moment after every stored event reads true.
    """
    newest = store.newest_event_time() if as_of == "latest" else None
    return clock.now() if newest is None else seconds(newest)


def _report_dead_letters(letters: list[DeadLetter], as_json: bool) -> None:
    """Newest first. Raw lines are shown with control characters made visible."""
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(letter) for letter in letters]))
        return
    if not letters:
        click.echo("no dead letters")
    for letter in letters:
        click.echo(f"{letter.received_at}  {literal(letter.reason)}")
        click.echo(f"    {literal(letter.raw)}")


def _report_text(s: MetricsSnapshot, db: str) -> str:
    today_total = max(s.events_today, 1)
    lines = [
        f"database      {db}",
        f"events        {s.events_total:,} stored in all, {s.events_today:,} today",
        f"users         {s.active_users.count:,} active in the last"
        f" {s.active_users.window_minutes} min, {s.users_today:,} today",
        "by type today "
        + "   ".join(f"{k} {n:,} ({n / today_total:.0%})" for k, n in s.by_type.items()),
        f"dead letters  {s.dead_letters:,}",
        f"duplicates    {s.duplicates:,}",
        "",
        "top movies today",
    ]
    if not s.top_movies:
        lines.append("  (no views today)")
    for rank, movie in enumerate(s.top_movies, 1):
        year = f" ({movie.year})" if movie.year else ""
        title = literal(movie.title + year)
        lines.append(f"  {rank:>2}  {title[:50]:<50} {movie.views:>9,} views {movie.share:>6.1%}")
    minutes = [m.events for m in s.per_minute]
    lines += [
        "",
        f"per minute    {sparkline(minutes)}  (last 60 min, peak {max(minutes):,}/min)",
        f"per hour      {sparkline(list(s.per_hour))}  (today 00-23, peak {max(s.per_hour):,}/h)",
    ]
    return "\n".join(lines)


def open_store(db: str, create: bool = True, read_only: bool = False) -> Store:
    try:
        return open_backend(db, create=create, read_only=read_only)
    except StoreError as error:
        raise Failure(str(error)) from None


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
