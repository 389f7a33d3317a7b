"""`Context`: what a running target can ask of fntree (`fntree.context()`).

The worker sets one before each job and clears it after. The temp dirs are named
and made on first use (most jobs use neither: a job pays nothing for them): the
local temp dir under the worker's machine-local directory,
removed after the run; the global temp dir in the job store, shared by the
chain's jobs and removed by the leader once the chain's closer has completed.

`log` prints a message to the job's output (so its log keeps it) and queues it for
the leader; the worker's live-output thread (fntree.runtime.live) takes the queue
while the job runs, and the runner takes what is left for the job's result, both
through `take_messages` under one lock, so each message reaches the leader once.
At most `MESSAGE_LIMIT` messages of a job, each cut to `MESSAGE_CHARS`, are passed
on; past that a note says so at once, and another at the end how many were not (they
stay in the job's log).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from fntree.errors import FntreeError
from fntree.runtime.durable import make_private_dir
from fntree.runtime.records import Res, job_hex

MESSAGE_LIMIT = 1000  # messages of one job passed to the leader; the rest stay in its log
MESSAGE_CHARS = 2000  # characters of one message passed to the leader

Where = Path | Callable[[], Path]  # a directory, or how to name it once it is first used


class Context:
    """The running job's id, attempt, temp dirs and a channel of messages to the leader."""

    def __init__(self, job_id: int, name: str, attempt: int, local_dir: Where,
                 global_dir: Where, res: Res | None = None) -> None:
        self.job_id = job_hex(job_id)
        self.name = name
        self.attempt = attempt
        res = res or Res(None, None, 1.0, None)
        self.cpu = res.cpu
        """Cores this job was given."""
        self.memory = res.memory
        """Bytes of memory this job was given (None: not declared)."""
        self.time = res.time
        """Seconds of run time this job was given (None: not declared)."""
        self._local_dir = local_dir
        self._global_dir = global_dir
        self.used_local = False
        self.used_global = False
        self.cached = False  # its value came from a cache it looked up itself (a shell job)
        self.messages: list[str] = []
        """Messages not yet taken for the leader (`take_messages`)."""
        self._passed = 0
        self._dropped = 0
        self._told = False
        self._lock = threading.Lock()

    @property
    def local_temp_dir(self) -> Path:
        """A directory that exists for this run of the job only."""
        if not self.used_local:
            self._local_dir = _named(self._local_dir)
            make_private_dir(self._local_dir)
            self.used_local = True
        return _named(self._local_dir)

    @property
    def global_temp_dir(self) -> Path:
        """The chain's directory, kept from its founder's run until its closer completes."""
        if not self.used_global:
            self._global_dir = _named(self._global_dir)
            make_private_dir(self._global_dir)
            self.used_global = True
        return _named(self._global_dir)

    def log(self, message: object) -> None:
        """Send `message` to the leader (and keep it in this job's log)."""
        text = str(message)
        with self._lock:
            if self._passed + len(self.messages) < MESSAGE_LIMIT:
                self.messages.append(text if len(text) <= MESSAGE_CHARS else
                                     f"{text[:MESSAGE_CHARS]} [... {len(text) - MESSAGE_CHARS}"
                                     " characters cut; the job's log has them]")
            else:
                self._dropped += 1
        print(f"[fntree] {text}", file=sys.stderr, flush=True)

    def take_messages(self, final: bool = False) -> list[str]:
        """The messages not yet passed to the leader; a note at the first one dropped, and
        (`final`, when the job has ended) how many were."""
        with self._lock:
            taken, self.messages = self.messages, []
            self._passed += len(taken)
            if self._dropped and not self._told:
                taken.append(f"[fntree: this job logged more than {MESSAGE_LIMIT} messages; "
                              "the rest are not passed on, and its log has them all: "
                              f"`fntree logs DIR {self.job_id}`]")
                self._told = True
            if final and self._dropped:
                taken.append(f"[fntree: {self._dropped} message(s) of this job were not "
                              "passed on]")
        return taken

    def __repr__(self) -> str:
        return f"Context(job {self.name} {self.job_id}, attempt {self.attempt})"


def _named(where: Where) -> Path:
    return where if isinstance(where, Path) else where()


_current: Context | None = None


def current() -> Context:
    """The running job's context; FntreeError outside a running target."""
    if _current is None:
        raise FntreeError("fntree.context() is only available inside a running target; "
                          "call it from the body of an @fntree.target function")
    return _current


def set_current(ctx: Context | None) -> None:
    global _current
    _current = ctx


def _unlock_in_child() -> None:
    """A fork (an isolated job) may copy the lock held by the live-output thread: renew it."""
    if _current is not None:
        _current._lock = threading.Lock()


os.register_at_fork(after_in_child=_unlock_in_child)


# -- where this process is: inside a job, or a worker's process ---------------------------
_in_worker = False


def running() -> Context | None:
    """The running job's context, or None outside a running target."""
    return _current


def enter_worker() -> None:
    """Note that this process is a worker (it runs jobs; it never leads a run)."""
    global _in_worker
    _in_worker = True


def in_worker() -> bool:
    return _in_worker
