"""The leader's spill: children's values held for a follow-on, beyond a budget, out of memory.

A value up to `objects.INLINE_LIMIT` travels inline: the worker that made it
reports its bytes, the journal holds them, and the leader keeps them in the
parent chain's `values` until the follow-on that takes them completes
(fntree/runtime/state.py). A fan-out of a thousand 60 KiB values would hold
60 MB there. So the state counts the bytes it holds (`RunState.held_bytes`);
once a value of `SPILL_MIN` bytes or more would take that count past `budget`,
the leader writes it to the job store's `objects/` as an object of its own
(content-addressed and checked on read like any other) and holds its 40-byte
`ObjectRef` instead. The follow-on's worker reads it there when it runs; the
leader never loads it again.

`FNTREE_SPILL_BUDGET` sets the budget in bytes (tests make it 1: everything spills).

State: `unsynced`, the references written since the last snapshot. Order of
writes and durability: a spilled object is written without fsync: the journal
already holds its bytes durably (the DONE record of the job that made it), and
replaying that record after a crash holds the value again and spills it again
(an intact file of that name is kept, a torn one rewritten). Only a snapshot
replaces those records, so before the state is pickled for one
(`RunState.__getstate__`) `sync` fsyncs every object spilled since the last
one, and the directory: a snapshot never refers to an object a power cut could
lose. Collection treats spilled objects like any other (`live_digests` walks
the chains' values): once the follow-on has completed they are orphans.

The same spill, with a budget of its own, holds the chunks of children not yet
born (fntree/runtime/unborn.py). A state rebuilt by recovery holds what it
replayed; `hold_values` then spills the values and chunks that lie beyond the
budget (the leader calls it when it starts). A spill that
cannot be written (a full disk) holds the value in memory, with a warning.
"""

from __future__ import annotations

import logging
from typing import Any

from fntree.knobs import env_number
from fntree.runtime.objects import ObjectRef, ObjectStore
from fntree.runtime.records import Collected
from fntree.runtime.unborn import spill_unborn

__all__ = ["BUDGET", "SPILL_MIN", "Spill", "held_size", "hold_values"]

log = logging.getLogger("fntree")

BUDGET = 4 << 20  # bytes of children's values the leader holds in memory at most
SPILL_MIN = 1024  # bytes: shorter values are held whatever the count (a reference is 40)


class Spill:
    """Where the leader's state spills held values: `objects/`, not durable until `sync`."""

    def __init__(self, objects: ObjectStore, budget: int = BUDGET) -> None:
        self.objects = objects
        self.budget = budget
        self.unsynced: list[ObjectRef] = []
        self._warned = False

    def put(self, data: bytes) -> bytes | ObjectRef:
        """A reference to `data` written out of line, or `data` itself if it cannot be."""
        try:
            ref = self.objects.put(data, durable=False)
        except OSError as exc:
            if not self._warned:
                log.warning("%s; the leader holds values in memory meanwhile", exc)
                self._warned = True
            return data
        self.unsynced.append(ref)
        return ref

    def sync(self) -> None:
        """Make every object spilled since the last sync durable (before a snapshot)."""
        if self.unsynced:
            self.objects.sync(self.unsynced)
            self.unsynced = []


def held_size(values: Any) -> int:
    """The bytes of the inline values in `values` (a list of stored values), Collected
    lists included; references count nothing."""
    size = 0
    stack = [values]
    while stack:
        for item in stack.pop():
            kind = type(item)
            if kind is bytes:
                size += len(item)
            elif kind is Collected:
                stack.append(item.values)
    return size


def hold_values(state: Any, objects: ObjectStore, budget: int = BUDGET) -> None:
    """Give `state` (a `RunState`) a spill in `objects`, and spill the values and unborn
    chunks it holds beyond `budget` (a state just recovered holds all it replayed)."""
    budget = int(env_number("FNTREE_SPILL_BUDGET", budget, whole=True))
    spill = state.spill = Spill(objects, budget)
    held = 0
    for chain in state.chains.values():
        values = chain.values
        for i, found in enumerate(values):
            value = found
            if type(value) is bytes and len(value) >= SPILL_MIN and held + len(value) > budget:
                values[i] = value = spill.put(value)
            held += held_size((value,))
    state.held_bytes = held
    spill_unborn(state)
