"""Layering: the core never imports Textual; SQL stays in the store package, a
reading query in one place for every SQL backend; no import cycle.

The core is every module of the package outside `imdb_tui.tui`, found by walking
the package, so a new module is checked without anyone adding it to a list.
"""

from __future__ import annotations

import ast
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


def test_sql_lives_only_in_the_store_package() -> None:
    store = PACKAGE / "store"
    with_sql = [
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        if store not in path.parents and SQL.search(path.read_text())
    ]
    assert with_sql == []


def test_a_reading_query_lives_in_one_place_for_every_sql_backend() -> None:
    """The jobs' methods are written once (store/sql.py); a backend defines only
    those whose work truly differs."""
    from imdb_tui.store import (
        CatalogueStore,
        EventArchive,
        HealthBoard,
        LeaseBoard,
        MetricsReader,
    )
    from imdb_tui.store.postgres import PostgresStore
    from imdb_tui.store.sqlite import SqliteStore

    differs = {"size_bytes", "close", "catalog_weights"}
    jobs = {
        name
        for job in (MetricsReader, CatalogueStore, HealthBoard, LeaseBoard, EventArchive)
        for name in vars(job)
        if not name.startswith("_")
    }
    for backend in (SqliteStore, PostgresStore):
        assert sorted(jobs & set(vars(backend)) - differs) == [], backend.__name__
    assert jobs - differs <= set(dir(SqliteStore)) & set(dir(PostgresStore))
    both = set(vars(SqliteStore)) & set(vars(PostgresStore)) - {"__init__", "__doc__", "__module__"}
    assert both <= {
        # What truly differs: opening, locking, the bulk path, retries, size.
        "open",
        "open_read_only",
        "reader",
        "writer",
        "another",
        "close",
        "dialect",
        "write_batch",
        "hold_size",
        "size_bytes",
        "_query",
        "_transact",
        "_add_movie_users",
        "_add_day_users",
        "_see_users",
        "skip_locked",
    }, both


def _imports(path: Path, name: str) -> set[str]:
    """The package's modules `name` imports when it is loaded or type-checked (not
    those a function imports when called)."""
    found = set()
    tree = ast.parse(path.read_text())
    for node in tree.body:
        nodes = list(node.body) if isinstance(node, ast.If) else [node]  # TYPE_CHECKING
        for each in nodes:
            if isinstance(each, ast.ImportFrom):
                base = each.module or ""
                if each.level:  # relative
                    parts = name.split(".")[: -each.level]
                    base = ".".join([*parts, base] if base else parts)
                found.add(base)
                found.update(f"{base}.{alias.name}" for alias in each.names)
            elif isinstance(each, ast.Import):
                found.update(alias.name for alias in each.names)
    return {m for m in found if m.startswith("imdb_tui")}


def test_the_package_has_no_import_cycle() -> None:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    graph = {name: _imports(path, name) & set(modules) - {name} for name, path in modules.items()}
    cycles = []
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


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
