"""Where raw records come from. Every source hands raw records to the pipeline,
which paces, validates and stores them the same way whatever their origin."""

from __future__ import annotations

from typing import Protocol

from imdb_tui.events import RawRecord
from imdb_tui.simulator import Simulator


class Source(Protocol):
    name: str

    async def read(self, limit: int) -> list[RawRecord]:
        """Up to `limit` raw records; an empty list once the source has ended."""


class SimulatedSource:
    """The simulator as a source: it never ends."""

    name = "simulator"

    def __init__(self, simulator: Simulator) -> None:
        self._simulator = simulator

    async def read(self, limit: int) -> list[RawRecord]:
        return list(self._simulator.records(limit))
