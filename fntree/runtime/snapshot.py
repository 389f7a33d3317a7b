"""What a starting leader tells its subscribers: the run's state, counted per target.

A display that counted only the events of the leader it watches would be wrong
after every restart (jobs done by earlier leaders, jobs left ready or waiting).
So when a leader starts, after its `EPOCH` is committed, it hands `started` a
`Snapshot` made from the recovered `RunState` (O(live chains), once per leader):

- `targets`: per target, how many jobs are in each state of the one vocabulary
  (`STATES`, docs/states.md): waiting, ready, queued, running, done (of which
  cached), failed;
  Children not yet born (fntree/runtime/unborn.py) count as ready, or waiting
  if they have deps, under their target, from their chunks' counts;
- `chains`: each live chain as (chain id, parent chain id, pending, next job id,
  its target, its state), so a subscriber can follow which waiting job becomes
  ready as the jobs it waits for close, without asking the leader;
- `reports_start`: whether the batch system says when an issued packet's worker
  starts (`packet_started`); when it does, an issued job is *queued* until then
  (in Slurm's or Grid Engine's queue), otherwise it is *running* once issued.

A new leader makes every job an earlier one had issued ready again, so a
snapshot has no queued or running jobs; the fields are there so that the
vocabulary is the same everywhere.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from fntree.runtime.state import WAITING, RunState

# The states of a job, in the order every view lists them (docs/states.md).
STATES = ("waiting", "ready", "queued", "running", "done", "cached", "failed")


class LiveChain(NamedTuple):
    """A live chain as a subscriber follows it; `job` is None while it has no next job."""

    chain_id: int
    parent: int | None
    pending: int
    job: int | None
    name: str | None
    state: str


class Snapshot(NamedTuple):
    """The run's state when a leader starts (see the module docstring)."""

    targets: dict[str, dict[str, int]]
    chains: tuple[LiveChain, ...] = ()
    reports_start: bool = False

    def count(self, state: str) -> int:
        """How many jobs of every target are in `state`."""
        return sum(counts.get(state, 0) for counts in self.targets.values())


def cached_flag(result: Any) -> tuple[bool, ...]:
    """The `DONE` record's last field: `(True,)` for a value from the cache, else nothing.

    Records of jobs that ran keep their four fields, as stores before it wrote them.
    """
    return (True,) if result.cached else ()


def empty_counts() -> dict[str, int]:
    return dict.fromkeys(STATES, 0)


def snapshot(state: RunState, batch: Any = None) -> Snapshot:
    """The snapshot of `state`; `batch`, the batch system, says whether it reports starts."""
    targets: dict[str, dict[str, int]] = {}
    for name, n in state.done.items():
        targets.setdefault(name, empty_counts())["done"] = n
    for name, n in state.cached.items():
        targets.setdefault(name, empty_counts())["cached"] = n
    chains = []
    for chain in state.chains.values():
        job = chain.job
        if chain.chain_id in state.failed:
            kind = "failed"
        elif chain.chain_id in state.running:
            kind = "running"
        elif chain.status == WAITING:
            kind = "waiting"
        else:
            kind = "ready"
        if job is not None:
            targets.setdefault(job.name, empty_counts())[kind] += 1
        chains.append(LiveChain(chain.chain_id, chain.parent, chain.pending,
                                None if job is None else job.job_id,
                                None if job is None else job.name, kind))
    for litter in state.unborn.values():  # counted per chunk, never unpickled
        for chunk in litter.chunks:
            for name, kind, n in chunk.names:
                targets.setdefault(name, empty_counts())[kind] += n
    return Snapshot(targets, tuple(chains), bool(getattr(batch, "reports_start", False)))
