"""`imdb-tui export`: the stored events and their counts as Parquet files a BI tool
reads (Athena, QuickSight through Athena, Redshift Spectrum, DuckDB, Spark).

One folder a table, one folder a UTC day in it, Hive-style (`events/dt=2026-11-23/
part-00000.parquet`), typed columns (times in UTC, the event type dictionary-
encoded), zstd-compressed, in a folder or under an S3 prefix (destinations.py: a
day is replaced whole, so rerunning never duplicates rows). The events are read a
chunk at a time through the store's EventArchive (every store, no SQL here), so
memory stays bounded whatever the store holds. athena.py prints the tables'
DDL; `quicksight` adds CSV copies of the counts with QuickSight's manifests.

Without `since` and `until`, an export writes only the days that changed since the
last export to the same destination: the day's events count differs from the one
noted then (a new day, the day in progress, late events). What was exported is
noted in the destination itself (STATE: underscored, so that readers of the
tables leave it out), so each destination knows what it holds, and the store can
be read with read-only rights.

pyarrow is imported only when exporting (`pip install 'imdb-tui[export]'`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Final

from imdb_tui.events import EVENT_TYPES, Event
from imdb_tui.export.destinations import Destination
from imdb_tui.store import MovieOfDay, Store

STATE: Final = "_imdb_tui_export.json"
"""What an export wrote to a folder: each day's events count then, by table."""
TABLES: Final = ("events", "events_hourly", "events_daily", "movie_daily")
"""What can be exported: the events, their counts by UTC hour and by UTC day and
type, and each movie's figures by local day (as the store keeps days)."""
CHUNK: Final = 65_536
"""Events read and written at a time: one Parquet row group each."""


class ExportError(Exception):
    """What stops an export, said in one line (a destination that cannot be written,
    no Parquet library, days the wrong way round)."""


@dataclass(frozen=True, slots=True)
class Progress:
    """How far an export is: days and events written of those it will write."""

    days: int
    days_total: int
    events: int
    events_total: int
    seconds: float


@dataclass
class Exported:
    """What an export did."""

    days: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"days": self.days, "rows": self.rows, "seconds": round(self.seconds, 3)}


def export(
    store: Store,
    to: Destination,
    since: str | None = None,
    until: str | None = None,
    tables: Sequence[str] = TABLES,
    progress: Callable[[Progress], None] = lambda progress: None,
    stopping: Callable[[], bool] = lambda: False,
    quicksight: bool = False,
    file_format: str = "parquet",
) -> Exported:
    """Write each UTC day from `since` to `until` (YYYY-MM-DD, both included) of each
    of `tables` under `to`; with neither, each day that changed since the last
    export there. `stopping` is asked between days (the day begun is finished).
    `quicksight`: the counts' tables also as CSV, a file a day, with a manifest
    each (QuickSight reads S3 only so). `file_format`: parquet, or csv (with a
    header; lists joined by |)."""
    pa, pq = arrow()
    started = time.perf_counter()
    done = Exported(rows=dict.fromkeys(tables, 0))
    days = days_kept(store, since, until)
    counts = _day_counts(store, days)
    state = _read_state(to)
    if since is None and until is None:  # those that changed since the last export
        days = [d for d in days if any(state.get(t, {}).get(d) != counts[d] for t in tables)]
    events_total, events = sum(counts[day] for day in days), 0
    for number, day in enumerate(days):
        if stopping():
            break
        stop = f"{date.fromisoformat(day) + timedelta(days=1)}T00:00:00.000Z"
        start = f"{day}T00:00:00.000Z"
        wrote = False
        for table in tables:
            if table == "events":
                chunks: Iterator[Any] = (
                    _events_batch(pa, events) for events in store.events_between(start, stop, CHUNK)
                )
            else:
                if table == "movie_daily":
                    batches = _movies_batch(pa, day, store.movies_on(day))
                else:
                    batches = _counts_batch(pa, store, day, hourly=table == "events_hourly")
                chunks = iter(batches)
                if quicksight:
                    name = f"{QUICKSIGHT}/{table}/dt={day}.csv"
                    to.put_file(name, _csv(pa, iter(batches)))
                    to.write_note(f"{QUICKSIGHT}/{table}.manifest.json", _manifest(to, table))
            if file_format == "csv":
                rows = to.put_day(table, day, _csv(pa, chunks), "part-00000.csv")
            else:
                rows = to.put_day(table, day, _parquet(pq, chunks, _SCHEMAS[table](pa)))
            done.rows[table] += rows
            wrote = wrote or rows > 0
            state.setdefault(table, {})[day] = counts[day]
        events += counts[day]
        progress(
            Progress(number + 1, len(days), events, events_total, time.perf_counter() - started)
        )
        _write_state(to, state)
        if wrote:
            done.days.append(day)
    done.seconds = time.perf_counter() - started
    return done


def _day_counts(store: Store, days: list[str]) -> dict[str, int]:
    """Each UTC day's events, from the counts by quarter hour (one read for all)."""
    if not days:
        return {}
    bounds = [f"{day}T00:00Z" for day in days]
    bounds.append(f"{date.fromisoformat(days[-1]) + timedelta(days=1)}T00:00Z")
    counts = dict.fromkeys(days, 0)
    for i, _, n in store.events_per_period(bounds):
        counts[days[i]] += n
    return counts


def _read_state(to: Destination) -> dict[str, dict[str, int]]:
    try:
        state: dict[str, dict[str, int]] = json.loads(to.read_note(STATE) or "")["tables"]
    except (ValueError, KeyError, TypeError):
        return {}  # none yet (or not one of ours): every day is exported
    return state


def _write_state(to: Destination, state: dict[str, dict[str, int]]) -> None:
    to.write_note(STATE, json.dumps({"version": 1, "tables": state}, sort_keys=True))


def days_kept(store: Store, since: str | None, until: str | None) -> list[str]:
    """The UTC days from the oldest counts kept (or `since`) to the newest event's
    (or `until`)."""
    for name, text in (("--since", since), ("--until", until)):
        if text is not None:
            try:
                date.fromisoformat(text)
            except ValueError:
                raise ExportError(f"{name} {text!r}: a day, as YYYY-MM-DD") from None
    if since is not None and until is not None and since > until:
        raise ExportError(f"--since {since} is after --until {until}")
    first, newest = store.first_quarter_hour(), store.newest_minute()
    if first is None or newest is None:
        return []
    start = max(first[:10], since or first[:10])
    end = min(newest[:10], until or newest[:10])
    days = []
    day = date.fromisoformat(start)
    while day.isoformat() <= end:
        days.append(day.isoformat())
        day += timedelta(days=1)
    return days


# Writing -----------------------------------------------------------------------


def _parquet(pq: Any, chunks: Iterator[Any], schema: Any) -> Callable[[Path], int]:
    """What writes a day's chunks to one Parquet file (a row group each)."""
    return _file(chunks, lambda path, _: pq.ParquetWriter(path, schema, compression="zstd"))


def _file(
    chunks: Iterator[Any],
    opened: Callable[[Path, Any], Any],
    shaped: Callable[[Any], Any] = lambda batch: batch,
) -> Callable[[Path], int]:
    """What writes a day's chunks, each `shaped`, with the writer `opened` on the path
    for the first of them, when given where: the file is made only if there are rows.
    Its rows."""

    def write(path: Path) -> int:
        rows = 0
        writer = None
        try:
            for batch in chunks:
                if not batch.num_rows:
                    continue
                batch = shaped(batch)
                if writer is None:
                    writer = opened(path, batch)
                writer.write_batch(batch)
                rows += batch.num_rows
        finally:
            if writer is not None:
                writer.close()
        return rows

    return write


def arrow() -> tuple[Any, Any]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ExportError(
            "export writes Parquet with pyarrow: pip install 'imdb-tui[export]'"
        ) from None
    return pa, pq


def _kind(pa: Any) -> Any:
    return pa.dictionary(pa.int8(), pa.string())


_SCHEMAS: Final[dict[str, Callable[[Any], Any]]] = {
    "events": lambda pa: pa.schema(
        [
            ("event_id", pa.string()),
            ("event_time", pa.timestamp("ms", tz="UTC")),
            ("user_id", pa.string()),
            ("session_id", pa.string()),
            ("movie_id", pa.string()),
            ("event_type", _kind(pa)),
            ("rating", pa.int8()),
        ]
    ),
    "events_hourly": lambda pa: pa.schema(
        [("hour", pa.timestamp("ms", tz="UTC")), ("event_type", _kind(pa)), ("events", pa.int64())]
    ),
    "events_daily": lambda pa: pa.schema(
        [("day", pa.date32()), ("event_type", _kind(pa)), ("events", pa.int64())]
    ),
    "movie_daily": lambda pa: pa.schema(
        [
            ("day", pa.date32()),
            ("movie_id", pa.string()),
            ("title", pa.string()),
            ("year", pa.int16()),
            ("genres", pa.list_(pa.string())),
            *((f"{kind}s", pa.int64()) for kind in EVENT_TYPES),
            ("users", pa.int64()),
            ("ratings", pa.int64()),
            ("rating_sum", pa.int64()),
        ]
    ),
}


QUICKSIGHT: Final = "quicksight"


def _csv(pa: Any, chunks: Iterator[Any]) -> Callable[[Path], int]:
    """What writes a day's chunks as one CSV file with a header (lists joined by |,
    times as ISO 8601)."""
    import pyarrow.csv

    def plain(batch: Any) -> Any:
        columns = [_plain_column(pa, column) for column in batch.columns]
        return pa.record_batch(columns, names=batch.schema.names)

    return _file(chunks, lambda path, batch: pyarrow.csv.CSVWriter(path, batch.schema), plain)


def _plain_column(pa: Any, column: Any) -> Any:
    """A column as CSV holds it: lists joined by |, dictionaries as their text."""
    if pa.types.is_list(column.type):
        return pa.array(["|".join(v or []) for v in column.to_pylist()], pa.string())
    if pa.types.is_dictionary(column.type):
        return column.cast(pa.string())
    return column


def _manifest(to: Destination, table: str) -> str:
    """QuickSight's S3 manifest: every CSV file under the table's prefix."""
    where = f"{to.name.rstrip('/')}/{QUICKSIGHT}/{table}/"
    return json.dumps(
        {
            "fileLocations": [{"URIPrefixes": [where]}],
            "globalUploadSettings": {
                "format": "CSV",
                "delimiter": ",",
                "textqualifier": '"',
                "containsHeader": "true",
            },
        },
        indent=2,
    )


def schema_of(table: str) -> Any:
    """A table's Parquet schema (pyarrow)."""
    pa, _ = arrow()
    return _SCHEMAS[table](pa)


def _movies_batch(pa: Any, day: str, movies: list[MovieOfDay]) -> list[Any]:
    """A local day's movies: events by type, distinct users, ratings (their count and
    sum, so that averages over days come out right), with the catalogue's title."""
    if not movies:
        return []
    columns: list[Any] = [
        pa.array([date.fromisoformat(day)] * len(movies), pa.date32()),
        pa.array([m.movie_id for m in movies], pa.string()),
        pa.array([m.title for m in movies], pa.string()),
        pa.array([m.year for m in movies], pa.int16()),
        pa.array([list(m.genres) for m in movies], pa.list_(pa.string())),
        *(pa.array([m.events.get(kind, 0) for m in movies], pa.int64()) for kind in EVENT_TYPES),
        pa.array([m.users for m in movies], pa.int64()),
        pa.array([sum(m.ratings.values()) for m in movies], pa.int64()),
        pa.array([sum(r * n for r, n in m.ratings.items()) for m in movies], pa.int64()),
    ]
    return [pa.record_batch(columns, schema=_SCHEMAS["movie_daily"](pa))]


def _events_batch(pa: Any, events: list[Event]) -> Any:
    columns = list(zip(*events, strict=True))
    event_id, event_time, user_id, session_id, movie_id, event_type, rating = columns
    schema = _SCHEMAS["events"](pa)
    return pa.record_batch(
        [
            pa.array(event_id, pa.string()),
            pa.array(event_time, pa.string()).cast(pa.timestamp("ms", tz="UTC")),
            pa.array(user_id, pa.string()),
            pa.array(session_id, pa.string()),
            pa.array(movie_id, pa.string()),
            pa.array(event_type, pa.string()).dictionary_encode().cast(_kind(pa)),
            pa.array(rating, pa.int8()),
        ],
        schema=schema,
    )


def _counts_batch(pa: Any, store: Store, day: str, hourly: bool) -> list[Any]:
    """A day's events by UTC hour (or by the whole day) and type, from the counts by
    quarter hour that every store keeps."""
    hours = [f"{day}T{hour:02d}:00Z" for hour in range(24)]
    stop = f"{date.fromisoformat(day) + timedelta(days=1)}T00:00Z"
    bounds = [*hours, stop] if hourly else [hours[0], stop]
    counts = sorted(
        (i, kind, n) for i, kind, n in store.events_per_period(bounds) if n and kind in EVENT_TYPES
    )
    if not counts:
        return []
    periods, kinds, numbers = zip(*counts, strict=True)
    kind_column = pa.array(kinds, pa.string()).dictionary_encode().cast(_kind(pa))
    if hourly:
        first = pa.array([f"{hours[i][:13]}:00:00Z" for i in periods], pa.string())
        key = first.cast(pa.timestamp("ms", tz="UTC"))
        schema = _SCHEMAS["events_hourly"](pa)
    else:
        key = pa.array([date.fromisoformat(day)] * len(counts), pa.date32())
        schema = _SCHEMAS["events_daily"](pa)
    return [pa.record_batch([key, kind_column, pa.array(numbers, pa.int64())], schema=schema)]
