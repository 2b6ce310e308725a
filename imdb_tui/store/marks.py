"""Batch marks: which of a writer's batches a store has committed (see BatchMark).

Written once for every SQL backend, with `?` placeholders (`postgres` turns them into
psycopg's). A mark goes in its batch's transaction, so a batch is stored, or known to
be stored, or neither; the last BATCH_MARKS_KEPT of a writer are kept while it runs,
and all of them are dropped when it closes (or, left by a killed run, by retention).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

from imdb_tui.store import BATCH_MARKS_KEPT, AlreadyStored, BatchMark, OutOfOrder

FIND: Final = "SELECT stored, duplicates, rejected FROM batch_marks WHERE writer = ? AND number = ?"
ADD: Final = (
    "INSERT INTO batch_marks (writer, number, stored, duplicates, rejected, written_at)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
CLAIM: Final = (
    "INSERT INTO batch_marks (writer, number, stored, duplicates, rejected, written_at)"
    " VALUES (?, ?, 0, 0, 0, ?) ON CONFLICT DO NOTHING"
)
"""A mark taken first and settled last: waits for a commit of the same mark under way."""
SETTLE: Final = (
    "UPDATE batch_marks SET stored = ?, duplicates = ?, rejected = ?"
    " WHERE writer = ? AND number = ?"
)
TRIM: Final = "DELETE FROM batch_marks WHERE writer = ? AND number <= ?"
FORGET: Final = "DELETE FROM batch_marks WHERE writer = ?"
EXPIRE: Final = "DELETE FROM batch_marks WHERE written_at < ?"

before_step: Callable[[str, BatchMark], None] | None = None
"""A test hook (see writer.FAULT): called at the steps of a marked batch's write:
"committing" (every store: in its transaction, once all is written), and those of a
store that writes a batch in several ("claim", "plan", "apply", "commit" on DynamoDB)."""

Find = Callable[[str, Sequence[object]], Sequence[Any] | None]
"""Runs a query in the batch's transaction and returns its first row, if any."""


def check(find: Find, mark: BatchMark, *, this_one: bool = True) -> None:
    """Raise AlreadyStored if the mark is stored (unless `this_one` is False: it was
    just claimed), OutOfOrder if the batch before it is not."""
    if this_one:
        done = find(FIND, (mark.writer, mark.number))
        if done is not None:
            raise AlreadyStored(int(done[0]), int(done[1]), int(done[2]))
    if mark.after is not None and find(FIND, (mark.writer, mark.after)) is None:
        raise OutOfOrder(f"batch {mark.after} is not stored yet; batches are stored in order")


def trim(mark: BatchMark) -> tuple[str, tuple[str, int]]:
    """The statement dropping the writer's marks older than the kept ones."""
    return TRIM, (mark.writer, mark.number - BATCH_MARKS_KEPT)


def reached(step: str, mark: BatchMark) -> None:
    """Called by a store at a step of a marked batch's write (see before_step)."""
    if before_step is not None:
        before_step(step, mark)


def written(mark: BatchMark) -> None:
    """Called by a store last in a marked batch's transaction, before its commit."""
    reached("committing", mark)
