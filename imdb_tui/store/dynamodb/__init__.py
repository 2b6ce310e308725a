"""Amazon DynamoDB as a store: `--db dynamodb://TABLE`, one table holding everything.

Configured as every AWS tool is: the standard credential and region chain, and
AWS_ENDPOINT_URL (or AWS_ENDPOINT_URL_DYNAMODB) for a local endpoint. boto3 is
the `aws` extra, imported only when a DynamoDB store is opened.

- batch.py: a batch's write, exactly once, in steps (the argument is there);
- layout.py: where each of the model's tables lives, as items;
- table.py: the calls on the table, retried while their failure passes.

Under construction (issue 24): the writes, the counts and the health board are
here; the users' figures, the catalogue, the tail, leases, retention and the
wiring into `open_store` come next.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from imdb_tui import aws
from imdb_tui.aggregates import AggregateFn, Aggregates
from imdb_tui.events import Event, Rejection
from imdb_tui.health import PipelineHealth
from imdb_tui.store import (
    HEALTH_FIELDS,
    BatchMark,
    SourcePosition,
    StoreError,
    TopMovie,
    health_from_rows,
    health_row,
)
from imdb_tui.store.dynamodb import layout, who
from imdb_tui.store.dynamodb.batch import BatchWrites
from imdb_tui.store.dynamodb.table import TOP_INDEX, Table

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


class DynamoStore:
    """A store on one DynamoDB table. Safe to use from one thread at a time."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self.name = f"{SCHEME}{table.name}"
        self.batches = BatchWrites(table)

    @classmethod
    def open(cls, name: str, *, create: bool = False) -> DynamoStore:
        """Open the table dynamodb://TABLE names; make it when `create` and missing."""
        table_text = table_name(name)
        try:
            client = aws.client("dynamodb", connections=32)
        except aws.AwsSetupError as error:
            raise StoreError(str(error)) from None
        table = Table(client, table_text, patience=10.0)
        if not table.exists():
            if not create:
                raise StoreError(f"{name}: no such table (create it, or use --create-tables)")
            table.create()
        table.patience = 60.0
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
    ) -> list[Event]:
        """See BatchWriter.write_batch, and batch.py for how it is made exactly once."""
        return self.batches.write(
            events, rejections, received_at, aggregate, aggregates, positions, health, mark
        )

    def forget_writer(self, writer: str) -> None:
        self.batches.forget(writer)

    def put_health(self, health: PipelineHealth) -> None:
        self.table.put(layout.health_item(health_row(health)))
        self.batches.heard(health.pipeline_id)

    # Reading -----------------------------------------------------------------------

    def counters(self) -> dict[str, int]:
        return {item["s"]: item["n"] for item in self.table.query(layout.COUNTERS)}

    def events_per_minute(self, since: str) -> list[tuple[str, int]]:
        """(minute, events) from minute `since` on: a Query of each UTC day from its
        day to the newest minute's."""
        newest = self.newest_minute()
        if newest is None or newest < since:
            return []
        found: list[tuple[str, int]] = []
        for day in _days(since[:10], newest[:10]):
            p, _ = layout.minute_key(day)
            after = since if day == since[:10] else None
            for item in self.table.query(p, after=_just_before(after) if after else None):
                found.append((item["s"], sum(_counts(item).values())))
        return found

    def newest_minute(self) -> str | None:
        item = self.table.get(*layout.NEWEST)
        return None if item is None else str(item["minute"])

    def top_movies(self, day: str, limit: int) -> list[TopMovie]:
        """The day's most viewed: from each index partition its first `limit` and their
        ties, merged (ties ordered by movie id, as the SQL stores order them)."""
        best: list[tuple[int, str]] = []
        for shard in range(layout.TOP_SHARDS):
            taken: list[tuple[int, str]] = []
            for item in self.table.query(
                f"top#{day}#{shard}", index=TOP_INDEX, index_key=("g", "view"), newest_first=True
            ):
                views = int(item["view"])
                if len(taken) >= limit and views < taken[-1][0]:
                    break
                taken.append((views, item["s"]))
            best += taken
        best.sort(key=lambda pair: (-pair[0], pair[1]))
        return [TopMovie(movie, None, None, views) for views, movie in best[:limit]]

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


def _counts(item: dict[str, object]) -> dict[str, int]:
    """A counter item's counts: its attributes that are not keys or marks."""
    return {
        name: int(value)  # type: ignore[call-overload]
        for name, value in item.items()
        if name not in ("p", "s", "g") and not name.startswith("h:")
    }


def _days(first: str, last: str) -> list[str]:
    from datetime import date, timedelta

    start, stop = date.fromisoformat(first), date.fromisoformat(last)
    return [(start + timedelta(days=n)).isoformat() for n in range((stop - start).days + 1)]


def _just_before(key: str) -> str:
    """A sort key just before `key`: Query's `>` made `>=`."""
    return key[:-1] + chr(ord(key[-1]) - 1) + "\U0010ffff"


def _epoch(moment: object) -> float:
    from datetime import datetime

    return datetime.fromisoformat(str(moment).replace("Z", "+00:00")).timestamp()
