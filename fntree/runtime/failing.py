"""The leader's side of failure: charging a failed attempt, retrying, blaming a dead worker.

`FailureHandling` is a part of the `Leader` (a mixin: it works on the leader's
`state`, journal and batch system). A failed attempt is recorded by one `FAIL`
record, which says whether it was the last (`permanent`) and, for a job killed
for going over its memory or time, the larger resources of its retry; the event
that reports it to the subscribers is sent only after the journal commit.

A failure is for good when the job has used its retries, or when the worker
judged its exception not worth a retry (`Result.retry`, fntree/runtime/retrying.py:
the leader never loads a user's exception class); the message then ends in
"(not retried)". With `fail_fast`, the first failure for good sets `stopping`: the
leader issues nothing more, lets the running jobs finish and be recorded, and ends.

Blame for a dead worker: see the leader's docstring (fntree/runtime/leader.py).
At the end, `_failure` makes the `WorkflowFailed` that lists the jobs that
failed for good, with the end of each one's log, its message naming each kind of
failure once (`errors.group_failures`) and how to continue (`restart_hint`: the
command, or `fntree.restart(...)` in a notebook).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from fntree.batch.base import DEFAULT_MEMORY, DEFAULT_TIME, BatchSystem, Update
from fntree.errors import FailedJob, WorkflowFailed, group_failures
from fntree.resources import format_memory
from fntree.runtime.durable import make_private_dir, open_private
from fntree.runtime.events import Failure
from fntree.runtime.records import R_FAIL, R_REQUEUE, Res, job_hex
from fntree.runtime.state import Chain, RunState
from fntree.runtime.store import JobStore

log = logging.getLogger("fntree")


class FailureHandling:
    """The leader's methods for failed attempts and dead workers."""

    state: RunState
    store: JobStore
    batch: BatchSystem
    retry_count: int
    _after: list[tuple[Any, ...]]
    _solo: set[int]
    _nochain: set[int]
    fail_fast = False  # stop issuing jobs at the first failure for good
    stopping = False  # a job failed for good under fail_fast: issue nothing more
    # How the end of a failed run says to continue it ({root}: the job store).
    restart_hint = "`fntree restart {root}`"

    def _record(self, record: tuple[Any, ...]) -> None:
        raise NotImplementedError

    def _fail(self, chain: Chain, attempt: int, message: str, log_rel: str | None,
              cause: str = "", retry: bool = True) -> None:
        """Record a failed attempt; `retry` False: its exception is not worth a retry."""
        job = chain.job
        assert job is not None
        retries = self.retry_count if job.res.retries is None else job.res.retries
        permanent = chain.failures + 1 > retries
        if not retry and not permanent:
            permanent = True
            message += " (not retried)"
        if permanent and self.fail_fast and not self.stopping:
            self.stopping = True
            log.warning("%s %s failed for good: with fail-fast, no new job is started; the "
                        "running ones finish", job.name, job_hex(job.job_id)[:8])
        res = None if permanent else self._escalate(job.res, cause)
        if res is not None:
            message += (f" (retrying with {format_memory(res.memory)} of memory)"
                        if cause == "memory" else f" (retrying with {res.time:g}s of time)")
        self._record((R_FAIL, job.job_id, attempt, permanent, message, log_rel, res))
        log_path = str(self.store.paths.root / log_rel) if log_rel else None
        self._after.append(("failed", Failure(job.name, job_hex(job.job_id), attempt,
                                              permanent, message, _tail(log_path), log_path)))

    def _escalate(self, res: Res, cause: str) -> Res | None:
        """More memory or time for the retry of a job killed for going over, or None."""
        if cause == "memory":
            cap = self.batch.limits()[1]
            memory = min(2 * (res.memory or DEFAULT_MEMORY), cap)
            return res._replace(memory=memory) if memory > (res.memory or 0) else None
        if cause == "time":
            return res._replace(time=2 * (res.time or DEFAULT_TIME))
        return None

    def _lost(self, update: Update) -> None:
        running = update.running
        if running is not None and running.chained and running.job_id not in update.lost:
            self._lost_chained(update, running)
            return
        state = self.state
        chains = [c for c in (state.chain_of_job(j) for j in update.lost) if c is not None]
        chains = [c for c in chains if c.chain_id in state.running]
        if len(update.lost) == 1 and len(chains) == 1:
            chain = chains[0]
            assert chain.job is not None
            log_rel = self._append_log(chain, update.output, update.reason)
            self._fail(chain, state.running[chain.chain_id],
                       f"WorkerDied: {update.reason}", log_rel, update.cause)
            return
        for chain in chains:
            assert chain.job is not None
            self._solo.add(chain.job.job_id)
            self._record((R_REQUEUE, chain.job.job_id))

    def _lost_chained(self, update: Update, running: Any) -> None:
        """The worker died running a follow-on chained after one of the unreported tasks.

        None of the packet's unreported tasks was running, so none is charged: all run
        again. The follow-on is to blame: its output goes to its own log, its chain runs
        unchained from now on, and it runs alone when it is issued.
        """
        state = self.state
        chains = [c for c in (state.chain_of_job(j) for j in update.lost) if c is not None]
        chains = [c for c in chains if c.chain_id in state.running and c.job is not None]
        if chains:
            log.warning("%s %s, a follow-on chained in its worker, was running when the "
                        "worker died (%s); it will run again on its own",
                        running.name, job_hex(running.job_id)[:8], update.reason)
            self._write_log(running.job_id, running.name, running.attempt, update.output,
                            f"chained in its predecessor's worker; {update.reason}")
            self._nochain.add(running.chain_id)
            self._solo.add(running.job_id)
        for chain in chains:
            assert chain.job is not None
            self._record((R_REQUEUE, chain.job.job_id))

    def _append_log(self, chain: Chain, output: bytes, reason: str) -> str | None:
        assert chain.job is not None
        return self._write_log(chain.job.job_id, chain.job.name, chain.attempts, output, reason)

    def _write_log(self, job_id: int, name: str, attempt: int, output: bytes,
                   reason: str) -> str | None:
        path = self.store.paths.log(job_id)
        header = f"=== {name} {job_hex(job_id)} attempt {attempt} ({reason}) ===\n".encode()
        tail = b"\n" if output and not output.endswith(b"\n") else b""
        try:
            make_private_dir(path.parent)
            with open(open_private(path, os.O_WRONLY | os.O_APPEND), "ab") as f:
                f.write(header + output + tail)
        except OSError as exc:
            log.warning("cannot keep the log of %s: %s", name, exc)
            return None
        return str(path.relative_to(self.store.paths.root))

    # -- the end ----------------------------------------------------------------------
    def _failure(self) -> WorkflowFailed:
        state = self.state
        failed = []
        for cid, (message, log_rel) in state.failed.items():
            chain = state.chains[cid]
            assert chain.job is not None
            log_path = str(self.store.paths.root / log_rel) if log_rel else None
            failed.append(FailedJob(chain.job.name, job_hex(chain.job.job_id), chain.failures,
                                    message, _tail(log_path), log_path))
        root = self.store.paths.root
        hint = self.restart_hint.format(root=str(root))
        if failed:
            groups = group_failures(failed)
            kinds = "; ".join(g.headline() for g in groups[:5])
            more = f"; and {len(groups) - 5} more kinds" if len(groups) > 5 else ""
            stopped = ""
            if self.stopping:
                waiting = sum(len(queue) for queue in state.ready.values())
                stopped = (f" The run stopped at the first (fail-fast), with {waiting} ready "
                           "job(s) not started.")
            message = (f"{len(failed)} job(s) failed after their retries: {kinds}{more}."
                       f"{stopped} Read why with `fntree logs {root}`, run one again here "
                       f"with `fntree debug-job {root} {failed[0].job_id} --pdb`; fix the "
                       f"cause, then continue with {hint}")
        else:
            message = (f"the run stopped with no job left to run but the root incomplete; "
                       f"inspect it with `fntree status {root}`")
        return WorkflowFailed(message, failed, root)


def _tail(path: str | None, size: int = 8192) -> str:
    """The end of a job's log, from the header of its last attempt if that is in reach."""
    if path is None:
        return ""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            end = f.tell()
            f.seek(max(0, end - size))
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    last = text.rfind("=== ")
    return text[last:] if last >= 0 else text

