"""Replaying one job of a stopped run in this process: what `fntree debug-job` does.

`load` picks the job among the live chains of the recovered (read-only) state
of a run no leader is driving (`find_job`: by its id, a unique prefix of it,
or its target's name). `replay` runs it as a worker would: its function loaded
from the state's `fns`, its arguments and promise slots filled as the leader
fills them (`chain.slot_values()`), the run's environment as it is now (with the
changes restarts recorded, fntree/environment.py), `sys.path`
and working directory, a `Context` set as current, and the body run through
the same `execute` hook. It writes nothing to the job store: the local temp
dir is fresh, and the chain's global temp dir is a copy, both removed afterwards.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import shlex
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

from fntree import environment
from fntree.compiler import execute
from fntree.errors import FntreeError, JobStoreError
from fntree.runtime import codec, context
from fntree.runtime.objects import ObjectStore
from fntree.runtime.records import O_VALUE, Spec, job_hex
from fntree.runtime.state import FAILED, READY, RUNNING, Chain, RunState
from fntree.runtime.store import JobStore

# Variables of this machine that the replay keeps, as a worker here would have them.
HOST_VARIABLES = ("HOSTNAME", "HOSTTYPE", "TMPDIR", "TMP", "TEMP", "TERM", "COLUMNS", "LINES")


def debug_command(jobstore: str | os.PathLike[str], job_id: str) -> str:
    """The exact command that replays `job_id` of the run in `jobstore`."""
    return f"fntree debug-job {shlex.quote(str(jobstore))} {job_id}"


class Replayed(NamedTuple):
    """How a replay ended: the outcome, or the exception the body raised."""

    name: str
    job_id: str
    attempt: int
    outcome: tuple[Any, ...] | None
    error: BaseException | None

    def describe(self) -> str:
        """What the job did, in a sentence."""
        if self.outcome is None:
            return f"{self.name} {self.job_id} raised {type(self.error).__name__}: {self.error}"
        if self.outcome[0] == O_VALUE:
            return f"{self.name} {self.job_id} returned {codec.decode_value(self.outcome[1])!r}"
        children, follow = self.outcome[1], self.outcome[2]
        names = ", ".join(sorted({c.name for c in children}))
        what = f"{len(children)} child(ren) ({names})" if children else "no children"
        then = f" and the follow-on {follow.name}" if follow is not None else ""
        return f"{self.name} {self.job_id} spawned {what}{then} (not run: nothing is recorded)"


def find_job(state: RunState, text: str) -> Chain:
    """The live chain whose next job is `text`: a job id, a unique prefix of one, or a name."""
    jobs = [(job_hex(c.job.job_id), c.job.name, c) for c in state.chains.values()
            if c.job is not None]
    key = text.lower()
    found = [c for hex_id, _, c in jobs if hex_id.startswith(key)] if _is_hex(key) else []
    if not found:
        found = [c for _, name, c in jobs if name == text]
    if len(found) > 1:
        failed = [c for c in found if c.status == FAILED]
        found = failed if len(failed) == 1 else found
    if not found:
        raise FntreeError(f"no live job of this run is {text!r}: it completed (its value is "
                          "recorded), or the id is wrong; `fntree status DIR --failed` lists "
                          "the jobs that can be replayed")
    if len(found) > 1:
        ids = ", ".join(job_hex(c.job.job_id) for c in found[:5] if c.job is not None)
        raise FntreeError(f"{text!r} names {len(found)} live jobs ({ids}"
                          f"{', ...' if len(found) > 5 else ''}); give the job id")
    chain = found[0]
    assert chain.job is not None
    if chain.status not in (READY, RUNNING, FAILED):
        raise FntreeError(f"job {chain.job.name} {job_hex(chain.job.job_id)} is waiting for "
                          f"{chain.pending} child job(s), so its arguments are not known yet; "
                          "replay a failed, ready or interrupted job")
    return chain


def _is_hex(text: str) -> bool:
    return bool(text) and all(ch in "0123456789abcdef" for ch in text)


class Job(NamedTuple):
    """A job picked for replay, and what it needs from its run."""

    store: JobStore
    state: RunState
    chain: Chain
    config: dict[str, Any]

    @property
    def spec(self) -> Spec:
        assert self.chain.job is not None
        return self.chain.job

    def describe(self) -> str:
        return (f"{self.spec.name} {job_hex(self.spec.job_id)} ({self.chain.status}, "
                f"{self.chain.attempts} attempt(s) so far)")


def load(store: JobStore, text: str) -> Job:
    """Job `text` of the stopped run in `store`: an id, a unique prefix of one, or a name."""
    holder = store.leader_alive()
    if holder:
        raise JobStoreError(f"a leader is running on {store.paths.root} ({holder}); "
                            "debug-job replays jobs of a stopped run: wait for it, or stop it "
                            f"with `fntree kill {store.paths.root}`")
    state, _, _ = store.recover(repair=False)
    return Job(store, state, find_job(state, text), store.config())


def replay(job: Job, *, attempt: int | None = None, post_mortem: bool = False) -> Replayed:
    """Run `job` here as a worker would, recording nothing; how it ended.

    With `post_mortem`, pdb is entered at the exception the body raised.
    """
    spec, chain = job.spec, job.chain
    attempt = attempt or max(chain.attempts, 1)
    with tempfile.TemporaryDirectory(prefix="fntree-debug-") as scratch, \
            _recorded_environment(job.config):
        global_dir = Path(scratch) / "global"
        original = job.store.paths.global_temp_dir(chain.chain_id)
        if original.is_dir():
            shutil.copytree(original, global_dir, symlinks=True)
        ctx = context.Context(spec.job_id, spec.name, attempt, Path(scratch) / "local",
                              global_dir, spec.res)
        context.set_current(ctx)
        try:
            target = pickle.loads(job.state.fns[spec.fn_key])
            args, kwargs = codec.loads(spec.args, chain.slot_values(),
                                       ObjectStore(job.store.paths.objects))
            outcome, _ = execute(target, args, kwargs, spec.job_id)
        except Exception as exc:
            if post_mortem:
                import pdb

                pdb.post_mortem(user_frames(exc.__traceback__) or exc.__traceback__)
            return Replayed(spec.name, job_hex(spec.job_id), attempt, None, exc)
        finally:
            context.set_current(None)
    return Replayed(spec.name, job_hex(spec.job_id), attempt, outcome, None)


@contextlib.contextmanager
def _recorded_environment(config: dict[str, Any]) -> Iterator[None]:
    """The run's environment, import path and working directory, restored afterwards."""
    saved_env, saved_path, saved_cwd = dict(os.environ), list(sys.path), os.getcwd()
    env = environment.current(config)
    env.update({k: saved_env[k] for k in HOST_VARIABLES if k in saved_env})
    os.environ.clear()
    os.environ.update(env)
    sys.path[:0] = [p for p in config.get("sys_path", ()) if p not in sys.path]
    cwd = config.get("cwd")
    try:
        if cwd and os.path.isdir(cwd):
            os.chdir(cwd)
        yield
    finally:
        os.chdir(saved_cwd)
        sys.path[:] = saved_path
        os.environ.clear()
        os.environ.update(saved_env)


_OWN_FILES = str(Path(__file__).resolve().parent)


def user_frames(tb: TracebackType | None) -> TracebackType | None:
    """The traceback from the target's own frames on: fntree's frames above are noise."""
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_OWN_FILES):
        tb = tb.tb_next
    return tb
