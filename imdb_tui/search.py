"""Finding a movie by name: title words (accents and case ignored), a year, an id.

The index holds the catalogue's titles and the movies with events on the day
searched (those the catalogue does not know are found by their id), each with its
views that day. It is read once and then searched as the user types.
"""

from __future__ import annotations

import heapq
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


_Row = tuple[str, str | None, int | None, str]
"""id, title, year, and the title as compared"""


class TitleIndex:
    def __init__(
        self, titles: Iterable[tuple[str, str | None, int | None]], views: dict[str, int]
    ) -> None:
        self.views = views
        rows = {movie_id: (title, year) for movie_id, title, year in titles}
        for movie_id in views:  # viewed, unknown to the catalogue: found by its id
            rows.setdefault(movie_id, (None, None))
        self._rows: list[_Row] = [
            (movie_id, title, year, folded(title) if title else "")
            for movie_id, (title, year) in rows.items()
        ]

    def __len__(self) -> int:
        return len(self._rows)

    def find(self, text: str, limit: int = SHOWN) -> list[Found]:
        """The movies matching every word: a year its year, an id its id (or the start
        of it), any other word in its title. The closest titles first (the title
        itself, then titles starting with the words), then the most viewed.

        Cut down a word at a time, longest first, and ranked a tier at a time: a
        word in most of a million titles ("a") costs tens of milliseconds."""
        words = folded(text).split()
        if not words:
            return []
        years = {int(w) for w in words if _YEAR.fullmatch(w)}
        ids = [w for w in words if _ID.fullmatch(w)]
        rest = [w for w in words if not _YEAR.fullmatch(w) and not _ID.fullmatch(w)]
        candidates = self._rows
        for word in sorted(rest, key=len, reverse=True):
            candidates = [row for row in candidates if word in row[3]]
        for word in ids:
            candidates = [row for row in candidates if row[0].startswith(word)]
        if len(years) == 1:  # "2001: A Space Odyssey" is found by its title too
            (year,) = years
            named = str(year)
            candidates = [row for row in candidates if row[2] == year or named in row[3]]
        elif years:
            names = [str(y) for y in years]
            candidates = [
                row for row in candidates if row[2] in years or any(y in row[3] for y in names)
            ]
        phrase = " ".join(rest)
        exact = [row for row in candidates if row[3] == phrase]
        starting = [row for row in candidates if row[3] != phrase and row[3].startswith(phrase)]
        chosen = self._best(exact, limit) + self._best(starting, limit - len(exact))
        if len(chosen) < limit:
            others = [row for row in candidates if not row[3].startswith(phrase)]
            chosen += self._best(others, limit - len(chosen))
        views = self.views
        return [
            Found(movie_id, title, year, views.get(movie_id, 0))
            for movie_id, title, year, _ in chosen[:limit]
        ]

    def _best(self, rows: list[_Row], limit: int) -> list[_Row]:
        """The `limit` most viewed of rows, then by title."""
        if limit <= 0:
            return []
        views = self.views
        return heapq.nsmallest(limit, rows, key=lambda row: (-views.get(row[0], 0), row[3]))


def titled(found: list[Found], text: str) -> list[Found]:
    """Those of the movies found whose title is the text (accents and case aside)."""
    key = folded(text).strip()
    return [movie for movie in found if folded(movie.title or "") == key]


def read_index(store: Store, day: str) -> TitleIndex:
    """The catalogue's titles and the day's movies with their views."""
    views = {movie.movie_id: movie.events.get("view", 0) for movie in store.movies_on(day)}
    return TitleIndex(store.catalogue_titles(), views)
