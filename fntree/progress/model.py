"""The progress model: what the displays draw, true from the leader's first moment.

`RunView` is an `Observer`. When a leader starts it takes the `Snapshot` of the
recovered state (fntree/runtime/snapshot.py): per target, the jobs waiting,
ready, done (and of those, cached) and failed, and the live chains. From then
on the hooks keep it true in O(1) per job (amortized), with the states of
docs/states.md:

- *waiting* → *ready*: it follows each live chain (its parent, how many chains
  it waits for, its next job) as `fntree/runtime/state.py` does, so a follow-on
  becomes ready when the last chain it waits for closes;
- *ready* → *queued* → *running*: an issued job is queued until its packet's
  worker starts (batch systems that say so: `packet_started`; on the others the
  worker starts at once), then the packet's jobs run one at a time: the first
  unreported one is running, the others queued behind it;
- → *done* (*cached*), *failed*, or back to *ready* for a retry.

The total is what is known so far: it grows as completions spawn children.

Time left (`eta`): from the mean run time of each target's jobs measured by
this leader, and the work done per second over the last `ETA_WINDOW` seconds
(the sum of the run times of the jobs that completed, so it measures the
parallelism really had). None, rather than a guess, until every target with
jobs ready, queued or running has `ETA_MIN_JOBS` timed jobs and
`ETA_MIN_SECONDS` have passed. Waiting jobs of a target not yet timed (a
follow-on that gathers a fan-out) are left out and counted apart. Jobs that
will be spawned later are not known, so not counted either.

The leader's thread changes the model while a drawing thread reads it: readers
copy the containers they walk and tolerate counts that are a moment apart.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

from fntree.runtime.events import Failure, Observer
from fntree.runtime.records import O_SPAWN, Result, Task
from fntree.runtime.snapshot import STATES, Snapshot

LONGEST_ROWS = 5
MESSAGE_ROWS = 5
RATE_WINDOW = 5.0  # seconds over which the current rate is measured
ETA_MIN_JOBS = 5  # timed jobs of a target before its mean run time is believed
ETA_MIN_SECONDS = 10.0  # of this leader's run before an ETA is shown
ETA_WINDOW = 60.0  # seconds over which the work done per second is measured


class Counts:
    """A target's jobs in each state, its retries, and the run time of its timed jobs."""

    __slots__ = (*STATES, "retried", "timed", "wall")

    def __init__(self) -> None:
        self.waiting = self.ready = self.queued = self.running = 0
        self.done = self.cached = self.failed = self.retried = self.timed = 0
        self.wall = 0.0

    def left(self) -> int:
        """Jobs not yet done or failed."""
        return self.waiting + self.ready + self.queued + self.running

    def known(self) -> int:
        return self.left() + self.done + self.failed

    def add(self, other: Counts) -> None:
        for slot in Counts.__slots__:
            setattr(self, slot, getattr(self, slot) + getattr(other, slot))


class _Job:
    __slots__ = ("chain", "name", "state")

    def __init__(self, name: str, state: str, chain: int) -> None:
        self.name, self.state, self.chain = name, state, chain


class _Chain:
    __slots__ = ("job", "parent", "pending")

    def __init__(self, parent: int | None, pending: int, job: int | None) -> None:
        self.parent, self.pending, self.job = parent, pending, job


class _Packet:
    """Tasks issued together: a worker runs them one after another."""

    __slots__ = ("clock", "left", "pos", "started", "tasks")

    def __init__(self, tasks: list[Task], now: float, started: bool) -> None:
        self.tasks = tasks
        self.clock = now  # when the task now running started, as far as we know
        self.left = len(tasks)
        self.pos = 0
        self.started = started


class RunView(Observer):
    """What the displays show, kept up to date by the leader's hooks.

    `clock` gives the time in seconds since the epoch (the workers' `start` times
    are on that scale); tests pass their own.
    """

    shows_messages = shows_failures = True  # the message pane, the failure panel

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.messages: deque[str] = deque(maxlen=MESSAGE_ROWS)
        self.failures: deque[Failure] = deque(maxlen=1)
        self.failure_count = 0
        self.failure_kinds: Counter[tuple[str, str]] = Counter()  # for good, by target, message
        self.jobstore = ""
        self.epoch = 0
        self.started_at = clock()
        self.ended_at: float | None = None
        self.ok: bool | None = None
        self._reset(Snapshot({}))

    def _reset(self, snapshot: Snapshot) -> None:
        self.targets: dict[str, Counts] = {}
        self.jobs: dict[int, _Job] = {}
        self.chains: dict[int, _Chain] = {}
        self.issued_in: dict[int, _Packet] = {}
        self.packets: set[_Packet] = set()
        self.reports_start = snapshot.reports_start
        self._last: _Packet | None = None
        self._samples: deque[tuple[float, int]] = deque()
        self._work: dict[int, float] = {}  # run time of the jobs completed, by second
        self.completions = 0  # jobs this leader saw complete
        for name, by_state in snapshot.targets.items():
            counts = self._counts(name)
            for state in STATES:
                setattr(counts, state, by_state.get(state, 0))
        for c in snapshot.chains:
            self.chains[c.chain_id] = _Chain(c.parent, c.pending, c.job)
            if c.job is not None and c.name is not None:
                self.jobs[c.job] = _Job(c.name, c.state, c.chain_id)

    def _counts(self, name: str) -> Counts:
        counts = self.targets.get(name)
        if counts is None:
            counts = self.targets[name] = Counts()
        return counts

    def _move(self, job: _Job, state: str) -> None:
        counts = self.targets.get(job.name) or self._counts(job.name)
        setattr(counts, job.state, getattr(counts, job.state) - 1)
        setattr(counts, state, getattr(counts, state) + 1)
        job.state = state

    def _add(self, job_id: int, name: str, state: str, chain: int) -> _Job:
        job = self.jobs[job_id] = _Job(name, state, chain)
        counts = self.targets.get(name) or self._counts(name)
        setattr(counts, state, getattr(counts, state) + 1)
        return job

    # -- hooks -----------------------------------------------------------------------
    def started(self, jobstore: str, epoch: int, snapshot: Snapshot) -> None:
        self.jobstore, self.epoch = jobstore, epoch
        self.started_at = self.clock()
        self.ended_at = self.ok = None
        self._reset(snapshot)

    def rerun(self, epoch: int, reruns: int, root: str) -> None:
        for counts in list(self.targets.values()):  # the run starts again: count this run's
            counts.done = counts.cached = 0

    def issued(self, tasks: list[Task]) -> None:
        packet = _Packet(tasks, self.clock(), not self.reports_start)
        self.packets.add(packet)
        jobs, issued_in = self.jobs, self.issued_in
        for task in tasks:
            job = jobs.get(task.job_id) or self._add(task.job_id, task.name, "ready",
                                                     task.chain_id)
            earlier = issued_in.get(task.job_id)
            if earlier is not None:  # requeued by the leader without an event
                self._leave(earlier)
            self._move(job, "queued")
            issued_in[task.job_id] = packet
        if packet.started:
            self._advance(packet)

    def packet_started(self, tasks: list[Task]) -> None:
        packet = next((p for p in map(self.issued_in.get, (t.job_id for t in tasks))
                       if p is not None), None)
        if packet is not None and not packet.started:
            packet.started = True
            packet.clock = self.clock()
            self._advance(packet)

    def _advance(self, packet: _Packet) -> None:
        """The packet's first unreported task is the one its worker runs now."""
        tasks, issued_in = packet.tasks, self.issued_in
        while packet.pos < len(tasks) and issued_in.get(tasks[packet.pos].job_id) is not packet:
            packet.pos += 1
        if packet.pos < len(tasks):
            job = self.jobs.get(tasks[packet.pos].job_id)
            if job is not None and job.state == "queued":
                self._move(job, "running")

    def _leave(self, packet: _Packet) -> None:
        packet.left -= 1
        if packet.left <= 0:
            self.packets.discard(packet)

    def _reported(self, job_id: int, start: float | None) -> _Packet | None:
        """The job's packet moves on to its next task."""
        packet = self.issued_in.pop(job_id, None)
        if packet is not None:
            self._leave(packet)
            packet.clock = max(packet.clock, self.clock() if start is None else start)
            if packet.started:
                self._advance(packet)
        return packet

    def completed(self, name: str, result: Result) -> None:
        job = self.jobs.pop(result.job_id, None)
        counts = self.targets.get(name) or self._counts(name)
        if job is not None:
            setattr(counts, job.state, getattr(counts, job.state) - 1)
        counts.done += 1
        self.completions += 1
        wall = result.stats[1]
        if result.cached:
            counts.cached += 1
        else:
            counts.timed += 1
            counts.wall += wall
            self._measure(wall)
        packet = self._reported(result.job_id, result.stats[0] + wall)
        if packet is not None:
            self._last = packet
        elif result.chained and self._last is not None:  # a follow-on its worker chained
            self._last.clock = max(self._last.clock, result.stats[0] + wall)
        if job is not None:
            self._follow(job.chain, result.outcome)

    def _measure(self, wall: float) -> None:
        second = int(self.clock())
        work = self._work
        if second not in work:
            for old in [s for s in work if s < second - ETA_WINDOW]:
                del work[old]
            work[second] = 0.0
        work[second] += wall

    def _follow(self, chain_id: int, outcome: Any) -> None:
        """A job of chain `chain_id` completed with `outcome`: the chains as state.py has them."""
        chain = self.chains.get(chain_id)
        if chain is None:
            chain = self.chains[chain_id] = _Chain(None, 0, None)
        if outcome is None or outcome[0] != O_SPAWN:
            chain.job = None
            self._close(chain_id)
            return
        children, follow = outcome[1], outcome[2]
        chain.job = None if follow is None else follow.job_id
        chain.pending = len(children)
        if follow is not None:
            self._add(follow.job_id, follow.name, "waiting" if children else "ready", chain_id)
        elif not children:
            self._close(chain_id)
        stack = [(spec, chain_id) for spec in reversed(children)]  # added in their order
        while stack:
            spec, parent = stack.pop()
            self.chains[spec.job_id] = _Chain(parent, len(spec.deps), spec.job_id)
            self._add(spec.job_id, spec.name, "waiting" if spec.deps else "ready", spec.job_id)
            stack.extend((dep, spec.job_id) for dep in reversed(spec.deps))

    def _close(self, chain_id: int) -> None:
        while True:
            chain = self.chains.pop(chain_id, None)
            if chain is None or chain.parent is None:
                return
            parent = self.chains.get(chain.parent)
            if parent is None:
                return
            parent.pending -= 1
            if parent.pending > 0:
                return
            if parent.job is not None:
                job = self.jobs.get(parent.job)
                if job is not None and job.state == "waiting":
                    self._move(job, "ready")
                return
            chain_id = chain.parent

    def failed(self, failure: Failure) -> None:
        job_id = int(failure.job_id, 16)
        job = self.jobs.get(job_id) or self._add(job_id, failure.name, "ready", job_id)
        self._reported(job_id, None)
        if failure.permanent:
            self._move(job, "failed")
            self.failure_kinds[failure.name, failure.message] += 1
        else:
            self._move(job, "ready")
            self._counts(failure.name).retried += 1
        self.failure_count += 1
        if failure.permanent or not self.failures or not self.failures[-1].permanent:
            self.failures.append(failure)  # a failure for good stays in view

    def message(self, name: str, job_id: str, text: str) -> None:
        self.messages.append(f"{name} {job_id[:8]}: {text}")

    def finished(self, ok: bool) -> None:
        self.ended_at = self.clock()
        self.ok = ok

    # -- figures for the views ---------------------------------------------------------
    def totals(self) -> Counts:
        total = Counts()
        for c in list(self.targets.values()):
            total.add(c)
        return total

    def elapsed(self, now: float) -> float:
        return max((self.ended_at or now) - self.started_at, 1e-9)

    def rate(self, now: float) -> float:
        """Jobs per second over the last few seconds (this leader's whole run at first)."""
        done = self.completions
        if self.ended_at is not None:
            return done / self.elapsed(now)
        samples = self._samples
        samples.append((now, done))
        while len(samples) > 2 and now - samples[1][0] >= RATE_WINDOW:
            samples.popleft()
        first_t, first_done = samples[0]
        if now - first_t < 1.0:
            return done / self.elapsed(now)
        return (done - first_done) / (now - first_t)

    def eta(self, now: float) -> tuple[float, int] | None:
        """Seconds until the jobs known now are done, and how many waiting jobs that leaves
        out (their target has no timed jobs yet); None while it cannot be told."""
        if self.ended_at is not None or now - self.started_at < ETA_MIN_SECONDS:
            return None
        work, untimed = 0.0, 0
        for c in list(self.targets.values()):
            left = c.left()
            if not left:
                continue
            if c.timed >= ETA_MIN_JOBS:
                work += left * c.wall / c.timed
            elif left == c.waiting:  # not ready yet: left out, and said so
                untimed += left
            else:
                return None
        span = min(ETA_WINDOW, now - self.started_at)
        recent = [wall for second, wall in list(self._work.items()) if second >= now - span]
        per_second = sum(recent) / span
        if work <= 0 or per_second <= 0:
            return None
        return work / per_second, untimed

    def longest(self, now: float, limit: int = LONGEST_ROWS) -> list[tuple[Task, float]]:
        """The jobs running longest: the running task of each started packet, and for how long."""
        found = []
        issued_in = self.issued_in
        for packet in list(self.packets):
            if not packet.started:
                continue
            tasks = packet.tasks
            while packet.pos < len(tasks) and issued_in.get(tasks[packet.pos].job_id) is not packet:
                packet.pos += 1
            if packet.pos < len(tasks):
                found.append((tasks[packet.pos], now - packet.clock))
        found.sort(key=lambda item: -item[1])
        return found[:limit]
