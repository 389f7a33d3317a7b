"""The records the runtime keeps: job specs, outcomes, journal records and job ids.

A `Spec` describes one job by value and refers to other jobs by id only. Records
are plain tuples and NamedTuples so that the journal pickles them fast and small.

Journal records are tuples whose first item is one of the `R_*` kinds below;
docs/jobstore.md gives their meaning and the order in which they are written.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Any, NamedTuple

from fntree.batch.base import Res, Result, Task

__all__ = ["Res", "Result", "Task"]

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

RECORD_NAMES = {R_ROOT: "ROOT", R_EPOCH: "EPOCH", R_ISSUE: "ISSUE", R_DONE: "DONE",
                R_FAIL: "FAIL", R_GTD: "GTD", R_RETRY_FAILED: "RETRY_FAILED",
                R_FINISH: "FINISH", R_REQUEUE: "REQUEUE",
                R_REBIND: "REBIND", R_TARGETS: "TARGETS", R_RECODE: "RECODE",
                R_RERUN: "RERUN"}

# Outcome kinds: what a job's completion says.
O_VALUE = 0   # (O_VALUE, value)            the job's value; its chain closes
O_SPAWN = 1   # (O_SPAWN, children, follow)  child specs and the follow-on spec or None

ROOT_ID = 1


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
    args: bytes
    res: Res
    slots: tuple[int, ...] = ()
    deps: tuple[Spec, ...] = ()


class Collected(NamedTuple):
    """The value of a chain that spawned children and no follow-on: their values, in order."""

    values: tuple[Any, ...]


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

