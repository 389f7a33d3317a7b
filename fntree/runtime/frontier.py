"""The frontier: how many live chains the leader lets issuing make.

The leader's memory is its live chains (fntree/runtime/state.py): every job that
is ready, running or waiting, about 0.8 KB each. Jobs that spawn children make
more of them: a packet of 256 jobs that spawn 1,000 children each readies
256,000 chains at once, and a wide tree issued breadth-first holds most of its
leaves in memory before the first of them runs (`bench/wide.py --width 1000
--leaves 1000` held 205,000 ready chains, 190 MiB, a fifth of the way in,
before this bound).

`Frontier` learns, per target, how many children a completed job spawned
(`spawns`, a moving mean), and caps how many jobs of a target that spawns are
issued, so that the live chains plus the children that the spawners in flight
are expected to make stay within `limit`:

    live chains + expected children in flight + size * spawns <= limit

A target no job of which has completed yet may spawn any number: at most
`UNTRIED` such jobs per slot (a first packet each) are in flight until one
reports, so the first round fills every slot as it did before.
Over the limit, spawners still go out one per packet while fewer than `slots`
of them are in flight, so a workflow whose own shape holds more than `limit`
chains (a root that spawned a million children at once) keeps its parallelism
and always makes progress; the bound is on what issuing adds, not on the shape.
Jobs that spawn nothing (leaves, follow-ons that gather) are never held back,
and with the ready queue taken newest-first (the leader's docstring) they are
the children of the spawners just done: started subtrees finish first.

State: `spawns` and `free` (per target name: as many entries as targets),
`in_flight` (job id -> expected children, for spawners issued and not yet
reported) and `untried` (jobs issued of targets not yet seen to complete);
entries of jobs lost or failed are pruned when next looked at. Nothing here is
durable: a new leader learns again from its first completions.
"""

from __future__ import annotations

from fntree.runtime.records import O_SPAWN, Result, Spec
from fntree.runtime.state import RunState

SPAWNY = 2.0  # mean children per job from which a target's jobs are held back
UNTRIED = 8  # jobs per slot in flight of targets not yet seen to complete (a first packet)
LIMIT_MIN = 16_384  # live chains the frontier allows, at the least


class Frontier:
    """Caps the packets of targets that spawn, to keep the live chains within `limit`.

    The leader opens each packet (`open`) and asks `admits` for each job it would
    add, in order, unless the job's target is in `free` (seen to spawn fewer than
    `SPAWNY` children: one set lookup, the common case).
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.spawns: dict[str, float] = {}
        self.free: set[str] = set()  # targets whose jobs are never held back
        self.in_flight: dict[int, float] = {}
        self.untried: dict[int, None] = {}  # jobs in flight of targets not seen to complete
        self._slots = 1
        self._room: float | None = None  # chains this packet's spawners may still make
        self._untried_left: int | None = None

    def open(self, slots: int) -> None:
        """A new packet starts: the room is looked at again when a spawner comes."""
        self._slots = slots
        self._room = self._untried_left = None

    def admits(self, state: RunState, job: Spec, first: bool) -> bool:
        """Whether `job` (of a target not in `free`) joins the packet; `first`: it would be
        the packet's first job. False ends the packet."""
        spawns = self.spawns.get(job.name)
        if spawns is None:  # it may spawn any number: a few at a time until one completes
            if self._untried_left is None:
                self._prune(state)
                self._untried_left = UNTRIED * self._slots - len(self.untried)
            if self._untried_left <= 0:
                return False
            self._untried_left -= 1
            self.untried[job.job_id] = None
            return True
        if spawns < SPAWNY:
            return True
        if self._room is None:
            self._prune(state)
            self._room = self.limit - len(state.chains) - sum(self.in_flight.values())
        if self._room < spawns and not (first and len(self.in_flight) < self._slots):
            return False  # (over the limit: one spawner per free slot)
        self._room -= spawns
        self.in_flight[job.job_id] = spawns
        return True

    def reported(self, name: str, result: Result) -> None:
        """A job's result came: learn how many children it spawned."""
        if self.in_flight:
            self.in_flight.pop(result.job_id, None)
        if self.untried:
            self.untried.pop(result.job_id, None)
        outcome = result.outcome
        if not result.ok or outcome is None:
            return
        children = len(outcome[1]) if outcome[0] == O_SPAWN else 0
        known = self.spawns.get(name)
        if known == children == 0:
            return  # (a leaf target, as before: the common case, nothing to learn)
        spawns = self.spawns[name] = children if known is None else 0.8 * known + 0.2 * children
        if spawns < SPAWNY:
            self.free.add(name)
        else:
            self.free.discard(name)

    def _prune(self, state: RunState) -> None:
        """Forget jobs that are no longer in flight (lost, failed, requeued)."""
        for table in (self.in_flight, self.untried):
            for job_id in [j for j in table if not _running(state, j)]:
                del table[job_id]


def _running(state: RunState, job_id: int) -> bool:
    chain = state.chain_of_job(job_id)
    return chain is not None and chain.chain_id in state.running
