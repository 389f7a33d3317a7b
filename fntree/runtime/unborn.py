"""Children waiting to be born: the children of one job beyond a batch, out of the live state.

A job that returns `n` children would make `n` live chains at once
(fntree/runtime/state.py), about 0.8 KB each: a million from one job is most of
a gigabyte. So when a job spawns `LAZY_MIN` children or more, none of them is
made a chain when its `DONE` record is applied: they wait in its chain's
`Litter`, as pickled chunks of `CHUNK` specs, and are born (made chains, ready
or waiting on their deps, as the eager path makes them) only when a `BEAR`
record says so. The leader writes one when few jobs are ready and the live
chains leave room (fntree/runtime/leader.py, `_bear`), so the live chains stay
near the frontier's limit whatever the fan-out.

Exact replay: what is unborn is a function of the journal alone. `LAZY_MIN` is
part of the meaning of a `DONE` record (a constant: a store replays the same
under any leader), and `(BEAR, chain, count)` bears the chain's next `count`
children in order, across or within chunks, so the chunk size (`CHUNK`) and the
count a leader bears at a time are free to change between leaders. A child's job
id is in its spec, so a child born late has the id, position and chain it would
have had born at once.

State per litter: `next`, the position among its chain's children of the next to
be born, and `chunks`, the unborn ones in order. Each chunk carries what the
readers count without unpickling it: its jobs per (target, state) (a child with
deps is waiting, its deps ready or waiting), per function key, and the objects
its specs' arguments refer to. A chunk's bytes are held in memory while the
state's count of them (`RunState.unborn_bytes`) stays within the spill's budget;
past it, the leader's spill (fntree/runtime/spill.py) writes them to `objects/`
and the chunk holds the 40-byte reference instead, read back when it is born.
Those objects are not fsynced when written: the `DONE` record holds the same
specs until a snapshot replaces it, and a snapshot syncs them first.
"""

from __future__ import annotations

import hashlib
import pickle
from collections import Counter, deque
from typing import Any, NamedTuple

from fntree.knobs import env_number
from fntree.runtime.records import ObjectRef, Spec, _flatten_spec, _unflatten_spec

LAZY_MIN = 4096  # children of one job from which they wait unborn (never changes: see above)
BIRTHS = 1024  # children a leader's BEAR bears at a time (`FNTREE_BIRTHS`: `births()`)
CHUNK = int(env_number("FNTREE_UNBORN_CHUNK", 1024, whole=True))  # specs per pickled chunk


class Chunk(NamedTuple):
    """Unborn children, in order: pickled specs (or their spilled reference) and their counts."""

    length: int  # specs
    data: bytes | ObjectRef
    names: tuple[tuple[str, str, int], ...]  # (target, "ready" or "waiting", jobs)
    keys: tuple[tuple[bytes, int], ...]  # (function key, jobs)
    refs: tuple[bytes, ...]  # digests of the objects the specs' arguments refer to

    @property
    def held(self) -> int:
        """Bytes this chunk holds in memory."""
        return len(self.data) if type(self.data) is bytes else 0


class Litter:
    """The unborn children of one chain: `next` is the position of the first of them."""

    __slots__ = ("chunks", "next")

    def __init__(self, start: int, chunks: deque[Chunk]) -> None:
        self.next = start
        self.chunks = chunks

    def count(self) -> int:
        return sum(chunk.length for chunk in self.chunks)


def births() -> int:
    """How many children a leader bears at a time: `FNTREE_BIRTHS`, else `BIRTHS`."""
    return int(env_number("FNTREE_BIRTHS", BIRTHS, whole=True))


def pack(specs: list[Spec] | tuple[Spec, ...]) -> Chunk:
    """A chunk of `specs`, counted."""
    names: Counter[tuple[str, str]] = Counter()
    keys: Counter[bytes] = Counter()
    refs: list[bytes] = []
    stack = list(specs)
    while stack:
        spec = stack.pop()
        names[spec.name, "waiting" if spec.deps else "ready"] += 1
        keys[spec.fn_key] += 1
        if type(spec.args) is ObjectRef:
            refs.append(spec.args.digest)
        if spec.deps:
            stack.extend(spec.deps)
    data = pickle.dumps(tuple(specs), protocol=pickle.HIGHEST_PROTOCOL)
    return Chunk(len(specs), data, tuple((n, k, c) for (n, k), c in names.items()),
                 tuple(keys.items()), tuple(dict.fromkeys(refs)))


def chunks_of(children: tuple[Spec, ...]) -> list[Chunk]:
    """`children` packed in chunks of `CHUNK` specs."""
    return [pack(children[i:i + CHUNK]) for i in range(0, len(children), CHUNK)]


def unpack(chunk: Chunk, objects: Any) -> list[Spec]:
    """The specs of `chunk`; a spilled one is read from `objects` (an `ObjectStore`)."""
    data = chunk.data
    if type(data) is ObjectRef:
        if objects is None:
            raise ValueError("an unborn chunk is stored out of line and no objects/ is known")
        data = objects.get(data)
    assert type(data) is bytes
    specs: tuple[Spec, ...] = pickle.loads(data)
    return list(specs)


def renamed(spec: Spec, keys: dict[bytes, bytes]) -> Spec:
    """`spec`, its deps too (to any depth, without recursing), running the function keys
    `keys` maps old ones to (RECODE records since it was spawned)."""
    flat = [(node if node.fn_key not in keys else node._replace(fn_key=keys[node.fn_key]),
             count) for node, count in _flatten_spec(spec)]
    return _unflatten_spec(flat)


def conceive(state: Any, chain_id: int, children: tuple[Spec, ...]) -> None:
    """`children` of chain `chain_id` (a `RunState`'s) wait unborn, held or spilled."""
    state.unborn[chain_id] = Litter(0, deque(_held(state, c) for c in chunks_of(children)))


def bear(state: Any, chain_id: int, count: int) -> None:
    """The next `count` unborn children of chain `chain_id` are made chains, in order."""
    litter: Litter = state.unborn[chain_id]
    objects = state.objects if state.spill is None else state.spill.objects
    specs: list[Spec] = []
    while len(specs) < count and litter.chunks:
        chunk = litter.chunks.popleft()
        state.unborn_bytes -= chunk.held
        got = unpack(chunk, objects)
        want = count - len(specs)
        if len(got) > want:  # (a leader that bore in other counts than this chunk's)
            litter.chunks.appendleft(_held(state, pack(got[want:])))
            del got[want:]
        specs.extend(got)
    if not litter.chunks:
        del state.unborn[chain_id]
    start = litter.next
    litter.next += len(specs)
    keys = state.recoded
    for k, spec in enumerate(specs):
        state._add_chain(renamed(spec, keys) if keys else spec, chain_id, start + k)


def _held(state: Any, chunk: Chunk) -> Chunk:
    """`chunk` as the state keeps it: in memory within the spill's budget, else spilled."""
    spill = state.spill
    if spill is not None and state.unborn_bytes + chunk.held > spill.budget:
        ref = spill.put(chunk.data)
        if type(ref) is ObjectRef:
            return chunk._replace(data=ref)
    state.unborn_bytes += chunk.held
    return chunk


def spill_unborn(state: Any) -> None:
    """Spill the chunks a recovered state holds beyond its spill's budget."""
    state.unborn_bytes = 0
    for litter in state.unborn.values():
        litter.chunks = deque(_held(state, chunk) for chunk in litter.chunks)


def recode_unborn(recoded: dict[bytes, bytes], functions: dict[bytes, tuple[bytes, bytes]]
                  ) -> None:
    """A RECODE record's {old: (new, bytes)} joins `recoded`, the keys children born
    from now on run instead of those they were spawned with."""
    for old, new in recoded.items():
        if new in functions:
            recoded[old] = functions[new][0]
    recoded.update((old, new) for old, (new, _) in functions.items())


def unborn_keys(unborn: dict[int, Litter], live: Counter[bytes]) -> Counter[bytes]:
    """`live` (jobs per function key) with the unborn children's counted in."""
    for litter in unborn.values():
        for chunk in litter.chunks:
            live.update(dict(chunk.keys))
    return live


def unborn_digests(state: Any, kept: bool = False) -> set[bytes]:
    """The objects the unborn children of `state` need: their spilled chunks and the
    arguments out of line of their specs; with `kept`, also the name a chunk held in memory
    would have stored (an earlier leader may have spilled it: not an orphan, not needed)."""
    live: set[bytes] = set()
    for litter in getattr(state, "unborn", {}).values():
        for chunk in litter.chunks:
            live.update(chunk.refs)
            data = chunk.data
            if type(data) is ObjectRef:
                live.add(data.digest)
            elif kept:
                live.add(hashlib.sha256(data).digest())
    return live
