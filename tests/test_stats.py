"""What the pipeline measures: the stored rate at any number of commits, lag in its units."""

from __future__ import annotations

import pytest

from imdb_tui.display import (
    cells,
    clock_text,
    count_in,
    first_fitting,
    fit,
    left_cut,
    millis_text,
    share_text,
    short_count,
)
from imdb_tui.pipeline.stats import RATE_SPAN, Stats
from imdb_tui.tui.pipeline_panel import _lag


@pytest.mark.parametrize("commits_per_second", [1, 85, 1_000, 5_000])
def test_the_measured_rate_is_the_true_rate_at_any_number_of_commits(
    commits_per_second: int,
) -> None:
    stats = Stats(started=0.0)
    batch = 64
    at = 0.0
    for n in range(1, 10 * commits_per_second + 1):  # ten seconds on an injected clock
        at = n / commits_per_second
        stats.committed(at, batch, 0, 0)
    assert stats.ingest_rate(at) == pytest.approx(batch * commits_per_second, rel=0.01)
    # It never reads as everything stored over the window (what a short history gave).
    assert stats.ingest_rate(at) < stats.stored / RATE_SPAN


def test_the_rate_falls_to_zero_when_nothing_is_stored_and_counts_from_the_start() -> None:
    stats = Stats(started=100.0)
    stats.committed(100.5, 1_000, 0, 0)
    assert stats.ingest_rate(101.0) == pytest.approx(1_000)  # one second since the start
    assert stats.ingest_rate(110.0) == 0.0
    stats.committed(111.0, 300, 0, 0)
    assert stats.ingest_rate(112.0) == pytest.approx(100)


def test_lag_figures_carry_their_own_units() -> None:
    assert _lag(128, 10_000) == "128 ms / 10 s"  # was "0 / 10 s"
    assert _lag(128, 253) == "128 / 253 ms"  # one unit, said once
    assert _lag(12_000, 89_000) == "12 / 89 s"
    assert _lag(2_580_000, 8_820_000) == "43 min / 2.5 h"  # not "2,580 / 8,820 s"
    assert _lag(2_580_000, 8_820_000, room=13) == "43m / 2.5h"  # never wrapped
    assert millis_text(999) == "999 ms" and millis_text(9_949) == "9.9 s"
    assert _lag(2_282, 3_472) == "2.3 / 3.5 s"  # fits the panel at 80 columns
    assert _lag(None, None) == "-"


def test_stream_time_before_any_event_is_a_dash() -> None:
    assert clock_text(None, None, None) == "stream time —"
    assert clock_text(None, None, 60) == "stream time — · replay 60x"


def test_a_long_path_is_cut_from_the_left_keeping_the_file_name() -> None:
    path = "/root/.local/share/imdb-tui/events.db"
    assert left_cut(path, 40) == path
    assert left_cut(path, 26) == "…/share/imdb-tui/events.db"
    assert left_cut(path, 15) == "…/events.db"  # never a word cut in the middle
    assert len(left_cut(path, 15)) <= 15 and left_cut("x" * 30, 8) == "…" + "x" * 7


def test_titles_fit_their_columns_in_terminal_cells_and_a_cut_one_ends_in_an_ellipsis() -> None:
    """As `report`'s text tables show them: a wide-character title takes two cells a
    character (padding by characters pushed the columns four cells right), and a
    title too long for its column ends in … (it lost its year with no sign)."""
    assert cells("七人の侍 (1954)") == 15 and cells("Amélie") == 6 and cells("e\u0301") == 1
    assert fit("七人の侍 (1954)", 20) == "七人の侍 (1954)     " and cells(fit("七人の侍", 20)) == 20
    long = "The Lord of the Rings: The Return of the King and More (2003)"
    assert fit(long, 20) == "The Lord of the Rin…" and fit("七人の侍", 6) == "七人… "
    assert all(cells(fit(text, 9)) == 9 for text in (long, "七人の侍 (1954)", "", "x" * 9))


def test_a_figure_that_does_not_fit_is_written_shorter_never_cut_silently() -> None:
    assert [short_count(n) for n in (0, 9_999, 12_345, 882_688, 1_234_567, 45_000_000)] == [
        "0", "9,999", "12.3k", "883k", "1.2M", "45.0M",
    ]  # fmt: skip
    notes = ["this minute 882,688 · peak 882,688", "this minute 883k · peak 883k", "now 883k"]
    assert first_fitting(notes, 46) == notes[0]
    assert first_fitting(notes, 30) == notes[1]  # the 80x24 chart: the peak's number kept
    assert first_fitting(notes, 8) == "now 883k" and first_fitting(notes, 6) == "now 8…"


def test_counts_and_shares_fit_their_columns() -> None:
    assert count_in(102_815, 7) == "102,815" and count_in(1_234_567, 7) == "1.2M"
    assert count_in(103_559, 7, "+") == "+104k" and count_in(99_999, 7, "+") == "+99,999"
    assert (
        share_text(1.0) == "100%" and share_text(0.054) == " 5.4%" and share_text(0.9994) == "99.9%"
    )
