"""Where raw records come from: the Source interface, and one module per kind of source.

Every source hands raw records to the pipeline, which paces, validates and stores
them the same way whatever their origin. A source that can be resumed (a file,
a stream's shard) reports where the records it has handed out end; the pipeline
commits those positions in the same transaction as the batch holding the
records, in order. The store is where a position lives, the one place it is read
back from: on the next start the source is handed the stored positions (and a
stream's source, taking a shard's lease, reads its checkpoint there) and carries
on from there. There is nothing to acknowledge upstream: a file needs nothing,
and a stream's checkpoint is the stored position itself.

A new kind of source is a new module here implementing `Source`, and a line in
`open_source` (imdb_tui/assembly.py) that chooses it from --source.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Final, Protocol

from imdb_tui.events import RawRecord
from imdb_tui.store import SourcePosition

SIMULATOR: Final = "sim"
STDIN: Final = "-"
KINESIS: Final = "kinesis://"


class SourceKind(Enum):
    SIMULATOR = "simulator"
    STDIN = "JSON Lines from stdin"
    FILE = "JSON Lines"
    KINESIS = "Kinesis stream"


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """What a --source (or produce's --to) text names, read once: the CLI, the
    assembly of a pipeline and the sources all go by this."""

    kind: SourceKind
    text: str
    """As given: a file's path, or the stream's URL."""

    @classmethod
    def parse(cls, text: str) -> SourceSpec:
        if text == SIMULATOR:
            return cls(SourceKind.SIMULATOR, text)
        if text == STDIN:
            return cls(SourceKind.STDIN, text)
        if text.startswith(KINESIS):
            return cls(SourceKind.KINESIS, text)
        return cls(SourceKind.FILE, text)

    @property
    def live(self) -> bool:
        """Events made or sent now (the simulator, a stream), not history that a file
        or a pipe may hold: their metrics are read at the wall clock's time."""
        return self.kind in (SourceKind.SIMULATOR, SourceKind.KINESIS)

    @property
    def stream(self) -> str:
        """A Kinesis source's stream name."""
        name = self.text[len(KINESIS) :].strip("/")
        if self.kind is not SourceKind.KINESIS or not name or "/" in name:
            raise SourceError(f"{self.text}: name a stream, as kinesis://STREAM")
        return name


Lookup = Callable[[str], "str | None"]
"""A source's key -> its stored position (None: never stored, or --from-start)."""


class Source(Protocol):
    name: str
    """What to call the source on screen: a file name, stdin, simulator, a stream."""
    trouble: str | None
    """A passing problem the source is retrying (a stream that cannot be reached),
    said for a person; None while reading goes well. A problem it cannot get past
    is raised from `read` as a SourceError instead: the input error that ends a run."""

    @property
    def behind_ms(self) -> float | None:
        """How far behind the newest data reading is, where the source knows (a
        stream's MillisBehindLatest, the most of its shards'); None elsewhere."""
        ...

    async def start(self, stored: Lookup) -> str | None:
        """Before the first read: look up the stored positions and carry on from them.
        Returns where it carries on from, said for a person (None: the start)."""
        ...

    async def read(self, limit: int) -> list[RawRecord]:
        """Up to `limit` raw records; an empty list once the source has ended."""
        ...

    def positions(self) -> Sequence[SourcePosition]:
        """Where the records handed out so far end, per key (none for an unpositioned
        source such as stdin or the simulator)."""
        ...

    def committed(self, positions: Sequence[SourcePosition]) -> None:
        """A batch holding these positions (as `positions` gave them) is committed:
        told batch after batch, in the order they were committed."""
        ...

    def stop(self) -> None:
        """The pipeline is stopping: a read still waiting for input returns [] now.
        Told again (a second Ctrl-C), `rest` stops at once too."""
        ...

    async def rest(self, limit: int) -> list[RawRecord]:
        """Once stopped: up to `limit` of the records nobody could read later, to be
        stored before the end; [] when there are no more. Only a pipe has such
        records (lines already written to it: its writer was most likely stopped
        by the same Ctrl-C). A source with positions is read on from them next
        time, and the simulator and a stream have nothing left over."""
        ...


SIMULATED: Final = SourceSpec(SourceKind.SIMULATOR, SIMULATOR)


class SourceError(Exception):
    """An input that cannot be opened or read, said in one line naming it."""
