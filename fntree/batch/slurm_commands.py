"""Slurm's side of the Slurm batch system: the command seam, the state table, the parsers.

Every Slurm command (sbatch, squeue, sacct, scancel, sinfo) runs through one
`Commands` object, so unit tests can swap it for a fake that answers from text
(the fakes test parsing only; the backend is proven against a real Slurm). Native
states map through one literal table, `STATES`, into the small `SlurmState` enum.
"""

from __future__ import annotations

import enum
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from typing import NamedTuple, Protocol

from fntree.errors import SlurmError


class Completed(NamedTuple):
    returncode: int
    stdout: str
    stderr: str


class Commands(Protocol):
    def run(self, argv: Sequence[str], env: Mapping[str, str] | None = None) -> Completed: ...


class SubprocessCommands:
    """Runs Slurm's commands as subprocesses; `calls` counts them by command name."""

    def __init__(self, timeout: float = 120.0) -> None:
        self.timeout = timeout
        self.calls: Counter[str] = Counter()

    def run(self, argv: Sequence[str], env: Mapping[str, str] | None = None) -> Completed:
        self.calls[argv[0]] += 1
        executable = shutil.which(argv[0]) or argv[0]  # found on this process's PATH
        try:
            proc = subprocess.run([executable, *argv[1:]], capture_output=True, text=True, env=env,
                                  timeout=self.timeout, stdin=subprocess.DEVNULL, check=False)
        except FileNotFoundError:
            return Completed(127, "", f"{argv[0]}: command not found")
        except subprocess.TimeoutExpired:
            return Completed(124, "", f"{argv[0]} did not answer in {self.timeout:g}s")
        return Completed(proc.returncode, proc.stdout, proc.stderr)


DEFAULT_COMMANDS = SubprocessCommands()


# -- native states -------------------------------------------------------------------------------
class SlurmState(enum.Enum):
    """What fntree makes of a Slurm job's state."""

    QUEUED = "queued"
    """Waiting to start (or to start again); it may still run."""
    RUNNING = "running"
    """On a node, or finishing there: its results, or its end, will show."""
    COMPLETED = "completed"
    """Ended with exit code 0: its result files say what became of its tasks."""
    FAILED = "failed"
    """Ended with a non-zero exit code, or Slurm could not run it."""
    OUT_OF_MEMORY = "out_of_memory"
    """Killed for using more than its --mem: its job is retried with more memory."""
    TIMEOUT = "timeout"
    """Killed at its --time: its job is retried with more time."""
    CANCELLED = "cancelled"
    """Cancelled by scancel: fntree's own, or an administrator's."""
    LOST = "lost"
    """Its node failed or it was preempted: it did not fail by itself."""

    @property
    def live(self) -> bool:
        return self in (SlurmState.QUEUED, SlurmState.RUNNING)


STATES: dict[str, SlurmState] = {
    "PENDING": SlurmState.QUEUED,
    "CONFIGURING": SlurmState.QUEUED,
    "REQUEUED": SlurmState.QUEUED,
    "REQUEUE_FED": SlurmState.QUEUED,
    "REQUEUE_HOLD": SlurmState.QUEUED,
    "RESV_DEL_HOLD": SlurmState.QUEUED,
    "RUNNING": SlurmState.RUNNING,
    "COMPLETING": SlurmState.RUNNING,
    "RESIZING": SlurmState.RUNNING,
    "SIGNALING": SlurmState.RUNNING,
    "STAGE_OUT": SlurmState.RUNNING,
    "SUSPENDED": SlurmState.RUNNING,
    "STOPPED": SlurmState.RUNNING,
    "COMPLETED": SlurmState.COMPLETED,
    "FAILED": SlurmState.FAILED,
    "SPECIAL_EXIT": SlurmState.FAILED,
    "DEADLINE": SlurmState.FAILED,
    "OUT_OF_MEMORY": SlurmState.OUT_OF_MEMORY,
    "TIMEOUT": SlurmState.TIMEOUT,
    "CANCELLED": SlurmState.CANCELLED,
    "REVOKED": SlurmState.CANCELLED,
    "NODE_FAIL": SlurmState.LOST,
    "BOOT_FAIL": SlurmState.LOST,
    "PREEMPTED": SlurmState.LOST,
}

CAUSES = {SlurmState.OUT_OF_MEMORY: "memory", SlurmState.TIMEOUT: "time"}


def native_state(text: str) -> SlurmState | None:
    """The state of squeue's %T or sacct's State ("CANCELLED by 0"); None if unknown."""
    words = text.split()
    return STATES.get(words[0].rstrip("+")) if words else None


# -- parsing ---------------------------------------------------------------------------------------
class Cluster(NamedTuple):
    """What `sinfo` says of the partition: its largest node, its cores, its time limit."""

    partition: str
    node_cpus: int
    node_memory: int          # bytes
    total_cpus: int
    time_limit: float | None  # seconds; None when unlimited


def parse_table(text: str, columns: int) -> Iterator[list[str]]:
    """The rows of `|`-separated output with at least `columns` fields."""
    for line in text.splitlines():
        fields = line.strip().split("|")
        if len(fields) >= columns and fields[0]:
            yield fields


def parse_squeue(text: str) -> dict[str, tuple[str, str]]:
    """Job id -> (native state, third column), from `squeue -h -o %i|%T|%r` (or `|%j`)."""
    return {f[0]: (f[1], f[2] if len(f) > 2 else "") for f in parse_table(text, 2)}


def parse_sacct(text: str) -> dict[str, tuple[str, str]]:
    """Job id -> (native state, exit code), from `sacct -X -n -P -o JobID,State,ExitCode`."""
    return {f[0]: (f[1], f[2] if len(f) > 2 else "") for f in parse_table(text, 2)}


def parse_time_limit(text: str) -> float | None:
    """Seconds from a Slurm time ("infinite", "45", "30:00", "2:00:00", "1-12", "1-12:00:00")."""
    text = text.strip()
    if text.lower() in ("infinite", "unlimited", "n/a", ""):
        return None
    days, dash, rest = text.partition("-") if "-" in text else ("0", "", text)
    parts = [int(p) for p in rest.split(":")]
    if dash:                                  # days-hours[:minutes[:seconds]]
        hours, minutes, seconds = [*parts, 0, 0][:3]
    elif len(parts) == 1:                     # minutes
        hours, minutes, seconds = 0, parts[0], 0
    elif len(parts) == 2:                     # minutes:seconds
        hours, minutes, seconds = 0, parts[0], parts[1]
    else:                                     # hours:minutes:seconds
        hours, minutes, seconds = parts[:3]
    return float(int(days) * 86400 + hours * 3600 + minutes * 60 + seconds)


def parse_sinfo(text: str, partition: str | None) -> Cluster:
    """The partition (given, or else the default one) from `sinfo -h -N -o %N|%P|%c|%m|%l`."""
    rows = list(parse_table(text, 5))
    if partition is None:
        defaults = [r for r in rows if r[1].endswith("*")]
        rows = defaults or rows
    else:
        rows = [r for r in rows if r[1].rstrip("*") == partition]
    if not rows:
        raise SlurmError(f"Slurm has no partition {partition!r}" if partition else
                         "sinfo lists no nodes; check that Slurm is up (`sinfo`)")
    nodes = {r[0]: (int(r[2].rstrip("+")), int(r[3].rstrip("+"))) for r in rows}
    return Cluster(rows[0][1].rstrip("*"), max(c for c, _ in nodes.values()),
                   max(m for _, m in nodes.values()) << 20,
                   sum(c for c, _ in nodes.values()), parse_time_limit(rows[0][4]))
