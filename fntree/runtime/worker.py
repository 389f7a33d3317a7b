"""The worker: runs tasks and reports results; it never writes the journal.

`JobRunner` runs one packet of tasks, one after another, in the calling
process. For each it sets the context, points file descriptors 1 and 2 at a
scratch file (so prints and subprocess output land in the job's log), runs the
body through the `execute` hook the DSL layer supplies, and turns the outcome
or the exception into a `Result` (the `describe` hook, when given, says what the
functions the job introduced are: fntree/identity.py). Afterwards it removes the job's local temp
dir and, if the job wrote anything, appends its output (head and tail when
large) to the job's log in the job store. While the job runs, its messages and
output leave as they come (`LiveOutput`, fntree/runtime/live.py): the runner
begins and ends the live copy around the job, and removes the live file once the
kept log has the attempt; the result carries the messages not yet passed on.

What a job costs the worker when it uses none of it is kept to a few system calls:
its temp dirs are named and made on first use (`Context`), its scratch output is
truncated only if the last job wrote to it, its mark is a store to a mapped page,
and its peak memory is read only after jobs that ran 10 ms and worked (`PeakMemory`).

Every job starts clean: after each job the runner puts back what the job changed
in the process (environment, working directory, standard streams and fds 0-2,
signal handlers, umask: `clean_state.CleanState`, which also points fds 1 and 2
at the scratch file for the job and back), and a target declared
`@target(isolate=True)` runs in a forked child (`isolate.run_isolated`). Before
each job it writes the job's id to its `JobMark` file, so that the job running
when the worker dies is the one charged. A write of the job's output that fails
because the local temp disk is full fails the job with a message saying so.

Chaining (jobTree's trick): when a job's outcome is only a follow-on that needs
no values and fits the packet's resources, the runner runs it at once in the
same process instead of sending it back to the leader to be issued again. The
leader records both completions, in order, in one group commit.

No process outlives its job: the runner makes its process a child subreaper,
and after each task kills and reaps every process the task started, before
its result is reported (fntree.batch.proctree). `running` names the task being
run, for the local batch system's heartbeat and time limits.

The cache across runs (fntree/runtime/cache.py): with `$FNTREE_CACHE` set and an
`identify` hook (the DSL's: a target's code hash and whether it is pure), a pure job's
key is computed after its arguments are decoded; on a hit its stored value is
its outcome and its body does not run.

Values out of line (fntree/runtime/objects.py): a task's arguments and promised
values may be references, which the runner reads from the job store's
`objects/`; a job's long value, and the long arguments of the calls it spawns,
are written there (durably, once) before its result is reported, and the result
carries only their references. A write that fails fails the job.

Result encoding: a job that spawned many children reports its outcome pickled
once, here (`Result.pickled`): it crosses to the leader as those bytes, the
leader decodes them once, and its journal keeps the same bytes (an
`R_DONE_PICKLED` record) instead of pickling the child specs again.

How tasks arrive and results leave (pipes, files) is the batch system's affair.
"""

from __future__ import annotations

import errno
import logging
import os
import pickle
import shutil
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from fntree.batch import proctree, threads
from fntree.batch.jobmark import JobMark, mark_path
from fntree.errors import FntreeError
from fntree.runtime import codec, context, faults, retrying
from fntree.runtime.cache import Identify, WorkerCache
from fntree.runtime.clean_state import CleanState
from fntree.runtime.durable import make_private_dir, open_private
from fntree.runtime.isolate import IsolatedFailure, IsolatedJobDied, run_isolated
from fntree.runtime.live import LiveOutput, Send, attempt_header
from fntree.runtime.objects import ObjectStore, out_of_line
from fntree.runtime.paths import StorePaths
from fntree.runtime.peakmem import PeakMemory
from fntree.runtime.records import O_SPAWN, O_VALUE, Result, Task, job_hex

log = logging.getLogger("fntree")

Execute = Callable[[Any, tuple[Any, ...], dict[str, Any], int],
                   tuple[tuple[Any, ...], dict[bytes, bytes]]]

# The identities of the functions a job introduced: {fn_key: (module, qualname, hash, origin)}.
Describe = Callable[[Any], dict[bytes, tuple[str, str, bytes, str]]]

LOG_LIMIT = 2 * 1024 * 1024
CHAIN_BUDGET = 1.0  # seconds a packet may spend on chained follow-ons
# Children from which a spawning outcome is pickled apart (`_pickled`): the leader's CPU per
# result, pickled apart or not, crosses over at about 5 children (10: 37 against 47 µs).
PICKLE_APART = 16


class TargetLoadError(FntreeError, ImportError):
    """A worker cannot load a target's function."""


class JobRunner:
    """Runs tasks for one job store in this process."""

    def __init__(self, store_root: Path, local_dir: Path, execute: Execute,
                 log_limit: int = LOG_LIMIT, describe: Describe | None = None,
                 identify: Identify | None = None) -> None:
        threads.lean_malloc()  # before any thread of ours: fntree/batch/threads.py
        self.describe = describe
        self.paths = StorePaths(store_root)
        self.local_dir = local_dir
        self.execute = execute
        self.log_limit = log_limit
        self.faults = faults.Faults.from_env()
        self._peak = PeakMemory()
        self._fns: dict[bytes, Any] = {}
        self._fn_bytes: dict[bytes, bytes] = {}
        self.known: set[bytes] = set()
        self.objects = ObjectStore(self.paths.objects)
        self.cache = WorkerCache.from_env(identify)
        if self.cache is not None:
            self.cache.cache.store_objects = self.objects
        make_private_dir(local_dir)
        self._scratch = os.open(local_dir / "output", os.O_RDWR | os.O_CREAT | os.O_TRUNC,
                                0o600)
        # (job id, attempt, monotonic start, declared time) of the task being run.
        self.running: tuple[int, int, float, float | None] | None = None
        self.live = LiveOutput(self.paths, self._scratch, log_limit)
        proctree.become_subreaper()
        self._clean = CleanState()
        self._mark = JobMark(mark_path(local_dir))
        context.enter_worker()

    def send_messages(self, send: Send) -> None:
        """Pass running jobs' messages to `send` as they come (the transport's hook)."""
        self.live.send = send

    def learn(self, fns: dict[bytes, bytes]) -> None:
        """Functions the leader sent (so it has them)."""
        self._fn_bytes.update(fns)
        self.known.update(fns)

    def _function(self, key: bytes, name: str) -> Any:
        fn = self._fns.get(key)
        if fn is None:
            try:
                fn = pickle.loads(self._fn_bytes[key])
            except FntreeError as exc:  # its module's code refused (fntree.run at import)
                raise TargetLoadError(f"target `{name}` cannot be loaded in the worker: "
                                      f"{exc}") from exc
            except Exception as exc:
                raise TargetLoadError(
                    f"target `{name}` cannot be loaded in the worker ({type(exc).__name__}: "
                    f"{exc}); its module must be importable where jobs run: install it, add "
                    "its directory to PYTHONPATH, or define the target in the script that "
                    "calls fntree.run") from exc
            self._fns[key] = fn
        return fn

    def run_packet(self, tasks: list[Task]) -> Iterator[list[Result]]:
        """Run `tasks` in order; for each, the results of it and its chained follow-ons.

        A task's results and its chain's are reported together, so the leader never
        issues a follow-on that a worker is already running.
        """
        started = time.monotonic()
        cpu = max(t.res.cpu for t in tasks)
        memory = max(t.res.memory or 0 for t in tasks)
        for task in tasks:
            current: Task | None = task
            chained = False
            results = []
            while current is not None:
                self.running = (current.job_id, current.attempt, time.monotonic(),
                                current.res.time)
                result, follow = self.run_task(current, chained)
                self.running = None
                proctree.kill_descendants()  # before the result is reported
                results.append(result)
                current, chained = None, True
                if (follow is not None and task.chaining and follow.res.cpu <= cpu
                        and (follow.res.memory or 0) <= memory
                        and time.monotonic() - started < CHAIN_BUDGET):
                    current = follow
            if task is tasks[-1] and self.cache is not None:
                # the packet's cache entries are written before its last result leaves:
                # the leader takes a worker whose jobs all reported to be free
                self.cache.drain()
            yield results
        self._mark.clear()

    def run_task(self, task: Task, chained: bool = False) -> tuple[Result, Task | None]:
        """Run one task; the result and the follow-on to chain, if any."""
        ctx = context.Context(task.job_id, task.name, task.attempt,
                              lambda: self.local_dir / f"{job_hex(task.job_id)}-{task.attempt}",
                              lambda: self.paths.global_temp_dir(task.chain_id), task.res)
        self._mark.set(task.job_id, task.chain_id, task.attempt, chained, task.name)
        self.live.begin(task, ctx)  # empties the scratch output
        self._clean.capture_output(self._scratch)
        context.set_current(ctx)
        self._peak.before()
        start, wall0, cpu0 = time.time(), time.perf_counter(), time.process_time()
        outcome: tuple[Any, ...] | None = None
        fns: dict[bytes, bytes] = {}
        message, retry = "", True
        armed = probe = None
        try:
            if self.faults.active:
                armed = self.faults.before(task.job_id, task.attempt)
            args, kwargs = codec.loads(task.args, task.values, self.objects)
            body = self._function(task.fn_key, task.name)
            if self.cache is not None:
                probe = self.cache.probe(task.fn_key, task.name, body, task.args,
                                         task.values, (args, kwargs))
            outcome, fns = self._execute(body, args, kwargs, task.job_id, ctx, probe)
            outcome = out_of_line(outcome, self.objects)
            if armed is not None:
                self.faults.after(armed)
        except BaseException as exc:  # the job's failure, whatever it is, is reported
            if isinstance(exc, KeyboardInterrupt):
                raise
            outcome = None  # a value made but not stored out of line is no value
            message, retry = self._failure_message(exc), self._worth_retry(exc, task.fn_key)
        finally:
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
            live = self.live.end()
            context.set_current(None)
            unwritten = self._clean.release_output()
            self._clean.restore()
        if unwritten is not None:  # output the job printed could not be written
            self._clean.reopen_output()  # what it still buffers is not the next job's
            full = temp_disk_full(self.local_dir, unwritten)
            if full is not None:
                outcome, message = None, message or full
        if ctx.used_local:
            shutil.rmtree(ctx.local_temp_dir, ignore_errors=True)
        log = self._keep_log(task, outcome is None)
        self.live.finish(live)  # the kept log has the attempt now
        rss = self._peak.after(wall, cpu)
        new_fns = self._learn_new(fns)
        cached = (probe is not None and probe.hit) or ctx.cached
        note = None if probe is None or self.cache is None else self.cache.settle(probe, outcome)
        result = Result(task.job_id, task.attempt, outcome is not None, outcome, message,
                        new_fns, log, ctx.used_global, (start, wall, cpu, rss),
                        tuple(ctx.take_messages(final=True)), chained,
                        self.describe(new_fns) if new_fns and self.describe else {}, cached, note,
                        retry, _pickled(outcome))
        return result, self._follow_on(task, outcome)

    def _learn_new(self, fns: dict[bytes, bytes]) -> dict[bytes, bytes]:
        """Of the functions a job's calls use, those the leader was not yet sent."""
        new_fns = {k: v for k, v in fns.items() if k not in self.known}
        if new_fns:
            self.known.update(new_fns)
            self._fn_bytes.update(new_fns)
        return new_fns

    def _execute(self, body: Any, args: tuple[Any, ...], kwargs: dict[str, Any], job_id: int,
                 ctx: context.Context, probe: Any = None
                 ) -> tuple[tuple[Any, ...], dict[bytes, bytes]]:
        """The value the cache holds for it (`probe`, a hit), or else the body run in place,
        or in a fresh process if its target asks (isolate=True)."""
        if probe is not None and probe.hit:
            return (O_VALUE, probe.value), {}
        if not getattr(body, "isolate", False):
            return self.execute(body, args, kwargs, job_id)
        result: tuple[tuple[Any, ...], dict[bytes, bytes]] = run_isolated(
            lambda: self.execute(body, args, kwargs, job_id), ctx, _print_user_traceback)
        return result

    def _worth_retry(self, exc: BaseException, fn_key: bytes) -> bool:
        """Whether the target deems what its job raised worth a retry (runtime/retrying.py)."""
        return retrying.verdict(_raised(exc), self._fns.get(fn_key))

    def _failure_message(self, exc: BaseException) -> str:
        """What a failed job reports, its traceback printed to its output first."""
        if isinstance(exc, IsolatedFailure):  # printed in the isolated process
            return temp_disk_full(self.local_dir, exc.error) or exc.message
        try:
            _print_user_traceback(exc)
        except OSError as failed:  # its output cannot be written: say why, not only what
            return temp_disk_full(self.local_dir, failed) or f"{type(exc).__name__}: {exc}"
        return temp_disk_full(self.local_dir, exc) or f"{type(exc).__name__}: {exc}"

    def _follow_on(self, task: Task, outcome: tuple[Any, ...] | None) -> Task | None:
        if outcome is None or outcome[0] != O_SPAWN or outcome[1]:
            return None
        follow = outcome[2]
        if follow is None or follow.slots or follow.deps or follow.fn_key not in self._fn_bytes:
            return None
        return Task(follow.job_id, 1, follow.name, follow.fn_key, follow.args, (),
                    task.chain_id, follow.res)

    def _keep_log(self, task: Task, failed: bool) -> str | None:
        size = os.fstat(self._scratch).st_size
        if not size and not failed:
            return None
        try:
            return append_log(self.paths, task.job_id, task.name, task.attempt,
                              self._scratch, size, self.log_limit)
        except OSError as exc:
            log.warning("cannot keep the log of %s %s: %s", task.name, job_hex(task.job_id), exc)
            return None

    def close(self) -> None:
        self.live.close()
        self._mark.close()
        os.close(self._scratch)
        shutil.rmtree(self.local_dir, ignore_errors=True)


def append_log(paths: StorePaths, job_id: int, name: str, attempt: int, fd: int,
               size: int, limit: int, note: str = "") -> str:
    """Append a job's output (from `fd`, `size` bytes) to its log; head and tail if large."""
    path = paths.log(job_id)
    make_private_dir(path.parent)
    header = attempt_header(name, job_id, attempt, note)
    if size <= limit:
        body = os.pread(fd, size, 0)
    else:
        half = limit // 2
        cut = size - 2 * half
        body = (os.pread(fd, half, 0)
                + f"\n[... {cut} bytes cut by fntree: log limit {limit} bytes ...]\n".encode()
                + os.pread(fd, half, size - half))
    with open(open_private(path, os.O_WRONLY | os.O_APPEND), "ab") as f:
        f.write(header + body + (b"" if body.endswith(b"\n") or not body else b"\n"))
    return str(path.relative_to(paths.root))


_OWN_FILES = str(Path(__file__).resolve().parent.parent)


def _pickled(outcome: tuple[Any, ...] | None) -> bytes | None:
    """An outcome that spawned `PICKLE_APART` children or more, pickled once here: its specs
    travel and are journaled as these bytes (`Result.pickled`), never pickled again by the
    leader. Other outcomes travel as they are: the leader's own pickle of a few specs costs
    it less than loading a pickle apart (which resolves its classes again)."""
    if outcome is None or outcome[0] != O_SPAWN or len(outcome[1]) < PICKLE_APART:
        return None
    return pickle.dumps(outcome, pickle.HIGHEST_PROTOCOL)


def _raised(exc: BaseException) -> tuple[str, ...]:
    """The MRO names of what the target's body raised; () for fntree's own failures to load
    or run it (a target that cannot load here may load on another node)."""
    if isinstance(exc, IsolatedFailure):
        return exc.raised
    if isinstance(exc, (TargetLoadError, IsolatedJobDied)):
        return ()
    return retrying.type_names(type(exc))


def _print_user_traceback(exc: BaseException) -> None:
    """The traceback from the target's own frames on: fntree's frames above it are noise."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_OWN_FILES):
        tb = tb.tb_next
    traceback.print_exception(type(exc), exc, tb)


FULL_FREE = 1 << 20  # bytes: a temp disk with less free than this is called full


def temp_disk_full(local_dir: Path, exc: BaseException | None) -> str | None:
    """The message for `exc` if it is a write refused because the local temp disk is full."""
    if not isinstance(exc, OSError) or exc.errno != errno.ENOSPC:
        return None
    try:
        stat = os.statvfs(local_dir)
    except OSError:
        return None
    free = stat.f_bavail * stat.f_frsize
    if free >= FULL_FREE:
        return None  # not this disk: the job wrote elsewhere (its error says where)
    return (f"TempDiskFull: the local temp disk is full ({local_dir.parent} has {free} bytes "
            f"free): the job's output and local temp files are written there, and a write "
            f"failed ({exc}); free space on that disk, or start fntree with TMPDIR pointing at "
            "a disk with room, then continue with `fntree restart`")

