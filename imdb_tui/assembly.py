"""A pipeline put together from what the options say: its source, catalogue and store.

A new kind of source is chosen here, in `open_source`, from the --source text.
Errors are SetupError: one line for the user, whatever the interface saying it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO

from imdb_tui.catalog import Catalog, build_catalog
from imdb_tui.clock import Clock, SystemClock
from imdb_tui.pipeline import Pipeline, PipelineSettings
from imdb_tui.simulator import Simulator, SimulatorSettings
from imdb_tui.sources import SIMULATED, Source, SourceError, SourceKind, SourceSpec
from imdb_tui.sources.jsonlines import JsonLinesSource
from imdb_tui.sources.simulated import SimulatedSource
from imdb_tui.store import Store


class SetupError(Exception):
    """Options that do not make a pipeline, said in one line."""


@dataclass(frozen=True, slots=True)
class Inputs:
    """Where a pipeline's events and movies come from, as the options say."""

    source: SourceSpec = SIMULATED
    seed: int = 0
    users: int = 20_000
    titles: int = 1_000
    catalog: str | None = None
    ratings: str | None = None
    include_adult: bool = False
    follow: bool = False
    events: BinaryIO | None = None
    """Stdin's data, when the terminal's keys were moved off it (the monitor)."""
    start_from: str = "trim-horizon"
    """Where a stream's shards with no checkpoint start (--from)."""
    consumer_group: str = "imdb-tui"
    """The pipelines that share a stream's shards (--consumer-group)."""
    lease_seconds: float = 10.0

    def check(self) -> None:
        if self.follow and self.source.kind is SourceKind.SIMULATOR:
            raise SetupError("--follow needs a --source file to follow")
        if self.ratings and not self.catalog:
            raise SetupError("--ratings goes with --catalog (IMDb's title.basics.tsv.gz)")
        if self.include_adult and not self.catalog:
            raise SetupError("--include-adult goes with --catalog (IMDb's title.basics.tsv.gz)")


def simulator(inputs: Inputs, catalog: Catalog, clock: Clock) -> Simulator:
    return Simulator(catalog, SimulatorSettings(seed=inputs.seed, users=inputs.users), clock)


def open_source(
    inputs: Inputs, catalog: Catalog | None, clock: Clock, store: Store | None = None
) -> Source:
    """The source --source names: the simulator, JSON Lines from a file or stdin, or a
    Kinesis stream."""
    if inputs.source.kind is SourceKind.SIMULATOR:
        assert catalog is not None, "the simulator picks its movies from a catalogue"
        return SimulatedSource(simulator(inputs, catalog, clock))
    try:
        if inputs.source.kind is SourceKind.KINESIS:
            from imdb_tui.sources.kinesis import KinesisSource

            # Its leases need a connection of their own; :memory: has none (one pipeline).
            leases = store.another() if store is not None else None
            return KinesisSource(
                inputs.source.text,
                inputs.start_from,
                leases=leases,
                group=inputs.consumer_group,
                lease_seconds=inputs.lease_seconds,
            )
        return JsonLinesSource(inputs.source.text, inputs.events, inputs.follow)
    except SourceError as error:
        raise SetupError(str(error)) from None


def build_pipeline(
    store: Store, settings: PipelineSettings, inputs: Inputs, imdb: Catalog | None = None
) -> Pipeline:
    """A pipeline into `store` on the real clock. `imdb`: IMDb's catalogue, if
    --catalog named it (its titles are in the store already)."""
    inputs.check()
    clock = SystemClock()
    catalog = imdb
    if catalog is None and inputs.source.kind is SourceKind.SIMULATOR:
        # Made up for the simulator only: a file's or a stream's events name their own
        # movies (and making one loads Faker: half a second of CPU at every start).
        catalog = build_catalog(inputs.seed, inputs.titles)
    source = open_source(inputs, catalog, clock, store)
    simulated = inputs.source.kind is SourceKind.SIMULATOR
    return Pipeline(source, store, clock, settings, catalog if simulated else None)
