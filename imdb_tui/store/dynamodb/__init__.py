"""Amazon DynamoDB as a store: `--db dynamodb://TABLE`, one table holding everything.

Configured as every AWS tool is: the standard credential and region chain, and
AWS_ENDPOINT_URL (or AWS_ENDPOINT_URL_DYNAMODB) for a local endpoint. boto3 is
the `aws` extra, imported only when a DynamoDB store is opened.

- batch.py: a batch's write, exactly once, in steps (the argument is there);
- who.py: who had events (each user's newest time, a movie's users a day);
- layout.py: where each of the model's tables lives, as items, and when they go;
- table.py: the calls on the table, retried while their failure passes.

Retention is DynamoDB's TTL: what a batch writes carries its time to go (layout.
expiry), and the reading side leaves out items past it (Table.hides_expired), as
the TTL deletes them up to two days late, or never on a local endpoint.
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import itertools
import re
import zlib
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import tzinfo
from typing import Final

from imdb_tui import aws
from imdb_tui.aggregates import AggregateFn, Aggregates, quarter_hour
from imdb_tui.catalog import Movie
from imdb_tui.clock import utc_iso
from imdb_tui.events import Event, Rejection
from imdb_tui.health import PipelineHealth
from imdb_tui.store import (
    HEALTH_FIELDS,
    BatchMark,
    DeadLetter,
    MovieOfDay,
    SourcePosition,
    StoreError,
    TopMovie,
    Writer,
    health_from_rows,
    health_row,
    movie_of,
    recent_cutoff,
)
from imdb_tui.store.dynamodb import layout, who
from imdb_tui.store.dynamodb.batch import BatchWrites
from imdb_tui.store.dynamodb.table import TOP_INDEX, TTL_ATTRIBUTE, Conflict, Item, Table
from imdb_tui.store.writer import ProcessWriter, ThreadWriter
from imdb_tui.tail import TAIL_SCAN, EventMatch, Tail, TailEvent

SCHEME: Final = "dynamodb://"
_TABLE_NAME: Final = re.compile(r"[A-Za-z0-9_.-]{3,255}")


def is_dynamodb(name: str) -> bool:
    return name.lower().startswith(SCHEME)


def table_name(name: str) -> str:
    """The table a dynamodb://TABLE names (StoreError: not a table name)."""
    table = name[len(SCHEME) :]
    if not _TABLE_NAME.fullmatch(table):
        raise StoreError(
            f"{name}: a DynamoDB table name is 3 to 255 letters, digits, '_', '-' or '.'"
        )
    return table


PATIENCE: Final = 5.0
"""Seconds a call is tried again while it fails for a passing reason (throttled, the
endpoint away) before the failure is raised: the pipeline then shows WAITING and
sends the batch again (the same batch, finished where it stopped: batch.py)."""


class DynamoStore:
    """A store on one DynamoDB table. Safe to use from one thread at a time."""

    def __init__(self, table: Table) -> None:
        self.table = table  # what figures read: items past their time left out
        self.name = f"{SCHEME}{table.name}"
        self.batches = BatchWrites(table.twin(hides_expired=False))

    @classmethod
    def open(cls, name: str, *, create: bool = False) -> DynamoStore:
        """Open the table dynamodb://TABLE names; make it when `create` and missing."""
        table_text = table_name(name)
        try:
            client = aws.client("dynamodb", "DynamoDB", connections=32)
        except aws.AwsSetupError as error:
            raise StoreError(str(error)) from None
        table = Table(client, table_text, patience=10.0)
        if not table.exists():
            if not create:
                raise StoreError(f"{name}: no such table (create it, or use --create-tables)")
            table.create()
        table.patience = PATIENCE
        return cls(table)

    def close(self) -> None:
        self.batches.close()

    # Writing -----------------------------------------------------------------------

    def write_batch(
        self,
        events: Sequence[Event],
        rejections: Sequence[Rejection],
        received_at: str,
        aggregate: AggregateFn,
        aggregates: Aggregates | None = None,
        positions: Sequence[SourcePosition] = (),
        health: PipelineHealth | None = None,
        mark: BatchMark | None = None,
        max_bytes: int | None = None,  # refused for DynamoDB when the run starts
        retention: float | None = None,
    ) -> list[Event]:
        """See BatchWriter.write_batch, and batch.py for how it is made exactly once.
        With `retention`, each item a batch writes is given its time to go."""
        for position in positions:
            if not isinstance(position.position, str) or not position.source:
                raise StoreError(f"a source's position must be text: {position.source!r}")
        return self.batches.write(
            events,
            rejections,
            received_at,
            aggregate,
            aggregates,
            positions,
            health,
            mark,
            retention,
        )

    def forget_writer(self, writer: str) -> None:
        self.batches.forget(writer)

    def put_health(self, health: PipelineHealth) -> None:
        self.table.put(layout.health_item(health_row(health)))

    def prune(self, before: str, limit: int) -> int:
        """Nothing: events and dead letters go by DynamoDB's TTL (each was written with
        its time to go, see write_batch), at no cost in writes, and readers leave them
        out from then on. So `pruned_events` is not counted here."""
        return 0

    def prune_aggregates(self, before: str) -> None:
        """The counts go by TTL too; here only trending's periods more than two hours
        behind the newest (or before `before`, whichever keeps more) are deleted, and
        the oldest quarter hour kept moves to `before`, so reads start there."""
        first = self.first_quarter_hour()
        if first is None:
            return
        minute = before[:16] + "Z"
        newest = self.table.get(*layout.NEWEST)
        if newest is not None and "period" in newest:
            cutoff = recent_cutoff(str(newest["period"]), before)
            for period in _periods(first, cutoff):
                for item in list(self.table.query(layout.recent_key(period, "")[0])):
                    self.table.delete(item["p"], item["s"])
        if first < minute:
            p, s = layout.OLDEST
            self.table.put({"p": p, "s": s, "quarter": quarter_hour(minute)})

    def hold_size(self, limit: int) -> int:
        raise StoreError("--max-size is not for DynamoDB: its tables grow on demand")

    def size_bytes(self) -> int:
        """The table's size as DynamoDB reports it (updated about every six hours)."""
        answer = self.table.call("describe_table", TableName=self.table.name)
        return int(answer["Table"].get("TableSizeBytes", 0))

    # Connections ---------------------------------------------------------------------

    def another(self) -> DynamoStore:
        return DynamoStore(Table(self.table.client, self.table.name, self.table.patience))

    def reader(self) -> DynamoStore:
        return self.another()

    def writer(
        self,
        tz: tzinfo | None,
        separate_process: bool = True,
        thread: ThreadPoolExecutor | None = None,
    ) -> Writer:
        """A process of its own (if asked), else a thread on this store. Batches left
        applying by writers that died are finished first, positions with them."""
        self.batches.recover()
        if separate_process:
            return ProcessWriter(functools.partial(type(self).open, self.name), tz)
        return ThreadWriter(self, tz, thread)

    # Leases --------------------------------------------------------------------------

    def lease_holders(self, group: str, now: float) -> dict[str, str]:
        return {
            item["s"]: item["owner"]
            for item in self.table.query(f"lease#{group}")
            if item["expires"] > now
        }

    def take_lease(self, group: str, key: str, owner: str, until: float, now: float) -> bool:
        try:
            self.table.put(
                {"p": f"lease#{group}", "s": key, "owner": owner, "expires": until},
                "attribute_not_exists(p) OR #o = :owner OR expires <= :now",
                names={"#o": "owner"},
                owner=owner,
                now=now,
            )
        except Conflict:
            return False
        return True

    def release_leases(self, group: str, owner: str, keys: Sequence[str]) -> None:
        for shard in keys:
            with contextlib.suppress(Conflict):
                self.table.update(
                    f"lease#{group}",
                    shard,
                    "SET expires = :zero",
                    "#o = :owner",
                    names={"#o": "owner"},
                    zero=0,
                    owner=owner,
                )

    # The catalogue -------------------------------------------------------------------

    def save_movies(self, movies: Iterable[Movie]) -> None:
        self._put_movies(movies, None)

    def _put_movies(self, movies: Iterable[Movie], popularity: float | None) -> None:
        items = []
        for movie in movies:
            p, s = layout.movie_key(movie.movie_id)
            item: dict[str, object] = {
                "p": p,
                "s": s,
                "title": movie.title,
                "year": movie.year,
                "genres": ",".join(movie.genres),
            }
            if popularity is not None:
                item["popularity"] = popularity
            items.append(item)
        self.table.put_many(items)

    def forget_catalog(self) -> None:
        self.table.delete(*layout.CATALOG_SOURCE)
        for partition in range(layout.MOVIE_PARTITIONS):
            for item in self.table.query(f"M#{partition}"):
                if item.get("popularity") is not None:
                    self.table.update(item["p"], item["s"], "REMOVE popularity")

    def add_catalog_movies(self, movies: Sequence[Movie]) -> None:
        self._put_movies(movies, 0.0)

    def weigh_catalog_movies(self, weights: Iterable[tuple[str, float]]) -> None:
        for movie_id, weight in weights:
            self.table.update(*layout.movie_key(movie_id), "SET popularity = :w", w=weight)

    def keep_catalog(self, files: str, skipped: int, rated: int) -> None:
        p, s = layout.CATALOG_SOURCE
        self.table.put({"p": p, "s": s, "files": files, "skipped": skipped, "rated": rated})

    def kept_catalog(self, files: str) -> tuple[int, int] | None:
        item = self.table.get(*layout.CATALOG_SOURCE)
        if item is None or item["files"] != files:
            return None
        return int(item["skipped"]), int(item["rated"])

    def catalog_weights(self) -> Iterator[tuple[str, float]]:
        found = [
            (item["s"], float(item["popularity"]))
            for partition in range(layout.MOVIE_PARTITIONS)
            for item in self.table.query(f"M#{partition}")
            if item.get("popularity") is not None
        ]
        found.sort(key=lambda pair: (len(pair[0]), pair[0]))
        yield from found

    def catalogue_titles(self) -> Iterator[tuple[str, str, int | None]]:
        for partition in range(layout.MOVIE_PARTITIONS):
            for item in self.table.query(f"M#{partition}"):
                yield item["s"], item["title"], item.get("year")

    # Reading -----------------------------------------------------------------------

    def counters(self) -> dict[str, int]:
        return {item["s"]: item["n"] for item in self.table.query(layout.COUNTERS)}

    def events_per_minute(self, since: str) -> list[tuple[str, int]]:
        """(minute, events) from minute `since` on: a Query of each UTC day from its
        day to the newest minute's."""
        newest = self.newest_minute()
        if newest is None or newest < since:
            return []
        return [(item["s"], sum(_counts(item).values())) for item in self._minutes(since, newest)]

    def _minutes(self, since: str, last: str) -> Iterator[Item]:
        """The counts' items of the minutes from `since` to `last`'s day, in order (a
        Query of each UTC day, made as the minutes are asked for)."""
        for day in _days(since[:10], last[:10]):
            p, _ = layout.minute_key(day)
            yield from self.table.query(p, start=since if day == since[:10] else None)

    def newest_minute(self) -> str | None:
        item = self.table.get(*layout.NEWEST)
        return None if item is None or "minute" not in item else str(item["minute"])

    def top_movies(self, day: str, limit: int) -> list[TopMovie]:
        """The day's most viewed: the first `limit` and one more of each index partition
        (one small page each), then, only from a partition whose page ends no lower than
        the tenth best of them all, the rest down to it (its ties): not every movie of
        the day. Ties ordered by movie id, as the SQL stores order them."""
        pages = [
            self.table.query(
                f"top#{day}#{shard}",
                index=TOP_INDEX,
                index_key=("g", "view"),
                newest_first=True,
                page=limit + 1,
            )
            for shard in range(layout.TOP_SHARDS)
        ]
        firsts = [list(itertools.islice(page, limit + 1)) for page in pages]
        best = [(int(item["view"]), str(item["s"])) for first in firsts for item in first]
        best.sort(key=lambda pair: (-pair[0], pair[1]))
        least = best[limit - 1][0] if len(best) >= limit else 0
        for page, first in zip(pages, firsts, strict=True):
            if len(first) > limit and int(first[-1]["view"]) >= least:
                for item in page:  # the next pages of this partition, down to `least`
                    if int(item["view"]) < least:
                        break
                    best.append((int(item["view"]), str(item["s"])))
        best.sort(key=lambda pair: (-pair[0], pair[1]))
        titles = self.titles([movie for _, movie in best[:limit]])
        top = []
        for views, movie in best[:limit]:
            title, year = titles.get(movie, (None, None))
            top.append(TopMovie(movie, title, year, views))
        return top

    def users_seen_since(self, *moments: str) -> list[int]:
        """For each moment, how many users have an event at or after it: the users last
        seen in the minutes after the moment's (counted by minute), and those of its
        own minute read one by one, so the count is exact to the millisecond."""
        found = []
        for moment in moments:
            minute = who.minute_of(moment)
            later = sum(
                int(item.get("n", 0))
                for shard in range(who.SHARDS)
                for item in self.table.query(who.upm_key(shard, minute)[0], after=minute)
            )
            own = sum(
                1
                for item in self.table.query(who.minute_user_key(minute, "")[0])
                if item["last"] >= moment
            )
            found.append(later + own)
        return found

    def users_on(self, day: str) -> int | None:
        items = self.table.get_many([who.users_daily_key(n, day) for n in range(who.SHARDS)])
        return sum(int(item.get("n", 0)) for item in items.values()) if items else None

    def movie_users(self, day: str, movie_id: str) -> int:
        keys = [who.movie_users_key(n, day, movie_id) for n in range(who.SHARDS)]
        return sum(int(item.get("n", 0)) for item in self.table.get_many(keys).values())

    def events_per_period(self, bounds: Sequence[str]) -> list[tuple[int, str, int]]:
        """Period i runs from bounds[i] to bounds[i + 1] (in order): each UTC day's
        quarter hours read once, from the first bound to the last."""
        found: dict[tuple[int, str], int] = {}
        if len(bounds) < 2:
            return []
        first, last = bounds[0], bounds[-1]
        for day in _days(first[:10], last[:10]):
            p, _ = layout.quarter_key(day)
            for item in self.table.query(p, start=first if day == first[:10] else None):
                if item["s"] >= last:
                    break
                i = bisect.bisect_right(bounds, item["s"]) - 1
                for event_type, n in _counts(item).items():
                    found[i, event_type] = found.get((i, event_type), 0) + n
        return [(i, t, n) for (i, t), n in found.items()]

    def ratings(self, day: str) -> dict[int, int]:
        return {int(item["s"]): int(item["n"]) for item in self.table.query(f"rd#{day}")}

    def movie_ratings(self, day: str, movie_ids: Sequence[str]) -> dict[str, dict[int, int]]:
        items = self.table.get_many([layout.movie_day_key(day, m) for m in movie_ids])
        found: dict[str, dict[int, int]] = {}
        for (_, movie_id), item in items.items():
            rated = {int(k[1:]): int(v) for k, v in item.items() if re.fullmatch(r"r\d+", k)}
            if rated:
                found[movie_id] = rated
        return found

    def views_per_period(self, bounds: Sequence[str]) -> list[tuple[int, str, int]]:
        """Trending's views by five-minute period: a Query of each period's partition."""
        found: dict[tuple[int, str], int] = {}
        for i, (start, stop) in enumerate(itertools.pairwise(bounds)):
            for period in _periods(start, stop):
                for item in self.table.query(layout.recent_key(period, "")[0]):
                    key = (i, item["s"])
                    found[key] = found.get(key, 0) + int(item["n"])
        return [(i, movie, n) for (i, movie), n in found.items()]

    def titles(self, movie_ids: Sequence[str]) -> dict[str, tuple[str, int | None]]:
        items = self.table.get_many([layout.movie_key(m) for m in movie_ids])
        return {item["s"]: (item["title"], item.get("year")) for item in items.values()}

    def movie(self, movie_id: str) -> Movie | None:
        item = self.table.get(*layout.movie_key(movie_id))
        if item is None:
            return None
        return movie_of(item["s"], item["title"], item.get("year"), item.get("genres", ""))

    def movie_events(self, day: str, movie_id: str) -> dict[str, int]:
        item = self.table.get(*layout.movie_day_key(day, movie_id))
        if item is None:
            return {}
        return {k: v for k, v in _counts(item).items() if not re.fullmatch(r"r\d+", k)}

    def movie_views_per_minute(self, movie_id: str, since: str) -> list[tuple[str, int]]:
        p, _ = layout.movie_minute_key(movie_id, since)
        return [(item["s"], int(item["n"])) for item in self.table.query(p, start=since)]

    def newest_events(self, match: EventMatch, after: int, limit: int) -> Tail:
        """The newest events by event time, minute by minute back from the newest one,
        looking through TAIL_SCAN at most. `seq` is the event time in milliseconds and
        three digits from the event's id (no arrival order is kept: an event that comes
        late for its time is not shown to a tail already past it)."""
        newest_time = self.newest_event_time()
        if newest_time is None:
            return Tail(0, ())
        newest: int | None = None  # the newest event's seq: the first one read
        found: list[TailEvent] = []
        looked = 0
        minute = newest_time[:16] + "Z"
        first = self.first_quarter_hour() or minute
        titles: dict[str, tuple[str, int | None]] = {}
        while minute >= first and len(found) < limit and looked < TAIL_SCAN:
            for item in self.table.query(layout.time_partition(minute), newest_first=True):
                looked += 1
                moment, _, event_id = item["s"].partition("#")
                seq = _millis(moment) * 1000 + zlib.crc32(event_id.encode()) % 1000
                if newest is None or (seq // 1000 == newest // 1000 and seq > newest):
                    newest = seq  # the largest of the newest millisecond's
                if looked > TAIL_SCAN or seq // 1000 < after // 1000:
                    return Tail(newest, tuple(found))
                if seq <= after:
                    continue  # read before (in its millisecond, ids are not in seq order)
                if (
                    (match.event_type is None or item["y"] == match.event_type)
                    and (match.movie_id is None or item["m"] == match.movie_id)
                    and (match.user_id is None or item["u"] == match.user_id)
                ):
                    if item["m"] not in titles:
                        titles |= self.titles([item["m"]]) or {item["m"]: ("", None)}
                    title = titles[item["m"]][0] or None
                    text = (title or item["m"]).lower()
                    if all(word in text for word in match.words):
                        found.append(
                            TailEvent(
                                seq, moment, item["y"], item["m"], title, item["u"], item.get("r")
                            )
                        )
                        if len(found) >= limit:
                            break
            minute = _previous_minute(minute)
        return Tail(newest or 0, tuple(found))

    def first_quarter_hour(self) -> str | None:
        item = self.table.get(*layout.OLDEST)
        return None if item is None else str(item["quarter"])

    def dead_letters(self, limit: int) -> list[DeadLetter]:
        found: list[DeadLetter] = []
        for day_item in self.table.query(layout.LETTER_DAYS, newest_first=True):
            for item in self.table.query(
                layout.letter_partition(day_item["s"]), newest_first=True, limit=limit - len(found)
            ):
                found.append(
                    DeadLetter(item["received_at"], item["reason"], item["raw"], item["raw_size"])
                )
            if len(found) >= limit:
                break
        return found

    def newest_event_time(self) -> str | None:
        item = self.table.get(*layout.NEWEST)
        return None if item is None or "time" not in item else str(item["time"])

    def events_after(self, moment: str, limit: int) -> int:
        """Events later than `moment`: its own minute's read one by one (time index),
        the later minutes' counted."""
        minute = who.minute_of(moment)
        own = 0
        for _ in self.table.query(layout.time_partition(minute), after=moment + "#\uffff"):
            own += 1
            if own >= limit:
                return limit
        later = sum(n for m, n in self.events_per_minute(minute) if m > minute)
        return min(limit, own + later)

    def movies_on(self, day: str) -> list[MovieOfDay]:
        """The day's movie items (a Query), their users (a Query of each shard of the
        day's counts) and the catalogue's items of them (100 a call)."""
        items = {item["s"]: item for item in self.table.query(layout.movie_day_key(day, "")[0])}
        users: dict[str, int] = {}
        for shard in range(who.SHARDS):
            p, _ = who.movie_users_key(shard, day, "")
            for item in self.table.query(p):
                users[item["s"]] = users.get(item["s"], 0) + int(item.get("n", 0))
        known = self.table.get_many([layout.movie_key(movie_id) for movie_id in items])
        catalogue = {movie["s"]: movie for movie in known.values()}
        found = []
        for movie_id, item in sorted(items.items()):
            counts = _counts(item)
            movie = catalogue.get(movie_id, {})
            found.append(
                MovieOfDay(
                    movie_id,
                    movie.get("title"),
                    movie.get("year"),
                    tuple(g for g in str(movie.get("genres", "")).split(",") if g),
                    {k: n for k, n in counts.items() if not re.fullmatch(r"r\d+", k)},
                    users.get(movie_id, 0),
                    {int(k[1:]): n for k, n in counts.items() if re.fullmatch(r"r\d+", k)},
                )
            )
        return found

    def events_between(self, start: str, stop: str, chunk: int) -> Iterator[list[Event]]:
        """The time index's minutes from `start`'s to `stop`'s, a Query each (the minutes
        with events only, as the counts by minute say)."""
        page: list[Event] = []
        for counted in self._minutes(start[:16] + "Z", stop):
            minute = counted["s"]
            if f"{minute[:16]}:00.000Z" >= stop:  # the minute starts at the end or later
                break
            for item in self.table.query(layout.time_partition(minute), start=start):
                event = layout.event_of_time_item(item)
                if event.event_time >= stop:
                    break
                page.append(event)
                if len(page) >= chunk:
                    yield page
                    page = []
        if page:
            yield page

    def count_events(self) -> int:
        """Raw events stored now, by counting the time index's items minute by minute
        (every item is read: slow on big stores, as counting rows is elsewhere)."""
        first = self.first_quarter_hour()
        if first is None:
            return 0
        return sum(
            self.table.count(layout.time_partition(minute))
            for minute, _ in self.events_per_minute(first)
        )

    def pipelines(self, now: float) -> list[PipelineHealth]:
        names = [name for name, _ in HEALTH_FIELDS]
        rows = [[item.get(name) for name in names] for item in self.table.query(layout.PIPELINES)]
        seen = names.index("last_seen")
        rows.sort(key=lambda row: (-_epoch(row[seen]), row[0]))
        return health_from_rows(rows, now)

    def positions(self) -> list[SourcePosition]:
        return [
            SourcePosition(item["s"], item["position"], item["updated_at"])
            for item in self.table.query(layout.POSITIONS)
        ]

    def position(self, source: str) -> str | None:
        item = self.table.get(layout.POSITIONS, source)
        return None if item is None else str(item["position"])

    def stored_event(self, event_id: str) -> dict[str, object] | None:
        """An event's item, if stored (for tests and the tail)."""
        return self.table.get(f"E#{event_id}", "-")


def _minutes(first: str, stop: str) -> list[str]:
    """The minute keys from `first` up to, not including, `stop`."""
    from datetime import datetime

    start = datetime.fromisoformat(first[:16] + ":00+00:00").timestamp()
    end = datetime.fromisoformat(stop[:16] + ":00+00:00").timestamp()
    return [utc_iso(start + 60 * n)[:16] + "Z" for n in range(max(0, int((end - start) // 60)))]


def _periods(start: str, stop: str) -> list[str]:
    """The five-minute period keys from `start` up to, not including, `stop`."""
    return [m for m in _minutes(start, stop) if int(m[14:16]) % 5 == 0]


def _previous_minute(minute: str) -> str:
    from datetime import datetime

    moment = datetime.fromisoformat(minute[:16] + ":00+00:00").timestamp()
    return utc_iso(moment - 60)[:16] + "Z"


def _millis(moment: str) -> int:
    return round(_epoch(moment) * 1000)


def _counts(item: dict[str, object]) -> dict[str, int]:
    """A counter item's counts: its attributes that are not keys or marks."""
    return {
        name: int(value)  # type: ignore[call-overload]
        for name, value in item.items()
        if name not in ("p", "s", "g", TTL_ATTRIBUTE) and not name.startswith("h:")
    }


def _days(first: str, last: str) -> list[str]:
    from datetime import date, timedelta

    start, stop = date.fromisoformat(first), date.fromisoformat(last)
    return [(start + timedelta(days=n)).isoformat() for n in range((stop - start).days + 1)]


def _epoch(moment: object) -> float:
    from datetime import datetime

    return datetime.fromisoformat(str(moment).replace("Z", "+00:00")).timestamp()
