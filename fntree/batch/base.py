"""The batch-system protocol: what the leader asks of the place where jobs run.

It is public: a plug-in implements it and registers a `Factory` in the
`fntree.batch_systems` entry-point group; docs/batch-systems.md states each
member's contract, the threading, what must be durable where, and how results
travel. `fntree.testing` checks an implementation against it.

Four verbs, two questions and two figures, no more:

- `parallelism` — about how many one-core packets can run at once;
- `packet_time` — how many seconds of work a packet should hold (small
  locally, minutes on a cluster, where each batch job has a real cost);
- `limits()` — the most cpu and memory one job may ask for here;
- `can_take(res)` — would a packet needing `res` start now (free cores and
  memory locally; the queue cap on a cluster)?
- `submit(tasks, fns)` — run these tasks one after another in one worker;
- `poll(timeout)` — what has happened since: `Update`s with results, and for
  a packet whose worker died, the tasks it did not report;
- `cancel()` — stop every packet now;
- `close()` — release workers and files.

A batch system never touches the journal: it only carries tasks out and
results back. The leader decides what runs, and records what happened. The
leader calls every member from its one thread; none may block longer than
`poll`'s timeout.
"""

from __future__ import annotations

import os
import pickle
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple, Protocol

# How the NamedTuples that cross a pipe or the journal by the thousand pickle: unpickling
# calls `tuple.__new__` (in C) instead of the class's own `__new__` (Python), for the
# same object. What older fntrees wrote (the class called) loads as before.
_new_tuple = tuple.__new__


class Res(NamedTuple):
    """Resources as the runtime carries them (see fntree.resources.Resources)."""

    time: float | None
    memory: int | None
    cpu: float
    retries: int | None
    slurm_args: str | None = None  # a target's own sbatch options; packets share them

    def __reduce__(self) -> tuple[Any, ...]:
        return _new_tuple, (Res, tuple(self))


class Task(NamedTuple):
    """One job as handed to a worker: its spec's parts plus what the leader adds."""

    job_id: int
    attempt: int
    name: str
    fn_key: bytes
    args: Any  # bytes, or an ObjectRef (fntree/runtime/records.py) to them
    values: tuple[Any, ...]
    chain_id: int
    res: Res
    # False: run this task's follow-ons through the leader, not chained in the worker
    # (a follow-on chained after it killed its worker: it must run, and be charged, alone).
    chaining: bool = True


class Result(NamedTuple):
    """What a worker reports for one task.

    `outcome` is a `(O_VALUE, value)` or `(O_SPAWN, children, follow_on)` tuple
    when `ok`; otherwise `message` says what went wrong. `fns` holds the pickled
    functions the outcome's specs name that the leader may not have, and
    `targets` what they are (fntree/identity.py). `chained` marks a follow-on
    the worker ran straight after its predecessor.

    `cached` marks a value taken from the cache across runs instead of running
    the body; `cache_note`, for a pure target, is (the key under which the leader
    writes the chain's closing value, or b""; a warning about the cache, or "").

    `retry` is False when the job failed with an exception its target does not
    deem worth a retry (judged by the worker, fntree/runtime/retrying.py).
    """

    job_id: int
    attempt: int
    ok: bool
    outcome: tuple[Any, ...] | None
    message: str
    fns: dict[bytes, bytes]
    log: str | None
    gtd: bool
    stats: tuple[float, float, float, int]  # start, wall, cpu, peak rss (KiB)
    messages: tuple[str, ...]
    chained: bool
    # (module, qualname, code hash, origin) of the functions in `fns`, by key
    targets: dict[bytes, tuple[str, str, bytes, str]] = {}  # never mutated
    cached: bool = False
    cache_note: tuple[bytes, str] | None = None
    retry: bool = True
    # `outcome` as the worker pickled it, or None: then the outcome travels only as these
    # bytes, and the leader's journal keeps them as they are (fntree/runtime/journal.py).
    pickled: bytes | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        if self.pickled is None:
            return _new_tuple, (Result, tuple(self))
        return _with_outcome, ((*self[:3], None, *self[4:]),)


def _with_outcome(fields: tuple[Any, ...]) -> Result:
    """A `Result` unpickled without its outcome, which its `pickled` field holds."""
    return _new_tuple(Result, (*fields[:3], pickle.loads(fields[-1]), *fields[4:]))


class Update(NamedTuple):
    """News of one packet: results in order; `finished` once nothing more will come.

    When the worker died, `lost` lists the ids of the tasks it did not report and
    `reason` says how it died.
    """

    packet: int
    results: list[Result]
    finished: bool
    lost: tuple[int, ...] = ()
    reason: str = ""
    output: bytes = b""  # what the task that was running when its worker died had printed
    cause: str = ""      # "memory" or "time" when the batch system killed it for going over
    # The job that was running when the worker died (fntree.batch.jobmark.Running), if known.
    running: Any = None
    # The packet's worker has started (batch systems whose `reports_start` is true say so
    # once, when the scheduler starts the packet that waited in its queue).
    started: bool = False
    # Running jobs' `context().log` messages, (name, job id, text), as they came
    # (fntree.runtime.live); an Update with only these is news, not a result.
    messages: tuple[tuple[str, str, str], ...] = ()


# What a job that declares no time or memory is given where a batch system must say
# (a cluster's --time and --mem), and what a retry after going over starts doubling from.
DEFAULT_TIME = 3600.0
DEFAULT_MEMORY = 1 << 30


# How a worker process starts: the working directory ('' on the path of `python -c`) is
# dropped, and fntree is imported from the folder the leader's came from (argv[1]), put
# first for that import only: a folder named `fntree` beside the user's script (a checkout,
# say) is on the path the worker inherits, and would otherwise be imported as an empty
# namespace package in fntree's place.
WORKER_BOOT = ("import sys; del sys.path[0]; sys.path.insert(0, sys.argv[1]); "
               "from fntree._worker import main; sys.path.remove(sys.argv[1]); "
               "sys.exit(main(sys.argv[2:]))")
FNTREE_HOME = str(Path(__file__).resolve().parents[2])  # the folder holding this fntree


class WorkerSetup(NamedTuple):
    """How to start a worker process: the same for every batch system."""

    store_root: Path
    store_id: str
    python: str
    env: dict[str, str]
    sys_path: tuple[str, ...]
    cwd: str
    log_limit: int
    local_base: Path  # where workers on this machine make their temp dirs

    def worker_env(self) -> dict[str, str]:
        """The recorded environment, with the leader's import path prepended."""
        env = dict(self.env)
        entries = [p or self.cwd for p in self.sys_path if (p or self.cwd)]
        if env.get("PYTHONPATH"):
            entries.append(env["PYTHONPATH"])
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(entries))
        return env

    def command(self, *args: str) -> list[str]:
        """The worker's command line: `fntree._worker`'s main, imported from the leader's path.

        Not `python -m`, which puts the working directory first on the import path: a
        directory there named like fntree, or like a module fntree imports, would then
        shadow the leader's own, and the worker would run other code than the leader.
        """
        return [self.python or sys.executable, "-c", WORKER_BOOT, FNTREE_HOME, *args]


class BatchSystem(Protocol):
    """See the module docstring."""

    name: str
    parallelism: int
    packet_time: float

    def limits(self) -> tuple[float, int]: ...

    def can_take(self, res: Res) -> bool: ...

    def submit(self, tasks: list[Task], fns: dict[bytes, bytes]) -> int: ...

    def poll(self, timeout: float) -> list[Update]: ...

    def cancel(self) -> None: ...

    def close(self) -> None: ...


# What an entry point of the `fntree.batch_systems` group names: given how workers start
# and the run's resolved options (fntree.api.DEFAULTS' keys), a batch system ready to take
# tasks on that job store (having cancelled the jobs its earlier leaders left there).
Factory = Callable[[WorkerSetup, dict[str, Any]], BatchSystem]
