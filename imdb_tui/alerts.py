"""Alert rules: a figure, a threshold, how long it must hold, and when it clears.

`lag_p99 > 5s for 1m clear 3s` fires once the p99 lag has been over 5 s for a
minute, and clears once it is 3 s or less (hysteresis: a lag hovering at 5 s does
not flap). A rule is evaluated on the clock of whoever evaluates it (the pipeline's
in `run` and the monitor, the watcher's in `watch`) against the figures of a metrics
snapshot, named as `report --json` names them (its `figures`).

The firing rules and the recent changes travel with a pipeline's health row
(`state_json`), so every viewer of the store sees the same alerts.
"""

from __future__ import annotations

import json
import math
import operator
import re
import tomllib
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Final

from imdb_tui.clock import parse_duration
from imdb_tui.display import millis_text, parse_size, size_text
from imdb_tui.health import PipelineHealth
from imdb_tui.metrics import MetricsSnapshot

RECENT_KEPT: Final = 20
"""Changes (firings and clearings) kept for the Alerts screen and `report`."""
SEVERITIES: Final = ("warning", "critical")


class RuleError(ValueError):
    """A rule that does not parse, said in one line."""


class Unit(Enum):
    COUNT = "count"
    SECONDS = "seconds"
    BYTES = "bytes"
    RATE = "events/s"


@dataclass(frozen=True, slots=True)
class Figure:
    name: str
    unit: Unit
    read: Callable[[MetricsSnapshot], float | None]
    of_store: bool = True
    """Read from the store's figures (a snapshot); False: the pipeline's health alone."""
    counter: bool = False
    """A per-minute rate of this counter, worked out by the evaluator."""


def _health(field: str, scale: float = 1.0) -> Callable[[MetricsSnapshot], float | None]:
    def read(snapshot: MetricsSnapshot) -> float | None:
        health = snapshot.health
        value = None if health is None or not health.live else getattr(health, field)
        return None if value is None else value * scale

    return read


def _last_whole_minute(snapshot: MetricsSnapshot) -> float | None:
    """The events of the minute before the present one (the present one is still filling)."""
    minutes = snapshot.per_minute
    return float(minutes[-2].events) if len(minutes) >= 2 else None


FIGURES: Final = {
    figure.name: figure
    for figure in (
        Figure("lag_p50", Unit.SECONDS, _health("lag_p50_ms", 1e-3), of_store=False),
        Figure("lag_p99", Unit.SECONDS, _health("lag_p99_ms", 1e-3), of_store=False),
        Figure("behind", Unit.SECONDS, _health("source_behind_ms", 1e-3), of_store=False),
        Figure("ingest_rate", Unit.RATE, _health("ingest_rate"), of_store=False),
        Figure("queue", Unit.COUNT, _health("queue_depth"), of_store=False),
        Figure("events_per_minute", Unit.COUNT, _last_whole_minute),
        Figure("dead_letters_per_minute", Unit.COUNT, lambda s: s.dead_letters, counter=True),
        Figure("duplicates_per_minute", Unit.COUNT, lambda s: s.duplicates, counter=True),
        Figure("active_users", Unit.COUNT, lambda s: s.active_users.count),
        Figure("users_today", Unit.COUNT, lambda s: s.users_today),
        Figure("events_today", Unit.COUNT, lambda s: s.events_today),
        Figure("events_total", Unit.COUNT, lambda s: s.events_total),
        Figure("dead_letters", Unit.COUNT, lambda s: s.dead_letters),
        Figure("duplicates", Unit.COUNT, lambda s: s.duplicates),
        Figure("database_bytes", Unit.BYTES, lambda s: s.database_bytes),
    )
}
ALIASES: Final = {"database_size": "database_bytes", "lag": "lag_p99"}
OPERATORS: Final[dict[str, Callable[[float, float], bool]]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}
_RULE = re.compile(
    r"\s*(?P<figure>[A-Za-z_]\w*)\s*(?P<op>>=|<=|>|<)\s*(?P<value>[^\s]+(?:\s*[A-Za-z]+)?)"
    r"(?:\s+for\s+(?P<hold>\S+))?(?:\s+clear\s+(?P<clear>\S+))?\s*"
)


def figure_values(snapshot: MetricsSnapshot) -> dict[str, float | None]:
    """Every figure a rule can name, as `report --json` shows them (`figures`); the
    per-minute rates of counters are the evaluator's, and left out."""
    return {name: figure.read(snapshot) for name, figure in FIGURES.items() if not figure.counter}


def value_text(value: float | None, unit: Unit) -> str:
    if value is None:
        return "–"
    if unit is Unit.SECONDS:
        return millis_text(value * 1000)
    if unit is Unit.BYTES:
        return size_text(value)
    if unit is Unit.RATE:
        return f"{value:,.0f}/s"
    return f"{value:,.0f}" if value == int(value) else f"{value:,.1f}"


def _amount(text: str, unit: Unit, what: str) -> float:
    try:
        if unit is Unit.SECONDS:
            raw = text.strip().lower()
            if raw.endswith("ms"):
                return float(raw[:-2]) / 1000
            return parse_duration(raw.removesuffix("in"), "s")  # 5s, 2m, 2min, 1h
        if unit is Unit.BYTES:
            return float(parse_size(text))
        raw = text.strip().replace(",", "").replace("_", "").removesuffix("/s")
        scale = {"k": 1e3, "M": 1e6}.get(raw[-1:], 1.0)
        amount = float(raw[:-1] if scale != 1.0 else raw)
        if not math.isfinite(amount):
            raise ValueError(text)
        return amount * scale
    except (ValueError, IndexError):
        examples = {
            Unit.SECONDS: "500ms, 5s, 2m",
            Unit.BYTES: "500MB, 2GB",
            Unit.COUNT: "100, 2.5k",
            Unit.RATE: "1000, 2.5k",
        }[unit]
        raise RuleError(f"{what} {text!r} is not a value like {examples}") from None


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    expression: str
    """As written: lag_p99 > 5s for 1m clear 3s"""
    figure: Figure
    test: str
    """>, >=, < or <="""
    threshold: float
    hold: float = 0.0
    """Seconds the condition must hold before the rule fires."""
    clear: float | None = None
    """The threshold the figure must fall back past to clear (None: the same)."""
    severity: str = "warning"

    def met(self, value: float | None) -> bool:
        return value is not None and OPERATORS[self.test](value, self.threshold)

    def cleared(self, value: float | None) -> bool:
        """Whether a firing rule clears: its figure back past the clear threshold (a
        figure no longer known, a pipeline gone, clears it too)."""
        limit = self.threshold if self.clear is None else self.clear
        return value is None or not OPERATORS[self.test](value, limit)


def known_figures() -> str:
    return ", ".join(FIGURES)


def parse_rule(
    text: str,
    name: str | None = None,
    hold: str | None = None,
    clear: str | None = None,
    severity: str = "warning",
) -> Rule:
    """A rule from its expression (`hold` and `clear` may be given apart, as a rules
    file gives them). RuleError says what is wrong in one line."""
    match = _RULE.fullmatch(text)
    if match is None:
        raise RuleError(
            f"{text!r} is not a rule like 'lag_p99 > 5s for 1m' or"
            " 'events_per_minute < 1000 for 2m clear 1500'"
        )
    wanted = ALIASES.get(match["figure"], match["figure"])
    figure = FIGURES.get(wanted)
    if figure is None:
        raise RuleError(f"{text!r}: no figure {match['figure']!r}; known: {known_figures()}")
    if severity not in SEVERITIES:
        raise RuleError(f"{text!r}: severity {severity!r} is not one of {', '.join(SEVERITIES)}")
    hold_text = match["hold"] or hold
    clear_text = match["clear"] or clear
    try:
        held = 0.0 if hold_text is None else parse_duration(hold_text, "s")
    except ValueError:
        raise RuleError(f"{text!r}: 'for {hold_text}' is not a duration like 30s or 2m") from None
    threshold = _amount(match["value"].replace(" ", ""), figure.unit, f"{text!r}: the value")
    limit = None if clear_text is None else _amount(clear_text, figure.unit, f"{text!r}: clear")
    if limit is not None and OPERATORS[match["op"]](limit, threshold):
        raise RuleError(
            f"{text!r}: clear {clear_text} must be on the other side of the threshold"
            " (it is where the rule stops firing)"
        )
    expression = " ".join(text.split())
    if match["hold"] is None and hold is not None:
        expression += f" for {hold}"
    if match["clear"] is None and clear is not None:
        expression += f" clear {clear}"
    return Rule(
        name or expression, expression, figure, match["op"], threshold, held, limit, severity
    )


def load_rules(path: Path) -> list[Rule]:
    """The rules of a TOML file: [[alert]] tables with `expression` and optionally
    `name`, `for`, `clear` and `severity`. RuleError says what is wrong in one line."""
    try:
        tables = tomllib.loads(path.read_text(encoding="utf-8")).get("alert", [])
    except OSError as error:
        raise RuleError(f"cannot read {path}: {error.strerror or error}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise RuleError(f"{path} is not TOML: {error}") from None
    if not isinstance(tables, list) or not tables:
        raise RuleError(f"{path} has no [[alert]] tables (each with an expression)")
    rules = []
    for number, table in enumerate(tables, 1):
        where = f"{path}: alert {number}"
        if not isinstance(table, dict) or not isinstance(table.get("expression"), str):
            raise RuleError(f"{where} has no expression")
        unknown = set(table) - {"name", "expression", "for", "clear", "severity"}
        if unknown:
            raise RuleError(f"{where}: unknown key {sorted(unknown)[0]!r}")
        try:
            rules.append(
                parse_rule(
                    table["expression"],
                    name=_text(table.get("name")),
                    hold=_text(table.get("for")),
                    clear=_text(table.get("clear")),
                    severity=str(table.get("severity", "warning")),
                )
            )
        except RuleError as error:
            raise RuleError(f"{where}: {error}") from None
    return rules


def _text(value: object) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True, slots=True)
class AlertChange:
    """A rule that began or stopped firing, as stored and shown."""

    name: str
    expression: str
    severity: str
    state: str
    """firing or cleared"""
    value: str
    """The figure when it changed, as shown (7.2 s, 1.6 GB)."""
    at: str
    """UTC ISO-8601: when it changed"""
    since: str
    """UTC ISO-8601: when it began firing"""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "expression": self.expression,
            "severity": self.severity,
            "state": self.state,
            "value": self.value,
            "at": self.at,
            "since": self.since,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AlertChange:
        return cls(*(str(data.get(key, "")) for key in cls.__slots__))


@dataclass(frozen=True, slots=True)
class AlertState:
    """What is firing now, and the recent changes, newest first."""

    firing: tuple[AlertChange, ...] = ()
    recent: tuple[AlertChange, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "firing": [alert.to_json() for alert in self.firing],
            "recent": [alert.to_json() for alert in self.recent],
        }

    @classmethod
    def parse(cls, text: str | None) -> AlertState:
        """As a health row keeps it (None, or not ours: nothing)."""
        if not text:
            return cls()
        try:
            data = json.loads(text)
            return cls(
                tuple(AlertChange.from_json(a) for a in data.get("firing", [])),
                tuple(AlertChange.from_json(a) for a in data.get("recent", [])),
            )
        except (ValueError, TypeError, AttributeError):
            return cls()


class _Watch:
    """One rule's state."""

    __slots__ = ("firing", "pending", "since")

    def __init__(self) -> None:
        self.pending: float | None = None  # when the condition began to hold (monotonic)
        self.firing: AlertChange | None = None
        self.since = ""


class Alerts:
    """Rules evaluated against snapshots as they come; what changed is returned."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = tuple(rules)
        self._watches = {rule.name: _Watch() for rule in self.rules}
        self._recent: deque[AlertChange] = deque(maxlen=RECENT_KEPT)
        self._counts: deque[tuple[float, dict[str, float]]] = deque()
        self.fired = 0
        """How many times any rule has fired."""
        self.needs_store = any(rule.figure.of_store for rule in self.rules)
        """Whether a rule names a figure of the store (else the health alone will do)."""
        self.listeners: list[Callable[[AlertChange], None]] = []
        """Told each change as `observe` finds it (what shows it, what acts on it)."""

    def observe(self, snapshot: MetricsSnapshot, now: float, stamp: str) -> list[AlertChange]:
        """Evaluate every rule at `now` (monotonic seconds; `stamp`: the same moment as
        UTC ISO-8601), tell the listeners the changes (rules that fired or cleared) and
        return them."""
        rates = self._rates(snapshot, now)
        changes = []
        for rule in self.rules:
            figure = rule.figure
            value = rates.get(figure.name) if figure.counter else figure.read(snapshot)
            watch = self._watches[rule.name]
            shown = value_text(value, figure.unit)
            if watch.firing is None:
                if not rule.met(value):
                    watch.pending = None
                    continue
                if watch.pending is None:
                    watch.pending = now
                if now - watch.pending < rule.hold:
                    continue
                watch.since = stamp
                change = AlertChange(
                    rule.name, rule.expression, rule.severity, "firing", shown, stamp, stamp
                )
                watch.firing = change
                self.fired += 1
            elif rule.cleared(value):
                change = AlertChange(
                    rule.name, rule.expression, rule.severity, "cleared", shown, stamp, watch.since
                )
                watch.firing, watch.pending = None, None
            else:
                continue
            self._recent.appendleft(change)
            changes.append(change)
        for change in changes:
            for listener in self.listeners:
                listener(change)
        return changes

    def _rates(self, snapshot: MetricsSnapshot, now: float) -> dict[str, float]:
        """Each counted figure's rise over the last minute (or since the first look)."""
        counted = {
            rule.figure.name: rule.figure.read(snapshot)
            for rule in self.rules
            if rule.figure.counter
        }
        if not counted:
            return {}
        values = {name: float(value or 0) for name, value in counted.items()}
        self._counts.append((now, values))
        while len(self._counts) > 1 and self._counts[1][0] <= now - 60:
            self._counts.popleft()
        _, then = self._counts[0]
        return {name: value - then.get(name, value) for name, value in values.items()}

    def state(self) -> AlertState:
        firing = tuple(watch.firing for watch in self._watches.values() if watch.firing is not None)
        return AlertState(firing, tuple(self._recent))

    def state_json(self) -> str:
        return json.dumps(self.state().to_json(), separators=(",", ":"))


def stored_alerts(pipelines: Sequence[PipelineHealth]) -> AlertState:
    """The alerts the pipelines' health rows hold: what is firing in those still
    writing, and every pipeline's recent changes, newest first."""
    firing: list[AlertChange] = []
    recent: list[AlertChange] = []
    for health in pipelines:
        state = AlertState.parse(health.alerts)
        if health.live:
            firing += state.firing
        recent += state.recent
    recent.sort(key=lambda change: change.at, reverse=True)
    return AlertState(tuple(firing), tuple(recent[:RECENT_KEPT]))
