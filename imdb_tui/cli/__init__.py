"""The `imdb-tui` command line.

- options.py: the options, their checks, and the Options value they make;
- setup.py: what a command sets up (the store, the catalogue, the pipeline);
- output.py: what the commands print;
- commands.py: the commands themselves, and `main`, the console entry point;
- serving.py: `serve`, the monitor in web browsers;
- pruning.py: `prune`, stored events deleted.

The commands are imported when `main` runs, not with this package: a writer child
process (multiprocessing's spawn) imports the console script again, which imports
this package, and has no use for the command line (a third of a second of CPU at
every writer's start).
"""

from __future__ import annotations

from typing import Any


def main() -> None:
    """Console entry point: errors are one line on stderr, never a traceback."""
    from imdb_tui.cli.commands import main as run

    _register()
    run()


def __getattr__(name: str) -> Any:
    if name == "cli":  # the click group, every command registered
        from imdb_tui.cli.commands import cli

        _register()
        return cli
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _register() -> None:
    from imdb_tui.cli import pruning as pruning  # registers `prune`
    from imdb_tui.cli import serving as serving  # registers `serve`


__all__ = ["cli", "main"]
