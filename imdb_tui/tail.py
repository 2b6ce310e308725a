"""The live tail: the newest stored events, and the filter a user types for them.

A filter is words: an event type (`view`, `rate`, ...) keeps that type, a movie
id (`tt0111161`) that movie, `user:ID` that user, `type:`/`movie:` say the same
explicitly, and any other word must be in the title (case-insensitive); all of
them must hold. `parse_match` reads it; the store applies it in its query.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from imdb_tui.events import EVENT_TYPES

TAIL_SCAN = 200_000
"""How many of the newest events a tail looks through for its matches at most, so
that a filter nothing matches costs the same as any other."""
_MOVIE_ID = re.compile(r"tt\d+")


@dataclass(frozen=True, slots=True)
class EventMatch:
    event_type: str | None = None
    movie_id: str | None = None
    user_id: str | None = None
    words: tuple[str, ...] = ()
    """Lower-case words the title must hold."""

    @property
    def everything(self) -> bool:
        return self == EventMatch()

    def describe(self) -> str:
        """The filter as the user could type it again."""
        parts = [f"type:{self.event_type}"] if self.event_type else []
        parts += [f"movie:{self.movie_id}"] if self.movie_id else []
        parts += [f"user:{self.user_id}"] if self.user_id else []
        return " ".join([*parts, *self.words])


class MatchError(ValueError):
    """A filter that cannot be read, said for a person."""


def parse_match(text: str) -> EventMatch:
    """A typed filter (see the module's docstring); MatchError says what is wrong."""
    found: dict[str, str] = {}
    words: list[str] = []
    for word in text.split():
        key, colon, value = word.partition(":")
        if colon and key.lower() in ("type", "movie", "user"):
            key = key.lower()
            if not value:
                raise MatchError(f"'{word}' names no {key}")
        elif word.lower() in EVENT_TYPES:
            key, value = "type", word.lower()
        elif _MOVIE_ID.fullmatch(word):
            key, value = "movie", word
        else:
            words.append(word.lower())
            continue
        if key == "type" and value.lower() not in EVENT_TYPES:
            raise MatchError(f"'{value}' is not an event type: {', '.join(EVENT_TYPES)}")
        if key in found and found[key] != value:
            raise MatchError(f"two {key}s: an event has one")
        found[key] = value.lower() if key == "type" else value
    return EventMatch(found.get("type"), found.get("movie"), found.get("user"), tuple(words))


@dataclass(frozen=True, slots=True)
class TailEvent:
    """A stored event as the tail shows it."""

    seq: int
    """Its place in the order of storing."""
    event_time: str
    event_type: str
    movie_id: str
    title: str | None
    """The catalogue's title, if it knows the movie."""
    user_id: str
    rating: int | None


@dataclass(frozen=True, slots=True)
class Tail:
    """The newest matching events after a point, newest first."""

    newest: int
    """The newest stored event's seq (0: none)."""
    events: tuple[TailEvent, ...]
