"""The movie catalogue the simulator draws from: titles, years, genres and popularity."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

GENRES = (
    "Action",
    "Adventure",
    "Animation",
    "Biography",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Family",
    "Fantasy",
    "History",
    "Horror",
    "Music",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Sport",
    "Thriller",
    "War",
    "Western",
)
ZIPF_EXPONENT = 1.1
"""Popularity of the title at rank r is proportional to 1 / r**ZIPF_EXPONENT."""


@dataclass(frozen=True, slots=True)
class Movie:
    movie_id: str
    title: str
    year: int | None
    genres: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Catalog:
    """Movie ids with a popularity weight each (same order): what the simulator draws."""

    movie_ids: Sequence[str]
    popularity: Sequence[float]
    movies: tuple[Movie, ...] = ()
    """The titles to store for reports, when the database does not hold them already."""

    @classmethod
    def of(cls, movies: Sequence[Movie], popularity: Sequence[float]) -> Catalog:
        """A catalogue of these movies, to be stored with it."""
        return cls(tuple(m.movie_id for m in movies), tuple(popularity), tuple(movies))

    def __len__(self) -> int:
        return len(self.movie_ids)


def build_catalog(seed: int, size: int = 1000) -> Catalog:
    """A made-up catalogue, the same for the same seed and size."""
    if size < 1:
        raise ValueError("a catalogue needs at least one title")
    from faker import Faker  # imported here: it takes a quarter of a second to load

    fake = Faker("en_US")
    fake.seed_instance(seed)
    rng = random.Random(seed)
    numbers = rng.sample(range(100_000, 9_999_999), size)
    titles: set[str] = set()
    movies = []
    for number in numbers:
        title = _title(fake, rng)
        while title in titles:
            title = f"{title} {rng.choice(('II', 'III', 'Returns', 'Reloaded'))}"
        titles.add(title)
        year = rng.randint(1950, 2026)
        genres = tuple(sorted(rng.sample(GENRES, rng.choice((1, 2, 2, 3)))))
        movies.append(Movie(f"tt{number:07d}", title, year, genres))
    # The most popular titles are spread through the catalogue, not first.
    ranks = list(range(1, size + 1))
    rng.shuffle(ranks)
    popularity = tuple(1 / rank**ZIPF_EXPONENT for rank in ranks)
    return Catalog.of(movies, popularity)


def _title(fake: object, rng: random.Random) -> str:
    def noun() -> str:
        return str(fake.word(part_of_speech="noun")).title()  # type: ignore[attr-defined]

    def adjective() -> str:
        return str(fake.word(part_of_speech="adjective")).title()  # type: ignore[attr-defined]

    def city() -> str:
        return str(fake.city())  # type: ignore[attr-defined]

    def name() -> str:
        return str(fake.first_name())  # type: ignore[attr-defined]

    patterns = (
        lambda: f"The {adjective()} {noun()}",
        lambda: f"{noun()} of {city()}",
        lambda: f"{name()}'s {noun()}",
        lambda: f"The Last {noun()}",
        lambda: f"Return to {city()}",
        lambda: f"A {noun()} in {city()}",
        lambda: f"{noun()} and {noun()}",
    )
    return rng.choice(patterns)()
