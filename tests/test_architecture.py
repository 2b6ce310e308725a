"""Layering: the pipeline core never imports Textual."""

from __future__ import annotations

import subprocess
import sys

CORE = [
    "imdb_tui.events",
    "imdb_tui.catalog",
    "imdb_tui.imdb",
    "imdb_tui.clock",
    "imdb_tui.simulator",
    "imdb_tui.sources",
    "imdb_tui.replay",
    "imdb_tui.pipeline",
    "imdb_tui.store",
    "imdb_tui.writer",
    "imdb_tui.metrics",
    "imdb_tui.display",
    "imdb_tui.cli",
]


def test_the_core_runs_without_textual() -> None:
    code = (
        "import sys\n"
        + "".join(f"import {module}\n" for module in CORE)
        + "loaded = sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.'))\n"
        + "print(','.join(loaded))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""
