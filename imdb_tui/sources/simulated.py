"""The simulator as a source: it never ends, and has no positions to resume from."""

from __future__ import annotations

from collections.abc import Sequence

from imdb_tui.events import RawRecord
from imdb_tui.simulator import Simulator
from imdb_tui.sources import Lookup
from imdb_tui.store import SourcePosition


class SimulatedSource:
    name = "simulator"

    trouble: str | None = None  # reading never waits on a passing problem
    behind_ms: float | None = None  # no newest data to be behind

    def __init__(self, simulator: Simulator) -> None:
        self._simulator = simulator

    async def start(self, stored: Lookup) -> str | None:
        return None  # each run simulates afresh

    async def read(self, limit: int) -> list[RawRecord]:
        return list(self._simulator.records(limit))

    def positions(self) -> Sequence[SourcePosition]:
        return ()

    def committed(self, positions: Sequence[SourcePosition]) -> None:
        pass

    def stop(self) -> None:
        pass  # its reads never wait

    async def rest(self, limit: int) -> list[RawRecord]:
        return []  # it makes its records: none are left over
