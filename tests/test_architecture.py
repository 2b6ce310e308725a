"""Layering: the core never imports Textual; SQL stays in the store package.

The core is every module of the package outside `imdb_tui.tui`, found by walking
the package, so a new module is checked without anyone adding it to a list.
"""

from __future__ import annotations

import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import imdb_tui

PACKAGE = Path(imdb_tui.__file__).parent
SQL = re.compile(r"\b(SELECT\s.+\sFROM|INSERT\s+INTO|DELETE\s+FROM|CREATE\s+TABLE|PRAGMA)\b")


def core_modules() -> list[str]:
    found = pkgutil.walk_packages([str(PACKAGE)], prefix="imdb_tui.")
    return sorted(
        m.name
        for m in found
        if not m.name.startswith("imdb_tui.tui") and not m.name.endswith(".__main__")
    )


def test_the_core_is_found_by_walking_the_package() -> None:
    modules = core_modules()
    for expected in ("imdb_tui.pipeline.consumer", "imdb_tui.store.sqlite", "imdb_tui.cli"):
        assert expected in modules
    assert not any(m.startswith("imdb_tui.tui") for m in modules)


def test_the_core_runs_without_textual() -> None:
    code = (
        "import sys\n"
        + "".join(f"import {module}\n" for module in core_modules())
        + "loaded = sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.'))\n"
        + "print(','.join(loaded))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_sql_lives_only_in_the_store_backends() -> None:
    # One module per backend in the store package: all but the interfaces and the writer.
    backends = {
        path
        for path in (PACKAGE / "store").glob("*.py")
        if path.name not in ("__init__.py", "writer.py")
    }
    assert {path.name for path in backends} >= {"sqlite.py", "postgres.py"}
    with_sql = [
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        if path not in backends and SQL.search(path.read_text())
    ]
    assert with_sql == []


def test_service_libraries_are_imported_only_when_used(
    tmp_path: Path,
) -> None:
    code = (
        "import sys\n"
        "from imdb_tui.cli import main\n"
        "from imdb_tui.store import open_store\n"
        f"open_store({str(tmp_path / 'e.db')!r}).close()\n"
        "services = ('psycopg', 'boto3', 'botocore', 'textual_serve', 'aiohttp')\n"
        "print(sorted(m for m in services if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
