"""The records the runtime keeps: job specs, outcomes, journal records and job ids.

A `Spec` describes one job by value and refers to other jobs by id only. Records
are plain tuples and NamedTuples so that the journal pickles them fast and small.

Two records nest as deep as a workflow does: a `Spec`'s deps (a promise chain
`f(f(...f(x)...))`) and a `Collected` value (children-only chains nested in each
other). Both pickle flat (a preorder list, rebuilt with a stack), so no depth of
workflow reaches the pickler's recursion limit in the journal, a snapshot, or a
packet to or from a worker; a flat one keeps the plain pickled form.

Journal records are tuples whose first item is one of the `R_*` kinds below;
docs/jobstore.md gives their meaning and the order in which they are written.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Any, NamedTuple

from fntree.batch.base import Res, Result, Task
from fntree.runtime.pickled import Pickled

__all__ = ["Res", "Result", "Task"]

_new_tuple = tuple.__new__  # a flat Spec unpickles through it, in C (fntree/batch/base.py)

# Journal record kinds.
R_ROOT = 1          # (R_ROOT, spec, fns)
R_EPOCH = 2         # (R_EPOCH, epoch, pid, host)
R_ISSUE = 3         # (R_ISSUE, job_id, attempt)
R_DONE = 4          # (R_DONE, job_id, outcome, fns, stats)
R_FAIL = 5          # (R_FAIL, job_id, attempt, permanent, message, log[, res for the retry])
R_GTD = 6           # (R_GTD, chain_id)
R_RETRY_FAILED = 7  # (R_RETRY_FAILED,)
R_FINISH = 8        # (R_FINISH, value)
R_REQUEUE = 9       # (R_REQUEUE, job_id)  issued, not run, ready again: no attempt charged
R_REBIND = 10       # (R_REBIND, {name: (fn_key, fn_bytes)})  live jobs of these run new code
R_TARGETS = 11      # (R_TARGETS, {fn_key: (module, qualname, code_hash, origin)})
R_RECODE = 12       # (R_RECODE, {old_key: (new_key, fn_bytes)})  live jobs of old_key run new code
R_RERUN = 13        # (R_RERUN, spec, fns)  the run starts again from a new root (--rerun-changed)
R_SEGMENT = 14      # (R_SEGMENT, lineage, number)  first in a segment: whose store, which segment
# (R_DONE_PICKLED, job_id, pickled outcome, fns[, cached])  a DONE whose outcome is kept as
# the worker pickled it; the journal reads it back as the R_DONE it stands for.
R_DONE_PICKLED = 15
# (R_DONE_FLAT, job_id, (O_SPAWN, children, follow-on), fns[, cached])  a DONE whose specs
# are plain tuples of their fields (`flat_outcome`): the C pickler saves them without a call
# into Python; the journal reads it back as the R_DONE it stands for (`spec_outcome`).
R_DONE_FLAT = 16
R_BEAR = 17         # (R_BEAR, chain_id, count)  the chain's next `count` unborn children are born

RECORD_NAMES = {R_ROOT: "ROOT", R_EPOCH: "EPOCH", R_ISSUE: "ISSUE", R_DONE: "DONE",
                R_FAIL: "FAIL", R_GTD: "GTD", R_RETRY_FAILED: "RETRY_FAILED",
                R_FINISH: "FINISH", R_REQUEUE: "REQUEUE",
                R_REBIND: "REBIND", R_TARGETS: "TARGETS", R_RECODE: "RECODE",
                R_RERUN: "RERUN", R_DONE_PICKLED: "DONE", R_DONE_FLAT: "DONE",
                R_BEAR: "BEAR"}

# Outcome kinds: what a job's completion says.
O_VALUE = 0   # (O_VALUE, value)            the job's value; its chain closes
O_SPAWN = 1   # (O_SPAWN, children, follow)  child specs and the follow-on spec or None

ROOT_ID = 1


class ObjectRef(NamedTuple):
    """A value stored out of line (fntree/runtime/objects.py): the sha256 of its bytes and
    their length. It stands where the bytes would: a spec's `args`, an outcome's value."""

    digest: bytes
    size: int

    @property
    def name(self) -> str:
        return self.digest.hex()


class Spec(NamedTuple):
    """One job to run.

    `slots[i]` is the index, among the values of the children its predecessor
    spawned, of the value that fills the job's i-th promise. `deps` are promised
    calls the job needs that are not children of its predecessor: they run first,
    as children of the job's own chain, and then `slots` index into their values.
    """

    job_id: int
    name: str
    fn_key: bytes
    args: bytes | ObjectRef | Pickled  # a Pickled only until stored (runtime/pickled.py)
    res: Res
    slots: tuple[int, ...] = ()
    deps: tuple[Spec, ...] = ()

    def __reduce__(self) -> tuple[Any, ...]:
        # Deps nest as deep as a workflow's promises do: pickled flat, never recursively.
        if not self.deps:
            return _new_tuple, (Spec, tuple(self))
        return _unflatten_spec, (_flatten_spec(self),)


class Collected(NamedTuple):
    """The value of a chain that spawned children and no follow-on: their values, in order."""

    values: tuple[Any, ...]

    def __reduce__(self) -> tuple[Any, ...]:
        # Children-only chains nest as deep as the tree: pickled flat, never recursively.
        if Collected not in map(type, self.values):
            return Collected, (self.values,)
        return _unflatten_collected, _flatten_collected(self)


def flat_outcome(outcome: tuple[Any, ...]) -> tuple[Any, ...]:
    """A spawning outcome with its child and follow-on specs as plain tuples of their
    fields (a spec's deps stay specs: they are rare, and pickle flat on their own)."""
    _, children, follow = outcome
    return O_SPAWN, tuple(map(tuple, children)), None if follow is None else tuple(follow)


def spec_outcome(flat: tuple[Any, ...]) -> tuple[Any, ...]:
    """The outcome `flat_outcome` made plain; TypeError if a spec has the wrong fields."""
    kind, children, follow = flat
    if kind != O_SPAWN:
        raise TypeError(f"a flat outcome of kind {kind!r}")
    return O_SPAWN, tuple(map(Spec._make, children)), None if follow is None else Spec._make(follow)


def _flatten_spec(spec: Spec) -> list[tuple[Spec, int]]:
    """A spec and its deps, nested to any depth, as (spec without deps, number of deps)
    in preorder."""
    flat = []
    stack = [spec]
    while stack:
        node = stack.pop()
        flat.append((node._replace(deps=()), len(node.deps)))
        stack.extend(reversed(node.deps))
    return flat


def _unflatten_spec(flat: list[tuple[Spec, int]]) -> Spec:
    """The spec `_flatten_spec` flattened."""
    built: list[Spec] = []
    for node, count in reversed(flat):
        if count:
            deps = tuple(built[:-count - 1:-1])
            del built[-count:]
            built.append(node._replace(deps=deps))
        else:
            built.append(node)
    return built[0]


def _flatten_collected(value: Collected) -> tuple[list[int], list[Any]]:
    """Nested collected values as (preorder shape: a count per `Collected`, -1 per
    stored value; the stored values in order)."""
    shape: list[int] = []
    leaves: list[Any] = []
    stack: list[Any] = [value]
    while stack:
        node = stack.pop()
        if type(node) is Collected:
            shape.append(len(node.values))
            stack.extend(reversed(node.values))
        else:
            shape.append(-1)
            leaves.append(node)
    return shape, leaves


def _unflatten_collected(shape: list[int], leaves: list[Any]) -> Collected:
    """The value `_flatten_collected` flattened."""
    built: list[Any] = []
    leaf = len(leaves)
    for count in reversed(shape):
        if count < 0:
            leaf -= 1
            built.append(leaves[leaf])
        elif count:
            values = tuple(built[:-count - 1:-1])
            del built[-count:]
            built.append(Collected(values))
        else:
            built.append(Collected(()))
    result: Collected = built[0]
    return result


def derive_id(parent: int, kind: int, index: int) -> int:
    """A job id from its parent's id, how it is related to it and its position."""
    digest = hashlib.blake2b(struct.pack("<QBQ", parent, kind, index), digest_size=8).digest()
    return int.from_bytes(digest, "little") or 1


CHILD, FOLLOW_ON, DEP, RERUN = 1, 2, 3, 4  # RERUN: the root of the n-th re-run


def job_hex(job_id: int) -> str:
    """How people see a job id."""
    return f"{job_id:016x}"


def parse_job_hex(text: str) -> int:
    """A job id from how people see it; ValueError if it is not one."""
    return int(text, 16)

