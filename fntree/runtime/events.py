"""Events: the leader tells subscribers what happens; it never draws anything.

`Observer` lists the hooks with empty bodies; a subscriber overrides the ones it
wants. `Events` fans each call out to every subscriber (targets' messages only to
those meant to print them: fntree/reporting.py). The leader calls the hooks only
after the facts they report are durable (`issued` and `packet_started` report
what the batch system was asked and said, which the journal need not hold); a
running job's messages are news, not facts, and are passed on as they arrive
(docs/logs.md).

`started` hands each subscriber a `Snapshot` of the recovered state (counts per
target in the states of docs/states.md, and the live chains), so that what a
subscriber shows is true from the first moment, after a restart too; the other
hooks keep it true.

A display says what it shows (`shows_messages`, `shows_failures`), so that
`LogObserver` does not print the same thing again through `logging`.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

from fntree.runtime.records import Result, Task
from fntree.runtime.snapshot import Snapshot

log = logging.getLogger("fntree")
job_log = logging.getLogger("fntree.job")


class Failure(NamedTuple):
    """One failed attempt of a job."""

    name: str
    job_id: str
    attempt: int
    permanent: bool
    message: str
    log_tail: str
    log_path: str | None


class Observer:
    """A subscriber to a run's events; every hook is optional."""

    shows_messages = False  # it prints targets' messages: logging need not
    shows_failures = False  # it prints failed attempts with their message: logging need not

    def started(self, jobstore: str, epoch: int, snapshot: Snapshot) -> None:
        """Leader `epoch` started on `jobstore`; `snapshot` is the run's state at that moment
        (fntree/runtime/snapshot.py): what earlier leaders did and what is left."""

    def rerun(self, epoch: int, reruns: int, root: str) -> None:
        """Leader `epoch` started the run again from its root, a call of target `root`
        (`--rerun-changed`; the run's `reruns`-th time)."""

    def issued(self, tasks: list[Task]) -> None:
        """`tasks` were handed to the batch system, as one packet."""

    def packet_started(self, tasks: list[Task]) -> None:
        """The worker of the packet of `tasks` started (batch systems that queue packets and
        say when they start: `Snapshot.reports_start`)."""

    def completed(self, name: str, result: Result) -> None:
        """A job completed; its completion is durable."""

    def failed(self, failure: Failure) -> None:
        """An attempt failed; `failure.permanent` when no retries are left."""

    def message(self, name: str, job_id: str, text: str) -> None:
        """A running target called `context().log(text)`: passed on as it comes, while the
        job runs (not a durable fact), or with the job's result (docs/logs.md)."""

    def finished(self, ok: bool) -> None:
        """The leader stopped: the run completed (`ok`) or cannot go on."""


class Events(Observer):
    """Fans every hook out to its subscribers."""

    def __init__(self, subscribers: list[Observer],
                 listeners: list[Observer] | None = None) -> None:
        self.subscribers = subscribers
        self.listeners = subscribers if listeners is None else listeners  # of messages

    def started(self, jobstore: str, epoch: int, snapshot: Snapshot) -> None:
        for s in self.subscribers:
            s.started(jobstore, epoch, snapshot)

    def rerun(self, epoch: int, reruns: int, root: str) -> None:
        for s in self.subscribers:
            s.rerun(epoch, reruns, root)

    def issued(self, tasks: list[Task]) -> None:
        for s in self.subscribers:
            s.issued(tasks)

    def packet_started(self, tasks: list[Task]) -> None:
        for s in self.subscribers:
            s.packet_started(tasks)

    def completed(self, name: str, result: Result) -> None:
        for s in self.subscribers:
            s.completed(name, result)

    def failed(self, failure: Failure) -> None:
        for s in self.subscribers:
            s.failed(failure)

    def message(self, name: str, job_id: str, text: str) -> None:
        for s in self.listeners:
            s.message(name, job_id, text)

    def finished(self, ok: bool) -> None:
        for s in self.subscribers:
            s.finished(ok)


class LogObserver(Observer):
    """Reports failures and targets' messages through the `logging` module.

    `messages` / `failures` False: a display prints them. The first failure of each
    kind (target, message, for good or not) is logged in full, with the end of its
    log; the same again only in one line at INFO, so that a thousand identical
    failures do not print a thousand tracebacks (the summary at the end groups them).
    """

    def __init__(self, messages: bool = True, failures: bool = True) -> None:
        self.messages = messages
        self.failures = failures
        self._kinds: dict[tuple[str, str, bool], int] = {}

    def failed(self, failure: Failure) -> None:
        if not self.failures:
            return
        kind = (failure.name, failure.message, failure.permanent)
        seen = self._kinds[kind] = self._kinds.get(kind, 0) + 1
        what = "will be retried" if not failure.permanent else "with no retries left"
        if seen > 1:
            log.info("%s %s failed on attempt %d, %s, as %d before it: %s", failure.name,
                     failure.job_id[:8], failure.attempt, what, seen - 1, failure.message)
            return
        if not failure.permanent:
            log.warning("%s %s failed on attempt %d and will be retried: %s", failure.name,
                        failure.job_id[:8], failure.attempt, failure.message)
            return
        tail = "\n".join("    " + line for line in failure.log_tail.splitlines()[-15:])
        log.error("%s %s failed on attempt %d, with no retries left: %s%s", failure.name,
                  failure.job_id[:8], failure.attempt, failure.message,
                  "\n" + tail if tail else "")

    def message(self, name: str, job_id: str, text: str) -> None:
        if self.messages:
            job_log.info("%s %s: %s", name, job_id[:8], text)

    def started(self, jobstore: str, epoch: int, snapshot: Snapshot) -> None:
        if epoch > 1:
            log.info("leader %d restarting %s: %d jobs done, %d chains open", epoch,
                     jobstore, snapshot.count("done"), len(snapshot.chains))
