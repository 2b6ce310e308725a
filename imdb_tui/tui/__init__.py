"""The full-screen monitor: a thin Textual layer over the pipeline core."""
