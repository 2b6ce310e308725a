"""IMDb's own datasets as the catalogue: title.basics.tsv.gz for the movies, and
title.ratings.tsv.gz (optional) for how popular each one is.

The files are IMDb's, for personal and non-commercial use, and are never shipped
with this project. Their format: UTF-8, tab-separated, one header line, `\\N` for
null, and no quoting at all (a quote is just a character), so a line is split on
tabs and nothing else. They are streamed: memory holds the movies kept, not the file.
"""

from __future__ import annotations

import gzip
import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from imdb_tui.catalog import ZIPF_EXPONENT, Catalog, Movie

BASICS_HEADER = (
    "tconst",
    "titleType",
    "primaryTitle",
    "originalTitle",
    "isAdult",
    "startYear",
    "endYear",
    "runtimeMinutes",
    "genres",
)
RATINGS_HEADER = ("tconst", "averageRating", "numVotes")
NULL = "\\N"
PROGRESS_EVERY = 50_000
"""Rows between two calls of the progress callback."""

_TCONST = re.compile(r"tt[0-9]{7,10}")
_YEAR = re.compile(r"[0-9]{4}")


class CatalogError(Exception):
    """A catalogue file that cannot be used, said in one line."""


@dataclass(frozen=True, slots=True)
class LoadedCatalog:
    catalog: Catalog
    rows: int
    """Data rows read from title.basics (all title types)."""
    skipped: int
    """Malformed rows left out (of either file)."""
    rated: int
    """Movies that had a numVotes (the others weigh as little as the least voted)."""


def load_imdb_catalog(
    basics: str | Path,
    ratings: str | Path | None = None,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> LoadedCatalog:
    """The movies of title.basics, with popularity from numVotes if `ratings` is given
    (otherwise a long tail over a seeded shuffle). `progress(done, total)` is called
    with the compressed bytes read so far, now and then."""
    movies: list[Movie] = []
    rows = skipped = 0
    for fields in _rows(basics, BASICS_HEADER, progress):
        rows += 1
        if fields is None:
            skipped += 1
            continue
        tconst, title_type, title, _, _, start_year, _, _, genres = fields
        if title_type != "movie":
            continue
        if not _TCONST.fullmatch(tconst) or not title or title == NULL:
            skipped += 1
            continue
        if start_year != NULL and not _YEAR.fullmatch(start_year):
            skipped += 1
            continue
        year = None if start_year == NULL else int(start_year)
        kinds = () if genres == NULL else tuple(genres.split(","))
        movies.append(Movie(tconst, title, year, kinds))
    if not movies:
        raise CatalogError(f"{basics}: no movies in it (titleType 'movie')")
    votes: dict[str, int] = {}
    if ratings is not None:
        wanted = {movie.movie_id for movie in movies}
        for fields in _rows(ratings, RATINGS_HEADER, progress):
            if fields is None or not fields[2].isdigit():
                skipped += 1
            elif fields[0] in wanted:
                votes[fields[0]] = int(fields[2])
        floor = min(votes.values(), default=1) or 1
        popularity = tuple(float(votes.get(movie.movie_id, floor)) for movie in movies)
    else:
        ranks = list(range(1, len(movies) + 1))
        random.Random(seed).shuffle(ranks)
        popularity = tuple(1 / rank**ZIPF_EXPONENT for rank in ranks)
    # In tconst order: the same catalogue whether parsed now or kept from before.
    ordered = sorted(zip(movies, popularity, strict=True), key=lambda pair: pair[0].movie_id)
    catalog = Catalog(tuple(m for m, _ in ordered), tuple(w for _, w in ordered))
    return LoadedCatalog(catalog, rows, skipped, len(votes))


def _rows(
    path: str | Path,
    header: tuple[str, ...],
    progress: Callable[[int, int], None] | None,
) -> Iterator[list[str] | None]:
    """Each data row's fields, or None for a row that is not well formed."""
    try:
        raw = open(path, "rb")  # noqa: SIM115 (closed below)
    except OSError as error:
        raise CatalogError(f"cannot open {path}: {error.strerror or error}") from None
    total = Path(path).stat().st_size
    with raw:
        lines: BinaryIO = gzip.GzipFile(fileobj=raw) if str(path).endswith(".gz") else raw  # type: ignore[assignment]
        try:
            first = lines.readline().decode("utf-8", "replace").rstrip("\r\n").split("\t")
            if tuple(first) != header:
                raise CatalogError(
                    f"{path}: not IMDb's file (its header should be {' '.join(header)})"
                )
            for count, line in enumerate(lines, 1):
                if progress is not None and count % PROGRESS_EVERY == 0:
                    progress(raw.tell(), total)
                try:
                    fields = line.decode("utf-8").rstrip("\r\n").split("\t")
                except UnicodeDecodeError:
                    yield None
                    continue
                yield fields if len(fields) == len(header) else None
        except (OSError, EOFError) as error:
            raise CatalogError(f"cannot read {path}: {error}") from None
        if progress is not None:
            progress(total, total)
