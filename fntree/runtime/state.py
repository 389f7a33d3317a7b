"""The run's state and its one transition function, `apply(state, record)`.

State lives per chain (a founder and its follow-ons; docs/jobstore.md draws the
machine). A `Chain` is waiting while `pending > 0`, ready when it has a next job
and nothing pending, running while that job is issued, failed when the job has
no retries left; a closed chain hands its value to its parent and is dropped.

`apply` is used the same way by the live leader (on records it has just
appended to the journal) and by recovery (on records read back from it), so a
replayed state equals the state the leader had. It does no I/O: what the leader
must do outside memory (remove global temp dirs) is queued in `to_clean`. The one
exception is the leader's spill (`spill`, fntree/runtime/spill.py, None in
readers): a value held past the budget is written to `objects/` and held as its
reference, which reads back as the same bytes.

Invariants:
- `by_job[j] == c` exactly when chain `c`'s next job has id `j`;
- a chain is in `ready` iff it has a next job, nothing pending, and is neither
  running nor failed;
- values of a chain's children live in the chain until it closes, or until the
  job that took them completes; `held_bytes` is the sum of the inline ones;
- a chain's job holds no deps: they are chains of their own from the moment it
  is added.

Unborn children (fntree/runtime/unborn.py): a job that spawns 4,096 children or
more makes none of them a chain; they wait in `unborn[chain]` (counted in its
`pending`, not in `held()`) until `BEAR` records make them chains, in order.

No transition recurses: deps are expanded and closes propagate up the tree with
loops, so a workflow of any depth (children nested 100,000 deep, deps 10,000
deep) is applied, replayed and snapshotted alike.

Memory: every entry of `chains`, `by_job`, `ready`, `running` and `failed`
belongs to a live chain or its next job (`held()` counts them); a chain is
deleted when it closes, so a completed subtree leaves nothing behind but the
value it hands its parent (held in the parent's `values` until the parent's
follow-on completes; values over `objects.INLINE_LIMIT` are 40-byte refs). How
many chains are live at once is the leader's affair (its frontier). A dict
keeps the table of the most entries it once held: `shrink()` rebuilds the
tables at their size now, in the same order (the leader calls it after each
compaction). Per target, not per job: `done`, `cached`, `fns`, `targets`.

Beside the chains: `fns` (each function key's pickled function), `targets`
(what each key is: module, qualname, code hash, origin; `TARGETS` records) and
`done_by_code` (completed jobs by code hash), which a restart compares with
the code it loads (fntree/changes.py).

A `RERUN` record (`fntree restart --rerun-changed`, fntree/rerun.py) starts the
run again from a new root spec, made from the recorded root call with the
current code and a fresh root id (so no id, log or temp dir of the earlier run
is reused): every open chain, failure and the finished value are dropped; the
counts of completed jobs, `fns` and `targets` are kept.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from fntree.runtime.records import (
    O_VALUE,
    R_BEAR,
    R_DONE,
    R_EPOCH,
    R_FAIL,
    R_FINISH,
    R_GTD,
    R_ISSUE,
    R_REBIND,
    R_RECODE,
    R_REQUEUE,
    R_RERUN,
    R_RETRY_FAILED,
    R_ROOT,
    R_SEGMENT,
    R_TARGETS,
    Collected,
    ObjectRef,
    Res,
    Spec,
)
from fntree.runtime.spill import SPILL_MIN, held_size
from fntree.runtime.unborn import LAZY_MIN, Litter, bear, conceive, recode_unborn, unborn_keys

WAITING, READY, RUNNING, FAILED = "waiting", "ready", "running", "failed"


class Chain:
    """A founder and its follow-ons, as far as they have run.

    Mutable on purpose: the leader updates thousands of chains a second, and
    `apply` is the only code that changes one.
    """

    __slots__ = ("attempts", "chain_id", "failures", "gtd", "index", "job", "parent",
                 "pending", "status", "values")

    def __init__(self, chain_id: int, parent: int | None, index: int, job: Spec) -> None:
        self.chain_id = chain_id
        self.parent = parent
        self.index = index
        self.job: Spec | None = job
        self.pending = 0
        self.values: list[Any] = []
        self.status = READY
        self.attempts = 0
        self.failures = 0
        self.gtd = False

    def slot_values(self) -> tuple[Any, ...]:
        assert self.job is not None
        return tuple(self.values[i] for i in self.job.slots)


class RunState:
    """Everything the leader knows, rebuilt from the journal by `apply`."""

    def __init__(self) -> None:
        self.chains: dict[int, Chain] = {}
        self.by_job: dict[int, int] = {}
        self.ready: dict[Res, dict[int, None]] = {}
        self.running: dict[int, int] = {}
        self.failed: dict[int, tuple[str, str | None]] = {}
        self.fns: dict[bytes, bytes] = {}
        self.done = Counter[str]()
        self.cached = Counter[str]()  # of `done`, jobs whose value came from the cache
        self.epoch = 0
        self.finished = False
        self.value: Any = None
        self.root: Spec | None = None
        self.origin: tuple[str, int] | None = None  # a snapshot's (store lineage, number)
        self.to_clean: list[int] = []
        # What each function key is: (module, qualname, code hash, origin); and how
        # many jobs completed with each code hash (what a restart compares against).
        self.targets: dict[bytes, tuple[str, str, bytes, str]] = {}
        self.done_by_code = Counter[bytes]()
        self.reruns = 0  # RERUN records: times the run started again from its root
        # The bytes of the inline values the chains hold, and where the leader spills
        # those beyond its budget (fntree/runtime/spill.py); None: all are held.
        self.held_bytes = 0
        self.spill: Any = None
        # Children not yet born, per chain (fntree/runtime/unborn.py), the bytes of their
        # chunks held in memory, and the function keys RECODE records changed since.
        self.unborn: dict[int, Litter] = {}
        self.unborn_bytes = 0
        self.recoded: dict[bytes, bytes] = {}
        self.objects: Any = None  # an ObjectStore to read spilled chunks from (recovery's)

    def __getstate__(self) -> dict[str, Any]:
        # For a snapshot: the values it refers to out of line are made durable first.
        if self.spill is not None:
            self.spill.sync()
        saved = dict(self.__dict__)
        del saved["spill"], saved["objects"]
        return saved

    def __setstate__(self, saved: dict[str, Any]) -> None:
        # A snapshot from before a field existed gets that field's empty default.
        self.__init__()  # type: ignore[misc]
        self.__dict__.update(saved)

    # -- queries ---------------------------------------------------------------------
    def ready_count(self) -> int:
        return sum(len(q) for q in self.ready.values())

    def waiting_count(self) -> int:
        return sum(1 for c in self.chains.values() if c.status == WAITING)

    def unborn_count(self) -> int:
        return sum(litter.count() for litter in self.unborn.values())

    def chain_of_job(self, job_id: int) -> Chain | None:
        cid = self.by_job.get(job_id)
        return None if cid is None else self.chains[cid]

    def held(self) -> dict[str, int]:
        """How many entries each per-job table holds: only live chains and their jobs."""
        return {"chains": len(self.chains), "by_job": len(self.by_job),
                "ready": self.ready_count(), "running": len(self.running),
                "failed": len(self.failed)}

    def shrink(self) -> None:
        """Rebuild the per-job tables at their present size, in the same order.

        A dict keeps the table of the most entries it ever held until enough new
        entries refill it; after a wide frontier has closed, this gives that memory back.
        """
        self.chains = dict(self.chains)
        self.by_job = dict(self.by_job)
        self.running = dict(self.running)
        self.failed = dict(self.failed)
        self.ready = {res: dict(queue) for res, queue in self.ready.items() if queue}
        self.unborn = dict(self.unborn)

    # -- transitions -----------------------------------------------------------------
    def _make_ready(self, chain: Chain) -> None:
        assert chain.job is not None
        chain.status = READY
        self.ready.setdefault(chain.job.res, {})[chain.chain_id] = None

    def _unready(self, chain: Chain) -> None:
        if chain.job is not None:
            queue = self.ready.get(chain.job.res)
            if queue is not None:
                queue.pop(chain.chain_id, None)

    def _add_chain(self, spec: Spec, parent: int | None, index: int) -> None:
        """A chain for `spec` and, as children of its own chain, one for each of its deps.

        Deps nest to any depth: they are walked with a stack, in the order a recursive
        walk would take, and each chain keeps its job without the deps it has expanded.
        """
        stack = [(spec, parent, index)]
        while stack:
            spec, parent, index = stack.pop()
            deps = spec.deps
            chain = Chain(spec.job_id, parent, index, spec._replace(deps=()) if deps else spec)
            self.chains[spec.job_id] = chain
            self.by_job[spec.job_id] = spec.job_id
            if deps:
                chain.status = WAITING
                chain.pending = len(deps)
                chain.values = [None] * len(deps)
                stack.extend((deps[k], spec.job_id, k) for k in range(len(deps) - 1, -1, -1))
            else:
                self._make_ready(chain)

    def _close(self, chain: Chain, value: Any) -> None:
        while True:
            del self.chains[chain.chain_id]
            if chain.gtd:
                self.to_clean.append(chain.chain_id)
            if chain.parent is None:
                self.finished = True
                self.value = value
                return
            parent = self.chains[chain.parent]
            if type(value) is bytes:
                value = self._hold(value)
            parent.values[chain.index] = value
            parent.pending -= 1
            if parent.pending:
                return
            if parent.job is not None:
                self._make_ready(parent)
                return
            chain, value = parent, Collected(tuple(parent.values))

    def _hold(self, value: bytes) -> bytes | ObjectRef:
        """`value`, held by a chain: counted, or spilled out of line past the budget."""
        size = len(value)
        spill = self.spill
        if spill is not None and size >= SPILL_MIN and self.held_bytes + size > spill.budget:
            held = spill.put(value)
            if type(held) is ObjectRef:
                return held
        self.held_bytes += size
        return value

    def _release(self, values: list[Any]) -> None:
        """The values a chain held are dropped (its job that took them completed)."""
        if values:
            self.held_bytes -= held_size(values)

    def _done(self, job_id: int, outcome: tuple[Any, ...], fns: dict[bytes, bytes],
              cached: bool = False) -> None:
        cid = self.by_job.pop(job_id)
        chain = self.chains[cid]
        assert chain.job is not None
        if chain.status != RUNNING:  # (a running chain is in no ready queue)
            self._unready(chain)
        self.running.pop(cid, None)
        if fns:
            self.fns.update(fns)
        self.done[chain.job.name] += 1
        if cached:
            self.cached[chain.job.name] += 1
        known = self.targets.get(chain.job.fn_key)
        if known is not None:
            self.done_by_code[known[2]] += 1
        chain.attempts = chain.failures = 0
        self._release(chain.values)
        if outcome[0] == O_VALUE:
            chain.job = None
            chain.values = []
            self._close(chain, outcome[1])
            return
        children: tuple[Spec, ...] = outcome[1]
        follow: Spec | None = outcome[2]
        chain.job = follow
        chain.values = [None] * len(children)
        chain.pending = len(children)
        if follow is not None:
            self.by_job[follow.job_id] = cid
        if not children:
            if follow is not None:
                self._make_ready(chain)
            else:
                self._close(chain, Collected(()))
            return
        chain.status = WAITING
        if len(children) >= LAZY_MIN:
            conceive(self, cid, children)
            return
        for i, spec in enumerate(children):
            self._add_chain(spec, cid, i)

    def _fail(self, job_id: int, attempt: int, permanent: bool, message: str,
              log: str | None, res: Res | None = None) -> None:
        cid = self.by_job[job_id]
        chain = self.chains[cid]
        self.running.pop(cid, None)
        if res is not None and chain.job is not None:
            self._unready(chain)
            chain.job = chain.job._replace(res=res)
        chain.failures += 1
        chain.attempts = max(chain.attempts, attempt)
        if permanent:
            self._unready(chain)
            chain.status = FAILED
            self.failed[cid] = (message, log)
        else:
            self._make_ready(chain)

    def _issue(self, job_id: int, attempt: int) -> None:
        cid = self.by_job[job_id]
        chain = self.chains[cid]
        self._unready(chain)
        chain.status = RUNNING
        chain.attempts = attempt
        self.running[cid] = attempt

    def _new_epoch(self, epoch: int) -> None:
        """A new leader: whatever the last one had issued is ready again."""
        self.epoch = epoch
        for cid in list(self.running):
            self._make_ready(self.chains[cid])
        self.running.clear()

    def _rebind(self, functions: dict[str, tuple[bytes, bytes]]) -> None:
        # REBIND records, by name, come from stores made before RECODE; replayed as they were.
        for key, data in functions.values():
            self.fns[key] = data
        for chain in self.chains.values():
            job = chain.job
            if job is not None and job.name in functions:
                chain.job = job._replace(fn_key=functions[job.name][0])

    def _recode(self, functions: dict[bytes, tuple[bytes, bytes]]) -> None:
        """Live jobs whose function is an old key run the new one: {old: (new, bytes)}."""
        for new_key, data in functions.values():
            self.fns[new_key] = data
        if self.unborn or self.recoded:  # children born later run the new code too
            recode_unborn(self.recoded, functions)
        for chain in self.chains.values():
            job = chain.job
            if job is not None and job.fn_key in functions:
                chain.job = job._replace(fn_key=functions[job.fn_key][0])

    def _rerun(self, spec: Spec, fns: dict[bytes, bytes]) -> None:
        """The run starts again from `spec` (a new root id): every open chain is dropped."""
        self.to_clean.extend(c.chain_id for c in self.chains.values() if c.gtd)
        self.chains.clear()
        self.by_job.clear()
        self.ready.clear()
        self.running.clear()
        self.failed.clear()
        self.unborn.clear()
        self.unborn_bytes = 0
        self.finished = False
        self.value = None
        self.held_bytes = 0
        self.reruns += 1
        self.root = spec
        self.fns.update(fns)
        self._add_chain(spec, None, 0)

    def live_jobs(self) -> Counter[bytes]:
        """How many live jobs (ready, running, waiting or failed) run each function key."""
        live = Counter(c.job.fn_key for c in self.chains.values() if c.job is not None)
        return unborn_keys(self.unborn, live)

    def _retry_failed(self) -> None:
        for cid in list(self.failed):
            chain = self.chains[cid]
            chain.failures = 0
            self._make_ready(chain)
        self.failed.clear()


def apply(state: RunState, record: tuple[Any, ...]) -> None:
    """Change `state` as `record` says (see records.R_*)."""
    kind = record[0]
    if kind == R_DONE:
        state._done(record[1], record[2], record[3], len(record) > 4 and record[4] is True)
    elif kind == R_ISSUE:
        state._issue(record[1], record[2])
    elif kind == R_FAIL:
        state._fail(*record[1:])
    elif kind == R_REQUEUE:
        cid = state.by_job[record[1]]
        state.running.pop(cid, None)
        state._make_ready(state.chains[cid])
    elif kind == R_GTD:
        chain = state.chains.get(record[1])
        if chain is not None:
            chain.gtd = True
    elif kind == R_ROOT:
        state.root = record[1]
        state.fns.update(record[2])
        state._add_chain(record[1], None, 0)
    elif kind == R_EPOCH:
        state._new_epoch(record[1])
    elif kind == R_RETRY_FAILED:
        state._retry_failed()
    elif kind == R_REBIND:
        state._rebind(record[1])
    elif kind == R_TARGETS:
        state.targets.update(record[1])
    elif kind == R_RECODE:
        state._recode(record[1])
    elif kind == R_RERUN:
        state._rerun(record[1], record[2])
    elif kind == R_FINISH:
        state.finished = True
        state.value = record[1]
    elif kind == R_BEAR:
        bear(state, record[1], record[2])
    elif kind == R_SEGMENT:
        pass  # whose segment this is: checked by the store as it reads it
    else:
        raise ValueError(f"unknown journal record kind {kind!r}")
