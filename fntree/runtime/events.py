"""Events: the leader tells subscribers what happens; it never draws anything.

`Observer` lists the hooks with empty bodies; a subscriber overrides the ones it
wants. `Events` fans each call out to every subscriber. The leader calls the
hooks only after the facts they report are durable; a running job's messages are
news, not facts, and are passed on as they arrive (docs/logs.md).
"""

from __future__ import annotations

import logging
from typing import NamedTuple

from fntree.runtime.records import Result, Task

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

    def started(self, jobstore: str, epoch: int, done: int, live: int) -> None:
        """A leader started on `jobstore`; `done` jobs already completed, `live` chains open."""

    def rerun(self, epoch: int, reruns: int, root: str) -> None:
        """Leader `epoch` started the run again from its root, a call of target `root`
        (`--rerun-changed`; the run's `reruns`-th time)."""

    def issued(self, tasks: list[Task]) -> None:
        """`tasks` were handed to the batch system."""

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

    def __init__(self, subscribers: list[Observer]) -> None:
        self.subscribers = subscribers

    def started(self, jobstore: str, epoch: int, done: int, live: int) -> None:
        for s in self.subscribers:
            s.started(jobstore, epoch, done, live)

    def rerun(self, epoch: int, reruns: int, root: str) -> None:
        for s in self.subscribers:
            s.rerun(epoch, reruns, root)

    def issued(self, tasks: list[Task]) -> None:
        for s in self.subscribers:
            s.issued(tasks)

    def completed(self, name: str, result: Result) -> None:
        for s in self.subscribers:
            s.completed(name, result)

    def failed(self, failure: Failure) -> None:
        for s in self.subscribers:
            s.failed(failure)

    def message(self, name: str, job_id: str, text: str) -> None:
        for s in self.subscribers:
            s.message(name, job_id, text)

    def finished(self, ok: bool) -> None:
        for s in self.subscribers:
            s.finished(ok)


class LogObserver(Observer):
    """Reports failures and targets' messages through the `logging` module."""

    def failed(self, failure: Failure) -> None:
        if not failure.permanent:
            log.warning("%s %s failed on attempt %d and will be retried: %s", failure.name,
                        failure.job_id[:8], failure.attempt, failure.message)
            return
        tail = "\n".join("    " + line for line in failure.log_tail.splitlines()[-15:])
        log.error("%s %s failed on attempt %d, with no retries left: %s%s", failure.name,
                  failure.job_id[:8], failure.attempt, failure.message,
                  "\n" + tail if tail else "")

    def message(self, name: str, job_id: str, text: str) -> None:
        job_log.info("%s %s: %s", name, job_id[:8], text)

    def started(self, jobstore: str, epoch: int, done: int, live: int) -> None:
        if epoch > 1:
            log.info("leader %d restarting %s: %d jobs done, %d chains open", epoch,
                     jobstore, done, live)
