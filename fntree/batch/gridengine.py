"""The Grid Engine batch system: packets of tasks as `qsub`'d jobs, results through the job store.

Son of Grid Engine (and its relatives that keep qsub/qstat/qacct/qdel) runs each
packet as a batch job whose script is a two-line `job.sh` in this leader's packet
directory (`exec "$@"`: never `qsub -b y`, which re-splits its arguments), given
the worker command (`WorkerSetup.command`) as arguments. Packets and results travel as
`fntree.batch.files` describes, in `<store>/batch/gridengine/`, exactly as on
Slurm: the packet is written and sealed before `qsub`, its job id appended to
`jobs` and fsynced after, and a restarted leader qdels in one call the jobs an
earlier leader of the store left (recorded in `jobs`, or named
`fntree-<store id>-...`), waits until they are gone, and removes their files.

Requests: `-l h_vmem=<MiB per slot>M,s_rt=<seconds>,h_rt=<seconds + TIME_GRACE>`
(the site's names for memory and time are configurable): at s_rt the job gets
SIGUSR1, on which the worker stops its task and copies what it printed to the job's
output, as on Slurm at --time; h_rt kills it if it cannot. `-pe <pe> <cpus>` for a
packet of multi-core targets (h_vmem is per slot, so the packet's memory is divided
among its slots), `-q` when a queue is given, then the run's free `--sge-args`.

Status: `poll` reads the result files first; at an interval that starts at
QUERY_MIN and backs off to QUERY_MAX while nothing ends without results, one
`qstat -xml -u <user>` lists every live job. A job in an error state (`Eqw`: it
would sit there forever) fails with the reason `qstat -j` gives, and is qdel'd. A
job gone from qstat without all its results is looked up with `qacct -j`: killed
at its limit, it is reported with cause "memory" or "time" (told apart by maxvmem
against the request), which the leader retries with twice as much. One process
over h_vmem is not killed by Grid Engine: its allocation fails, and the worker
reports the MemoryError, which the leader also takes as out of memory.

Packing, `--max-jobs` and not flooding the queue follow the Slurm batch system.
"""

from __future__ import annotations

import getpass
import logging
import math
import os
import re
import shlex
import time
import uuid
from collections.abc import Callable
from typing import Any

from fntree.batch.base import DEFAULT_TIME, Task, Update, WorkerSetup
from fntree.batch.files import CANCEL_WAIT, FileJobs, Packet, PacketPaths, write_packet
from fntree.batch.gridengine_commands import (
    Cluster,
    JobState,
    final_state,
    native_state,
    parse_error_reason,
    parse_qacct,
    parse_qhost,
    parse_qstat_xml,
    parse_queue_slots,
)
from fntree.batch.slurm import (
    ENDED_GRACE,
    MAX_JOBS,
    PACKET_TIME,
    QUERY_MIN,
    job_name,
    next_interval,
    packet_request,
)
from fntree.batch.slurm_commands import CAUSES, DEFAULT_COMMANDS, Commands
from fntree.errors import GridEngineError

log = logging.getLogger("fntree")

SCRIPT = '#!/bin/bash\n# fntree: runs the packet command given as arguments\nexec "$@"\n'
DEFAULT_PE = "smp"
DEFAULT_RESOURCES = "h_vmem,h_rt"
TIME_GRACE = 15  # seconds from the soft time limit (SIGUSR1) to the hard one (SIGKILL)
# A job's own variables, which must not leak from a leader that runs inside a job.
JOB_VARIABLES = frozenset({"JOB_ID", "JOB_NAME", "JOB_SCRIPT", "QUEUE", "NSLOTS", "NHOSTS",
                           "NQUEUES", "PE", "PE_HOSTFILE", "RESTARTED", "ENVIRONMENT",
                           "REQUEST", "SGE_TASK_ID", "SGE_TASK_FIRST", "SGE_TASK_LAST",
                           "SGE_TASK_STEPSIZE", "SGE_STDOUT_PATH", "SGE_STDERR_PATH",
                           "SGE_STDIN_PATH", "SGE_O_WORKDIR", "SGE_CWD_PATH", "SGE_JOB_SPOOL_DIR",
                           "SGE_BINARY_PATH", "SGE_ACCOUNT"})


def resource_names(text: str | None) -> tuple[str, str]:
    """(memory, time) resource names from "h_vmem,h_rt" (a site may use others)."""
    names = [n.strip() for n in (text or DEFAULT_RESOURCES).split(",")]
    if len(names) != 2 or not all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", n) for n in names):
        raise GridEngineError(f"--sge-resources {text!r} must name a memory and a time "
                              "resource, e.g. \"h_vmem,h_rt\" or \"mem_free,s_rt\"")
    return names[0], names[1]


class GridEngineBatchSystem(FileJobs):
    """Runs packets as Grid Engine batch jobs; see the module docstring."""

    name = "gridengine"
    packet_time = PACKET_TIME
    scheduler = "Grid Engine"
    reachable = "Grid Engine is reachable from this machine (`qstat -f`)"
    transient = r"commlib|timed? ?out|try again|unable to contact"
    error = GridEngineError

    def __init__(self, setup: WorkerSetup, *, max_jobs: int | None = None,
                 queue: str | None = None, pe: str | None = None,
                 extra_args: str | None = None, resources: str | None = None,
                 max_memory: int | None = None, commands: Commands | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.setup = setup
        self.commands = commands or DEFAULT_COMMANDS
        self.max_jobs = max_jobs or MAX_JOBS
        self.queue, self.pe = queue, pe or DEFAULT_PE
        self.extra_args = shlex.split(extra_args or "")
        self.memory_resource, self.time_resource = resource_names(resources)
        hard = self.time_resource.startswith("h_")
        self.soft_time = f"s_{self.time_resource[2:]}" if hard else None
        self._clock, self._sleep = clock, sleep
        self._jobs_fd = -1
        self.user = getpass.getuser()
        cpus, memory = parse_qhost(self._check(["qhost"], "read the cluster"))
        slots = parse_queue_slots(self._check(["qstat", "-g", "c"], "read the queues"), queue)
        self.cluster = Cluster(cpus, memory, slots)
        self.max_memory = min(memory, max_memory or memory)
        self.parallelism = max(1, min(self.max_jobs, slots))
        self.paths = PacketPaths(setup.store_root, uuid.uuid4().hex[:12], "gridengine")
        self._prefix = f"fntree-{setup.store_id}-"
        self._cancel_earlier()
        self.open_jobs(clock, sleep, QUERY_MIN)
        self._script = self.paths.dir / "job.sh"
        fd = os.open(self._script, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o700)
        with open(fd, "w") as script:
            os.fchmod(fd, 0o700)  # whatever the umask
            script.write(SCRIPT)
        self._env = {k: v for k, v in setup.worker_env().items() if k not in JOB_VARIABLES}
        self._interval = QUERY_MIN

    def submit(self, tasks: list[Task], fns: dict[bytes, bytes]) -> int:
        number = next(self._numbers)
        packet = self.paths.packet(number)
        write_packet(packet, tasks, fns)
        cpus, memory, _ = packet_request(tasks, None)
        seconds = max(1, math.ceil(sum(t.res.time or DEFAULT_TIME for t in tasks)))
        command = self.setup.command("file", str(packet), str(self.setup.store_root),
                                     self.setup.store_id, str(self.setup.log_limit))
        argv = ["qsub", "-terse", "-N", job_name(self.setup.store_id, tasks),
                "-o", str(self.paths.output(number)), "-j", "y", "-wd", self.setup.cwd,
                "-r", "n", "-V", "-l", self._limits(math.ceil(memory / cpus), seconds),
                *(["-pe", self.pe, str(cpus)] if cpus > 1 else []),
                *(["-q", self.queue] if self.queue else []),
                *self.extra_args, str(self._script), *command]
        self.record(number, self._qsub(argv, tasks[0].name), tasks, memory, seconds / 60)
        return number

    def _limits(self, megabytes: int, seconds: int) -> str:
        """`-l`'s value: memory per slot, and time (soft, then hard a little later)."""
        if self.soft_time is None:
            return f"{self.memory_resource}={megabytes}M,{self.time_resource}={seconds}"
        return (f"{self.memory_resource}={megabytes}M,{self.soft_time}={seconds},"
                f"{self.time_resource}={seconds + TIME_GRACE}")

    # -- Grid Engine commands -------------------------------------------------------------

    def _qsub(self, argv: list[str], name: str) -> str:
        done = self._submit_command(argv)
        if done.returncode == 0:
            return done.stdout.strip().split(".")[0]
        raise GridEngineError(
            f"qsub refused the job of target `{name}` (exit {done.returncode}): "
            f"{done.stderr.strip() or done.stdout.strip()}; check --sge-queue, --sge-pe, "
            f"--sge-resources and --sge-args, then continue with "
            f"`fntree restart {self.setup.store_root}`", "qsub", done.returncode, done.stderr)

    def _qstat(self) -> dict[str, tuple[str, str]] | None:
        """Job id -> (state letters, name) of this user's live jobs; None if qstat failed."""
        done = self.commands.run(["qstat", "-xml", "-u", self.user])
        if done.returncode != 0:
            log.warning("qstat failed (%s); asking again later", done.stderr.strip())
            return None
        try:
            return {k: (j.state, j.name) for k, j in parse_qstat_xml(done.stdout).items()}
        except GridEngineError as exc:
            log.warning("%s; asking again later", exc)
            return None

    def _delete(self, ids: list[str]) -> None:
        done = self.commands.run(["qdel", *ids])
        unknown = re.findall(r"does not exist", done.stderr + done.stdout)
        if done.returncode != 0 and len(unknown) < len(ids):
            log.warning("qdel failed (%s); delete Grid Engine jobs %s by hand",
                        done.stderr.strip(), " ".join(ids))

    # -- ends -----------------------------------------------------------------------------
    def _query(self) -> list[Update]:
        """One qstat for every live job; qstat -j for errors, qacct for those that left."""
        seen = self._qstat()
        updates: list[Update] = []
        ended, errors = [], []
        for packet in list(self._live.values()):
            if seen is None:
                break
            native = seen.get(packet.job_id, ("", ""))[0]
            state = native_state(native) if native else None
            packet.started = packet.started or state is JobState.RUNNING
            if state is JobState.FAILED:
                errors.append((packet, native))
            elif state is None or not state.live:
                ended.append(packet)
        for packet, native in errors:
            reason = parse_error_reason(self.commands.run(["qstat", "-j", packet.job_id]).stdout)
            updates.append(self._lost(packet, f"Grid Engine job {packet.job_id} is in error "
                                              f"state {native}: {reason or 'no reason given'}",
                                      ""))
        if errors:
            self._delete([p.job_id for p, _ in errors])
        if ended:
            updates.extend(self._collect(announce=False))
            for packet in ended:
                if packet.number in self._live:
                    update = self._ended(packet)
                    if update is not None:
                        updates.append(update)
        self._interval = next_interval(self._interval, any(u.reason for u in updates))
        self._next_query = self._clock() + self._interval
        return updates

    def _ended(self, packet: Packet) -> Update | None:
        """The Update of a packet whose job left the queue without (all) its results."""
        done = self.commands.run(["qacct", "-j", packet.job_id])
        acct = parse_qacct(done.stdout) if done.returncode == 0 else None
        seconds = packet.minutes * 60
        state = final_state(acct, packet.memory, seconds) if acct else None
        if state is None or state is JobState.COMPLETED:
            packet.gone += 1  # accounting not flushed yet, or its last results not yet seen
            if packet.gone <= ENDED_GRACE:
                return None
        job = f"Grid Engine job {packet.job_id}"
        if acct is None:
            reason = f"{job} is no longer known to qstat or qacct"
        elif state is JobState.OUT_OF_MEMORY:
            reason = (f"{job} went over its {self.memory_resource} of {packet.memory}M "
                      f"(maxvmem {acct.maxvmem >> 20}M, failed {acct.failed_text})")
        elif state is JobState.TIMEOUT:
            reason = (f"{job} ran past its {self.soft_time or self.time_resource} of "
                      f"{seconds:g}s (failed {acct.failed_text}, exit status {acct.exit_status})")
        else:
            reason = (f"{job} ended with exit status {acct.exit_status}, failed "
                      f"{acct.failed_text}")
            if state is JobState.COMPLETED:
                reason += ", without writing all its results"
        return self._lost(packet, reason, CAUSES.get(state, "") if state else "")

    # -- restart --------------------------------------------------------------------------
    def _still_there(self, ids: set[str]) -> GridEngineError:
        return GridEngineError(
            f"Grid Engine jobs {', '.join(sorted(ids))} of an earlier leader of this job store "
            f"are still there {CANCEL_WAIT:g}s after qdel; wait until qstat shows none (or "
            f"`qdel -f {' '.join(sorted(ids))}`), then restart")

    def _earlier_live(self, recorded: set[str]) -> set[str]:
        """Ids of this store's jobs still in qstat: recorded, or by their names."""
        listing = self._qstat()
        if listing is None:
            raise GridEngineError("qstat failed, so the Grid Engine jobs of an earlier leader "
                                  "of this job store cannot be checked; restart when Grid "
                                  "Engine answers again")
        return {job for job, (_, name) in listing.items()
                if job in recorded or name.startswith(self._prefix)}


def make(setup: WorkerSetup, options: dict[str, Any]) -> GridEngineBatchSystem:
    """The `gridengine` (and `sge`) entry point of the `fntree.batch_systems` group."""
    return GridEngineBatchSystem(setup, max_jobs=options.get("max_jobs"),
                                 queue=options.get("sge_queue"), pe=options.get("sge_pe"),
                                 extra_args=options.get("sge_args"),
                                 resources=options.get("sge_resources"),
                                 max_memory=options.get("max_memory"))
