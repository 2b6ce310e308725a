"""Simulated engagement traffic: a user population browsing a catalogue in sessions.

Not uniform noise: movie popularity has a long tail (Zipf), a few users are far
more active than most, and a session chains events on one title (a view, then
maybe a click, then maybe a rating or a watchlist add) before moving on.
The same seed and the same clock give the same events.
"""

from __future__ import annotations

import bisect
import itertools
import random
from dataclasses import dataclass
from typing import Any

from imdb_tui.catalog import Catalog
from imdb_tui.clock import Clock, utc_iso

P_CLICK_AFTER_VIEW = 0.35
P_RATE_AFTER_CLICK = 0.30
P_WATCHLIST_AFTER_CLICK = 0.25
P_SESSION_ENDS = 0.2
"""Chance that a session ends after it is done with a title."""


@dataclass(frozen=True, slots=True)
class SimulatorSettings:
    seed: int = 0
    users: int = 20_000
    concurrent_sessions: int = 500


class _Session:
    __slots__ = ("follow_ups", "movie", "session_id", "user_id")

    def __init__(self, user_id: str, session_id: str) -> None:
        self.user_id = user_id
        self.session_id = session_id
        self.movie = 0
        self.follow_ups: list[str] = []


class Simulator:
    """Makes raw event records (the same dicts a JSON Lines source would parse)."""

    def __init__(self, catalog: Catalog, settings: SimulatorSettings, clock: Clock) -> None:
        if settings.users < 1:
            raise ValueError("the simulator needs at least one user")
        self._clock = clock
        self._rng = rng = random.Random(settings.seed)
        self._movie_ids = [movie.movie_id for movie in catalog.movies]
        self._movie_cumulative = list(itertools.accumulate(catalog.popularity))
        self._quality = [rng.uniform(3.0, 9.0) for _ in catalog.movies]
        self._user_ids = [f"u{number:07d}" for number in rng.sample(range(10**7), settings.users)]
        # Activity per user is log-normal: most users are casual, a few are heavy.
        activity = [rng.lognormvariate(0.0, 1.0) for _ in range(settings.users)]
        self._user_cumulative = list(itertools.accumulate(activity))
        self._sessions = [self._new_session() for _ in range(settings.concurrent_sessions)]
        self._last_ms = -1
        self._id_prefix = ""
        self._sequence = 0

    def records(self, count: int) -> list[dict[str, Any]]:
        """The next `count` events, stamped with the clock's current time."""
        now = self._clock.now()
        event_time = utc_iso(now)
        ms = round(now * 1000)
        random_ = self._rng.random
        sessions = self._sessions
        active = len(sessions)
        out = []
        for _ in range(count):
            index = int(random_() * active)
            session = sessions[index]
            if not session.follow_ups:
                if session.movie and random_() < P_SESSION_ENDS:
                    session = sessions[index] = self._new_session()
                self._start_title(session)
            event_type = session.follow_ups.pop()
            record: dict[str, Any] = {
                "event_id": self._event_id(ms),
                "event_time": event_time,
                "user_id": session.user_id,
                "session_id": session.session_id,
                "movie_id": self._movie_ids[session.movie - 1],
                "event_type": event_type,
            }
            if event_type == "rate":
                quality = self._quality[session.movie - 1]
                record["rating"] = min(10, max(1, round(self._rng.gauss(quality, 1.5))))
            out.append(record)
        return out

    def _new_session(self) -> _Session:
        rng = self._rng
        user = bisect.bisect(self._user_cumulative, rng.random() * self._user_cumulative[-1])
        return _Session(
            self._user_ids[min(user, len(self._user_ids) - 1)], f"s{rng.getrandbits(48):012x}"
        )

    def _start_title(self, session: _Session) -> None:
        """Pick the session's next title and plan what it does there (popped from the end)."""
        rng = self._rng
        pick = bisect.bisect(self._movie_cumulative, rng.random() * self._movie_cumulative[-1])
        session.movie = min(pick, len(self._movie_ids) - 1) + 1
        plan = ["view"]
        if rng.random() < P_CLICK_AFTER_VIEW:
            plan.append("click")
            if rng.random() < P_RATE_AFTER_CLICK:
                plan.append("rate")
            if rng.random() < P_WATCHLIST_AFTER_CLICK:
                plan.append("watchlist_add")
        plan.reverse()
        session.follow_ups = plan

    def _event_id(self, ms: int) -> str:
        """A UUIDv7: the millisecond, then a counter within it, then random bits.

        Ids made later sort later, so the store's unique index only ever appends.
        """
        if ms > self._last_ms:
            self._set_millisecond(ms)
            self._sequence = self._rng.getrandbits(10)
        else:
            self._sequence += 1
            if self._sequence > 0xFFF:  # the counter ran out: borrow the next millisecond
                self._set_millisecond(self._last_ms + 1)
                self._sequence = 0
        tail = f"{self._rng.getrandbits(62) | 0x8000000000000000:016x}"
        return f"{self._id_prefix}{self._sequence:03x}-{tail[:4]}-{tail[4:]}"

    def _set_millisecond(self, ms: int) -> None:
        self._last_ms = ms
        self._id_prefix = f"{ms >> 16:08x}-{ms & 0xFFFF:04x}-7"
