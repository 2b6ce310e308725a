"""The `imdb-tui` command line.

- options.py: the options, their checks, and the Options value they make;
- setup.py: what a command sets up (the store, the catalogue, the pipeline);
- output.py: what the commands print;
- commands.py: the commands themselves, and `main`, the console entry point;
- serving.py: `serve`, the monitor in web browsers;
- pruning.py: `prune`, stored events deleted.
"""

from imdb_tui.cli import pruning as pruning  # registers `prune`
from imdb_tui.cli import serving as serving  # registers `serve`
from imdb_tui.cli.commands import cli, main

__all__ = ["cli", "main"]
