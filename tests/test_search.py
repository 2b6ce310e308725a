"""Finding any movie by name: in the monitor (s) and with `report --movie TITLE`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable

from imdb_tui.catalog import Catalog, Movie
from imdb_tui.search import TitleIndex, folded
from imdb_tui.tui.app import MonitorApp
from imdb_tui.tui.movie import MovieScreen
from imdb_tui.tui.search import SearchScreen
from tests.test_cli import imdb_tui
from tests.test_monitor import monitor, until

MOVIES = [
    Movie("tt0211915", "Le Fabuleux Destin d'Amélie Poulain", 2001, ("Comedy",)),
    Movie("tt0062622", "2001: A Space Odyssey", 1968, ("Sci-Fi",)),
    Movie("tt0111161", "The Shawshank Redemption", 1994, ("Drama",)),
    Movie("tt0435761", "Toy Story 3", 2010, ("Animation",)),
    Movie("tt0114709", "Toy Story", 1995, ("Animation",)),
    Movie("tt1000001", "Solaris", 1972, ("Sci-Fi",)),
    Movie("tt1000002", "Solaris", 2002, ("Sci-Fi",)),
]
CATALOG = Catalog.of(MOVIES, [1.0] * len(MOVIES))


async def opened(pilot: Pilot[object], app: MonitorApp) -> str:
    """The movie screen opened: the id of the movie it shows, once read."""
    await until(pilot, lambda: isinstance(app.screen, MovieScreen))
    screen = app.screen
    assert isinstance(screen, MovieScreen)
    await until(pilot, lambda: screen.movie is not None)
    assert screen.movie is not None
    return screen.movie.movie_id


def ids(found: list[object]) -> list[str]:
    return [f.movie_id for f in found]  # type: ignore[attr-defined]


def test_words_years_and_ids_find_movies_accents_and_case_aside() -> None:
    index = TitleIndex(((m.movie_id, m.title, m.year) for m in MOVIES), {"tt0114709": 5})
    assert folded("Amélie ÉTÉ") == "amelie ete"
    assert ids(index.find("amelie")) == ["tt0211915"]
    assert ids(index.find("AMÉLIE poulain 2001")) == ["tt0211915"]
    assert ids(index.find("2001")) == ["tt0062622", "tt0211915"]  # its title, its year
    assert ids(index.find("toy story")) == ["tt0114709", "tt0435761"]  # the exact title first
    assert ids(index.find("story 2010")) == ["tt0435761"]
    assert ids(index.find("tt0111161")) == ["tt0111161"]
    assert ids(index.find("solaris")) == ["tt1000001", "tt1000002"]
    assert index.find("nothing like it") == [] and index.find("  ") == []
    unknown = TitleIndex([], {"tt9999999": 3})  # viewed, not in the catalogue: by its id
    (found,) = unknown.find("tt9999999")
    assert (found.title, found.views, found.label) == (None, 3, "tt9999999")


@pytest.fixture
def app(db_path: Path) -> Iterator[MonitorApp]:
    app = monitor(db_path, rate=200.0, catalog=CATALOG, writer_process=False)
    yield app
    app.control.pipeline.store.close()


async def test_s_finds_a_movie_as_you_type_and_enter_opens_it(app: MonitorApp) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.snapshot is not None and app.snapshot.events_today > 0)
        await pilot.press("s")
        assert isinstance(app.screen, SearchScreen)
        screen = app.screen
        await until(pilot, lambda: screen.index is not None)
        await pilot.press(*"amelie 2001")  # the accent left out, and its year
        table = screen.query_one(DataTable)
        assert [str(table.get_row_at(0)[3])] == ["tt0211915"] and table.row_count == 1
        await pilot.press("enter")
        assert await opened(pilot, app) == "tt0211915"
        await pilot.press("escape", "s")
        screen = app.screen
        assert isinstance(screen, SearchScreen)
        await until(pilot, lambda: screen.index is not None)
        await pilot.press(*"solaris")  # one title, two movies: both listed
        table = screen.query_one(DataTable)
        years = [str(table.get_row_at(n)[1]) for n in range(table.row_count)]
        assert sorted(years) == ["1972", "2002"]  # the more viewed first
        await pilot.press("down", *["down"] * years.index("2002"), "enter")
        assert await opened(pilot, app) == "tt1000002"
        await pilot.press("escape", "s")
        await until(pilot, lambda: isinstance(app.screen, SearchScreen))
        await until(pilot, lambda: app.screen.index is not None)  # type: ignore[attr-defined]
        await pilot.press(*"tt0111161", "enter")  # an id
        assert await opened(pilot, app) == "tt0111161"
        await pilot.press("escape", "q")
        await until(pilot, lambda: app.summary is not None)


def test_report_movie_takes_a_title_when_one_movie_matches(tmp_path: Path) -> None:
    db = tmp_path / "e.db"
    catalog = tmp_path / "titles.tsv"
    rows = [
        "tconst\ttitleType\tprimaryTitle\toriginalTitle\tisAdult\tstartYear\tendYear"
        "\truntimeMinutes\tgenres"
    ]
    rows += [f"{m.movie_id}\tmovie\t{m.title}\t{m.title}\t0\t{m.year}\t\\N\t90\t{m.genres[0]}"
             for m in MOVIES]  # fmt: skip
    catalog.write_text("\n".join(rows) + "\n")
    done = imdb_tui("run", "--count", "50", "--rate", "max", "--db", str(db),
                    "--catalog", str(catalog))  # fmt: skip
    assert done.returncode == 0, done.stderr
    one = imdb_tui("report", "--db", str(db), "--json", "--movie", "amelie")
    assert one.returncode == 0, one.stderr
    assert json.loads(one.stdout)["title"] == "Le Fabuleux Destin d'Amélie Poulain"
    exact = imdb_tui("report", "--db", str(db), "--json", "--movie", "Toy Story")
    assert json.loads(exact.stdout)["title"] == "Toy Story"  # the exact title, not Toy Story 3
    both = imdb_tui("report", "--db", str(db), "--movie", "solaris")
    assert both.returncode == 2 and both.stdout == ""
    (line,) = both.stderr.splitlines()
    assert "matches 2 movies: tt1000001 Solaris (1972); tt1000002 Solaris (2002)" in line
    none = imdb_tui("report", "--db", str(db), "--movie", "foo")
    assert none.returncode == 2 and "no movie's title matches it" in none.stderr
