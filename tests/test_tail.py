"""The live tail's filter, as a user types it."""

from __future__ import annotations

import pytest

from imdb_tui.tail import EventMatch, MatchError, parse_match


@pytest.mark.parametrize(
    ("typed", "match"),
    [
        ("", EventMatch()),
        ("view", EventMatch(event_type="view")),
        ("RATE tt0111161", EventMatch(event_type="rate", movie_id="tt0111161")),
        ("type:click user:u0000042", EventMatch(event_type="click", user_id="u0000042")),
        ("movie:x1 Shawshank  [bold]", EventMatch(movie_id="x1", words=("shawshank", "[bold]"))),
        ("Type:Watchlist_Add", EventMatch(event_type="watchlist_add")),
    ],
)
def test_a_typed_filter_reads_as_the_user_means(typed: str, match: EventMatch) -> None:
    assert parse_match(typed) == match
    assert parse_match(match.describe()) == match  # shown as it could be typed again


@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("type:like", "'like' is not an event type: view, click, rate, watchlist_add"),
        ("user:", "'user:' names no user"),
        ("view click", "two types: an event has one"),
    ],
)
def test_a_filter_that_cannot_be_read_says_why(typed: str, reason: str) -> None:
    with pytest.raises(MatchError, match=reason):
        parse_match(typed)
