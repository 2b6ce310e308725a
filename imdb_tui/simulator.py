"""Simulated engagement traffic: a user population browsing a catalogue in sessions.

Not uniform noise: movie popularity has a long tail (Zipf), a few users are far
more active than most, and a session chains events on one title (a view, then
maybe a click, then maybe a rating or a watchlist add) before moving on.
The same seed and the same clock give the same events.
"""

from __future__ import annotations

import itertools
import random
import zlib
from array import array
from dataclasses import dataclass
from typing import Any

from imdb_tui.catalog import Catalog
from imdb_tui.clock import Clock, utc_iso

P_CLICK_AFTER_VIEW = 0.35
P_RATE_AFTER_CLICK = 0.30
P_WATCHLIST_AFTER_CLICK = 0.25
P_SESSION_ENDS = 0.2
"""Chance that a session ends after it is done with a title."""


def _plans() -> tuple[list[float], list[tuple[str, ...]]]:
    """Every way a session can engage with one title, with cumulative chances.

    Stored reversed: the session pops its next action off the end.
    """
    click, rate, watch = P_CLICK_AFTER_VIEW, P_RATE_AFTER_CLICK, P_WATCHLIST_AFTER_CLICK
    outcomes = [
        (1 - click, ("view",)),
        (click * (1 - rate) * (1 - watch), ("view", "click")),
        (click * rate * (1 - watch), ("view", "click", "rate")),
        (click * (1 - rate) * watch, ("view", "click", "watchlist_add")),
        (click * rate * watch, ("view", "click", "rate", "watchlist_add")),
    ]
    return (
        list(itertools.accumulate(chance for chance, _ in outcomes)),
        [tuple(reversed(plan)) for _, plan in outcomes],
    )


_PLAN_CHANCES, _PLANS = _plans()


@dataclass(frozen=True, slots=True)
class SimulatorSettings:
    seed: int = 0
    users: int = 20_000
    concurrent_sessions: int = 500


class _Session:
    """One of the concurrent sessions; when it ends, a new one starts in its place."""

    __slots__ = ("follow_ups", "movie", "session_id", "user_id")

    def __init__(self) -> None:
        self.user_id = ""
        self.session_id = ""
        self.movie = ""
        self.follow_ups: list[str] = []  # what it does next with the title, popped off the end


_DRAWS = 4096
_COUNTER_HEX = [f"{n:03x}" for n in range(4096)]


class Simulator:
    """Makes raw event records (the same dicts a JSON Lines source would parse)."""

    def __init__(self, catalog: Catalog, settings: SimulatorSettings, clock: Clock) -> None:
        if settings.users < 1:
            raise ValueError("the simulator needs at least one user")
        self._clock = clock
        self._rng = rng = random.Random(settings.seed)
        self._movie_ids = catalog.movie_ids
        self._movie_cumulative = array("d", itertools.accumulate(catalog.popularity))
        self._quality_seed = zlib.crc32(settings.seed.to_bytes(8, "little", signed=True))
        self._user_ids = [f"u{number:07d}" for number in rng.sample(range(10**7), settings.users)]
        # Activity per user is log-normal: most users are casual, a few are heavy.
        activity = [rng.lognormvariate(0.0, 1.0) for _ in range(settings.users)]
        self._user_cumulative = list(itertools.accumulate(activity))
        # Random draws are made in bulk (random.choices runs its loop in C) and
        # used up one by one: the same seed still gives the same sequence.
        self._movie_draws: list[str] = []
        self._plan_draws: list[tuple[str, ...]] = []
        self._user_draws: list[str] = []
        self._sessions = [_Session() for _ in range(settings.concurrent_sessions)]
        for session in self._sessions:
            self._restart(session)
        self._last_ms = -1
        self._id_prefix = ""
        self._sequence = 0

    def records(self, count: int) -> list[dict[str, Any]]:
        """The next `count` events, stamped with the clock's current time."""
        now = self._clock.now()
        event_time = utc_iso(now)
        ids = self._event_ids(round(now * 1000), count)
        rng = self._rng
        picks = rng.choices(self._sessions, k=count)
        movie_draws = self._movie_draws
        plan_draws = self._plan_draws
        chance = rng.random
        out = []
        for event_id, session in zip(ids, picks, strict=True):
            follow_ups = session.follow_ups
            if not follow_ups:
                if session.movie and chance() < P_SESSION_ENDS:
                    self._restart(session)
                if not movie_draws:
                    self._draw()
                session.movie = movie_draws.pop()
                follow_ups = session.follow_ups = list(plan_draws.pop())
            event_type = follow_ups.pop()
            record: dict[str, Any] = {
                "event_id": event_id,
                "event_time": event_time,
                "user_id": session.user_id,
                "session_id": session.session_id,
                "movie_id": session.movie,
                "event_type": event_type,
            }
            if event_type == "rate":
                quality = self._quality(session.movie)
                record["rating"] = min(10, max(1, round(rng.gauss(quality, 1.5))))
            out.append(record)
        return out

    def _quality(self, movie_id: str) -> float:
        """How well a title is rated on average, 3 to 9: fixed per title and seed,
        worked out when needed rather than kept for every title of the catalogue."""
        return 3.0 + 6.0 * zlib.crc32(movie_id.encode(), self._quality_seed) / 0xFFFFFFFF

    def _draw(self) -> None:
        """The next titles sessions turn to (Zipf popularity) and what they do there."""
        rng = self._rng
        self._movie_draws.extend(
            rng.choices(self._movie_ids, cum_weights=self._movie_cumulative, k=_DRAWS)
        )
        self._plan_draws.extend(rng.choices(_PLANS, cum_weights=_PLAN_CHANCES, k=_DRAWS))

    def _restart(self, session: _Session) -> None:
        """A new session, of a user picked by activity, takes this one's place."""
        rng = self._rng
        if not self._user_draws:
            self._user_draws = rng.choices(
                self._user_ids, cum_weights=self._user_cumulative, k=_DRAWS
            )
        session.user_id = self._user_draws.pop()
        session.session_id = f"s{rng.getrandbits(48):012x}"

    def _event_ids(self, ms: int, count: int) -> list[str]:
        """`count` UUIDv7s: the millisecond, a 12-bit counter within it, 60 random bits.

        Ids made later sort later, so the store's unique index only ever appends.
        The variant nibble is fixed at 8 (binary 10xx, as RFC 9562 asks).
        """
        noise = self._rng.randbytes(8 * count).hex()
        sequence = self._sequence
        if ms > self._last_ms:
            self._set_millisecond(ms)
            sequence = int(noise[:2], 16) - 1  # a new millisecond starts at a random count
        prefix = self._id_prefix
        ids = []
        for i in range(0, 16 * count, 16):
            sequence += 1
            if sequence > 0xFFF:  # the counter ran out: borrow the next millisecond
                self._set_millisecond(self._last_ms + 1)
                prefix = self._id_prefix
                sequence = 0
            ids.append(
                f"{prefix}{_COUNTER_HEX[sequence]}-8{noise[i + 1 : i + 4]}-{noise[i + 4 : i + 16]}"
            )
        self._sequence = sequence
        return ids

    def _set_millisecond(self, ms: int) -> None:
        self._last_ms = ms
        self._id_prefix = f"{ms >> 16:08x}-{ms & 0xFFFF:04x}-7"
