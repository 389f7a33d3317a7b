"""The public entry points: `run`, `restart` and `add_arguments`.

`run` compiles the root call, creates the job store (a temporary one when no
path is given), records the environment, and hands the store to a leader on the
chosen batch system. `restart` opens an existing store and does the same with
the options it recorded, unless new ones are given.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fntree import batch as batch_systems
from fntree.batch.base import WorkerSetup
from fntree.compiler import root_spec
from fntree.dsl import Call, Target
from fntree.errors import FntreeError, ResourceError
from fntree.resources import parse_cpu, parse_memory
from fntree.runtime import codec, faults
from fntree.runtime.eventlog import EventLog
from fntree.runtime.events import Events, LogObserver, Observer
from fntree.runtime.leader import Leader
from fntree.runtime.paths import StorePaths
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
                            "max_log_mb": None}
OPTION_NAMES = tuple(DEFAULTS)
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
    group.add_argument("--batch-system", dest="batch_system", default=None,
                       choices=batch_systems.NAMES, help="where jobs run (default: local)")
    group.add_argument("--max-cpus", dest="max_cpus", type=float, default=None,
                       help="most cores used at once (default: this machine's)")
    group.add_argument("--max-memory", dest="max_memory", default=None,
                       help='most memory used at once, e.g. "8G" (default: this machine\'s)')
    group.add_argument("--retry-count", dest="retry_count", type=int, default=None,
                       help="times a failed job is retried (default: 1)")
    group.add_argument("--log-level", dest="log_level", default=None,
                       choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
                       help="logging level (default: WARNING)")
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
    group.add_argument("--max-log-mb", dest="max_log_mb", type=float, default=None,
                       help="most of each attempt's output kept in its log, in MB; past it "
                       f"the head and the tail are kept (default: {LOG_LIMIT / 2**20:g})")
    group.add_argument("--fault-kill", dest="fault_kill", type=float, default=None,
                       help="fault injection: fraction of jobs whose worker is SIGKILLed "
                       f"mid-run (or ${faults.ENV_KILL})")
    group.add_argument("--fault-raise", dest="fault_raise", type=float, default=None,
                       help="fault injection: probability that a target raises before its "
                       f"work (or ${faults.ENV_RAISE})")
    group.add_argument("--fault-seed", dest="fault_seed", type=int, default=None,
                       help=f"seed of the injected faults (or ${faults.ENV_SEED})")


def _resolve(explicit: dict[str, Any], options: Any, recorded: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments win over `options`, which win over recorded values and defaults."""
    resolved = {**DEFAULTS, **recorded}
    for name in OPTION_NAMES:
        from_options = getattr(options, name, None) if options is not None else None
        if explicit.get(name, UNSET) is not UNSET:
            resolved[name] = explicit[name]
        elif from_options is not None:
            resolved[name] = from_options
        elif name in FAULT_ENV and os.environ.get(FAULT_ENV[name]):
            resolved[name] = os.environ[FAULT_ENV[name]]
    for name in ("fault_kill", "fault_raise"):
        resolved[name] = _probability(name, resolved[name] or 0)
    resolved["fault_seed"] = int(resolved["fault_seed"] or 0)
    if resolved["max_cpus"] is not None:
        resolved["max_cpus"] = parse_cpu(resolved["max_cpus"], what="max_cpus")
    resolved["max_memory"] = parse_memory(resolved["max_memory"], what="max_memory")
    retry = resolved["retry_count"]
    if not isinstance(retry, int) or isinstance(retry, bool) or retry < 0:
        raise ResourceError(f"retry_count={retry!r} must be a whole number, 0 or more")
    if resolved["max_jobs"] is not None and (not isinstance(resolved["max_jobs"], int)
                                             or resolved["max_jobs"] < 1):
        raise ResourceError(f"max_jobs={resolved['max_jobs']!r} must be a whole number, 1 or "
                            "more")
    if resolved["batch_system"] not in batch_systems.NAMES:
        raise FntreeError(f"unknown batch system {resolved['batch_system']!r}; choose one of: "
                          f"{', '.join(batch_systems.NAMES)}")
    return resolved


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
        slurm_partition: str | None = UNSET, slurm_args: str | None = UNSET) -> Any:
    """Run the workflow rooted at `call` to its end and return the root's value.

    Defaults: a temporary job store removed after success, the local batch
    system, this machine's cores and memory, one retry, WARNING logging.
    `max_jobs`, `slurm_partition` and `slurm_args` apply to the slurm batch system.
    """
    explicit = {"batch_system": batch_system, "max_cpus": max_cpus, "max_memory": max_memory,
                "retry_count": retry_count, "log_level": log_level, "max_jobs": max_jobs,
                "slurm_partition": slurm_partition, "slurm_args": slurm_args}
    resolved = _resolve(explicit, options, {})
    if jobstore is UNSET:
        jobstore = getattr(options, "jobstore", None) if options is not None else None
    spec, fns = root_spec(call)
    config = {"options": {k: resolved[k] for k in OPTION_NAMES}, "env": _environment(),
              "sys_path": tuple(sys.path), "cwd": os.getcwd(), "python": sys.executable,
              "created": time.time()}
    temporary = jobstore is None
    if jobstore is None:
        root = Path(tempfile.mkdtemp(prefix="fntree-")) / "jobstore"
    else:
        root = Path(jobstore)
    store = JobStore.create(root, spec, fns, config)
    value = _lead(store, config, resolved, observers, retry_failed=False)
    if temporary:
        shutil.rmtree(root.parent, ignore_errors=True)
    return value


def restart(jobstore: str | os.PathLike[str], *, batch_system: str = UNSET,
            max_cpus: float | None = UNSET, max_memory: int | str | None = UNSET,
            retry_count: int = UNSET, log_level: str = UNSET,
            options: argparse.Namespace | None = None,
            observers: list[Observer] | None = None, max_jobs: int | None = UNSET,
            slurm_partition: str | None = UNSET, slurm_args: str | None = UNSET) -> Any:
    """Continue the run in `jobstore` (failed jobs get their retries again); its root's value.

    Options not given are those the run was started with.
    """
    store = JobStore.open(jobstore)
    config = store.config()
    explicit = {"batch_system": batch_system, "max_cpus": max_cpus, "max_memory": max_memory,
                "retry_count": retry_count, "log_level": log_level, "max_jobs": max_jobs,
                "slurm_partition": slurm_partition, "slurm_args": slurm_args}
    resolved = _resolve(explicit, options, config.get("options", {}))
    return _lead(store, config, resolved, observers, retry_failed=True,
                 rebind=_main_targets())


def _lead(store: JobStore, config: dict[str, Any], options: dict[str, Any],
          observers: list[Observer] | None, *, retry_failed: bool,
          rebind: dict[str, tuple[bytes, bytes]] | None = None) -> Any:
    _configure_logging(options["log_level"])
    local_base = StorePaths.make_local_base(store.store_id)
    env = {k: v for k, v in config["env"].items() if k not in FAULT_ENV.values()}
    env.update(faults.environment(options["fault_kill"], options["fault_raise"],
                                  options["fault_seed"]))
    setup = WorkerSetup(store.paths.root, store.store_id, config["python"], env,
                        tuple(config["sys_path"]), config["cwd"], _log_limit(options),
                        local_base)
    events = Events([LogObserver(), EventLog(store.paths), *(observers or []),
                     *_notebook_display(observers)])
    store.lock()
    try:
        batch = batch_systems.make(options["batch_system"], setup, options)
        leader = Leader(store, batch, events, retry_count=options["retry_count"],
                        local_base=local_base)
        with _terminate_as_interrupt():
            value = leader.run(retry_failed=retry_failed, rebind=rebind)
    finally:
        store.unlock()
    return codec.decode_value(value)


def _notebook_display(observers: list[Observer] | None) -> list[Observer]:
    """In a Jupyter kernel, the live progress shown in the cell (unless a display was given)."""
    if "ipykernel" not in sys.modules:
        return []
    from fntree.progress import notebook_display

    return notebook_display(observers or [])


def _log_limit(options: dict[str, Any]) -> int:
    megabytes = options["max_log_mb"]
    if megabytes is None:
        return LOG_LIMIT
    if not isinstance(megabytes, (int, float)) or megabytes <= 0:
        raise FntreeError(f"max_log_mb={megabytes!r} must be a positive number of megabytes")
    return max(1024, int(megabytes * 2**20))


def _main_targets() -> dict[str, tuple[bytes, bytes]]:
    """Targets defined in this process's `__main__` (a script or a notebook), by name.

    They travel by value, so the job store holds the code they had when the run
    started; restarting from a script or notebook where they were fixed runs the fix.
    """
    main = sys.modules.get("__main__")
    found = {}
    for value in list(vars(main).values()) if main is not None else []:
        if isinstance(value, Target) and value.fn.__module__ == "__main__":
            try:
                found[value.name] = value.pickled()
            except FntreeError:
                continue
    return found


def _environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in HOST_VARIABLES}


def _configure_logging(level: str) -> None:
    """fntree's records at `level`; targets' `context().log` messages at INFO or above."""
    logger = logging.getLogger("fntree")
    logger.setLevel(level)
    job_logger = logging.getLogger("fntree.job")
    job_logger.setLevel(min(logging.INFO, logging.getLevelName(level)))
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("[fntree] %(message)s"))
        logger.addHandler(handler)


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM stops the leader the way Ctrl-C does: workers stopped, journal committed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
