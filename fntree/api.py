"""The public entry points: `run`, `restart` and `add_arguments`.

`run` validates every option (`_resolve`; defaults from the config file, a profile and
FNTREE_ variables: fntree/config.py), compiles the root call, creates the
job store (a temporary one when no path is given), records the environment and
the targets' identities (fntree/identity.py; hashed and pickled afresh for each
run), and hands the store to a leader on the chosen batch system. A bad option
never reaches a job store. `restart` opens an existing store and does the same
with the options it recorded, unless new ones are given, once it has checked
that the recorded working directory and Python still exist; it may change the
run's environment (fntree/environment.py), and live jobs of targets whose code
changed run the current code (fntree/changes.py).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fntree import batch as batch_systems
from fntree import changes, environment, identity, reporting
from fntree.batch.base import WorkerSetup
from fntree.compiler import root_spec
from fntree.config import PROFILE_ENV, blame, settings, temporary_store
from fntree.dsl import Call
from fntree.errors import FntreeError, NestedRunError, ResourceError
from fntree.rerun import rerun_for
from fntree.resources import parse_cpu, parse_memory, parse_slurm_args, parse_time
from fntree.runtime import codec, context, crashpoints, faults
from fntree.runtime.cache import ENV as CACHE_ENV
from fntree.runtime.cache import Cache
from fntree.runtime.eventlog import EventLog
from fntree.runtime.events import Observer
from fntree.runtime.leader import Leader, Recode
from fntree.runtime.objects import ObjectStore
from fntree.runtime.paths import StorePaths
from fntree.runtime.salvage import salvage_outputs
from fntree.runtime.store import JobStore
from fntree.runtime.worker import LOG_LIMIT

# Host-specific variables that are not replicated to jobs (as jobTree did).
HOST_VARIABLES = frozenset({"HOSTNAME", "HOSTTYPE", "TMPDIR", "TMP", "TEMP", "PWD", "OLDPWD",
                            "SHLVL", "_"})
DEFAULTS: dict[str, Any] = {"batch_system": "local", "max_cpus": None, "max_memory": None,
                            "retry_count": 1, "log_level": "WARNING", "max_jobs": None,
                            "slurm_partition": None, "slurm_args": None,
                            "sge_queue": None, "sge_pe": None, "sge_args": None,
                            "sge_resources": None,
                            "fault_kill": None, "fault_raise": None, "fault_seed": None,
                            "max_log_mb": None, "max_job_duration": None, "cache": None,
                            "jobstore_root": None, "default_time": None, "default_memory": None,
                            "fail_fast": False, "quiet": False}
OPTION_NAMES = tuple(DEFAULTS)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
FAULT_ENV = {"fault_kill": faults.ENV_KILL, "fault_raise": faults.ENV_RAISE,
             "fault_seed": faults.ENV_SEED}


class _Unset:
    def __repr__(self) -> str:
        return "default"


UNSET: Any = _Unset()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add fntree's options (--jobstore, --batch-system, ...) to `parser`."""
    group = parser.add_argument_group("fntree")
    group.add_argument("--jobstore", default=None,
                       help="job store directory (new for a run; default: a temporary one)")
    group.add_argument("--profile", default=None, metavar="NAME",
                       help=f"take defaults from the profile NAME of the config file (or "
                       f"${PROFILE_ENV}; see docs/config.md)")
    group.add_argument("--batch-system", dest="batch_system", default=None,
                       choices=batch_systems.names(),
                       help="where jobs run (default: local); plug-ins add more")
    group.add_argument("--max-cpus", dest="max_cpus", type=float, default=None,
                       help="most cores used at once (default: this machine's)")
    group.add_argument("--max-memory", dest="max_memory", default=None,
                       help='most memory used at once, e.g. "8G" (default: this machine\'s)')
    group.add_argument("--retry-count", dest="retry_count", type=int, default=None,
                       help="times a failed job is retried (default: 1)")
    group.add_argument("--log-level", dest="log_level", default=None,
                       choices=LOG_LEVELS,
                       help="what is printed: DEBUG and INFO add fntree's notes, WARNING "
                       "(default) shows targets' messages and retries, ERROR only failures")
    group.add_argument("--quiet", "-q", dest="quiet", action=argparse.BooleanOptionalAction,
                       default=None, help="print only failures and the final summary: no "
                       "progress display, no messages of targets, no retry warnings")
    group.add_argument("--fail-fast", dest="fail_fast", action=argparse.BooleanOptionalAction,
                       default=None, help="at the first job that fails for good, start no "
                       "new job; running ones finish, and a restart continues (default: off)")
    group.add_argument("--max-jobs", dest="max_jobs", type=int, default=None,
                       help="most batch jobs queued or running at once (cluster batch systems)")
    group.add_argument("--slurm-partition", dest="slurm_partition", default=None,
                       help="Slurm partition to submit to (default: the cluster's default)")
    group.add_argument("--slurm-args", dest="slurm_args", default=None,
                       help='more sbatch options for every job, e.g. "--qos=long --account=lab"')
    group.add_argument("--sge-queue", dest="sge_queue", default=None,
                       help="Grid Engine queue to submit to (default: any)")
    group.add_argument("--sge-pe", dest="sge_pe", default=None,
                       help="Grid Engine parallel environment for multi-core jobs "
                       "(default: smp)")
    group.add_argument("--sge-resources", dest="sge_resources", default=None,
                       help='Grid Engine\'s memory and time resources (default: "h_vmem,h_rt")')
    group.add_argument("--sge-args", dest="sge_args", default=None,
                       help='more qsub options for every job, e.g. "-P lab -l scratch=1"')
    group.add_argument("--default-time", dest="default_time", default=None, metavar="TIME",
                       help='time of jobs whose target declares none, e.g. "2h"')
    group.add_argument("--default-memory", dest="default_memory", default=None, metavar="MEM",
                       help='memory of jobs whose target declares none, e.g. "4G"')
    group.add_argument("--max-log-mb", dest="max_log_mb", type=float, default=None,
                       help="most of each attempt's output kept in its log, in MB; past it "
                       f"the head and the tail are kept (default: {LOG_LIMIT / 2**20:g})")
    group.add_argument("--max-job-duration", dest="max_job_duration", type=float, default=None,
                       help="local batch system: kill any job running longer than this many "
                       "seconds and retry it (default: only jobs past twice their declared "
                       "time plus 10 s)")
    group.add_argument("--cache", dest="cache", default=None, metavar="DIR",
                       help="cache across runs: calls of targets declared cache=True take "
                       f"their value from DIR when it has it (or ${CACHE_ENV})")
    group.add_argument("--fault-kill", dest="fault_kill", type=float, default=None,
                       help="fault injection: fraction of jobs whose worker is SIGKILLed "
                       f"mid-run (or ${faults.ENV_KILL})")
    group.add_argument("--fault-raise", dest="fault_raise", type=float, default=None,
                       help="fault injection: probability that a target raises before its "
                       f"work (or ${faults.ENV_RAISE})")
    group.add_argument("--fault-seed", dest="fault_seed", type=int, default=None,
                       help=f"seed of the injected faults (or ${faults.ENV_SEED})")


def _resolve(explicit: dict[str, Any], options: Any,
             recorded: dict[str, Any] | None) -> dict[str, Any]:
    """Keyword arguments win over `options`, the environment, the profile, the config file
    and the defaults; a restart's `recorded` options replace the last three (config.py)."""
    given = {k: v for k, v in explicit.items() if v is not UNSET}
    found = settings(DEFAULTS, given, options, recorded)
    resolved = {k: s.value for k, s in found.items()}
    try:
        _validate(resolved)
    except FntreeError as exc:
        raise blame(exc, found, lambda n, v: _validate({**DEFAULTS, n: v})) from None
    return resolved


def _validate(resolved: dict[str, Any]) -> None:
    """Check and normalize every option in place, so that a bad one is refused before a
    job store is created (or a recorded one is used); a bad value raises an FntreeError."""
    for name in ("fault_kill", "fault_raise"):
        resolved[name] = _probability(name, resolved[name] or 0)
    resolved["fault_seed"] = _whole_number("fault_seed", resolved["fault_seed"] or 0)
    if resolved["max_cpus"] is not None:
        resolved["max_cpus"] = parse_cpu(resolved["max_cpus"], what="max_cpus")
    resolved["max_memory"] = parse_memory(resolved["max_memory"], what="max_memory")
    resolved["default_time"] = parse_time(resolved["default_time"], what="default_time")
    resolved["default_memory"] = parse_memory(resolved["default_memory"], what="default_memory")
    resolved["max_log_mb"] = _megabytes("max_log_mb", resolved["max_log_mb"])
    resolved["slurm_args"] = parse_slurm_args(resolved["slurm_args"])
    resolved["log_level"] = _log_level(resolved["log_level"])
    for name in ("fail_fast", "quiet"):
        if not isinstance(resolved[name], bool):
            raise FntreeError(f"{name}={resolved[name]!r} must be True or False")
    partition = resolved["slurm_partition"]
    if partition is not None and (not isinstance(partition, str) or not partition.strip()
                                  or len(partition.split()) != 1):
        raise ResourceError(f"slurm_partition={partition!r} must be the name of one Slurm "
                            "partition (see `sinfo -s`)")
    retry = resolved["retry_count"]
    if not isinstance(retry, int) or isinstance(retry, bool) or retry < 0:
        raise ResourceError(f"retry_count={retry!r} must be a whole number, 0 or more")
    if resolved["max_jobs"] is not None and (not isinstance(resolved["max_jobs"], int)
                                             or resolved["max_jobs"] < 1):
        raise ResourceError(f"max_jobs={resolved['max_jobs']!r} must be a whole number, 1 or "
                            "more")
    duration = resolved["max_job_duration"]
    if duration is not None and (isinstance(duration, bool)
                                 or not isinstance(duration, (int, float))
                                 or not 0 < duration < float("inf")):
        raise ResourceError(f"max_job_duration={duration!r} must be a positive number of seconds")
    if resolved["cache"]:
        resolved["cache"] = str(Cache.open(resolved["cache"]).root)  # refuses an unsafe one
    batch_systems.check_name(resolved["batch_system"])
    if resolved["batch_system"] == "slurm" and shutil.which("sbatch") is None:
        raise FntreeError("the slurm batch system submits with `sbatch`, which is not on "
                          "PATH here; run where Slurm is installed (a login node), or choose "
                          "--batch-system local")


def _whole_number(name: str, value: Any) -> int:
    try:
        if isinstance(value, (bool, float)):
            raise ValueError(value)
        return int(value)
    except (TypeError, ValueError):
        raise ResourceError(f"{name}={value!r} must be a whole number") from None


def _megabytes(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not math.isfinite(value) or value <= 0):
        raise ResourceError(f"{name}={value!r} must be a positive number of megabytes, "
                            "such as 4 or 0.5")
    return float(value)


def _log_level(value: Any) -> str:
    if not isinstance(value, str) or value.upper() not in LOG_LEVELS:
        raise FntreeError(f"log_level={value!r} is not a logging level; choose one of: "
                          f"{', '.join(LOG_LEVELS)}")
    return value.upper()


def _probability(name: str, value: Any) -> float:
    try:
        p = float(value)
    except (TypeError, ValueError):
        p = -1.0
    if not 0 <= p <= 1:
        raise FntreeError(f"{name}={value!r} must be a probability between 0 and 1")
    return p


def run(call: Call, *, jobstore: str | os.PathLike[str] | None = UNSET,
        batch_system: str = UNSET, max_cpus: float | None = UNSET,
        max_memory: int | str | None = UNSET, retry_count: int = UNSET,
        log_level: str = UNSET, options: argparse.Namespace | None = None,
        observers: list[Observer] | None = None, max_jobs: int | None = UNSET,
        slurm_partition: str | None = UNSET, slurm_args: str | None = UNSET,
        max_job_duration: float | None = UNSET,
        cache: str | os.PathLike[str] | None = UNSET, fail_fast: bool = UNSET,
        quiet: bool = UNSET, default_time: float | str | None = UNSET,
        default_memory: int | str | None = UNSET) -> Any:
    """Run the workflow rooted at `call` to its end and return the root's value.

    Defaults: a temporary job store removed after success, the local batch
    system, this machine's cores and memory, one retry, WARNING logging.
    `max_jobs`, `slurm_partition` and `slurm_args` apply to the slurm batch system;
    `max_job_duration` (seconds) caps every job's run time on the local one.
    `cache` names a cache directory (default: `$FNTREE_CACHE`, else none; `None`
    turns it off): calls of targets declared `cache=True` take their value from it
    when it holds it, and leave it there when they ran (fntree/runtime/cache.py).
    `fail_fast`: at the first job that fails for good, start no new job. `quiet`:
    print only failures (and, in a notebook, no progress display). `default_time`,
    `default_memory`: the resources of jobs whose target declares none.
    """
    _refuse_nested("fntree.run")
    explicit = {"batch_system": batch_system, "max_cpus": max_cpus, "max_memory": max_memory,
                "retry_count": retry_count, "log_level": log_level, "max_jobs": max_jobs,
                "slurm_partition": slurm_partition, "slurm_args": slurm_args,
                "max_job_duration": max_job_duration, "cache": cache, "fail_fast": fail_fast,
                "quiet": quiet, "default_time": default_time, "default_memory": default_memory}
    resolved = _resolve(explicit, options, None)
    if jobstore is UNSET:
        jobstore = getattr(options, "jobstore", None) if options is not None else None
    identity.new_run()
    spec, fns = root_spec(call)
    config = {"options": {k: resolved[k] for k in OPTION_NAMES}, "env": _environment(),
              "sys_path": tuple(sys.path), "cwd": _working_directory(), "python": sys.executable,
              "created": time.time()}
    temporary = jobstore is None
    root = temporary_store(resolved["jobstore_root"]) if temporary else Path(str(jobstore))
    store = JobStore.create(root, spec, fns, config, identity.describe(fns))
    value = _lead(store, config, resolved, observers, retry_failed=False)
    if temporary:
        shutil.rmtree(root.parent, ignore_errors=True)
    return value


def restart(jobstore: str | os.PathLike[str], *, batch_system: str = UNSET,
            max_cpus: float | None = UNSET, max_memory: int | str | None = UNSET,
            retry_count: int = UNSET, log_level: str = UNSET,
            options: argparse.Namespace | None = None,
            observers: list[Observer] | None = None, max_jobs: int | None = UNSET,
            slurm_partition: str | None = UNSET, slurm_args: str | None = UNSET,
            max_job_duration: float | None = UNSET,
            cache: str | os.PathLike[str] | None = UNSET, fail_fast: bool = UNSET,
            quiet: bool = UNSET, env: dict[str, str] | None = None,
            env_unset: list[str] | None = None,
            rerun_changed: bool = False) -> Any:
    """Continue the run in `jobstore` (failed jobs get their retries again); its root's value.

    Options not given are those the run was started with. `env` sets and
    `env_unset` removes environment variables of the run's jobs from now on
    (recorded in the job store). Live jobs of targets whose code changed run the
    current code, with a warning naming them (fntree/changes.py).
    `rerun_changed` starts the run again from its root with the current code, even
    when it had completed: calls of pure targets found in the run's cache are not
    run again, every other job is (fntree/rerun.py); the value is a fresh run's.
    """
    _refuse_nested("fntree.restart")
    store = JobStore.open(jobstore)
    config = store.config()
    explicit = {"batch_system": batch_system, "max_cpus": max_cpus, "max_memory": max_memory,
                "retry_count": retry_count, "log_level": log_level, "max_jobs": max_jobs,
                "slurm_partition": slurm_partition, "slurm_args": slurm_args,
                "max_job_duration": max_job_duration, "cache": cache, "fail_fast": fail_fast,
                "quiet": quiet}
    resolved = _resolve(explicit, options, config.get("options", {}))
    _check_recorded_places(store, config)
    if env or env_unset:
        config = environment.record_change(store, config, env or {}, env_unset or [])
    config = {**config, "env": environment.current(config)}
    identity.new_run()
    recode = (rerun_for(config, bool(resolved["cache"])) if rerun_changed
              else changes.recode_for(config))
    return _lead(store, config, resolved, observers, retry_failed=True, recode=recode,
                 rerun=rerun_changed)


def _lead(store: JobStore, config: dict[str, Any], options: dict[str, Any],
          observers: list[Observer] | None, *, retry_failed: bool,
          recode: Recode | None = None, rerun: bool = False) -> Any:
    reporting.configure_logging(options)
    local_base = StorePaths.make_local_base(store.store_id)
    env = crashpoints.for_workers({k: v for k, v in config["env"].items()
                                   if k not in FAULT_ENV.values()})
    env.update(faults.environment(options["fault_kill"], options["fault_raise"],
                                  options["fault_seed"]))
    env.pop(CACHE_ENV, None)
    if options["cache"]:
        env[CACHE_ENV] = options["cache"]  # the workers' cache: this run's, or none
    setup = WorkerSetup(store.paths.root, store.store_id, config["python"], env,
                        tuple(config["sys_path"]), config["cwd"], _log_limit(options),
                        local_base)
    displays = [*(observers or []), *([] if options["quiet"] else _notebook_display(observers))]
    events = reporting.subscribers(displays, EventLog(store.paths), options)
    store.lock()
    try:
        _sweep_local_base(local_base, store.paths, setup.log_limit)
        batch = batch_systems.make(options["batch_system"], setup, options)
        leader = Leader(store, batch, events, retry_count=options["retry_count"],
                        local_base=local_base,
                        cache=Cache(Path(options["cache"])) if options["cache"] else None,
                        fail_fast=options["fail_fast"])
        leader.restart_hint = reporting.restart_hint()
        with reporting.interrupt_hint(store.paths.root):
            value = leader.run(retry_failed=retry_failed, recode=recode, rerun=rerun)
    finally:
        store.unlock()
    return codec.decode_value(value, ObjectStore(store.paths.objects))


# -- where a run may start ---------------------------------------------------------------
_loading_script: str | None = None


def _refuse_nested(what: str) -> None:
    """NestedRunError inside a running job, a worker, or a script `fntree run` is loading."""
    ctx = context.running()
    guard = ("guard a module-level run with `if __name__ == '__main__':` so that it runs "
             "only when the script is run, not when its module is imported")
    if ctx is not None:
        raise NestedRunError(
            f"{what} was called inside a job of target `{ctx.name}` ({ctx.job_id}); a run "
            "cannot start inside a job: a target returns calls instead (a call, or "
            f"fntree.children(...)); {guard}")
    if context.in_worker():
        raise NestedRunError(f"{what} was called in a worker process of a run; a run cannot "
                             f"start inside another: {guard}")
    if _loading_script is not None:
        raise NestedRunError(
            f"the script {_loading_script} calls {what} at module level, and `fntree run` "
            f"is loading it to find the target to run: {guard}, or run it with `python "
            f"{_loading_script}` instead")


@contextlib.contextmanager
def loading_script(path: str) -> Iterator[None]:
    """While `fntree run` imports a script to find its target: no run may start."""
    global _loading_script
    previous, _loading_script = _loading_script, path
    try:
        yield
    finally:
        _loading_script = previous


def _sweep_local_base(local_base: Path, paths: StorePaths, limit: int) -> None:
    """Remove what earlier leaders' workers left in this machine's temp base for the store.

    Done before the batch system starts this leader's workers, which boot while the
    leader recovers and keep their stderr and job output there: sweeping after them
    would delete the diagnostics of a worker that cannot boot or a job that kills it.
    What the jobs they were running had printed goes to those jobs' logs first.
    """
    salvage_outputs(local_base, paths, limit)
    shutil.rmtree(local_base, ignore_errors=True)


def _notebook_display(observers: list[Observer] | None) -> list[Observer]:
    """In a Jupyter kernel, the live progress shown in the cell (unless a display was given)."""
    if "ipykernel" not in sys.modules:
        return []
    from fntree.progress import notebook_display

    return notebook_display(observers or [])


def _log_limit(options: dict[str, Any]) -> int:
    megabytes = options["max_log_mb"]  # checked by _validate
    if megabytes is None:
        return LOG_LIMIT
    return max(1024, int(megabytes * 2**20))


def _working_directory() -> str:
    """This process's working directory, which a new run records for its jobs."""
    try:
        return os.getcwd()
    except FileNotFoundError:
        raise FntreeError("the current directory was deleted, and a run's jobs run in the "
                          "directory it was started from; cd to an existing directory and run "
                          "again") from None


def _check_recorded_places(store: JobStore, config: dict[str, Any]) -> None:
    """Refuse a restart whose recorded working directory or Python is gone: no job could
    start there, and each would fail as a lost worker."""
    cwd, python = config["cwd"], config["python"]
    if not os.path.isdir(cwd):
        raise FntreeError(
            f"the run in {store.paths.root} was started in {cwd}, which no longer exists, and "
            f"its jobs run there; recreate it (`mkdir -p {cwd}`, with any files the jobs "
            f"read by relative paths), then `fntree restart {store.paths.root}` again")
    if not os.access(python, os.X_OK):
        raise FntreeError(
            f"the run in {store.paths.root} was started with the Python {python}, which no "
            "longer exists, and its jobs run with it; reinstall that environment (the same "
            f"path, with fntree), then `fntree restart {store.paths.root}` again")


def _environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in HOST_VARIABLES
            and k != crashpoints.ENV}  # each leader arms its own workers (for_workers)
