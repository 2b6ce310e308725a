"""Sharing a stream's shards among the pipelines of a consumer group: a lease per
shard in the store (owner, expiry), taken up to each live owner's share, renewed,
handed back once what was read from it is committed; a shard made by a resharding
waits until its parents are read out."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from imdb_tui.store import LeaseBoard


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Where reading a shard got to: the record at `sequence`, all of it, or, if its
    parts (an aggregate's user records, an array's elements) were not all handed out,
    those up to `subsequence` (the KCL's extended sequence number)."""

    sequence: str
    subsequence: int | None = None

    def after(self) -> dict[str, object]:
        """As a stored position says it."""
        if self.subsequence is None:
            return {"sequence": self.sequence}
        return {"sequence": self.sequence, "subsequence": self.subsequence}


@dataclass(frozen=True)
class Seen:
    """A shard as a lease round sees it."""

    shard_id: str
    parents: tuple[str, ...]
    drained: bool
    """Read to its end here, and all of it handed out."""
    settled: bool = True
    """Every position of it handed out here is committed: its lease may be handed
    back without a batch still on its way storing an older checkpoint after the
    next reader's newer ones."""


@dataclass(frozen=True)
class Shares:
    """What a lease round found: the shards held to read now, those held only until
    what was read from them is committed (not read any more), those read to their
    end (a stored checkpoint says so), and the checkpoints of the shards just taken."""

    held: frozenset[str]
    ended: frozenset[str]
    checkpoints: dict[str, Checkpoint | None]
    leaving: frozenset[str] = frozenset()


def stored_checkpoint(position: str | None) -> Checkpoint | None:
    """The checkpoint a stored position holds (None: none, or not one of ours)."""
    if position is None:
        return None
    try:
        stored = json.loads(position)
        sequence, subsequence = stored["sequence"], stored.get("subsequence")
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    if sequence is None:
        return None
    return Checkpoint(str(sequence), subsequence if type(subsequence) is int else None)


def read_to_end(position: str | None) -> bool:
    """Whether a stored checkpoint says its shard was read to its end."""
    if position is None:
        return False
    try:
        return json.loads(position).get("ended") is True
    except (ValueError, AttributeError):
        return False


def share_on(
    board: LeaseBoard,
    group: str,
    owner: str,
    lease_seconds: float,
    key_of: Callable[[str], str],
    shards: list[Seen],
    held: frozenset[str],
) -> Shares:
    """The shards to read are those not read to their end (a stored checkpoint says
    so) whose parents are: a resharded stream's children wait for their parents'
    checkpoints, and are not leased before then. A shard this pipeline has read to its end keeps
    its lease, outside its share, until the checkpoint saying so is committed; a
    shard over its share, or read out by another, is not read any more and its
    lease kept until its own positions are (a later round lets it go)."""
    now = time.time()
    until = now + lease_seconds
    every = {key_of(seen.shard_id): seen for seen in shards}
    read_out = {s.shard_id for s in shards if read_to_end(board.position(key_of(s.shard_id)))}
    done = {seen.shard_id for seen in shards if seen.drained and seen.shard_id in held} - read_out
    # Children may be read once the checkpoint saying their parent is read out is
    # committed, not as soon as its reader has drained it: should that reader's lease
    # run out first, another reads the parent again from its stored checkpoint, and
    # would then do so after its children.
    through = read_out
    keys = {
        key: seen.shard_id
        for key, seen in every.items()
        if seen.shard_id not in read_out and all(p in through for p in seen.parents if p in every)
    }
    # A row of its own says the pipeline is in the group, shards or none yet.
    board.take_lease(group, f"member:{owner}", owner, until, now)
    holders = board.lease_holders(group, now)
    owners = set(holders.values()) | {owner}
    to_read = [key for key in sorted(keys) if keys[key] not in done]
    share = -(-len(to_read) // len(owners))  # rounded up
    mine = [
        key
        for key in sorted(every)
        if holders.get(key) == owner and board.take_lease(group, key, owner, until, now)
    ]
    reading = [key for key in mine if key in keys and keys[key] not in done]
    over = reading[share:] + [key for key in mine if key not in keys]
    # Handed back in two rounds: first no longer read (so no new position of it can
    # be on its way while it goes), then, once its positions are committed, let go.
    letting_go = [key for key in over if every[key].settled and every[key].shard_id not in held]
    if letting_go:
        board.release_leases(group, owner, letting_go)
    taken = {keys[key] for key in mine if key not in over}
    leaving = {every[key].shard_id for key in over if key not in letting_go}
    checkpoints: dict[str, Checkpoint | None] = {}
    for key in to_read:
        if len(reading) >= share:
            break
        if key not in holders and board.take_lease(group, key, owner, until, now):
            reading.append(key)
            taken.add(keys[key])
            checkpoints[keys[key]] = stored_checkpoint(board.position(key))
    return Shares(frozenset(taken), frozenset(read_out), checkpoints, frozenset(leaving))
