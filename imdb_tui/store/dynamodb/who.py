"""Who had events, on DynamoDB: each user's newest event time (active users, a
day's users) and each movie's users a day, kept exact and added once.

Each change goes in a transaction with the counts it moves, so the counts always
agree with the items, and a change made twice is found out by the items
themselves rather than by a mark (see batch.py for where this runs):

- **A user seen later.** `U#<user>` holds `last`, the newest event time. A user
  whose batch time is later than the stored one (or who is new) is updated only if
  `last` is still what was read; in the same transaction the users of the old and
  the new minute move (`upm#<shard>`, a UTC minute each: active users add these up),
  the user's item of its minute (`UM#<minute>`, for the one minute a window starts
  inside) moves, and each day of the batch whose start is after the old time counts
  the user once (`users_daily`). Done again, the stored time is already as late:
  nothing moves. A transaction refused because another writer moved the user first
  is made again from a fresh read.
- **A movie's new user that day.** `MU#<day>#<movie>` holds an item per user, put
  only if absent, with the day's count (`muc#<day>`, one item a movie) raised in the
  same transaction: the count is the number of items, whoever put them, however
  often a batch is sent.

Transactions hold at most 100 items; users go TXN_USERS at a time, movie users as
many as fit with their counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

from imdb_tui.store import StoreError
from imdb_tui.store.dynamodb.table import Cancelled, Table, key, wire

TXN_USERS: Final = 16
"""Users a transaction: 3 items each, their old and new minutes' counts (2 each at
most) and the days' counts (a batch spans 3 days at most): 83 of the 100 at most."""
TXN_ITEMS: Final = 100
SHARDS: Final = 8
"""Items a shared count is spread over (the users of a minute or a day, a movie's
users): concurrent transactions of one batch add to different ones."""
ROUNDS: Final = 50
"""Times a transaction is made again from fresh reads before giving up."""


def user_key(user: str) -> tuple[str, str]:
    return f"U#{user}", "-"


def minute_user_key(minute: str, user: str) -> tuple[str, str]:
    return f"UM#{minute}", user


def upm_key(shard: int, minute: str) -> tuple[str, str]:
    return f"upm#{shard}", minute


def users_daily_key(shard: int, day: str) -> tuple[str, str]:
    return f"ud#{shard}", day


def movie_user_key(day: str, movie: str, user: str) -> tuple[str, str]:
    return f"MU#{day}#{movie}", user


def movie_users_key(shard: int, day: str, movie: str) -> tuple[str, str]:
    return f"muc#{day}#{shard}", movie


def minute_of(moment: str) -> str:
    return moment[:16] + "Z"


def see_users(
    table: Table,
    pool: ThreadPoolExecutor,
    last_seen: dict[str, str],
    days: dict[str, list[Any]],
) -> None:
    """Record each user's newest time from a batch, moving the counts (see above).
    `days`: local day -> [its start (UTC), the users with an event that day]."""
    users = sorted(last_seen)
    chunks = [users[i : i + TXN_USERS] for i in range(0, len(users), TXN_USERS)]
    day_of_user: dict[str, list[tuple[str, str]]] = {}
    for day, (start, day_users) in sorted(days.items()):
        for user in day_users:
            day_of_user.setdefault(user, []).append((day, start))

    def chunk(numbered: tuple[int, list[str]]) -> None:
        shard, chunk_users = numbered[0] % SHARDS, numbered[1]
        for _ in range(ROUNDS):
            stored = table.get_many([user_key(u) for u in chunk_users])
            old = {u: stored.get(user_key(u), {}).get("last") for u in chunk_users}
            actions = _moves(shard, chunk_users, old, last_seen, day_of_user)
            if not actions:
                return
            try:
                table.transact(actions)
                return
            except Cancelled:
                continue  # another writer moved one of these users: read them again
        raise StoreError("users' times kept changing under this batch: try again")

    list(pool.map(chunk, enumerate(chunks)))


def _moves(
    shard: int,
    users: Sequence[str],
    old: dict[str, str | None],
    last_seen: dict[str, str],
    day_of_user: dict[str, list[tuple[str, str]]],
) -> list[dict[str, Any]]:
    actions: list[dict[str, Any]] = []
    minutes: dict[str, int] = {}
    day_users: dict[str, int] = {}
    for user in users:
        new, before = last_seen[user], old[user]
        if before is not None and new <= before:
            continue  # stored as late already: nothing moves
        if before is None:
            condition, values = "attribute_not_exists(#l)", {}
        else:
            condition, values = "#l = :old", {":old": wire(before)}
        actions.append(
            {
                "Update": {
                    "Key": key(*user_key(user)),
                    "UpdateExpression": "SET #l = :new",
                    "ConditionExpression": condition,
                    "ExpressionAttributeNames": {"#l": "last"},
                    "ExpressionAttributeValues": {":new": wire(new), **values},
                }
            }
        )
        if before is not None and minute_of(before) != minute_of(new):
            actions.append({"Delete": {"Key": key(*minute_user_key(minute_of(before), user))}})
        p, s = minute_user_key(minute_of(new), user)
        actions.append({"Put": {"Item": {"p": wire(p), "s": wire(s), "last": wire(new)}}})
        if before is None or minute_of(new) > minute_of(before):
            minutes[minute_of(new)] = minutes.get(minute_of(new), 0) + 1
            if before is not None:
                minutes[minute_of(before)] = minutes.get(minute_of(before), 0) - 1
        for day, start in day_of_user.get(user, ()):
            if before is None or before < start:
                day_users[day] = day_users.get(day, 0) + 1
    actions += [_add(upm_key(shard, minute), n) for minute, n in sorted(minutes.items()) if n]
    actions += [_add(users_daily_key(shard, day), n) for day, n in sorted(day_users.items())]
    return actions


def add_movie_users(
    table: Table, pool: ThreadPoolExecutor, movie_users: Iterable[Sequence[str]]
) -> None:
    """Put each (day, movie, user) absent so far, raising the movie's count with it."""
    by_movie: dict[tuple[str, str], list[str]] = {}
    for day, movie, user in movie_users:
        by_movie.setdefault((day, movie), []).append(user)
    chunks: list[dict[tuple[str, str], list[str]]] = [{}]
    room = TXN_ITEMS
    for (day, movie), users in sorted(by_movie.items()):
        users.sort()
        while users:
            if room < 2:
                chunks.append({})
                room = TXN_ITEMS
            take = users[: room - 1]
            users = users[room - 1 :]
            chunks[-1][day, movie] = take
            room -= len(take) + 1

    def chunk(numbered: tuple[int, dict[tuple[str, str], list[str]]]) -> None:
        shard, movies = numbered[0] % SHARDS, numbered[1]
        pending = {k: list(v) for k, v in movies.items()}
        for _ in range(ROUNDS):
            actions: list[dict[str, Any]] = []
            places: list[tuple[tuple[str, str], str]] = []
            for (day, movie), users in pending.items():
                for user in users:
                    p, s = movie_user_key(day, movie, user)
                    actions.append(
                        {
                            "Put": {
                                "Item": {"p": wire(p), "s": wire(s)},
                                "ConditionExpression": "attribute_not_exists(p)",
                            }
                        }
                    )
                    places.append(((day, movie), user))
                actions.append(_add(movie_users_key(shard, day, movie), len(users)))
            if not places:
                return
            try:
                table.transact(actions)
                return
            except Cancelled as cancelled:
                # Items already there (put before, by this batch or another): leave
                # them out, and their count with them.
                index = [i for i, a in enumerate(actions) if "Put" in a]
                for failed in cancelled.failed:
                    movie_key, user = places[index.index(failed)]
                    pending[movie_key].remove(user)
                pending = {k: v for k, v in pending.items() if v}
        raise StoreError("movie users kept changing under this batch: try again")

    list(pool.map(chunk, enumerate(c for c in chunks if c)))


def _add(item: tuple[str, str], n: int) -> dict[str, Any]:
    return {
        "Update": {
            "Key": key(*item),
            "UpdateExpression": "ADD #n :n",
            "ExpressionAttributeNames": {"#n": "n"},
            "ExpressionAttributeValues": {":n": wire(n)},
        }
    }
