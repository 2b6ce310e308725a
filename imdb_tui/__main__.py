"""`python -m imdb_tui` is the same as the `imdb-tui` command."""

from imdb_tui.cli import main

main()
