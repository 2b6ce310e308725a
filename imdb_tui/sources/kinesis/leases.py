"""Sharing a stream's shards among the pipelines of a consumer group: a lease per
shard in the store (owner, expiry), taken up to each live owner's share, renewed,
handed back; a shard made by a resharding waits until its parents are read out."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from imdb_tui.store import LeaseBoard


@dataclass(frozen=True)
class Seen:
    """A shard as a lease round sees it."""

    shard_id: str
    parents: tuple[str, ...]
    drained: bool
    """Read to its end here, and all of it handed out."""


@dataclass(frozen=True)
class Shares:
    """What a lease round found: the shards held now, those read to their end (a
    stored checkpoint says so), and the checkpoints of the shards just taken."""

    held: frozenset[str]
    ended: frozenset[str]
    checkpoints: dict[str, str | None]


def checkpoint_sequence(position: str | None) -> str | None:
    """The sequence number of a stored checkpoint (None: none, or not one of ours)."""
    if position is None:
        return None
    try:
        sequence = json.loads(position)["sequence"]
    except (ValueError, KeyError, TypeError):
        return None
    return None if sequence is None else str(sequence)


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
    """The shards to read are those not read to their end (a checkpoint says so)
    whose parents are: a resharded stream's children wait for their parents, and
    are not leased before then. A shard this pipeline has read to its end keeps
    its lease, outside its share, until the checkpoint saying so is committed."""
    now = time.time()
    until = now + lease_seconds
    known = {seen.shard_id for seen in shards}
    read_out = {s.shard_id for s in shards if read_to_end(board.position(key_of(s.shard_id)))}
    done = {seen.shard_id for seen in shards if seen.drained and seen.shard_id in held} - read_out
    through = read_out | done  # children may be read
    keys = {
        key_of(seen.shard_id): seen.shard_id
        for seen in shards
        if seen.shard_id not in read_out and all(p in through for p in seen.parents if p in known)
    }
    # A row of its own says the pipeline is in the group, shards or none yet.
    board.take_lease(group, f"member:{owner}", owner, until, now)
    holders = board.lease_holders(group, now)
    owners = set(holders.values()) | {owner}
    to_read = [key for key in sorted(keys) if keys[key] not in done]
    share = -(-len(to_read) // len(owners))  # rounded up
    mine = [
        key
        for key in sorted(keys)
        if holders.get(key) == owner and board.take_lease(group, key, owner, until, now)
    ]
    reading = [key for key in mine if keys[key] not in done]
    letting_go = reading[share:] + [key_of(shard_id) for shard_id in held & read_out]
    if letting_go:
        board.release_leases(group, owner, letting_go)
    taken = {keys[key] for key in mine if key not in reading[share:]}
    checkpoints: dict[str, str | None] = {}
    for key in to_read:
        if len(reading) >= share:
            break
        if key not in holders and board.take_lease(group, key, owner, until, now):
            reading.append(key)
            taken.add(keys[key])
            checkpoints[keys[key]] = checkpoint_sequence(board.position(key))
    return Shares(frozenset(taken), frozenset(read_out), checkpoints)
