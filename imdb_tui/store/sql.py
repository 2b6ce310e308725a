"""What every SQL backend does the same way: the reading queries, leases, the
catalogue, the health board, retention and the shared part of a batch's write,
each written once over a Dialect (`?` placeholders).

A backend subclasses SqlStore and adds only what differs: opening and locking,
running a statement and a transaction, the bulk path of a batch (events in; the
movie users, the day's users and the users' newest times), its size, retries and
error wording.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Final, Protocol, TypeVar

from imdb_tui.aggregates import Aggregates
from imdb_tui.catalog import Movie
from imdb_tui.events import Event, Rejection
from imdb_tui.health import PipelineHealth
from imdb_tui.store import (
    HEALTH_FIELDS,
    DeadLetter,
    MovieOfDay,
    SourcePosition,
    TopMovie,
    health_from_rows,
    health_row,
    marks,
    movie_of,
    next_minute,
    recent_cutoff,
)
from imdb_tui.store.dialect import Dialect
from imdb_tui.store.model import BY_NAME, Change, Keep, Kind, has, tables_at
from imdb_tui.tail import TAIL_SCAN, EventMatch, Tail, TailEvent

T = TypeVar("T")


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


Run = Callable[..., Cursor]
"""Runs one statement (`?` placeholders) in the transaction under way: run(sql, args)."""

DELETE_OLDEST: Final = {
    "events": "DELETE FROM events WHERE seq IN (SELECT seq FROM events"
    " ORDER BY event_time LIMIT ?{lock})",
    "dead_letters": "DELETE FROM dead_letters WHERE id IN (SELECT id FROM dead_letters"
    " ORDER BY received_at, id LIMIT ?{lock})",
}
"""The oldest raw rows of a kind, up to a number (see hold_size)."""

# The aggregate tables a batch adds to, and the field of Aggregates each takes, the
# least shared rows first: every writer locks rows in the same order (PostgreSQL).
_FIRST_ADDED: Final = (
    ("movie_views_daily", "movie_views"),
    ("movie_ratings_daily", "movie_ratings"),
    ("recent_views", "recent_views"),
    ("movie_events_daily", "movie_events"),
)
_LAST_ADDED: Final = (
    ("movie_views_per_minute", "movie_minutes"),
    ("events_per_minute", "per_minute"),
    ("events_per_quarter_hour", "per_quarter_hour"),
    ("ratings_daily", "ratings"),
)


_PUTS: dict[tuple[str, str, tuple[str, ...] | None], tuple[str, tuple[Kind, ...], int]] = {}
"""The statement putting rows into a table's columns, their kinds, and how many key
columns to sort the rows by (see SqlStore._put), made once a backend."""


def older_kind(event_head: str | None, letter_head: str | None) -> str | None:
    """Which raw rows are oldest, "events" or "dead_letters" (None: there are none)."""
    if letter_head is not None and (event_head is None or letter_head < event_head):
        return "dead_letters"
    return None if event_head is None else "events"


class SqlStore:
    """The part of every SQL store written once. Subclasses set `dialect` and
    `_version`, and implement `_query`, `_transact` and the bulk path."""

    dialect: Dialect
    name: str
    _version: int
    skip_locked: str = ""
    """Appended to a subquery choosing rows to delete (PostgreSQL: skip locked ones)."""

    # What a backend provides ---------------------------------------------------

    def _query(self, sql: str, parameters: Sequence[object] = ()) -> list[Any]:
        """Run one reading statement (`?` placeholders) and return its rows."""
        raise NotImplementedError

    def _transact(self, work: Callable[[Run], T]) -> T:
        """`work` in one transaction, given a Run for its statements."""
        raise NotImplementedError

    def _add_movie_users(self, run: Run, movie_users: set[tuple[str, str, str]]) -> None:
        raise NotImplementedError

    def _add_day_users(self, run: Run, day: str, start: str, users: list[str]) -> None:
        raise NotImplementedError

    def _see_users(self, run: Run, last_seen: dict[str, str]) -> None:
        raise NotImplementedError

    # Helpers -------------------------------------------------------------------

    def _out(self, kind: Kind, expression: str) -> str:
        """A time read back as canonical text (see Dialect.out)."""
        return self.dialect.out(kind, expression)

    def _oldest_heads(self, run: Run) -> tuple[str | None, str | None]:
        """The oldest event's time and the oldest dead letter's arrival (see older_kind)."""
        row = run(
            f"SELECT (SELECT {self._out(Kind.MILLIS, 'min(event_time)')} FROM events),"  # noqa: S608
            f" (SELECT {self._out(Kind.INSTANT, 'min(received_at)')} FROM dead_letters)"
        ).fetchone()
        return (None, None) if row is None else (row[0], row[1])

    def _has(self, table: str) -> bool:
        """Whether this database has the table (an older one read as it is may not)."""
        return has(table, self._version, self.dialect.backend)

    def _put(
        self,
        run: Run,
        table: str,
        rows: Sequence[Sequence[object]],
        columns: tuple[str, ...] | None = None,
    ) -> None:
        """A batch of rows into a table (into these columns: all of them if None), as
        its kind of change says."""
        if not rows:
            return
        made = _PUTS.get((self.dialect.backend, table, columns))
        if made is None:
            model = BY_NAME[table]
            names = tuple(columns or (c.name for c in model.columns_at(self._version, "")))
            kinds = tuple(model.column(name).kind for name in names)
            keyed = self.dialect.locks_rows and model.change is not Change.APPEND
            made = (self.dialect.upsert(model, names), kinds, len(model.key) if keyed else 0)
            _PUTS[self.dialect.backend, table, columns] = made
        statement, kinds, key = made
        if key:  # every writer locks the rows it adds to in one order: none deadlocks
            rows = sorted(rows, key=lambda row: tuple(row[:key]))
        run(statement, self.dialect.rows_value(kinds, rows))

    def _add_counts(self, run: Run, table: str, counts: dict[Any, int]) -> None:
        """Counts keyed by tuples (or one value) added to a table of counts."""
        if counts:
            rows = [(*(k if isinstance(k, tuple) else (k,)), n) for k, n in counts.items()]
            self._put(run, table, rows)

    # The shared part of a batch ------------------------------------------------

    def _add_aggregates(self, run: Run, aggregates: Aggregates) -> None:
        """What a batch adds to the aggregate tables, the least shared rows first."""
        for table, name in _FIRST_ADDED:
            self._add_counts(run, table, getattr(aggregates, name))
        if aggregates.movie_users:
            self._add_movie_users(run, aggregates.movie_users)
        for day, (start, users) in sorted(aggregates.user_days.items()):
            self._add_day_users(run, day, start, users)
        if aggregates.last_seen:
            self._see_users(run, aggregates.last_seen)
        for table, name in _LAST_ADDED:
            self._add_counts(run, table, getattr(aggregates, name))

    def _add_counters(self, run: Run, **deltas: int) -> None:
        self._add_counts(run, "counters", {name: n for name, n in deltas.items() if n})

    def _put_rest(
        self,
        run: Run,
        rejections: Sequence[Rejection],
        received_at: str,
        positions: Sequence[SourcePosition],
        health: PipelineHealth | None,
    ) -> None:
        """A batch's dead letters, positions and health row."""
        self._put(
            run,
            "dead_letters",
            [(received_at, r.reason, r.raw, r.raw_size) for r in rejections],
            ("received_at", "reason", "raw", "raw_size"),
        )
        self._put(run, "source_positions", [(p.source, p.position, received_at) for p in positions])
        if health is not None:
            self._put(run, "pipelines", [health_row(health)])

    def _count_batch(self, run: Run, events: int, stored: int, rejected: int) -> None:
        """The counters a batch moves."""
        self._add_counters(
            run, events_total=stored, duplicates=events - stored, dead_letters=rejected
        )

    # Writing -------------------------------------------------------------------

    def forget_writer(self, writer: str) -> None:
        self._transact(lambda run: run(marks.FORGET, (writer,)))

    def put_health(self, health: PipelineHealth) -> None:
        self._transact(lambda run: self._put(run, "pipelines", [health_row(health)]))

    def prune(self, before: str, limit: int) -> int:
        """Delete up to `limit` events (and dead letters) older than `before`; return how many."""

        def prune(run: Run) -> int:
            deleted = 0
            for table in tables_at(self._version, self.dialect.backend):
                if table.keep is Keep.RAW and table.kept_by is not None:
                    key, column = table.key[0], table.kept_by
                    cutoff = self.dialect.into(table.column(column).kind)
                    deleted += run(
                        f"DELETE FROM {table.name} WHERE {key} IN (SELECT {key}"  # noqa: S608
                        f" FROM {table.name} WHERE {column} < {cutoff} ORDER BY {column}"
                        f" LIMIT ?{self.skip_locked})",
                        (before, limit),
                    ).rowcount
            return deleted

        return self._transact(prune)

    def _delete_oldest(self, run: Run, kind: str, rows: int) -> int:
        """Delete the oldest `rows` raw rows of a kind, counted as pruned."""
        gone = int(run(DELETE_OLDEST[kind].format(lock=self.skip_locked), (rows,)).rowcount)
        self._add_counters(run, **{f"pruned_{kind}": gone})
        return gone

    def prune_aggregates(self, before: str) -> None:
        """Drop aggregate rows for times older than `before` (a small, bounded set):
        days before its day, whole minutes before its minute (users first, then their
        minutes' counts, so the counts stay their sums), the last hours behind the
        newest trending period, and batch marks a killed run left behind."""
        cutoffs = {
            (Keep.DAYS, Kind.DAY): before[:10],
            (Keep.MINUTES, Kind.MINUTE): before[:16] + "Z",
            (Keep.MINUTES, Kind.INSTANT): before[:16] + ":00.000Z",
            (Keep.OLDER, Kind.INSTANT): before,
        }

        def prune(run: Run) -> None:
            recent: str | None = None
            if self._has("recent_views"):
                newest = run(
                    f"SELECT {self._out(Kind.MINUTE, 'max(period)')} FROM recent_views"  # noqa: S608
                ).fetchone()
                if newest is not None and newest[0] is not None:
                    recent = recent_cutoff(newest[0], before)
            for table in tables_at(self._version, self.dialect.backend):
                if table.kept_by is None or table.keep in (Keep.FOREVER, Keep.RAW):
                    continue
                kind = table.column(table.kept_by).kind
                cutoff = recent if table.keep is Keep.RECENT else cutoffs[table.keep, kind]
                if cutoff is not None:
                    run(f"DELETE FROM {table.name} WHERE {table.kept_by} < ?", (cutoff,))  # noqa: S608

        self._transact(prune)

    # Leases --------------------------------------------------------------------

    def lease_holders(self, group: str, now: float) -> dict[str, str]:
        rows = self._query(
            "SELECT key, owner FROM leases WHERE grp = ? AND expires > ?", (group, now)
        )
        return dict(rows)

    def take_lease(self, group: str, key: str, owner: str, until: float, now: float) -> bool:
        changed = self._transact(
            lambda run: (
                run(
                    "INSERT INTO leases (grp, key, owner, expires) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (grp, key) DO UPDATE SET owner = excluded.owner,"
                    " expires = excluded.expires"
                    " WHERE leases.owner = excluded.owner OR leases.expires <= ?",
                    (group, key, owner, until, now),
                ).rowcount
            )
        )
        return bool(changed)

    def release_leases(self, group: str, owner: str, keys: Sequence[str]) -> None:
        self._transact(
            lambda run: run(
                "UPDATE leases SET expires = 0 WHERE grp = ? AND owner = ?"  # noqa: S608
                f" AND key IN (SELECT value FROM {self.dialect.each()})",
                (group, owner, self.dialect.list_value(keys)),
            )
        )

    # The catalogue -------------------------------------------------------------

    def save_movies(self, movies: Iterable[Movie]) -> None:
        """Add or refresh catalogue rows, so reports and queries can show titles."""
        rows = _movie_rows(movies)
        self._transact(
            lambda run: self._put(run, "movies", rows, ("movie_id", "title", "year", "genres"))
        )

    def forget_catalog(self) -> None:
        """Drop the kept catalogue's marks before a new one is read (see `kept_catalog`);
        until `keep_catalog` is called at the end, no catalogue counts as kept."""

        def forget(run: Run) -> None:
            run("DELETE FROM catalog_source")
            run("UPDATE movies SET popularity = NULL WHERE popularity IS NOT NULL")

        self._transact(forget)

    def add_catalog_movies(self, movies: Sequence[Movie]) -> None:
        """Add a batch of the catalogue being read (its weights come with `weigh_...`)."""
        rows = [(*row, 0.0) for row in _movie_rows(movies)]
        self._transact(lambda run: self._put(run, "movies", rows))

    def weigh_catalog_movies(self, weights: Iterable[tuple[str, float]]) -> None:
        """Set the popularity of the catalogue's movies, in one transaction."""
        pairs = iter(sorted(weights))
        weigh = (
            "UPDATE movies SET popularity = w.weight"  # noqa: S608
            f" FROM ({self.dialect.rows([Kind.ID, Kind.REAL], ('movie_id', 'weight'))}) AS w"
            " WHERE movies.movie_id = w.movie_id"
        )

        def weigh_all(run: Run) -> None:
            while rows := list(itertools.islice(pairs, 50_000)):
                run(weigh, self.dialect.rows_value([Kind.ID, Kind.REAL], rows))

        self._transact(weigh_all)

    def keep_catalog(self, files: str, skipped: int, rated: int) -> None:
        """Mark the catalogue just read as kept, with the files it came from."""
        self._transact(lambda run: self._put(run, "catalog_source", [(1, files, skipped, rated)]))

    def kept_catalog(self, files: str) -> tuple[int, int] | None:
        """If the kept catalogue came from exactly these files: its skipped and rated counts."""
        kept = self._query("SELECT skipped, rated FROM catalog_source WHERE files = ?", (files,))
        return (kept[0][0], kept[0][1]) if kept else None

    def catalog_weights(self) -> Iterator[tuple[str, float]]:
        """The kept catalogue's ids and weights, shortest ids first, then in id order."""
        yield from self._stream(
            "SELECT movie_id, popularity FROM movies WHERE popularity IS NOT NULL"
            " ORDER BY length(movie_id), movie_id"
        )

    def catalogue_titles(self) -> Iterator[tuple[str, str, int | None]]:
        yield from self._stream("SELECT movie_id, title, year FROM movies")

    def _stream(self, sql: str) -> Iterator[Any]:
        """A query's rows, read as they come where the backend can (else all at once)."""
        yield from self._query(sql)

    # Reading -------------------------------------------------------------------

    def counters(self) -> dict[str, int]:
        return dict(self._query("SELECT name, value FROM counters"))

    def events_per_minute(self, since: str) -> list[tuple[str, int]]:
        return self._query(
            f"SELECT {self._out(Kind.MINUTE, 'minute')}, CAST(sum(events) AS BIGINT)"  # noqa: S608
            " FROM events_per_minute WHERE minute >= ? GROUP BY minute",
            (since,),
        )

    def events_per_period(self, bounds: Sequence[str]) -> list[tuple[int, str, int]]:
        """Period i runs from bounds[i] to bounds[i + 1]: minute keys on quarter hours,
        in order (a day's local hours: 25 of them). Every time zone's offset is a whole
        number of quarter hours, so the quarter-hour table adds up to local hours."""
        periods = [(i, start, stop) for i, (start, stop) in enumerate(itertools.pairwise(bounds))]
        kinds = [Kind.INT, Kind.MINUTE, Kind.MINUTE]
        return self._query(
            f"SELECT p.period, q.event_type, CAST(sum(q.events) AS BIGINT) FROM"  # noqa: S608
            f" ({self.dialect.rows(kinds, ('period', 'start', 'stop'))}) AS p"
            " JOIN events_per_quarter_hour AS q ON q.quarter >= p.start AND q.quarter < p.stop"
            " GROUP BY p.period, q.event_type",
            self.dialect.rows_value(kinds, periods),
        )

    def top_movies(self, day: str, limit: int) -> list[TopMovie]:
        rows = self._query(
            "SELECT v.movie_id, m.title, m.year, v.views FROM movie_views_daily AS v"
            " LEFT JOIN movies AS m ON m.movie_id = v.movie_id"
            " WHERE v.day = ? ORDER BY v.views DESC, v.movie_id LIMIT ?",
            (day, limit),
        )
        return [TopMovie(*row) for row in rows]

    def ratings(self, day: str) -> dict[int, int]:
        if not self._has("ratings_daily"):  # an older database read as it is
            return {}
        return dict(self._query("SELECT rating, ratings FROM ratings_daily WHERE day = ?", (day,)))

    def movie_ratings(self, day: str, movie_ids: Sequence[str]) -> dict[str, dict[int, int]]:
        if not self._has("movie_ratings_daily") or not movie_ids:
            return {}
        found: dict[str, dict[int, int]] = {}
        for movie_id, rating, count in self._query(
            "SELECT movie_id, rating, ratings FROM movie_ratings_daily"  # noqa: S608
            f" WHERE day = ? AND movie_id IN (SELECT value FROM {self.dialect.each()})",
            (day, self.dialect.list_value(movie_ids)),
        ):
            found.setdefault(movie_id, {})[rating] = count
        return found

    def views_per_period(self, bounds: Sequence[str]) -> list[tuple[int, str, int]]:
        if not self._has("recent_views"):
            return []
        # A range of the primary key each (a join on the ranges would scan the table).
        ranges = " UNION ALL ".join(
            f"SELECT {i}, movie_id, CAST(sum(views) AS BIGINT) FROM recent_views"  # noqa: S608
            " WHERE period >= ? AND period < ? GROUP BY movie_id"
            for i in range(len(bounds) - 1)
        )
        return self._query(ranges, [b for pair in itertools.pairwise(bounds) for b in pair])

    def titles(self, movie_ids: Sequence[str]) -> dict[str, tuple[str, int | None]]:
        rows = self._query(
            "SELECT movie_id, title, year FROM movies"  # noqa: S608
            f" WHERE movie_id IN (SELECT value FROM {self.dialect.each()})",
            (self.dialect.list_value(movie_ids),),
        )
        return {movie_id: (title, year) for movie_id, title, year in rows}

    def movie(self, movie_id: str) -> Movie | None:
        rows = self._query(
            "SELECT movie_id, title, year, genres FROM movies WHERE movie_id = ?", (movie_id,)
        )
        return movie_of(*rows[0]) if rows else None

    def movie_events(self, day: str, movie_id: str) -> dict[str, int]:
        if not self._has("movie_events_daily"):  # an older database read as it is: its views
            sql = "SELECT 'view', views FROM movie_views_daily WHERE day = ? AND movie_id = ?"
        else:
            sql = "SELECT event_type, events FROM movie_events_daily WHERE day = ? AND movie_id = ?"
        return dict(self._query(sql, (day, movie_id)))

    def movie_users(self, day: str, movie_id: str) -> int:
        if not self._has("movie_user_counts"):
            return 0
        return int(
            self._query(
                "SELECT CAST(coalesce(sum(users), 0) AS BIGINT) FROM movie_user_counts"
                " WHERE day = ? AND movie_id = ?",
                (day, movie_id),
            )[0][0]
        )

    def movie_views_per_minute(self, movie_id: str, since: str) -> list[tuple[str, int]]:
        if not self._has("movie_views_per_minute"):
            return []
        return self._query(
            f"SELECT {self._out(Kind.MINUTE, 'minute')}, views"  # noqa: S608
            " FROM movie_views_per_minute WHERE movie_id = ? AND minute >= ?",
            (movie_id, since),
        )

    def newest_events(self, match: EventMatch, after: int, limit: int) -> Tail:
        newest = int(self._query("SELECT coalesce(max(seq), 0) FROM events")[0][0])
        found = self.dialect.find("item.value", "lower(coalesce(m.title, e.movie_id))")
        rows = self._query(
            f"SELECT e.seq, {self._out(Kind.MILLIS, 'e.event_time')}, e.event_type,"  # noqa: S608
            " e.movie_id, m.title, e.user_id, e.rating"
            " FROM events AS e LEFT JOIN movies AS m ON m.movie_id = e.movie_id"
            " WHERE e.seq > ? AND e.seq <= ?"  # none past the newest read: next time
            " AND (CAST(? AS TEXT) IS NULL OR e.event_type = ?)"
            " AND (CAST(? AS TEXT) IS NULL OR e.movie_id = ?)"
            " AND (CAST(? AS TEXT) IS NULL OR e.user_id = ?)"
            f" AND NOT EXISTS (SELECT 1 FROM {self.dialect.each()} WHERE {found} = 0)"
            " ORDER BY e.seq DESC LIMIT ?",
            (
                max(after, newest - TAIL_SCAN),
                newest,
                *(match.event_type, match.event_type),
                *(match.movie_id, match.movie_id),
                *(match.user_id, match.user_id),
                self.dialect.list_value(match.words),
                limit,
            ),
        )
        return Tail(newest, tuple(TailEvent(*row) for row in rows))

    def users_seen_since(self, *moments: str) -> list[int]:
        """For each moment, how many users have an event at or after it: the users last
        seen in the minutes after the moment's, and those of its own minute found one
        by one (by index), so the count is exact to the millisecond."""
        if not self._has("users_per_last_minute"):  # an older file: one row per user
            columns = ", ".join("sum(CASE WHEN last_seen >= ? THEN 1 ELSE 0 END)" for _ in moments)
            row = self._query(f"SELECT {columns} FROM user_activity", moments)[0]  # noqa: S608
            return [int(n or 0) for n in row]
        return [
            int(
                self._query(
                    "SELECT CAST((SELECT coalesce(sum(users), 0) FROM users_per_last_minute"
                    " WHERE minute > ?) + (SELECT count(*) FROM user_activity"
                    " WHERE last_seen >= ? AND last_seen < ?) AS BIGINT)",
                    (moment[:16] + "Z", moment, next_minute(moment)),
                )[0][0]
            )
            for moment in moments
        ]

    def users_on(self, day: str) -> int | None:
        if not self._has("users_daily"):
            return None
        rows = self._query("SELECT users FROM users_daily WHERE day = ?", (day,))
        return int(rows[0][0]) if rows else None

    def first_quarter_hour(self) -> str | None:
        first: str | None = self._query(
            f"SELECT {self._out(Kind.MINUTE, 'min(quarter)')} FROM events_per_quarter_hour"  # noqa: S608
        )[0][0]
        return first

    def dead_letters(self, limit: int) -> list[DeadLetter]:
        rows = self._query(
            f"SELECT {self._out(Kind.INSTANT, 'received_at')}, reason, raw, raw_size"  # noqa: S608
            " FROM dead_letters ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        return [DeadLetter(*row) for row in rows]

    def newest_event_time(self) -> str | None:
        """The latest event_time of the events kept (canonical), if any."""
        newest: str | None = self._query(
            f"SELECT {self._out(Kind.MILLIS, 'max(event_time)')} FROM events"  # noqa: S608
        )[0][0]
        return newest

    def newest_minute(self) -> str | None:
        newest: str | None = self._query(
            f"SELECT {self._out(Kind.MINUTE, 'max(minute)')} FROM events_per_minute"  # noqa: S608
        )[0][0]
        return newest

    def events_after(self, moment: str, limit: int) -> int:
        return int(
            self._query(
                "SELECT count(*) FROM (SELECT 1 FROM events"  # noqa: S608
                f" WHERE event_time > {self.dialect.into(Kind.MILLIS)} LIMIT ?) AS later",
                (moment, limit),
            )[0][0]
        )

    def movies_on(self, day: str) -> list[MovieOfDay]:
        """Three reads of the day's rows: events by type (with the catalogue's titles),
        users, ratings."""
        if not self._has("movie_events_daily"):
            return []
        events: dict[str, dict[str, int]] = {}
        about: dict[str, tuple[str | None, int | None, str | None]] = {}
        for movie_id, title, year, genres, kind, n in self._query(
            "SELECT e.movie_id, m.title, m.year, m.genres, e.event_type, e.events"
            " FROM movie_events_daily AS e LEFT JOIN movies AS m ON m.movie_id = e.movie_id"
            " WHERE e.day = ?",
            (day,),
        ):
            events.setdefault(movie_id, {})[kind] = int(n)
            about[movie_id] = (title, year, genres)
        users: dict[str, int] = {}
        if self._has("movie_user_counts"):
            users = dict(
                self._query(
                    "SELECT movie_id, CAST(sum(users) AS BIGINT) FROM movie_user_counts"
                    " WHERE day = ? GROUP BY movie_id",
                    (day,),
                )
            )
        ratings: dict[str, dict[int, int]] = {}
        for movie_id, rating, n in self._query(
            "SELECT movie_id, rating, ratings FROM movie_ratings_daily WHERE day = ?", (day,)
        ):
            ratings.setdefault(movie_id, {})[int(rating)] = int(n)
        return [
            MovieOfDay(
                movie_id,
                about[movie_id][0],
                about[movie_id][1],
                tuple(g for g in (about[movie_id][2] or "").split(",") if g),
                by_type,
                int(users.get(movie_id, 0)),
                ratings.get(movie_id, {}),
            )
            for movie_id, by_type in sorted(events.items())
        ]

    def events_between(self, start: str, stop: str, chunk: int) -> Iterator[list[Event]]:
        """Pages down the time index, each from the last one's last time; the events of
        that time already given are left out by id (the page is made longer by as many,
        so a time that more events share than a page holds is read whole)."""
        columns = (
            f"{self._out(Kind.UUID, 'event_id')}, {self._out(Kind.MILLIS, 'event_time')},"
            " user_id, session_id, movie_id, event_type, rating"
        )
        time = self.dialect.into(Kind.MILLIS)
        since, given = start, set[str]()  # the ids at time `since` handed out
        while True:
            rows = self._query(
                f"SELECT {columns} FROM events"  # noqa: S608
                f" WHERE event_time >= {time} AND event_time < {time} ORDER BY event_time LIMIT ?",
                (since, stop, chunk + len(given)),
            )
            page = [Event(*row) for row in rows if row[0] not in given]
            if page:
                yield page
            if len(rows) < chunk + len(given):
                return
            last = rows[-1][1]
            if last != since:
                since, given = last, set()
            given |= {row[0] for row in rows if row[1] == last}

    def count_events(self) -> int:
        """Raw events stored now (after retention), by counting rows: slow on big stores."""
        return int(self._query("SELECT count(*) FROM events")[0][0])

    def pipelines(self, now: float) -> list[PipelineHealth]:
        if not self._has("pipelines"):  # an older file has no health rows
            return []
        table = BY_NAME["pipelines"]
        columns = ", ".join(
            self._out(table.column(name).kind, name)
            if table.column(name).since <= self._version
            else f"NULL AS {name}"
            for name, _ in HEALTH_FIELDS
        )
        rows = self._query(
            f"SELECT {columns} FROM pipelines ORDER BY last_seen DESC, id"  # noqa: S608
        )
        return health_from_rows(rows, now)

    def positions(self) -> list[SourcePosition]:
        if not self._has("source_positions"):
            return []
        rows = self._query(
            f"SELECT source, position, {self._out(Kind.INSTANT, 'updated_at')}"  # noqa: S608
            " FROM source_positions ORDER BY source"
        )
        return [SourcePosition(*row) for row in rows]

    def position(self, source: str) -> str | None:
        if not self._has("source_positions"):
            return None
        rows = self._query("SELECT position FROM source_positions WHERE source = ?", (source,))
        return rows[0][0] if rows else None


def _movie_rows(movies: Iterable[Movie]) -> list[tuple[object, ...]]:
    """Catalogue rows, each movie once (the last of an id wins)."""
    rows = {m.movie_id: (m.movie_id, m.title, m.year, ",".join(m.genres)) for m in movies}
    return list(rows.values())


def first_of_each(events: Sequence[Event], new: set[str]) -> list[Event]:
    """The events whose id was inserted, each id once (the first of a batch is stored)."""
    stored = []
    for event in events:
        if event.event_id in new:
            new.discard(event.event_id)
            stored.append(event)
    return stored
