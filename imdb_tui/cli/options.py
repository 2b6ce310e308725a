"""The command line's options: their types, their checks, and the Options value they make.

Errors say what is allowed in the project's words; Failure and InputFailure are
the one-line errors every command ends with.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import click
import click._textwrap as click_textwrap
import platformdirs

from imdb_tui.alert_actions import EXEC_TIMEOUT, AlertActions, check_webhook
from imdb_tui.alerts import Alerts, RuleError, known_figures, load_rules, parse_rule
from imdb_tui.assembly import Inputs
from imdb_tui.clock import parse_duration
from imdb_tui.display import literal, parse_size
from imdb_tui.pipeline import MAX_RATE
from imdb_tui.sources import SIMULATOR, SourceKind, SourceSpec

DEFAULT_DB = Path(platformdirs.user_data_dir("imdb-tui")) / "events.db"


class _Wrapper(click_textwrap.TextWrapper):
    """Help text wrapped at spaces only: click breaks words at hyphens, and the
    default database's path came out as '.../imdb-' and 'tui/events.db'."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["break_on_hyphens"] = False
        super().__init__(*args, **kwargs)


click_textwrap.TextWrapper = _Wrapper  # type: ignore[misc]  # what click's wrap_text takes
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


class Number(click.ParamType):  # type: ignore[type-arg]
    """A number from `low` to `high` (None: no bound), said in the project's words.

    Whole numbers (`whole`) may be written 1000, 1_000, 1,000 or 1e6, never 1.5."""

    def __init__(self, low: float, high: float | None, unit: str, whole: bool = True) -> None:
        self.low, self.high, self.unit, self.whole = low, high, unit, whole
        self.name = "integer" if whole else "number"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value)
        else:
            try:
                number = float(str(value).strip().replace("_", "").replace(",", ""))
            except ValueError:
                number = float("nan")
        of = f" of {self.unit}" if self.unit else ""
        if number != number or (self.whole and not number.is_integer()):  # NaN: not a number
            kind = "a whole number" if self.whole else "a number"
            self.fail(f"{value!r} is not {kind}{of}", param, ctx)
        if number < self.low and self.high is None:
            self.fail(f"{value!r} is less than {_figure(self.low)}", param, ctx)
        if number < self.low or (self.high is not None and number > self.high):
            bounds = f"{_figure(self.low)} to {_figure(self.high or 0)}"
            self.fail(f"{value!r} is outside {bounds} {self.unit}".rstrip(), param, ctx)
        return int(number) if self.whole else number


def _figure(number: float) -> str:
    return f"{int(number):,}" if float(number).is_integer() else f"{number:g}"


START_RATE = 200.0
"""Events a second of a --start clock when --rate is max."""


class MomentParam(click.ParamType):  # type: ignore[type-arg]
    """A moment in ISO-8601 (2026-11-20T00:00:00Z; UTC when no zone is given), as epoch seconds."""

    name = "TIME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, float):
            return value
        text = str(value).strip()
        try:
            moment = datetime.fromisoformat(
                text.removesuffix("Z") + ("+00:00" if text.endswith("Z") else "")
            )
        except ValueError:
            self.fail(f"{value!r} is not a time like 2026-11-20T00:00:00Z", param, ctx)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()


class SizeParam(click.ParamType):  # type: ignore[type-arg]
    """A size in bytes: 500MB, 2GB, 1.5G, 750MiB, or a plain number of bytes."""

    name = "SIZE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value is None or isinstance(value, int):
            return value
        try:
            size = parse_size(str(value))
        except ValueError as error:
            self.fail(str(error), param, ctx)
        if size < 10**6:
            self.fail(f"{value!r} is less than 1MB", param, ctx)
        return size


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


DB_HELP = (
    "SQLite database file (:memory: for a throwaway one), a PostgreSQL database"
    " as a URL (postgresql://USER@HOST/DB) or a libpq keyword string (PG* variables"
    " and ~/.pgpass work as with psql), or a DynamoDB table as dynamodb://TABLE (the"
    " standard AWS credentials, region and AWS_ENDPOINT_URL)."
)


def db_option(f: F, help: str = DB_HELP, writes: bool = False) -> F:
    """--db, and --pg-schema for a PostgreSQL one; `writes`: a command that writes
    to it (and so makes the schema), not one that only reads."""
    made = " (created if missing)" if writes else ""
    f = click.option(
        "--pg-schema",
        "pg_schema",
        default="imdb_tui",
        show_default=True,
        metavar="NAME",
        envvar="IMDB_TUI_PG_SCHEMA",
        show_envvar=True,
        help=f"With a PostgreSQL --db: the schema holding imdb-tui's tables{made}, so"
        " that several setups can share one database.",
    )(f)
    return click.option(
        "--db",
        "db",
        default=str(DEFAULT_DB),
        show_default=True,
        envvar="IMDB_TUI_DB",
        show_envvar=True,
        metavar="PATH|URL",
        help=help,
    )(f)


def check_day(option: str, text: str) -> str:
    """A YYYY-MM-DD day as an option gives it, else a one-line Failure naming it."""
    try:
        valid = date.fromisoformat(text).isoformat() == text
    except ValueError:
        valid = False
    if not valid:
        raise Failure(f"{option} {literal(text)!r} is not a day: give it as YYYY-MM-DD")
    return text


def writing_db_option(f: F) -> F:
    return db_option(f, writes=True)


def window_option(f: F) -> F:
    return click.option(
        "--window",
        type=Number(1, 1440, "minutes"),
        default=5,
        show_default=True,
        metavar="MINUTES",
        help="Active users are those with an event in the last MINUTES.",
    )(f)


# The simulator's options, shared by the commands that run the pipeline and by produce.
seed_option = click.option(
    "--seed",
    type=Number(-(2**63), 2**63 - 1, ""),
    default=0,
    show_default=True,
    help="The simulated world: the same seed gives the same titles, users and sessions"
    " (and with produce --start, the same events, times and ids included).",
)
users_option = click.option(
    "--users",
    type=Number(1, 10_000_000, "users"),
    default=20_000,
    metavar="N",
    show_default=True,
    help="Size of the simulated user population.",
)
titles_option = click.option(
    "--titles",
    type=Number(1, 1_000_000, "titles"),
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
            metavar="sim|PATH|-|kinesis://STREAM",
            show_default=True,
            help="Where events come from: the simulator, a JSON Lines file (.gz too),"
            " - for stdin, or an Amazon Kinesis stream (AWS settings from the environment"
            " and ~/.aws). Records that are not events go to the dead letters.",
        ),
        click.option(
            "--from",
            "start_from",
            default="trim-horizon",
            show_default=True,
            metavar="trim-horizon|latest|TIME",
            help="With a kinesis:// source: where a shard with no checkpoint in the"
            " database starts (the oldest record kept, new records only, or a time such"
            " as 2026-11-20T10:00:00Z). Later runs carry on after the checkpoints.",
        ),
        click.option(
            "--consumer-group",
            "consumer_group",
            default="imdb-tui",
            show_default=True,
            metavar="NAME",
            help="With a kinesis:// source: the pipelines (on this database) that share"
            " the stream's shards, each shard read by one of them at a time.",
        ),
        click.option(
            "--lease-seconds",
            "lease_seconds",
            type=Number(1, 3600, "seconds", whole=False),
            default=10.0,
            show_default=True,
            metavar="S",
            help="With --consumer-group: how long a shard stays with a pipeline that"
            " stopped renewing its lease (one that died) before another takes it.",
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
            "--include-adult",
            is_flag=True,
            help="With --catalog: keep its adult titles (left out by default).",
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
            type=Number(0, 1_000_000, "times the pace of the events' timestamps", whole=False),
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
        writing_db_option,
        window_option,
        click.option(
            "--writer",
            type=click.Choice(["process", "thread"]),
            default="process",
            show_default=True,
            help="Where a file or PostgreSQL database is written from: a process of its"
            " own (both cores at work) or a thread of this one (for comparing the two).",
        ),
        click.option(
            "--create-tables",
            "create_tables",
            is_flag=True,
            help="With a dynamodb://TABLE --db: make the table if it is missing"
            " (on-demand capacity, its index and TTL). Without it a missing table is an"
            " error, as a table made beforehand is the usual way on AWS.",
        ),
        click.option(
            "--max-size",
            "max_size",
            type=SizeParam(),
            default=None,
            metavar="SIZE",
            help="Delete the oldest raw events while the database's data is larger than"
            " this (500MB, 2GB); the metrics keep counting them. Default: no limit.",
        ),
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

    return _gathered(f, options, Options, "options")


def _gathered(f: F, options: list[Callable[[Any], Any]], into: type[Any], keyword: str) -> F:
    """`f` with `options`, their values handed to it as one `into` dataclass, by `keyword`."""

    @functools.wraps(f)
    def collect(*args: Any, **values: Any) -> Any:
        fields = {field.name: values.pop(field.name) for field in dataclasses.fields(into)}
        return f(*args, **{keyword: into(**fields)}, **values)

    for option in reversed(options):
        collect = option(collect)
    return collect  # type: ignore[return-value]


@dataclasses.dataclass(frozen=True, slots=True)
class Options:
    """The values of `pipeline_options`, as one argument of the commands."""

    source: str
    start_from: str
    consumer_group: str
    lease_seconds: float
    catalog: str | None
    ratings: str | None
    include_adult: bool
    follow: bool
    from_start: bool
    replay_speed: float
    rate: float | str | None
    seed: int
    db: str
    pg_schema: str
    window: int
    retention: float
    writer: str
    create_tables: bool
    max_size: int | None
    users: int
    titles: int

    @property
    def spec(self) -> SourceSpec:
        """What --source names."""
        return SourceSpec.parse(self.source)

    def settings(self) -> dict[str, Any]:
        if self.start_from != "trim-horizon" and self.spec.kind is not SourceKind.KINESIS:
            raise Failure("--from goes with a kinesis:// --source")
        """Their PipelineSettings keywords. Events from a file or a pipe may be history:
        their metrics are read at stream time (the newest event time seen), and
        --replay-speed paces them by their times."""
        if self.replay_speed and self.spec.kind is SourceKind.SIMULATOR:
            raise Failure("--replay-speed replays a --source file of recorded events")
        rate = self.rate
        if rate == AUTO:
            rate = DEFAULT_RATE if self.spec.kind is SourceKind.SIMULATOR else None
        return {
            "rate": rate,
            "window_minutes": self.window,
            "retention_seconds": self.retention,
            "max_bytes": self.max_size,
            "writer_process": self.writer == "process",
            # A file or a pipe may hold history; the simulator and a stream are live.
            "stream_time": not self.spec.live,
            "replay_speed": self.replay_speed,
            "from_start": self.from_start,
        }

    def inputs(self, events: BinaryIO | None = None) -> Inputs:
        return Inputs(
            self.spec,
            self.seed,
            self.users,
            self.titles,
            self.catalog,
            self.ratings,
            self.include_adult,
            self.follow,
            events,
            self.start_from,
            self.consumer_group,
            self.lease_seconds,
        )


def refresh_option(f: F) -> F:
    return click.option(
        "--refresh",
        type=Number(0.25, 5.0, "seconds", whole=False),
        default=1.0,
        show_default=True,
        metavar="SECONDS",
        help="How often the monitor redraws its panels ([ and ] change it while running).",
    )(f)


@dataclasses.dataclass(frozen=True, slots=True)
class AlertOptions:
    """The values of `alert_options`."""

    alert: tuple[str, ...]
    alerts_file: str | None
    alert_exec: str | None
    alert_webhook: str | None
    bell: bool

    def alerts(self) -> Alerts | None:
        """The rules given, or None; a rule that does not parse is a Failure."""
        try:
            rules = [parse_rule(text) for text in self.alert]
            if self.alerts_file is not None:
                rules += load_rules(Path(self.alerts_file))
        except RuleError as error:
            raise Failure(str(error)) from None
        names = [rule.name for rule in rules]
        if len(set(names)) < len(names):
            twice = next(name for name in names if names.count(name) > 1)
            raise Failure(f"two alert rules named {twice!r}: give each its own name")
        if not rules:
            if self.alert_exec or self.alert_webhook:
                raise Failure("--alert-exec and --alert-webhook act on --alert or --alerts rules")
            return None
        if self.alert_webhook is not None:
            try:
                check_webhook(self.alert_webhook)
            except ValueError as error:
                raise Failure(str(error)) from None
        return Alerts(rules)

    def act_on(self, alerts: Alerts | None, said: Callable[[str], None]) -> AlertActions | None:
        """The actions given, told each change of `alerts` (None: no actions given)."""
        if alerts is None or (self.alert_exec is None and self.alert_webhook is None):
            return None
        actions = AlertActions(self.alert_exec, self.alert_webhook, said)
        alerts.listeners.append(actions)
        return actions


def alert_options(f: F) -> F:
    """The options of the commands that evaluate alert rules (run, the monitor, watch)."""
    options = [
        click.option(
            "--alert",
            "alert",
            multiple=True,
            metavar="RULE",
            help="An alert rule, repeatable: 'lag_p99 > 5s for 1m', 'events_per_minute <"
            " 1000 for 2m clear 1500', 'dead_letters_per_minute > 0', 'behind > 30s',"
            f" 'database_bytes > 2GB'. Figures: {known_figures()}.",
        ),
        click.option(
            "--alerts",
            "alerts_file",
            type=click.Path(dir_okay=False),
            default=None,
            metavar="FILE",
            help="Alert rules from a TOML file: [[alert]] tables with expression, and"
            " optionally name, for, clear and severity (warning or critical).",
        ),
        click.option(
            "--alert-exec",
            "alert_exec",
            default=None,
            metavar="PROGRAM",
            help="Run PROGRAM when an alert fires or clears: its arguments are the state,"
            " the rule's name and the value, the alert as JSON on its stdin (no shell;"
            f" killed after {EXEC_TIMEOUT:g} s; a failure is shown, never fatal).",
        ),
        click.option(
            "--alert-webhook",
            "alert_webhook",
            default=None,
            metavar="URL",
            help="POST the alert as JSON to URL when one fires or clears (tried again with"
            " backoff; the URL is shown by its host only).",
        ),
        click.option(
            "--no-bell",
            "bell",
            is_flag=True,
            default=True,
            flag_value=False,
            help="The monitor does not ring the terminal's bell when an alert fires.",
        ),
    ]

    return _gathered(f, options, AlertOptions, "alerting")
