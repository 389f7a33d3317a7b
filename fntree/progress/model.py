"""The progress model: what the displays draw, counted in O(1) per event.

`RunView` is an `Observer`. Per target it counts the jobs queued (spawned, not
yet issued), running, done (and of those, cached: taken from the cache across
runs), failed and retried; it follows the packets in
flight, to know which job of each is running and since when; it keeps the last
messages and failures. The total is what is known so far: it grows as
completions spawn children. The leader's thread changes it while a drawing
thread reads it: readers copy the containers they walk and tolerate counts that
are a moment apart.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

from fntree.runtime.events import Failure, Observer
from fntree.runtime.records import O_SPAWN, Result, Task

LONGEST_ROWS = 5
MESSAGE_ROWS = 5
RATE_WINDOW = 5.0  # seconds over which the current rate is measured


class Counts:
    __slots__ = ("cached", "done", "failed", "queued", "retried", "running")

    def __init__(self) -> None:
        self.queued = self.running = self.done = self.failed = self.retried = self.cached = 0

    def known(self) -> int:
        return self.queued + self.running + self.done + self.failed


class _Packet:
    """Tasks issued together: a worker runs them one after another."""

    __slots__ = ("clock", "left", "pos", "tasks")

    def __init__(self, tasks: list[Task], now: float) -> None:
        self.tasks = tasks
        self.clock = now  # when the task now running started, as far as we know
        self.left = len(tasks)
        self.pos = 0


class RunView(Observer):
    """What the displays show, kept up to date by the leader's hooks.

    `clock` gives the time in seconds since the epoch (the workers' `start` times
    are on that scale); tests pass their own.
    """

    shows_messages = shows_failures = True  # the message pane, the failure panel

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.targets: dict[str, Counts] = {}
        self.pending: set[int] = set()
        self.running: dict[int, _Packet] = {}
        self.packets: set[_Packet] = set()
        self.messages: deque[str] = deque(maxlen=MESSAGE_ROWS)
        self.failures: deque[Failure] = deque(maxlen=1)
        self.failure_count = 0
        self.failure_kinds: Counter[tuple[str, str]] = Counter()  # for good, by target, message
        self.jobstore = ""
        self.epoch = 0
        self.done_before = 0
        self.started_at = clock()
        self.ended_at: float | None = None
        self.ok: bool | None = None
        self._last: _Packet | None = None
        self._samples: deque[tuple[float, int]] = deque()

    def _counts(self, name: str) -> Counts:
        counts = self.targets.get(name)
        if counts is None:
            counts = self.targets[name] = Counts()
        return counts

    # -- hooks -----------------------------------------------------------------------
    def started(self, jobstore: str, epoch: int, done: int, live: int) -> None:
        self.jobstore, self.epoch, self.done_before = jobstore, epoch, done
        self.started_at = self.clock()

    def rerun(self, epoch: int, reruns: int, root: str) -> None:
        self.done_before = 0  # the run starts again from its root: count this run's jobs

    def issued(self, tasks: list[Task]) -> None:
        packet = _Packet(tasks, self.clock())
        self.packets.add(packet)
        targets, pending, running = self.targets, self.pending, self.running
        for task in tasks:
            counts = targets.get(task.name) or self._counts(task.name)
            job = task.job_id
            if job in pending:
                pending.discard(job)
                counts.queued -= 1
            else:
                earlier = running.get(job)
                if earlier is not None:  # requeued by the leader without an event
                    counts.running -= 1
                    self._leave(earlier)
            counts.running += 1
            running[job] = packet

    def completed(self, name: str, result: Result) -> None:
        counts = self.targets.get(name) or self._counts(name)
        counts.done += 1
        if result.cached:
            counts.cached += 1
        packet = self.running.pop(result.job_id, None)
        if packet is not None:
            counts.running -= 1
            packet.left -= 1
            if packet.left <= 0:
                self.packets.discard(packet)
            self._last = packet
        elif result.job_id in self.pending:  # a follow-on its worker ran straight away
            self.pending.discard(result.job_id)
            counts.queued -= 1
            packet = self._last if result.chained else None
        if packet is not None:
            packet.clock = max(packet.clock, result.stats[0] + result.stats[1])
        outcome = result.outcome
        if outcome is not None and outcome[0] == O_SPAWN:
            self._spawned(outcome[1])
            if outcome[2] is not None:
                self._spawned((outcome[2],))

    def _spawned(self, specs: Any) -> None:
        targets, pending = self.targets, self.pending
        stack = list(specs)
        while stack:
            spec = stack.pop()
            (targets.get(spec.name) or self._counts(spec.name)).queued += 1
            pending.add(spec.job_id)
            if spec.deps:
                stack.extend(spec.deps)

    def _leave(self, packet: _Packet) -> None:
        packet.left -= 1
        if packet.left <= 0:
            self.packets.discard(packet)

    def failed(self, failure: Failure) -> None:
        counts = self._counts(failure.name)
        job = int(failure.job_id, 16)
        packet = self.running.pop(job, None)
        if packet is not None:
            counts.running -= 1
            self._leave(packet)
            packet.clock = max(packet.clock, self.clock())
        if failure.permanent:
            counts.failed += 1
            self.failure_kinds[failure.name, failure.message] += 1
        else:
            counts.retried += 1
            counts.queued += 1
            self.pending.add(job)
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
            total.queued += c.queued
            total.running += c.running
            total.done += c.done
            total.failed += c.failed
            total.retried += c.retried
            total.cached += c.cached
        return total

    def elapsed(self, now: float) -> float:
        return max((self.ended_at or now) - self.started_at, 1e-9)

    def rate(self, now: float, done: int) -> float:
        """Jobs per second over the last few seconds (the whole run's rate at first)."""
        samples = self._samples
        samples.append((now, done))
        while len(samples) > 2 and now - samples[1][0] >= RATE_WINDOW:
            samples.popleft()
        first_t, first_done = samples[0]
        if now - first_t < 1.0:
            return done / self.elapsed(now)
        return (done - first_done) / (now - first_t)

    def longest(self, now: float, limit: int = LONGEST_ROWS) -> list[tuple[Task, float]]:
        """The jobs running longest: the running task of each packet, with its elapsed time."""
        found = []
        running = self.running
        for packet in list(self.packets):
            tasks = packet.tasks
            while packet.pos < len(tasks) and running.get(tasks[packet.pos].job_id) is not packet:
                packet.pos += 1
            if packet.pos < len(tasks):
                found.append((tasks[packet.pos], now - packet.clock))
        found.sort(key=lambda item: -item[1])
        return found[:limit]


# -- drawing -------------------------------------------------------------------------------
