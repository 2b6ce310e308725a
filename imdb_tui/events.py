"""The event schema and the one validation function that every source goes through.

A raw record is what a source read: a mapping (the simulator), or one line of
JSON as text or bytes (files, stdin). `validate` turns it into an `Event` or a
`Rejection` carrying a short reason and the raw payload; it never raises.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Final, NamedTuple, SupportsIndex, overload

import orjson

from imdb_tui.clock import utc_iso

EVENT_TYPES: Final = ("view", "click", "rate", "watchlist_add")
FIELDS: Final = (
    "event_id",
    "event_time",
    "user_id",
    "session_id",
    "movie_id",
    "event_type",
    "rating",
)
MAX_FUTURE_SECONDS: Final = 300.0
MAX_ID_LENGTH: Final = 64
MAX_LINE_BYTES: Final = 1024 * 1024
MAX_RAW_CHARS: Final = 4096
RATING_RANGE: Final = (1, 10)

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@-]*")
_MOVIE_ID = re.compile(r"tt[0-9]{7,10}")
_CANONICAL_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")
# The three ids, the movie id and the event time (canonical, on a real time of day) of
# a valid event, joined by \x1f: one match instead of five.
_ID_CHARS = rf"[A-Za-z0-9][A-Za-z0-9_.:@-]{{0,{MAX_ID_LENGTH - 1}}}"
_TIME_OF_DAY = r"[0-9]{4}-[0-9]{2}-[0-9]{2}T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]\.[0-9]{3}Z"
_FAST = re.compile("\x1f".join([_ID_CHARS] * 3 + [_MOVIE_ID.pattern, _TIME_OF_DAY]))
_TYPES: Final = frozenset(EVENT_TYPES)
_KNOWN: Final = frozenset(FIELDS)


def is_movie_id(text: str) -> bool:
    """Whether text is an IMDb title id as events carry them: tt and 7 to 10 digits."""
    return _MOVIE_ID.fullmatch(text) is not None


class Event(NamedTuple):
    """One valid engagement event.

    A NamedTuple rather than a frozen dataclass: just as immutable, several times
    cheaper to build at 100k+ events a second, and exactly the row the store inserts.
    """

    event_id: str
    event_time: str
    """UTC ISO-8601 with milliseconds and a Z: the canonical form stored."""
    user_id: str
    session_id: str
    movie_id: str
    event_type: str
    rating: int | None = None

    @property
    def ts(self) -> float:
        """`event_time` as seconds since the epoch."""
        return seconds(self.event_time)

    def to_json(self) -> dict[str, Any]:
        """The interchange form: one JSON object per line."""
        record: dict[str, Any] = {
            "event_id": self.event_id,
            "event_time": self.event_time,
            "user_id": self.user_id,
            "session_id": self.session_id,
            "movie_id": self.movie_id,
            "event_type": self.event_type,
        }
        if self.rating is not None:
            record["rating"] = self.rating
        return record


@dataclass(frozen=True, slots=True)
class Rejection:
    """A raw record that is not a valid event, and why."""

    reason: str
    raw: str
    """The payload as received, cut to MAX_RAW_CHARS; NUL shown as \\x00."""
    raw_size: int
    """The payload's full length in characters (bytes for undecodable input)."""


RawRecord = Mapping[str, Any] | str | bytes


class Located(bytes):
    """A raw record's bytes with where they came from (a stream's shard and sequence
    number), said beside the reason if the record is rejected."""

    origin: str
    problem: str | None = None
    """Why the source could not read it (a broken aggregate, a gzip bomb): rejected so."""

    @classmethod
    def at(cls, data: bytes, origin: str) -> Located:
        record = cls(data)
        record.origin = origin
        return record

    @classmethod
    def unreadable(cls, data: bytes, origin: str, problem: str) -> Located:
        record = cls.at(data, origin)
        record.problem = problem
        return record


class Placed(list[RawRecord]):
    """Lines of a file or stdin with where each starts, said beside the reason of any
    that is rejected (worked out only then: the list is made and read as any list)."""

    def __init__(
        self,
        lines: Iterable[RawRecord],
        name: str,
        starts: Sequence[int],
        numbers: Sequence[int | None],
    ) -> None:
        super().__init__(lines)
        self.name = name
        self.starts = starts
        self.numbers = numbers

    def origin(self, index: int) -> str:
        number = self.numbers[index]
        line = "" if number is None else f" line {number:,},"
        return f"{self.name}{line} byte {self.starts[index]:,}"

    @overload
    def __getitem__(self, key: SupportsIndex) -> RawRecord: ...
    @overload
    def __getitem__(self, key: slice) -> list[RawRecord]: ...
    def __getitem__(self, key: SupportsIndex | slice) -> RawRecord | list[RawRecord]:
        if not isinstance(key, slice):
            return super().__getitem__(key)
        lines = super().__getitem__(key)
        return Placed(lines, self.name, self.starts[key], self.numbers[key])


class _Invalid(Exception):
    """Raised inside validation with the reason; never escapes `validate`."""


def validate(raw: RawRecord) -> Event | Rejection:
    """Turn a raw record into an Event, or a Rejection with a short reason.

    No event is turned away for its time: this machine's clock may be wrong (one
    behind would reject every real event as "in the future"). Events ahead of the
    clock are stored, and the metrics say how many there are (see `latest_time`).
    """
    event = _quick_any(raw)
    return event if event is not None else _validate(raw)


def validate_many(records: list[RawRecord]) -> tuple[list[Event], list[Rejection], int]:
    """`validate` over a chunk of records, split into events and rejections, and the
    number of blank lines skipped (counted, not kept: a file of newlines is no error)."""
    events: list[Event] = []
    rejections: list[Rejection] = []
    blank = 0
    placed = records if type(records) is Placed else None
    at = 0  # where the last rejected record of `placed` was
    quick, add_event = _quick_any, events.append
    for raw in records:
        event = quick(raw)
        if event is not None:
            add_event(event)
            continue
        if isinstance(raw, bytes | str) and not raw.strip():
            blank += 1
            continue
        result = _validate(raw)
        if type(result) is Event:
            add_event(result)
        elif placed is None:
            rejections.append(result)  # type: ignore[arg-type]
        else:  # found by identity, in order: equal lines may share one object
            while placed[at] is not raw:
                at += 1
            rejections.append(_placed(result, placed.origin(at)))  # type: ignore[arg-type]
            at += 1
    return events, rejections, blank


def event_seconds(raw: RawRecord) -> float | None:
    """The epoch seconds of a raw record's event time if it has a valid one, else None.

    For pacing a replay before validation proper: a record with no usable time is
    released at once, and `validate` gives it its reason later.
    """
    try:
        record = raw if isinstance(raw, Mapping) else _parse_line(raw)
        text = record.get("event_time")
        return seconds(_time(text)) if type(text) is str else None
    except _Invalid:
        return None


def latest_time(now: float) -> str:
    """The latest event time not ahead of the clock at `now`, canonical (MAX_FUTURE_SECONDS
    of leeway, to the millisecond): canonical times compare as strings."""
    return utc_iso(now + MAX_FUTURE_SECONDS)


def _validate(raw: RawRecord) -> Event | Rejection:
    if type(raw) is Located and raw.problem:
        return _reject(raw, raw.problem)
    try:
        record = raw if isinstance(raw, Mapping) else _parse_line(raw)
        return _event(record)
    except _Invalid as invalid:
        return _reject(raw, str(invalid))


_ABSENT: Final = object()


def _quick(record: dict[str, Any]) -> Event | None:
    """The common valid event, checked in one pass; None sends it the careful way.

    It accepts nothing that `_event` rejects (a property test holds them together).
    """
    size = len(record)
    rating = record.get("rating", _ABSENT) if size == 7 else None if size == 6 else _ABSENT
    event_id = record.get("event_id")
    event_time = record.get("event_time")
    user_id = record.get("user_id")
    session_id = record.get("session_id")
    movie_id = record.get("movie_id")
    event_type = record.get("event_type")
    if not (
        type(event_id) is str
        and type(event_time) is str
        and type(user_id) is str
        and type(session_id) is str
        and type(movie_id) is str
        and type(event_type) is str  # a list or a dict is no key of a set
        and _FAST.fullmatch(
            f"{event_id}\x1f{user_id}\x1f{session_id}\x1f{movie_id}\x1f{event_time}"
        )
        and (event_time[:10] in _days or _new_day(event_time[:10]))
    ):
        return None
    if event_type == "rate":
        if type(rating) is not int or not RATING_RANGE[0] <= rating <= RATING_RANGE[1]:
            return None
    elif rating is not None or event_type not in _TYPES:
        return None
    return _new_event(
        Event, (event_id, event_time, user_id, session_id, movie_id, event_type, rating)
    )


# Days (YYYY-MM-DD) seen to be real dates from 1970 on, for `_quick`.
_days: set[str] = set()


def _new_day(day: str) -> bool:
    try:
        if date.fromisoformat(day).year < 1970:
            return False
    except ValueError:
        return False
    if len(_days) > 4096:
        _days.clear()
    _days.add(day)
    return True


def _quick_any(raw: RawRecord) -> Event | None:
    """The fast path for a mapping (the simulator's) or a JSON line (a file's)."""
    if isinstance(raw, bytes):
        if len(raw) > MAX_LINE_BYTES or (type(raw) is Located and raw.problem):
            return None
        try:
            # bytes in (a Located record as a view: orjson takes no subclass), UTF-8 checked
            record = orjson.loads(raw if type(raw) is bytes else memoryview(raw))
        except orjson.JSONDecodeError:  # the careful way says what is wrong
            return None
        return _quick(record) if type(record) is dict else None
    return _quick(raw) if type(raw) is dict else None


_new_event = tuple.__new__  # builds the NamedTuple without its Python-level __new__


def _reject(raw: RawRecord, reason: str) -> Rejection:
    if type(raw) is Located:
        reason = f"{reason} ({raw.origin})"
    text = raw_text(raw)
    return Rejection(reason, text[:MAX_RAW_CHARS].replace("\x00", "\\x00"), len(text))


def _placed(rejection: Rejection, origin: str) -> Rejection:
    return Rejection(f"{rejection.reason} ({origin})", rejection.raw, rejection.raw_size)


def raw_text(raw: RawRecord) -> str:
    """The raw payload as text, whatever shape it came in."""
    if isinstance(raw, bytes):
        return raw.decode("utf-8", errors="backslashreplace")
    if isinstance(raw, str):
        return raw
    try:
        return json.dumps(raw, ensure_ascii=False, default=repr)
    except (TypeError, ValueError, RecursionError):
        return repr(raw)


def _parse_line(line: str | bytes) -> Mapping[str, Any]:
    if len(line) > MAX_LINE_BYTES:
        raise _Invalid(f"line longer than {MAX_LINE_BYTES // 1024 // 1024} MiB")
    if isinstance(line, bytes):
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError as error:
            raise _Invalid(f"invalid UTF-8 at byte {error.start}") from None
    if not line.strip():
        raise _Invalid("empty line")
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError as error:
        raise _Invalid(f"invalid JSON: {error.msg} at column {error.colno}") from None
    if not isinstance(record, dict):
        raise _Invalid(f"JSON is {_kind(record)}, not an object")
    return record


def _event(record: Mapping[str, Any]) -> Event:
    if len(record) > len(FIELDS) or not _KNOWN.issuperset(record):
        extra = sorted(str(key) for key in record if key not in _KNOWN)
        raise _Invalid(f"unknown field {_quote(extra[0])}")
    event_type = _field(record, "event_type", str)
    if event_type not in _TYPES:
        raise _Invalid(f"unknown event_type {_quote(event_type)}")
    event_time = _time(_field(record, "event_time", str))
    rating = record.get("rating")
    if event_type == "rate":
        low, high = RATING_RANGE
        if type(rating) is not int or not low <= rating <= high:
            if rating is None:
                raise _Invalid("missing field 'rating' (required for rate)")
            raise _Invalid(f"rating must be an integer from {low} to {high}")
    elif rating is not None:
        raise _Invalid(f"rating is only allowed on rate events, not {event_type}")
    movie_id = _field(record, "movie_id", str)
    if not _MOVIE_ID.fullmatch(movie_id):
        raise _Invalid("movie_id must be tt followed by 7 to 10 digits")
    return Event(
        _id(record, "event_id"),
        event_time,
        _id(record, "user_id"),
        _id(record, "session_id"),
        movie_id,
        event_type,
        rating,
    )


def _field(record: Mapping[str, Any], name: str, kind: type) -> Any:
    value = record.get(name)
    if value is None:
        raise _Invalid(f"missing field '{name}'")
    if type(value) is not kind:
        raise _Invalid(f"{name} must be a {kind.__name__}, not {_kind(value)}")
    return value


def _id(record: Mapping[str, Any], name: str) -> str:
    value: str = _field(record, name, str)
    if len(value) > MAX_ID_LENGTH:
        raise _Invalid(f"{name} longer than {MAX_ID_LENGTH} characters")
    if not _ID.fullmatch(value):
        raise _Invalid(f"{name} must be letters, digits and _.:@- only")
    return value


_second_cache: dict[str, float] = {}


def _time(text: str) -> str:
    """The canonical form of an event time."""
    if _CANONICAL_TIME.fullmatch(text):
        seconds(text)  # the common case, and the simulator's: checked, and remembered
        canonical = text
    elif len(text) > 40:
        raise _Invalid("event_time is not an ISO-8601 time")
    else:
        canonical = utc_iso(_parse_time(text))
    return canonical


def seconds(canonical: str) -> float:
    """Epoch seconds of a canonical event time: the second memoised, plus the millis."""
    second = canonical[:19]
    base = _second_cache.get(second)
    if base is None:
        if len(_second_cache) > 4096:
            _second_cache.clear()
        base = _second_cache[second] = _parse_time(second + "Z")
    return base + int(canonical[20:23]) / 1000


def _parse_time(text: str) -> float:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise _Invalid("event_time is not an ISO-8601 time") from None
    if moment.tzinfo is None:
        raise _Invalid("event_time has no time zone (add Z for UTC)")
    if moment.year < 1970:
        raise _Invalid("event_time is before 1970")
    return moment.astimezone(UTC).timestamp()


def _kind(value: object) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)


def _quote(value: str) -> str:
    """A value from the data, shortened and escaped for a reason string."""
    shown = value if len(value) <= 40 else value[:40] + "…"
    return repr(shown)
