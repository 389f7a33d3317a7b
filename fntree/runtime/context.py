"""`Context`: what a running target can ask of fntree (`fntree.context()`).

The worker sets one before each job and clears it after. The temp dirs are made
on first use: the local temp dir under the worker's machine-local directory,
removed after the run; the global temp dir in the job store, shared by the
chain's jobs and removed by the leader once the chain's closer has completed.
"""

from __future__ import annotations

import sys
from pathlib import Path

from fntree.errors import FntreeError
from fntree.runtime.durable import make_private_dir
from fntree.runtime.records import Res, job_hex


class Context:
    """The running job's id, attempt, temp dirs and a channel of messages to the leader."""

    def __init__(self, job_id: int, name: str, attempt: int, local_dir: Path,
                 global_dir: Path, res: Res | None = None) -> None:
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
        self.messages: list[str] = []

    @property
    def local_temp_dir(self) -> Path:
        """A directory that exists for this run of the job only."""
        if not self.used_local:
            make_private_dir(self._local_dir)
            self.used_local = True
        return self._local_dir

    @property
    def global_temp_dir(self) -> Path:
        """The chain's directory, kept from its founder's run until its closer completes."""
        if not self.used_global:
            make_private_dir(self._global_dir)
            self.used_global = True
        return self._global_dir

    def log(self, message: object) -> None:
        """Send `message` to the leader (and keep it in this job's log)."""
        text = str(message)
        self.messages.append(text)
        print(f"[fntree] {text}", file=sys.stderr, flush=True)

    def __repr__(self) -> str:
        return f"Context(job {self.name} {self.job_id}, attempt {self.attempt})"


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
