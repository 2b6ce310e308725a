"""IMDb's own datasets as the catalogue: title.basics.tsv.gz for the movies, and
title.ratings.tsv.gz (optional) for how popular each one is.

The files are IMDb's, for personal and non-commercial use, and are never shipped
with this project. Their format: UTF-8, tab-separated, one header line, `\\N` for
null, and no quoting at all (a quote is just a character), so a line is split on
tabs and nothing else.

Memory stays flat however big the files: the movies go to the database in
batches as they are read, and what stays in memory for the simulator is each
movie's id and weight, packed in arrays (16 bytes a movie, not the ~400 of a
Movie object).
"""

from __future__ import annotations

import gzip
import random
import re
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import BinaryIO, Protocol, overload

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
BATCH = 10_000
"""Movies handed to the database at a time."""

_YEAR = re.compile(r"[0-9]{4}")
_WIDTH_SHIFT = 40  # a key is the digits' count above the number: 10 digits fit in 34 bits
_NUMBER = (1 << _WIDTH_SHIFT) - 1


class CatalogError(Exception):
    """A catalogue file that cannot be used, said in one line."""


class MovieSink(Protocol):
    """Where movies go as they are read (the Store)."""

    def add_catalog_movies(self, movies: Sequence[Movie]) -> None: ...

    def weigh_catalog_movies(self, weights: Iterable[tuple[str, float]]) -> None: ...


@dataclass(frozen=True, slots=True)
class LoadedCatalog:
    catalog: Catalog
    rows: int
    """Data rows read from title.basics (all title types)."""
    skipped: int
    """Malformed rows left out (of either file)."""
    rated: int
    """Movies that had a numVotes (the others weigh as little as the least voted)."""
    adult: int = 0
    """Adult movies left out."""


class TconstIds(Sequence[str]):
    """IMDb ids packed in an array of integers, in the catalogue's order: by the
    count of digits, then by number (the order of `ORDER BY length(id), id`)."""

    def __init__(self, keys: Iterable[int] = ()) -> None:
        self.keys = array("q", keys)

    @staticmethod
    def key(tconst: str) -> int | None:
        """The packed form of an id, or None if it is not tt and 7 to 10 digits."""
        digits = tconst[2:]
        if not (
            7 <= len(digits) <= 10
            and tconst.startswith("tt")
            and digits.isascii()
            and digits.isdigit()
        ):
            return None
        return len(digits) << _WIDTH_SHIFT | int(digits)

    def __len__(self) -> int:
        return len(self.keys)

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...

    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        key = self.keys[index]
        return f"tt{key & _NUMBER:0{key >> _WIDTH_SHIFT}d}"

    def index_of(self, key: int) -> int | None:
        """Where a packed id is, if it is here."""
        at = bisect_left(self.keys, key)
        return at if at < len(self.keys) and self.keys[at] == key else None


def load_imdb_catalog(
    basics: str | Path,
    ratings: str | Path | None = None,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    keep: MovieSink | None = None,
    include_adult: bool = False,
) -> LoadedCatalog:
    """The movies of title.basics, with popularity from numVotes if `ratings` is given
    (otherwise a long tail over a seeded shuffle). Movies go to `keep` in batches as
    they are read, then their weights; only ids and weights stay in memory.
    `progress(done, total)` is called with the compressed bytes read so far, now and then.
    Adult titles (isAdult 1) are left out unless `include_adult`."""
    keys = array("q")
    rows = skipped = adult = 0
    batch: list[Movie] = []
    for fields in _rows(basics, BASICS_HEADER, progress):
        rows += 1
        if fields is None:
            skipped += 1
            continue
        tconst, title_type, title, _, is_adult, start_year, _, _, genres = fields
        if title_type != "movie":
            continue
        if is_adult == "1" and not include_adult:
            adult += 1
            continue
        key = TconstIds.key(tconst)
        if key is None or not title or title == NULL:
            skipped += 1
            continue
        if start_year != NULL and not _YEAR.fullmatch(start_year):
            skipped += 1
            continue
        keys.append(key)
        if keep is not None:
            year = None if start_year == NULL else int(start_year)
            kinds = () if genres == NULL else tuple(genres.split(","))
            batch.append(Movie(tconst, title, year, kinds))
            if len(batch) >= BATCH:
                keep.add_catalog_movies(batch)
                batch = []
    if keep is not None and batch:
        keep.add_catalog_movies(batch)
    if not keys:
        raise CatalogError(f"{basics}: no movies in it (titleType 'movie')")
    ids = TconstIds(_sorted_unique(keys))
    del keys
    if ratings is not None:
        weights, rated, bad = _votes(ids, ratings, progress)
        skipped += bad
    else:
        ranks = list(range(1, len(ids) + 1))
        random.Random(seed).shuffle(ranks)
        weights = array("d", (1 / rank**ZIPF_EXPONENT for rank in ranks))
        del ranks
        rated = 0
    if keep is not None:
        keep.weigh_catalog_movies(zip(ids, weights, strict=True))
    return LoadedCatalog(Catalog(ids, weights), rows, skipped, rated, adult)


def kept_imdb_catalog(weights: Iterable[tuple[str, float]]) -> Catalog:
    """The catalogue from its movies' ids and weights as kept, in its order."""
    ids = TconstIds()
    popularity = array("d")
    for tconst, weight in weights:
        key = TconstIds.key(tconst)
        if key is not None:
            ids.keys.append(key)
            popularity.append(weight)
    return Catalog(ids, popularity)


def _sorted_unique(keys: array[int]) -> array[int]:
    """The keys ascending, each once (IMDb's file is in that order already)."""
    if all(a < b for a, b in pairwise(keys)):
        return keys
    return array("q", sorted(set(keys)))


def _votes(
    ids: TconstIds, ratings: str | Path, progress: Callable[[int, int], None] | None
) -> tuple[array[float], int, int]:
    """Each movie's numVotes (the least of them where a movie has none), how many
    movies had one, and how many rows were malformed."""
    weights = array("d", [-1.0]) * len(ids)
    rated = skipped = 0
    for fields in _rows(ratings, RATINGS_HEADER, progress):
        if fields is None or not fields[2].isdigit():
            skipped += 1
            continue
        key = TconstIds.key(fields[0])
        at = None if key is None else ids.index_of(key)
        if at is not None:
            rated += weights[at] < 0
            weights[at] = int(fields[2])
    floor = min((w for w in weights if w >= 0), default=1.0) or 1.0
    for at, weight in enumerate(weights):
        if weight < 0:
            weights[at] = floor
    return weights, rated, skipped


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


def write_title_basics(movies: Iterable[Movie], path: str | Path) -> int:
    """Movies as IMDb's title.basics (gzipped if the name ends in .gz), which
    `load_imdb_catalog` reads back: so produced events can be named. Returns how many."""
    opener = gzip.open if str(path).endswith(".gz") else open
    written = 0
    with opener(path, "wt", encoding="utf-8", newline="\n") as out:
        out.write("\t".join(BASICS_HEADER) + "\n")
        for movie in movies:
            title = " ".join(movie.title.split())  # no tab or newline can end a field early
            year = NULL if movie.year is None else str(movie.year)
            genres = ",".join(movie.genres) or NULL
            out.write(
                f"{movie.movie_id}\tmovie\t{title}\t{title}\t0\t{year}\t{NULL}\t{NULL}\t{genres}\n"
            )
            written += 1
    return written
