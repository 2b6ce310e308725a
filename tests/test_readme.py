"""The README and --help say what the program does: every key the monitor has is listed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from imdb_tui.tui.app import MonitorApp
from imdb_tui.tui.dialogs import KEYS
from tests.postgres_server import _binaries
from tests.test_cli import imdb_tui

README = Path(__file__).parents[1] / "README.md"
SHOWN = {
    "plus": "+",
    "equals_sign": "=",
    "minus": "-",
    "left_square_bracket": "[",
    "right_square_bracket": "]",
    "question_mark": "?",
    "less_than_sign": "<",
    "greater_than_sign": ">",
    "f1": "F1",
}


def bindings() -> set[str]:
    """Every key the monitor binds, as a person types it."""
    keys = set()
    for binding in MonitorApp.BINDINGS:
        for key in binding.key.split(","):  # type: ignore[union-attr]
            keys.add(SHOWN.get(key, key))
    return keys


def test_the_readme_key_table_lists_every_binding() -> None:
    text = README.read_text()
    section = text[text.index("| key | does |") :]
    rows = section[: section.index("\n\n")].splitlines()[2:]
    listed = {key for row in rows for key in re.findall(r"`([^`]+)`", row.split("|")[1])}
    assert bindings() - {"ctrl+c"} <= listed
    assert "ctrl+c" in listed and "ctrl+p" in listed


def test_the_help_screen_and_monitor_help_list_every_binding() -> None:
    in_help = {key for keys, _ in KEYS for key in keys.split(" / ")}
    assert bindings() - {"="} <= in_help  # = is + without shift
    monitor_help = " ".join(imdb_tui("monitor", "--help").stdout.split())
    for key in bindings() - {"=", "space", "F1", "ctrl+c"}:
        assert re.search(rf"(^|[ ,:]){re.escape(key)} ", monitor_help), key
    assert "ctrl+p palette" in monitor_help and "d dead letters" in monitor_help


def test_the_readme_lists_every_table_and_view_in_one_line_each() -> None:
    from imdb_tui.store.model import TABLES, VIEWS

    section = README.read_text().split("## The database\n")[1].split("\n## ")[0]
    listed = set(re.findall(r"^\| `(\w+)`", section, flags=re.MULTILINE))
    mentioned = set(re.findall(r"`(\w+)`", section))
    names = {table.name for table in TABLES} | {view.name for view in VIEWS}
    # movie_user_counts and movie_users_pending go with movie_users_daily's line.
    assert listed | {"movie_user_counts", "movie_users_pending"} == names
    assert names <= mentioned


PRELUDE = """set -euo pipefail
imdb-tui() { "$README_PYTHON" -m tests.readme_runner imdb-tui "$@"; }
make() { "$README_PYTHON" -m tests.readme_runner make "$@"; }
pip() { "$README_PYTHON" -m tests.readme_runner pip "$@"; }
"""


@pytest.mark.timeout(600)  # a minute alone; several beside the other workers' tests
def test_every_shell_block_of_the_readme_runs_as_written(
    tmp_path: Path, postgres_url: str, aws: dict[str, str]
) -> None:
    """Each ```sh block, in order, in one folder, as a newcomer would run them: with a
    home of its own (the default database starts empty), PostgreSQL's libpq settings
    and AWS's endpoint pointing at the tests' servers, and the bucket the README
    names made beforehand, as a user's would be. What runs until stopped is stopped
    after a few seconds (tests/readme_runner.py) and must end cleanly."""
    import boto3

    blocks = re.findall(r"^```sh\n(.*?)^```", README.read_text(), flags=re.M | re.S)
    assert len(blocks) >= 8, blocks
    server = urlsplit(postgres_url)
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    env = {key: value for key, value in aws.items() if not key.startswith("XDG_")}
    env.update(
        HOME=str(home),
        PGHOST=server.hostname or "127.0.0.1",
        PGPORT=str(server.port or 5432),
        PGUSER=server.username or "postgres",
        PYTHONPATH=str(README.parent),
        README_PYTHON=sys.executable,
        PATH=os.pathsep.join(
            [str(Path(sys.executable).parent), str(_binaries() or ""), env["PATH"]]
        ),
        TZ="UTC",
    )
    boto3.client("s3").create_bucket(Bucket="lake")
    for block in blocks:
        done = subprocess.run(
            ["bash", "-c", PRELUDE + block],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, (
            f"this README block failed (status {done.returncode}):\n{block}\n"
            f"--- stdout\n{done.stdout[-4000:]}\n--- stderr\n{done.stderr[-4000:]}"
        )
