"""The Slurm batch system: packets of tasks as `sbatch` jobs, results through the job store.

The job store must be on a filesystem that the leader and every compute node see.
Packets and results travel through `<store>/batch/slurm/` as `fntree.batch.files`
describes (shared with Grid Engine): `<token>/<n>.in` written and sealed before
`sbatch`, its Slurm id appended to `jobs` and fsynced after. At start a leader
lists its user's Slurm jobs (one `squeue`), scancels in one call those of this
store (recorded in `jobs`, or named `fntree-<store id>-...`) still queued or
running, waits until they are gone, and removes the earlier tokens' directories:
the work is issued again by the leader, and never runs twice at once.

Status: `poll` first reads the result files (most completions need no Slurm
query at all). At an interval that starts at QUERY_MIN and grows to QUERY_MAX
while no job ends without its results, it makes one `squeue` call for all live
jobs and, for those that ended without results, one `sacct` call. Native states
map through `STATES` into `SlurmState`; a job killed for memory or time is
reported with cause "memory" or "time", which the leader retries with more.

Not flooding the cluster: at most `max_jobs` jobs queued or running, and no more
jobs waiting to start than `parallelism`, so that work stays with the leader,
which packs it better once it has measured how long its targets take.

The worker's side is `slurm_worker`; the command seam, the state table and the
parsers of Slurm's output are `slurm_commands`.
"""

from __future__ import annotations

import logging
import math
import re
import shlex
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from fntree.batch.base import DEFAULT_MEMORY, DEFAULT_TIME, Task, Update, WorkerSetup
from fntree.batch.files import (  # noqa: F401  (the names Slurm's modules had before)
    CANCEL_WAIT,
    FLUSH_EVERY,
    SCAN_EVERY,
    FileJobs,
    Packet,
    PacketPaths,
    read_packet,
    read_result,
    read_tail,
    result_bytes,
    write_packet,
)
from fntree.batch.slurm_commands import (
    CAUSES,
    DEFAULT_COMMANDS,
    Commands,
    SlurmState,
    native_state,
    parse_sacct,
    parse_sinfo,
    parse_squeue,
)
from fntree.errors import SlurmError

log = logging.getLogger("fntree")

MAX_JOBS = 100        # Slurm jobs queued or running at once, unless --max-jobs says
PACKET_TIME = 120.0   # seconds of declared or measured work a packet aims at
QUERY_MIN, QUERY_MAX, QUERY_GROWTH = 2.0, 60.0, 1.5   # seconds between squeue calls
ENDED_GRACE = 2       # queries a job may be gone with no state or results before it is lost

SlurmPaths = PacketPaths


def next_interval(interval: float, news: bool) -> float:
    """The wait before the next squeue: back to the minimum on news, else longer."""
    return QUERY_MIN if news else min(QUERY_MAX, interval * QUERY_GROWTH)


def job_name(store_id: str, tasks: Sequence[Task]) -> str:
    """`fntree-<store id>-<target name>`: how the jobs of a store are found by name."""
    return f"fntree-{store_id}-{re.sub(r'[^A-Za-z0-9_.+-]', '_', tasks[0].name)}"


def packet_request(tasks: Sequence[Task], time_limit: float | None) -> tuple[int, int, int]:
    """(cpus, MiB of memory, minutes) for a packet: the largest task's, and the sum of times."""
    cpus = max(1, math.ceil(max(t.res.cpu for t in tasks) - 1e-9))
    memory = max((t.res.memory or 0 for t in tasks), default=0) or DEFAULT_MEMORY
    seconds = sum(t.res.time or DEFAULT_TIME for t in tasks)
    if time_limit is not None:
        seconds = min(seconds, time_limit)
    return cpus, math.ceil(memory / (1 << 20)), max(1, math.ceil(seconds / 60))


# -- the leader's side -------------------------------------------------------------------------
class SlurmBatchSystem(FileJobs):
    """Runs packets as Slurm batch jobs; see the module docstring."""

    name = "slurm"
    packet_time = PACKET_TIME
    scheduler = "Slurm"
    reachable = "Slurm is reachable from this machine (`sinfo`)"
    transient = r"timed out|temporarily|try again|Socket"
    error = SlurmError

    def __init__(self, setup: WorkerSetup, *, max_jobs: int | None = None,
                 partition: str | None = None, extra_args: str | None = None,
                 max_memory: int | None = None, commands: Commands | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.setup = setup
        self.commands = commands or DEFAULT_COMMANDS
        self.max_jobs = max_jobs or MAX_JOBS
        self.extra_args = shlex.split(extra_args or "")
        self._clock, self._sleep = clock, sleep
        self._jobs_fd = -1
        self.cluster = parse_sinfo(self._check(
            ["sinfo", "-h", "-N", "-o", "%N|%P|%c|%m|%l",
             *(["-p", partition] if partition else [])], "read the cluster"), partition)
        self.partition = partition
        self.max_memory = min(self.cluster.node_memory, max_memory or self.cluster.node_memory)
        self.parallelism = max(1, min(self.max_jobs, self.cluster.total_cpus))
        self.paths = PacketPaths(setup.store_root, uuid.uuid4().hex[:12], "slurm")
        self._prefix = f"fntree-{setup.store_id}-"
        self._cancel_earlier()
        self.open_jobs(clock, sleep, QUERY_MIN)
        self._env = {k: v for k, v in setup.worker_env().items()
                     if not k.startswith("SLURM_") or k == "SLURM_CONF"}
        self._interval = QUERY_MIN

    def submit(self, tasks: list[Task], fns: dict[bytes, bytes]) -> int:
        number = next(self._numbers)
        packet = self.paths.packet(number)
        write_packet(packet, tasks, fns)
        cpus, memory, minutes = packet_request(tasks, self.cluster.time_limit)
        command = self.setup.command("file", str(packet), str(self.setup.store_root),
                                     self.setup.store_id, str(self.setup.log_limit))
        argv = ["sbatch", "--parsable", "--job-name", job_name(self.setup.store_id, tasks),
                "--output", str(self.paths.output(number)), "--chdir", self.setup.cwd,
                "--cpus-per-task", str(cpus), "--mem", f"{memory}M", "--time", str(minutes),
                "--no-requeue", *(["--partition", self.partition] if self.partition else []),
                *self.extra_args, *shlex.split(tasks[0].res.slurm_args or ""),
                "--wrap", f"exec {shlex.join(command)}"]
        self.record(number, self._sbatch(argv, tasks[0].name), tasks, memory, minutes)
        return number

    # -- Slurm commands -------------------------------------------------------------------

    def _sbatch(self, argv: list[str], name: str) -> str:
        done = self._submit_command(argv)
        if done.returncode == 0:
            return done.stdout.strip().split(";")[0]
        raise SlurmError(
            f"sbatch refused the job of target `{name}` (exit {done.returncode}): "
            f"{done.stderr.strip()}; check --slurm-partition and --slurm-args, then continue "
            f"with `fntree restart {self.setup.store_root}`",
            "sbatch", done.returncode, done.stderr)

    def _delete(self, ids: list[str]) -> None:
        done = self.commands.run(["scancel", *ids])
        if done.returncode != 0:
            log.warning("scancel failed (%s); cancel Slurm jobs %s by hand",
                        done.stderr.strip(), " ".join(ids))

    def _squeue(self, argv: list[str]) -> dict[str, tuple[str, str]] | None:
        done = self.commands.run(["squeue", "-h", *argv])
        if done.returncode != 0 and "Invalid job id" not in done.stderr:
            log.warning("squeue failed (%s); asking again later", done.stderr.strip())
            return None
        return parse_squeue(done.stdout) if done.returncode == 0 else {}

    def _sacct(self, ids: list[str]) -> dict[str, tuple[str, str]]:
        done = self.commands.run(["sacct", "-X", "-n", "-P", "-j", ",".join(ids),
                                  "-o", "JobID,State,ExitCode"])
        return parse_sacct(done.stdout) if done.returncode == 0 else {}

    # -- results and ends -----------------------------------------------------------------
    def _query(self) -> list[Update]:
        """One squeue for every live job; one sacct for those that ended without results."""
        by_id = {p.slurm_id: p for p in self._live.values()}
        seen = self._squeue(["--states=all", "-j", ",".join(by_id), "-o", "%i|%T|%r"])
        updates: list[Update] = []
        ended = []
        for slurm_id, packet in by_id.items():
            if seen is not None:
                state = native_state(seen.get(slurm_id, ("", ""))[0])
                packet.started = packet.started or state is not SlurmState.QUEUED
                if state is None or not state.live:
                    ended.append(packet)
        if ended:
            updates = self._collect(announce=False)
            ended = [p for p in ended if p.number in self._live]
        if ended:
            final = self._sacct([p.slurm_id for p in ended])
            for packet in ended:
                native, code = final.get(packet.slurm_id) or ((seen or {}).get(
                    packet.slurm_id, ("", ""))[0], "")
                update = self._ended(packet, native, code)
                if update is not None:
                    updates.append(update)
        self._interval = next_interval(self._interval, any(u.reason for u in updates))
        self._next_query = self._clock() + self._interval
        return updates

    def _ended(self, packet: Packet, native: str, code: str) -> Update | None:
        """The Update of a packet whose job left the queue without (all) its results."""
        state = native_state(native)
        if state is None or state.live or state is SlurmState.COMPLETED:
            packet.gone += 1  # accounting not caught up, or its last results not yet seen
            if packet.gone <= ENDED_GRACE:
                return None
        slurm_id = packet.slurm_id
        if state is SlurmState.OUT_OF_MEMORY:
            reason = f"Slurm job {slurm_id} went over its --mem={packet.memory}M (OUT_OF_MEMORY)"
        elif state is SlurmState.TIMEOUT:
            reason = f"Slurm job {slurm_id} ran past its --time of {packet.minutes} min (TIMEOUT)"
        elif state is None or state.live:
            reason = f"Slurm job {slurm_id} is no longer known to squeue or sacct"
        else:
            reason = f"Slurm job {slurm_id} ended {native}" + (f", exit code {code}"
                                                                if code else "")
            if state is SlurmState.COMPLETED:
                reason += ", without writing all its results"
        return self._lost(packet, reason, CAUSES.get(state, "") if state else "")

    # -- restart --------------------------------------------------------------------------
    def _still_there(self, ids: set[str]) -> SlurmError:
        return SlurmError(
            f"Slurm jobs {', '.join(sorted(ids))} of an earlier leader of this job store are "
            f"still running {CANCEL_WAIT:g}s after scancel; wait until "
            f"`squeue -j {','.join(sorted(ids))}` shows none, then restart")

    def _earlier_live(self, recorded: set[str]) -> set[str]:
        """Ids of this store's jobs still queued or running: recorded, or by their names."""
        listing = self._squeue(["--me", "-o", "%i|%T|%j"])
        if listing is None:
            raise SlurmError("squeue failed, so the Slurm jobs of an earlier leader of this "
                             "job store cannot be checked; restart when Slurm answers again")
        return {job for job, (native, name) in listing.items()
                if (job in recorded or name.startswith(self._prefix))
                and (state := native_state(native)) is not None and state.live}



def make(setup: WorkerSetup, options: dict[str, Any]) -> SlurmBatchSystem:
    """The `slurm` entry point of the `fntree.batch_systems` group."""
    return SlurmBatchSystem(setup, max_jobs=options.get("max_jobs"),
                            partition=options.get("slurm_partition"),
                            extra_args=options.get("slurm_args"),
                            max_memory=options.get("max_memory"))
