"""The live tail (t), driven with Pilot over the real pipeline."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from rich.text import Text
from textual.widgets import DataTable, Input, Static

from imdb_tui.catalog import Catalog, Movie
from imdb_tui.display import literal
from imdb_tui.tail import EventMatch
from imdb_tui.tui.app import MonitorApp
from imdb_tui.tui.movie import MovieScreen
from imdb_tui.tui.tail import PACE, TailScreen

from .test_monitor import monitor, until


def rows(screen: TailScreen) -> list[list[str]]:
    table = screen.query_one(DataTable)
    return [[str(cell) for cell in table.get_row_at(n)] for n in range(table.row_count)]


def note(screen: TailScreen) -> str:
    return str(screen.query_one("#tail-note", Static).render())


async def test_t_shows_the_newest_events_newest_first_sampled_at_a_readable_pace(
    db_path: Path,
) -> None:
    app = monitor(db_path, rate=None, writer_process=False)
    pipeline = app.control.pipeline
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: pipeline.health().stored > 20_000)
            await pilot.press("t")
            await until(pilot, lambda: isinstance(app.screen, TailScreen))
            screen = app.screen
            assert isinstance(screen, TailScreen)
            await until(pilot, lambda: "sampling: the newest 5 of" in note(screen))
            table = screen.query_one(DataTable)
            seqs = [int(str(key.value)) for key in table.rows]
            assert seqs == sorted(seqs, reverse=True) and len(seqs) > 30  # full, newest on top
            # No scrollbar at the rows' end: its thumb, over this many rows, was a sliver
            # drawn as two bar glyphs, taken for another screen's chart showing through.
            assert table.scrollbar_size_vertical == 0 and table.size.width == 120
            with sqlite3.connect(db_path) as db:
                stored = db.execute(
                    "SELECT event_type, title, user_id FROM events JOIN movies USING (movie_id)"
                    " WHERE seq = ?",
                    (seqs[0],),
                ).fetchone()
            assert rows(screen)[0][1:4] == list(stored)
            shown = len(seqs)
            await until(pilot, lambda: table.row_count >= shown + 3 * PACE)
            await pilot.press("down")  # off the top row: held
            await until(pilot, lambda: "held while scrolled" in note(screen))
            held = table.row_count
            stored_then = pipeline.health().stored
            await until(pilot, lambda: pipeline.health().stored > stored_then + 5_000)
            await screen.read_newest()
            assert table.row_count == held
            await pilot.press("home")
            await until(pilot, lambda: table.row_count > held)
            await pilot.press("escape")
            assert not isinstance(app.screen, TailScreen)
    finally:
        pipeline.store.close()


async def test_slash_filters_literally_and_escape_clears_then_leaves(db_path: Path) -> None:
    hostile = "[bold]Boom[/] \x1b[31m100%_"
    catalog = Catalog.of(
        [Movie("tt0000001", hostile, 1999, ("Drama",)), Movie("tt0000002", "Calm", 2000, ())],
        [1.0, 1.0],
    )
    app = monitor(db_path, catalog=catalog, rate=500, writer_process=False)
    pipeline = app.control.pipeline
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, lambda: pipeline.health().stored > 500)
            await pilot.press("t", "slash")
            screen = app.screen
            assert isinstance(screen, TailScreen)
            field = screen.query_one("#tail-filter", Input)
            assert field.has_focus
            await pilot.press(*"rate [bold] p", "enter")  # p: a letter here, not a pause
            assert not pipeline.paused
            assert not field.display and screen.match == EventMatch("rate", words=("[bold]", "p"))
            await pilot.press("slash", "ctrl+u", *"boom[/] 100%_", "enter")
            await until(pilot, lambda: len(rows(screen)) > 3)
            assert all(row[2] == "[bold]Boom[/] \\x1b[31m100%_" for row in rows(screen))
            title = screen.query_one(DataTable).get_row_at(0)[2]
            assert isinstance(title, Text) and not title.spans and title.style == ""
            assert "filter: boom[/] 100%_ (esc clears)" in note(screen)
            await pilot.press("escape")  # clears the filter
            assert screen.match == EventMatch() and isinstance(app.screen, TailScreen)
            await until(pilot, lambda: {row[2] for row in rows(screen)} >= {"Calm"})
            await pilot.press("escape")  # leaves
            assert not isinstance(app.screen, TailScreen)
            await pilot.press("slash")  # a dashboard key no more
            await pilot.press("enter")  # the top movie's screen, and t there: its own tail
            await until(pilot, lambda: isinstance(app.screen, MovieScreen))
            movie_screen = app.screen
            assert isinstance(movie_screen, MovieScreen) and movie_screen.movie_id is not None
            await until(pilot, lambda: movie_screen.movie is not None)
            await pilot.press("t")
            await until(pilot, lambda: isinstance(app.screen, TailScreen))
            assert app.screen is screen  # made once, kept
            assert screen.match == EventMatch(movie_id=movie_screen.movie_id)
            await until(pilot, lambda: len(rows(screen)) > 0)
            titles = {row[2] for row in rows(screen)}
            assert movie_screen.movie is not None
            assert titles == {literal(movie_screen.movie.title)}
    finally:
        pipeline.store.close()


async def test_a_filter_that_cannot_be_read_says_why_and_stays_open(db_path: Path) -> None:
    app: MonitorApp = monitor(db_path, rate=200, writer_process=False)
    try:
        async with app.run_test(size=(100, 30), notifications=True) as pilot:
            await pilot.press("t", "slash", *"type:like", "enter")
            screen = app.screen
            assert isinstance(screen, TailScreen)
            assert screen.query_one("#tail-filter", Input).display
            assert screen.match == EventMatch()
            await until(pilot, lambda: "is not an event type" in str(list(app._notifications)))
    finally:
        app.control.pipeline.store.close()
