"""Finding a movie by name: title words (accents and case ignored), a year, an id.

The index holds the catalogue's titles and the movies with events on the day
searched (those the catalogue does not know are found by their id), each with its
views that day. It is read once and then searched as the user types.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from imdb_tui.store import Store

SHOWN: Final = 20
_YEAR = re.compile(r"(18[89]\d|19\d\d|20\d\d|2100)")
_ID = re.compile(r"tt\d{3,10}")


def folded(text: str) -> str:
    """Text as it is compared: accents taken off, case folded (Amélie -> amelie)."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


@dataclass(frozen=True, slots=True)
class Found:
    movie_id: str
    title: str | None
    """None: the catalogue does not know it (it has events)."""
    year: int | None
    views: int
    """Its views on the day searched."""

    @property
    def label(self) -> str:
        year = f" ({self.year})" if self.year else ""
        return (self.title or self.movie_id) + year


class TitleIndex:
    def __init__(
        self, titles: Iterable[tuple[str, str | None, int | None]], views: dict[str, int]
    ) -> None:
        self.views = views
        rows = {movie_id: (title, year) for movie_id, title, year in titles}
        for movie_id in views:  # viewed, unknown to the catalogue: found by its id
            rows.setdefault(movie_id, (None, None))
        self._rows = [
            (movie_id, title, year, folded(title) if title else "")
            for movie_id, (title, year) in rows.items()
        ]

    def __len__(self) -> int:
        return len(self._rows)

    def find(self, text: str, limit: int = SHOWN) -> list[Found]:
        """The movies matching every word: a year its year, an id its id (or the start
        of it), any other word in its title. The closest titles first, then the most
        viewed."""
        words = folded(text).split()
        if not words:
            return []
        years = {int(w) for w in words if _YEAR.fullmatch(w)}
        ids = [w for w in words if _ID.fullmatch(w)]
        rest = [w for w in words if not _YEAR.fullmatch(w) and not _ID.fullmatch(w)]
        phrase = " ".join(rest)
        matched = []
        for movie_id, title, year, key in self._rows:
            in_title = title is not None and any(str(y) in key for y in years)
            if years and year not in years and not in_title:  # "2001: A Space ..." too
                continue
            if any(not movie_id.startswith(w) for w in ids):
                continue
            if any(w not in key for w in rest):
                continue
            closeness = 0 if key == phrase else 1 if key.startswith(phrase) else 2
            matched.append((closeness, -self.views.get(movie_id, 0), key, movie_id, title, year))
        matched.sort()
        return [
            Found(movie_id, title, year, self.views.get(movie_id, 0))
            for _, _, _, movie_id, title, year in matched[:limit]
        ]

    def exact(self, text: str) -> list[Found]:
        """The movies whose title is the text (accents and case aside)."""
        key = folded(text).strip()
        return [
            found for found in self.find(text, limit=len(self)) if folded(found.title or "") == key
        ]


def read_index(store: Store, day: str) -> TitleIndex:
    """The catalogue's titles and the day's movies with their views."""
    views = {movie.movie_id: movie.events.get("view", 0) for movie in store.movies_on(day)}
    return TitleIndex(store.catalogue_titles(), views)
