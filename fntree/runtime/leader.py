"""The leader: the one process that decides what runs next and records what happened.

It owns the `RunState` (rebuilt from the job store at every start) and the open
journal segment. At start, a restart's `recode` hook looks at the recovered
state and returns the records that make live jobs run changed code, or (with
`--rerun-changed`) the `RERUN` record that starts the run again from its root
(or refuses, before anything is written); they are committed with the new
`EPOCH`, before anything is issued. Each turn of its loop:

1. issue ready jobs to the batch system in packets, while it can take them
   (`ISSUE` records are buffered);
2. wait for updates from the batch system;
3. for each result, append its records and apply them to the state (a
   spawning job's outcome is journaled as the bytes its worker pickled, or its
   specs as plain tuples: fntree/runtime/journal.py);
4. commit the journal (one fdatasync for the whole turn);
5. only then act on what became true: remove global temp dirs of closed
   chains (at start and after a compaction, values stored out of line that no
   live job refers to: fntree/runtime/objects.py), tell the subscribers, and go round again.

Packets: ready jobs with the same resources are grouped so that a worker runs
about the batch system's `packet_time` seconds of them per packet, judged from
the measured (or else declared) run time of each target; a job whose packet's
worker died runs alone next time, so a failure is charged to the job that caused it.

Order: within a resource class, the most recently readied jobs go first (the
ready queue is taken from its end). A job's children tend to run before its
siblings' are made, so started subtrees finish first and the live state (the
chains in memory, the values they hold) stays near the frontier of work in
progress. Newest-first alone is a bias, not a bound: a packet of 256 jobs that
each spawn 1,000 children readies 256,000 chains at once. So the `Frontier`
(fntree/runtime/frontier.py) learns how many children each target's jobs spawn
and ends a packet before a spawner that would take the live chains past its
limit (`max(16,384, 2 x parallelism x MAX_PACKET)`); over it, spawners go out
one per free slot; a target not yet seen to complete has at most 8 jobs per
slot out. Jobs that spawn nothing are never held back, so the slots stay
busy. One job's own fan-out of 4,096 children or more waits unborn
(fntree/runtime/unborn.py); before issuing, `_bear` records a `BEAR` of the
newest litter's next 1,024 while few jobs are ready and the live chains leave
room under the frontier's limit (docs/memory.md). What the leader holds,
and for how long: docs/memory.md (`bench/wide.py --width 1000 --leaves
1000`: 205,000 live chains and 190 MiB a fifth of the way in before the
frontier; with it, the limit and 45 MiB sampled, ru_maxrss 51 MiB).

Blame: when a worker dies, the batch system says which job it was running
(`Update.running`, from the worker's job mark). If that job is not one the
leader handed out, it was a follow-on chained in the worker after one of them:
that predecessor completed, but its result died with the worker, so it is run
again, uncharged, with chaining off for its chain; the follow-on is then issued
on its own and, if it kills its worker again, charged. The dead worker's output
goes to the log of the job that was running. Failed attempts, retries and this
blame are the `FailureHandling` part of the leader (fntree/runtime/failing.py).

Garbage collection: nearly everything the leader makes is freed by reference
counts (a chain, its job, a packet's tasks, a result), yet each tracked object
it allocates counts towards CPython's next collection, and a chain lives long
enough to be promoted, so the default young threshold (700) ran ~900 collections
per 100,000 jobs, some of them full ones over the live state: 12% of the
loop's CPU. While `run` goes on, the young threshold is `GC_YOUNG` (the older
generations' are kept); it is put back when `run` returns, since the leader
may share its process with the caller's own threads.

The machine-local temp base is swept by the caller before the batch system
starts workers (they boot while the leader recovers and make their dirs there),
and removed by `_stop` after the batch system is closed; a leader that stops
busy workers first keeps their jobs' output in the jobs' logs (`salvage`).

The cache across runs (fntree/runtime/cache.py) is the workers' affair, but for
one case: a pure job that spawned children. Its key comes with its result; the
leader's `ChainWatch` writes the chain's closing value under it, after the
commit that records the closing (step 5).
"""

from __future__ import annotations

import gc
import itertools
import logging
import math
import os
import shutil
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fntree.batch.base import BatchSystem, Update
from fntree.errors import ResourceError
from fntree.resources import format_memory
from fntree.runtime import crashpoints
from fntree.runtime.cache import Cache, ChainWatch
from fntree.runtime.events import Events
from fntree.runtime.failing import FailureHandling
from fntree.runtime.frontier import LIMIT_MIN, Frontier
from fntree.runtime.journal import Journal
from fntree.runtime.objects import ObjectStore, collect_now
from fntree.runtime.records import (
    O_SPAWN,
    R_BEAR,
    R_DONE,
    R_DONE_FLAT,
    R_DONE_PICKLED,
    R_EPOCH,
    R_FAIL,
    R_FINISH,
    R_GTD,
    R_ISSUE,
    R_REQUEUE,
    R_RERUN,
    R_RETRY_FAILED,
    R_TARGETS,
    Result,
    Task,
    flat_outcome,
    job_hex,
)
from fntree.runtime.salvage import salvage_outputs
from fntree.runtime.snapshot import cached_flag, snapshot
from fntree.runtime.spill import hold_values
from fntree.runtime.state import Chain, RunState, apply
from fntree.runtime.store import JobStore
from fntree.runtime.unborn import births
from fntree.runtime.worker import LOG_LIMIT

log = logging.getLogger("fntree")

# A restart's look at the recovered state: the TARGETS and RECODE records that make
# live jobs run the code the restarting process has (it may refuse, raising).
Recode = Callable[[RunState], list[tuple[Any, ...]]]

MAX_PACKET = 256
_new_tuple = tuple.__new__
POLL_WAIT = 1.0
GC_YOUNG = 100_000  # net tracked allocations between two young collections while running


class Leader(FailureHandling):
    """Runs a job store's workflow to its end on a batch system."""

    def __init__(self, store: JobStore, batch: BatchSystem, events: Events, *,
                 retry_count: int = 1, local_base: Path | None = None,
                 cache: Cache | None = None, fail_fast: bool = False) -> None:
        self.store = store
        self.batch = batch
        self.events = events
        self.retry_count = retry_count
        self.fail_fast = fail_fast
        self.local_base = local_base
        self.state = RunState()
        self.journal: Journal | None = None
        self.segment = 0
        self._estimate: dict[str, float] = {}
        self._solo: set[int] = set()
        self._after: list[tuple[Any, ...]] = []
        self._packets: dict[int, list[Task]] = {}
        self._nochain: set[int] = set()  # chains whose chained follow-on killed a worker
        self.frontier = Frontier(max(LIMIT_MIN, 2 * batch.parallelism * MAX_PACKET))
        self.births = births()  # unborn children born at a time (`_bear`)
        self.watch = None if cache is None else ChainWatch(cache, store.paths.objects)

    # -- the run ----------------------------------------------------------------------
    def run(self, *, retry_failed: bool = False, recode: Recode | None = None,
            rerun: bool = False) -> Any:
        """Run to the end; the root's stored value, or WorkflowFailed / ResourceError.

        `recode`, given the recovered state, says which live jobs run new code (a
        restart after the targets' code changed); it is recorded before anything runs.
        `rerun`: `recode` may start the run again from its root (a `RERUN` record,
        fntree/rerun.py), so it is asked even when the run has finished.
        """
        ok = False
        thresholds = gc.get_threshold()
        if thresholds[0]:  # (0: the caller has turned collection off)
            gc.set_threshold(max(GC_YOUNG, thresholds[0]), *thresholds[1:])
        try:
            self._start(retry_failed, recode, rerun)
            while not self.state.finished:
                self._dispatch()
                if not self.state.running and not self._packets:
                    break  # (a packet whose results came before its end is still out)
                self._handle(self.batch.poll(POLL_WAIT))
                self._commit()
            ok = self.state.finished
        finally:
            try:
                self._stop(ok)
            finally:
                gc.set_threshold(*thresholds)
        if ok:
            return self.state.value
        raise self._failure()

    def _start(self, retry_failed: bool, recode: Recode | None, rerun: bool) -> None:
        state, self.segment, good = self.store.recover(repair=True)
        hold_values(state, ObjectStore(self.store.paths.objects))  # values past a budget: out
        self.state = state
        self.journal = self.store.open_journal(self.segment, good)
        if state.finished and not rerun:
            return
        recoded = recode(state) if recode is not None else []  # may refuse: nothing written
        if retry_failed and state.failed:
            self._record((R_RETRY_FAILED,))
        for record in recoded:
            self._record(record)
        self._record((R_EPOCH, state.epoch + 1, os.getpid(), socket.gethostname()))
        self.journal.commit()
        crashpoints.point("leader.start")
        self.store.sweep_global_temp_dirs(state.chains)
        self.store.quiet = time.time()  # no job of ours runs yet: collect unused values
        collect_now(ObjectStore(self.store.paths.objects), state)
        self.events.started(str(self.store.paths.root), state.epoch,
                            snapshot(state, self.batch))
        if any(record[0] == R_RERUN for record in recoded):
            assert state.root is not None
            self.events.rerun(state.epoch, state.reruns, state.root.name)

    def _stop(self, ok: bool) -> None:
        try:
            if self.state.running:
                self.batch.cancel()
                if self.local_base is not None:  # before close() removes the workers' dirs
                    salvage_outputs(self.local_base, self.store.paths, LOG_LIMIT)
            if self.journal is not None:
                self.journal.commit()
                if ok and self.journal.size:
                    self.journal, self.segment = self.store.compact(self.state, self.journal,
                                                                    self.segment)
        finally:
            self.batch.close()
            if self.local_base is not None:
                shutil.rmtree(self.local_base, ignore_errors=True)
            if self.journal is not None:
                self.journal.close()
            self.events.finished(ok)

    def _record(self, record: tuple[Any, ...]) -> None:
        assert self.journal is not None
        self.journal.append(record)
        apply(self.state, record)

    def _commit(self) -> None:
        assert self.journal is not None
        state = self.state
        if state.finished:
            self.journal.append((R_FINISH, state.value))
        self.journal.commit()
        crashpoints.point("leader.commit")
        if not state.running:  # jobs issued from now on may write values: collect older ones
            self.store.quiet = time.time()
        for chain_id in state.to_clean:
            crashpoints.point("leader.clean")
            shutil.rmtree(self.store.paths.global_temp_dir(chain_id), ignore_errors=True)
        state.to_clean.clear()
        if self.watch is not None and (self.watch.ready or state.finished):
            for warning in self.watch.flush(wait=state.finished):
                log.warning("%s", warning)
        after, self._after = self._after, []
        events = self.events
        completed = events.completed  # (one a job: called without a look-up by name)
        for event in after:
            if event[0] == "completed":
                completed(event[1], event[2])
            else:
                getattr(events, event[0])(*event[1:])
        if self.store.compaction_due(self.journal, state) and not state.finished:
            self.journal, self.segment = self.store.compact(state, self.journal, self.segment)
            state.shrink()  # the tables of a frontier that has closed since give memory back

    # -- issuing ----------------------------------------------------------------------
    def _dispatch(self) -> None:
        if self.stopping:  # fail-fast: a job failed for good
            return
        state = self.state
        if state.unborn:
            self._bear()
        max_cpus, max_memory = self.batch.limits()
        for res, queue in list(state.ready.items()):
            if not queue:
                del state.ready[res]
                continue
            if res.cpu > max_cpus or (res.memory or 0) > max_memory:
                self._refuse(state.chains[next(reversed(queue))], max_cpus, max_memory)
            # Share this round's ready jobs evenly among the slots: sized from the queue
            # as it stands now, not as it shrinks packet by packet.
            slots = max(1, int(self.batch.parallelism / max(res.cpu, 1e-3)))
            fair = math.ceil(len(queue) / slots)
            while queue and self.batch.can_take(res):
                tasks = self._packet(queue, fair, slots)
                if not tasks:
                    break  # spawners held back: the live chains are at the frontier's limit
                packet = self.batch.submit(tasks, {t.fn_key: state.fns[t.fn_key] for t in tasks})
                self._packets[packet] = tasks
                self.events.issued(tasks)

    def _bear(self) -> None:
        """Children waiting unborn (a job spawned `unborn.LAZY_MIN` or more) are born,
        `self.births` at a time, newest litter first, while fewer jobs are ready than fill
        every slot and the live chains leave room under the frontier's limit (or nothing
        is ready at all: the run always makes progress)."""
        state, limit, births = self.state, self.frontier.limit, self.births
        want = min(limit // 2, max(8 * births, self.batch.parallelism * MAX_PACKET))
        while state.unborn:
            ready = state.ready_count()
            if ready >= want or (ready and len(state.chains) + births > limit):
                return
            self._record((R_BEAR, next(reversed(state.unborn)), births))

    def _packet(self, queue: dict[int, None], fair: int, slots: int) -> list[Task]:
        """Issue the next packet: from the queue's newest end, up to its size, ending before
        a job the frontier holds back."""
        chains, frontier = self.state.chains, self.frontier
        free = frontier.free
        frontier.open(slots)
        tasks: list[Task] = []
        for cid in list(itertools.islice(reversed(queue), self._packet_size(queue, fair))):
            chain = chains[cid]
            job = chain.job
            assert job is not None
            if job.name not in free and not frontier.admits(self.state, job, not tasks):
                break
            tasks.append(self._issue(chain))
        if tasks:
            self._solo.discard(tasks[0].job_id)
        return tasks

    def _packet_size(self, queue: dict[int, None], fair: int) -> int:
        first = self.state.chains[next(reversed(queue))]
        assert first.job is not None
        if first.job.job_id in self._solo:
            return 1  # (dropped from `_solo` once issued)
        estimate = self._estimate.get(first.job.name, first.job.res.time)
        size = 8 if estimate is None else int(self.batch.packet_time / max(estimate, 1e-5))
        return max(1, min(size, fair, MAX_PACKET))

    def _issue(self, chain: Chain) -> Task:
        job = chain.job
        assert job is not None
        attempt = chain.attempts + 1
        job_id, cid = job.job_id, chain.chain_id
        self._record((R_ISSUE, job_id, attempt))
        values = chain.values
        # (tuple.__new__ builds the NamedTuple in C: this runs once per job)
        return _new_tuple(Task, (job_id, attempt, job.name, job.fn_key, job.args,
                                 tuple([values[i] for i in job.slots]) if job.slots else (),
                                 cid, job.res, cid not in self._nochain))

    def _refuse(self, chain: Chain, max_cpus: float, max_memory: int) -> None:
        job = chain.job
        assert job is not None
        message = (f"target `{job.name}` asks for {job.res.cpu:g} cpu and "
                   f"{format_memory(job.res.memory)} of memory, but the {self.batch.name} "
                   f"batch system has {max_cpus:g} cpu and {format_memory(max_memory)}; "
                   "lower cpu=/memory= on the target, or raise --max-cpus/--max-memory; the "
                   f"job store is kept: continue with `fntree restart {self.store.paths.root} "
                   "--max-cpus N --max-memory M`")
        self._record((R_ISSUE, job.job_id, chain.attempts + 1))
        self._record((R_FAIL, job.job_id, chain.attempts + 1, True, message, None))
        assert self.journal is not None
        self.journal.commit()
        raise ResourceError(message)

    # -- results ----------------------------------------------------------------------
    def _handle(self, updates: list[Update]) -> None:
        for update in updates:
            for name, job, text in update.messages:  # from running jobs: news, not facts
                self.events.message(name, job, text)
            for result in update.results:
                self._result(result)
            if update.lost:
                self._lost(update)
            if update.started:
                self.events.packet_started(self._packets.get(update.packet, []))
            if update.finished:
                self._unreported(self._packets.pop(update.packet, []))

    def _unreported(self, tasks: list[Task]) -> None:
        """Tasks of a finished packet that are still issued were never reported: run them again."""
        state = self.state
        for task in tasks:
            chain = state.chain_of_job(task.job_id)
            if chain is not None and state.running.get(chain.chain_id) == task.attempt:
                log.warning("%s %s was not reported by its worker; it will run again",
                            task.name, job_hex(task.job_id)[:8])
                self._record((R_REQUEUE, task.job_id))

    def _result(self, result: Result) -> None:
        state = self.state
        job_id = result.job_id
        chain = state.chain_of_job(job_id)
        job = None if chain is None else chain.job
        if chain is None or job is None or job.job_id != job_id:
            log.debug("ignoring a result for job %s, which is not live", job_hex(job_id))
            return
        cid = chain.chain_id
        if not result.chained and state.running.get(cid) != result.attempt:
            log.debug("ignoring a stale result for job %s", job_hex(job_id))
            return
        name = job.name
        self.frontier.reported(name, result)
        estimate = self._estimate.get(name)
        wall = result.stats[1]
        self._estimate[name] = wall if estimate is None else 0.8 * estimate + 0.2 * wall
        for text in result.messages:
            self._after.append(("message", name, job_hex(job_id), text))
        if result.gtd and not chain.gtd:
            self._record((R_GTD, cid))
        if result.cache_note is not None:
            self._cache_note(chain, name, result.cache_note)
        if result.ok:
            if result.targets:
                self._record((R_TARGETS, result.targets))
            watch = self.watch
            closing = watch.before(state, chain) if watch is not None and watch.keys else None
            done: tuple[Any, ...] = (R_DONE, job_id, result.outcome, result.fns)
            if result.cached:
                done += cached_flag(result)
            self._done(done, result)
            if watch is not None and closing:
                watch.after(state, closing)
            self._after.append(("completed", name, result))
        else:
            cause = "memory" if result.message.startswith("MemoryError") else ""
            self._fail(chain, result.attempt, result.message, result.log, cause, result.retry)

    def _done(self, done: tuple[Any, ...], result: Result) -> None:
        """Journal a job's DONE record and apply it. A spawning outcome is journaled as the
        bytes its worker pickled, or else with its specs as plain tuples (R_DONE_PICKLED,
        R_DONE_FLAT: read back as `done`, fntree/runtime/journal.py); the state takes the
        outcome as it is."""
        assert self.journal is not None
        outcome = done[2]
        if result.pickled is not None:
            self.journal.append((R_DONE_PICKLED, done[1], result.pickled, *done[3:]))
        elif outcome[0] == O_SPAWN:
            self.journal.append((R_DONE_FLAT, done[1], flat_outcome(outcome), *done[3:]))
        else:
            self.journal.append(done)
        apply(self.state, done)

    def _cache_note(self, chain: Chain, name: str, note: tuple[bytes, str]) -> None:
        key, warning = note
        if warning:
            log.warning("%s: %s", name, warning)
        if key and self.watch is not None:
            self.watch.add(chain.chain_id, key, name)
