"""imdb-tui: real-time analytics for IMDb-style user engagement, in the terminal."""

__version__ = "0.1.0"
