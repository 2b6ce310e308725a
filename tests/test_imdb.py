"""IMDb's dataset files as the catalogue, on small fixtures written here in their exact format
(tab-separated UTF-8, a header, \\N for null, no quoting); IMDb's own files are never shipped."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from imdb_tui.catalog import Movie
from imdb_tui.imdb import CatalogError, TconstIds, kept_imdb_catalog, load_imdb_catalog
from imdb_tui.store import open_store

BASICS = [
    "tconst\ttitleType\tprimaryTitle\toriginalTitle\tisAdult\tstartYear\tendYear"
    "\truntimeMinutes\tgenres",
    "tt0000001\tshort\tCarmencita\tCarmencita\t0\t1894\t\\N\t1\tDocumentary,Short",
    "tt0111161\tmovie\tThe Shawshank Redemption\tThe Shawshank Redemption\t0\t1994"
    "\t\\N\t142\tDrama",
    'tt0068646\tmovie\tThe "Godfather\tThe Godfather\t0\t1972\t\\N\t175\tCrime,Drama',
    "tt9999999\tmovie\tNo Year Yet\tNo Year Yet\t0\t\\N\t\\N\t\\N\t\\N",
    "tt0000002\tmovie\ttoo few fields",
    "tt0000003\tmovie\tBad Year\tBad Year\t0\t19x4\t\\N\t90\tDrama",
    "nm0000001\tmovie\tNot a tconst\tx\t0\t2000\t\\N\t90\tDrama",
    "tt0000004\ttvSeries\tA Series\tA Series\t0\t2000\t2001\t30\tDrama",
]
RATINGS = [
    "tconst\taverageRating\tnumVotes",
    "tt0111161\t9.3\t2900000",
    "tt0068646\t9.2\t2000000",
    "tt0000001\t5.7\t2100",
    "tt0068646\tbroken",
]


def write(path: Path, lines: list[str], extra: bytes = b"") -> Path:
    data = ("\n".join(lines) + "\n").encode() + extra
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as packed:
            packed.write(data)
    else:
        path.write_bytes(data)
    return path


class Kept:
    """A sink that remembers what it was given, and when."""

    def __init__(self) -> None:
        self.batches: list[list[Movie]] = []
        self.weights: list[tuple[str, float]] = []

    def add_catalog_movies(self, movies: list[Movie]) -> None:
        self.batches.append(list(movies))

    def weigh_catalog_movies(self, weights: list[tuple[str, float]]) -> None:
        self.weights = list(weights)


def test_movies_are_kept_and_malformed_rows_counted(tmp_path: Path) -> None:
    basics = write(tmp_path / "title.basics.tsv.gz", BASICS, b"tt0000005\tmovie\t\xff\xfe\n")
    kept = Kept()
    loaded = load_imdb_catalog(basics, keep=kept)
    movies = {movie.movie_id: movie for batch in kept.batches for movie in batch}
    assert list(loaded.catalog.movie_ids) == ["tt0068646", "tt0111161", "tt9999999"]  # in order
    assert [movie for movie, _ in kept.weights] == list(loaded.catalog.movie_ids)
    assert loaded.catalog.movies == ()  # the titles went to the sink, not into memory
    assert movies["tt0111161"].title == "The Shawshank Redemption"
    assert movies["tt0068646"].title == 'The "Godfather'  # no quoting: a quote is a character
    assert movies["tt0068646"].genres == ("Crime", "Drama")
    assert movies["tt9999999"].year is None and movies["tt9999999"].genres == ()
    assert loaded.rows == 9 and loaded.skipped == 4  # few fields, bad year, nm id, bad UTF-8


def test_popularity_follows_the_number_of_votes(tmp_path: Path) -> None:
    basics = write(tmp_path / "title.basics.tsv.gz", BASICS)
    ratings = write(tmp_path / "title.ratings.tsv.gz", RATINGS)
    loaded = load_imdb_catalog(basics, ratings)
    weight = dict(zip(loaded.catalog.movie_ids, loaded.catalog.popularity, strict=True))
    assert weight["tt0111161"] == 2_900_000 and weight["tt0068646"] == 2_000_000
    assert weight["tt9999999"] == 2_000_000  # unrated: as little as the least voted movie
    assert loaded.rated == 2 and loaded.skipped == 4  # 3 in title.basics, 1 in the ratings


def test_progress_is_reported_to_the_end(tmp_path: Path) -> None:
    basics = write(tmp_path / "title.basics.tsv", BASICS)
    calls: list[tuple[int, int]] = []
    load_imdb_catalog(basics, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1][0] == calls[-1][1] == basics.stat().st_size


@pytest.mark.parametrize(
    ("lines", "message"),
    [(["tconst\tprimaryTitle", "tt1\tx"], "not IMDb's file"), (BASICS[:2], "no movies")],
)
def test_a_file_that_is_not_the_dataset_is_one_line(
    tmp_path: Path, lines: list[str], message: str
) -> None:
    with pytest.raises(CatalogError, match=message):
        load_imdb_catalog(write(tmp_path / "title.basics.tsv", lines))


def test_the_catalogue_read_again_from_the_database_is_the_same(tmp_path: Path) -> None:
    lines = [*BASICS, "tt10000001\tmovie\tEight Digits\tx\t0\t2020\t\\N\t90\tDrama"]
    store = open_store(tmp_path / "events.db")
    loaded = load_imdb_catalog(write(tmp_path / "b.tsv", lines), seed=4, keep=store)
    kept = kept_imdb_catalog(store.catalog_weights())
    assert list(kept.movie_ids) == list(loaded.catalog.movie_ids)  # the simulator draws alike
    assert list(kept.popularity) == list(loaded.catalog.popularity)
    assert list(kept.movie_ids)[-2:] == ["tt9999999", "tt10000001"]
    store.close()


def test_a_file_out_of_order_gives_the_same_catalogue(tmp_path: Path) -> None:
    shuffled = [BASICS[0], *reversed(BASICS[1:]), BASICS[2]]  # and one movie twice
    one = load_imdb_catalog(write(tmp_path / "a.tsv", BASICS), seed=1)
    other = load_imdb_catalog(write(tmp_path / "b.tsv", shuffled), seed=1)
    assert list(other.catalog.movie_ids) == list(one.catalog.movie_ids)
    assert list(other.catalog.popularity) == list(one.catalog.popularity)


@pytest.mark.parametrize("tconst", ["tt0000001", "tt9999999", "tt10000000", "tt0012345678"])
def test_ids_are_packed_without_loss(tconst: str) -> None:
    key = TconstIds.key(tconst)
    assert key is not None and TconstIds([key])[0] == tconst
    assert TconstIds.key("nm0000001") is None and TconstIds.key("tt123") is None
