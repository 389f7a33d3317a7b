"""Grid Engine's side of the Grid Engine batch system: the state table and the parsers.

Every Grid Engine command (qsub, qstat, qacct, qdel, qhost) runs through the same
`Commands` seam as Slurm's (`slurm_commands.SubprocessCommands`), so unit tests
answer from recorded text. Native states (qstat's letters, qacct's `failed` codes)
map through literal tables into the small state enum the Slurm batch system uses
(`JobState`, alias of `slurm_commands.SlurmState`).

Limits as Son of Grid Engine 8.1 reports them in qacct: a job past its `s_rt` gets
SIGUSR1 and, as fntree's worker does, ends itself (`failed 0`, exit status 138); a
job over its `h_rt`, or
whose processes together go over its `h_vmem`, ends `failed 37` with exit status 137;
the two are told apart by `maxvmem` against the requested memory. A job deleted
with qdel ends `failed 100`. One process over `h_vmem` is not killed: its
allocation fails (Python raises MemoryError), which the worker reports itself.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import NamedTuple

from fntree.batch.slurm_commands import SlurmState as JobState
from fntree.errors import GridEngineError

# qstat's state letters, as printed for a job (`qstat -xml`'s <state>).
STATES: dict[str, JobState] = {
    "qw": JobState.QUEUED,
    "hqw": JobState.QUEUED,
    "hRwq": JobState.QUEUED,
    "Rq": JobState.QUEUED,
    "t": JobState.RUNNING,
    "r": JobState.RUNNING,
    "Rr": JobState.RUNNING,
    "Rt": JobState.RUNNING,
    "s": JobState.RUNNING,
    "ts": JobState.RUNNING,
    "S": JobState.RUNNING,
    "tS": JobState.RUNNING,
    "T": JobState.RUNNING,
    "tT": JobState.RUNNING,
    "dr": JobState.RUNNING,      # deleted, still ending: its end will show
    "dt": JobState.RUNNING,
    "dRr": JobState.RUNNING,
    "ds": JobState.RUNNING,
    "dS": JobState.RUNNING,
    "dT": JobState.RUNNING,
    "dqw": JobState.RUNNING,
    "dhqw": JobState.RUNNING,
    "Eqw": JobState.FAILED,     # an error state: it sits there until qdel
    "Ehqw": JobState.FAILED,
    "EhRqw": JobState.FAILED,
    "dEqw": JobState.FAILED,
    "z": JobState.COMPLETED,    # `qstat -s z`: finished, exit status unknown
}

# qacct's `failed` codes that fntree tells apart; any other non-zero code means
# Grid Engine could not start or finish the job (a failed prolog, a lost host, ...).
FAILED_OK = 0
FAILED_LIMIT = 37     # killed by the execd for going over h_rt or h_vmem
FAILED_DELETED = 100  # qdel (or killed after a job-ending signal)


def native_state(text: str) -> JobState | None:
    """The state of qstat's letters ("qw", "r", "Eqw"); None if unknown.

    Letters not in `STATES` are read by the rule the table follows: any `E` is an
    error, any `d` a job being deleted (live until it leaves the queue).
    """
    text = text.strip()
    if text in STATES:
        return STATES[text]
    if "E" in text:
        return JobState.FAILED
    if "d" in text or "r" in text or "t" in text:
        return JobState.RUNNING
    if "q" in text:
        return JobState.QUEUED
    return None


class Job(NamedTuple):
    """A job as `qstat -xml` lists it."""

    state: str
    name: str


def parse_qstat_xml(text: str) -> dict[str, Job]:
    """Job id -> (state letters, name) from `qstat -xml -u USER` (queued and running)."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise GridEngineError(f"qstat printed XML that does not parse ({exc}); check that "
                              "qstat is Grid Engine's (`qstat -help`)") from exc
    jobs = {}
    for item in root.iter("job_list"):
        number = (item.findtext("JB_job_number") or "").strip()
        if number:
            jobs[number] = Job((item.findtext("state") or "").strip(),
                               (item.findtext("JB_name") or "").strip())
    return jobs


class Accounting(NamedTuple):
    """What `qacct -j ID` says of a finished job (its last record)."""

    failed: int
    failed_text: str
    exit_status: int
    maxvmem: int        # bytes
    wallclock: float    # seconds


_UNITS = {"": 1, "B": 1, "K": 1 << 10, "KB": 1 << 10, "M": 1 << 20, "MB": 1 << 20,
          "G": 1 << 30, "GB": 1 << 30, "T": 1 << 40, "TB": 1 << 40}


def parse_size(text: str) -> int:
    """Bytes from qacct's sizes ("4.672MB", "0.000B", "1.5G")."""
    match = re.fullmatch(r"\s*([0-9.]+)\s*([KMGT]?B?)\s*", text, re.I)
    if not match:
        return 0
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def parse_qacct(text: str) -> Accounting | None:
    """The last record of `qacct -j ID`; None when there is none (not yet flushed)."""
    records = [r for r in text.split("=" * 62) if r.strip()]
    if not records:
        return None
    fields: dict[str, str] = {}
    for line in records[-1].splitlines():
        key, _, value = line.strip().partition(" ")
        if key:
            fields[key] = value.strip()
    if "failed" not in fields:
        return None
    failed_text = fields["failed"]
    failed = int(failed_text.split()[0]) if failed_text.split()[0].isdigit() else -1
    status = fields.get("exit_status", "0").split()[0]
    wall = fields.get("ru_wallclock", "0").rstrip("s") or "0"
    return Accounting(failed, failed_text, int(status) if status.isdigit() else -1,
                      parse_size(fields.get("maxvmem", "0")), float(wall))


def final_state(acct: Accounting, memory: int, seconds: float) -> JobState:
    """What an ended job's accounting means, given the MiB and seconds it asked for.

    A job that ran `seconds` (less one: wall clock is whole seconds) ran out of time:
    ended by itself (`failed 0`) with a non-zero status after the SIGUSR1 of its s_rt,
    or killed at its h_rt (`failed 37`). Killed at a limit earlier, it went over its
    memory (its maxvmem at or near the request: the execd samples it).
    """
    timed_out = acct.wallclock >= seconds - 1
    if acct.failed == FAILED_OK:
        if acct.exit_status == 0:
            return JobState.COMPLETED
        return JobState.TIMEOUT if timed_out else JobState.FAILED
    if acct.failed == FAILED_LIMIT:
        if timed_out:
            return JobState.TIMEOUT
        return JobState.OUT_OF_MEMORY
    if acct.failed == FAILED_DELETED:
        return JobState.CANCELLED
    return JobState.LOST


def parse_error_reason(text: str) -> str:
    """The reasons `qstat -j ID` gives for a job in an error state, joined."""
    reasons = []
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().startswith("error reason"):
            reasons.append(re.sub(r"^\s*\S+ \S+ \[[^]]*\]:\s*", "", value).strip())
    return "; ".join(reasons)


class Cluster(NamedTuple):
    """What `qhost` and `qstat -g c` say: the largest host, and the slots of the queue(s)."""

    node_cpus: int
    node_memory: int  # bytes
    total_slots: int


def parse_qhost(text: str) -> tuple[int, int]:
    """(most cores, most bytes of memory) of one host, from `qhost`'s table."""
    cpus, memory = 0, 0
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 8 and fields[0] not in ("HOSTNAME", "global") and fields[2].isdigit():
            cpus = max(cpus, int(fields[2]))
            memory = max(memory, parse_size(fields[7]))
    if not cpus:
        raise GridEngineError("qhost lists no execution host; check that Grid Engine is up "
                              "(`qhost`, `qstat -f`)")
    return cpus, memory


def parse_queue_slots(text: str, queue: str | None) -> int:
    """The slots of cluster queue `queue` (or of every queue), from `qstat -g c`."""
    total, found = 0, False
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[5].isdigit() and (queue is None or fields[0] == queue):
            total += int(fields[5])
            found = True
    if not found:
        raise GridEngineError(f"Grid Engine has no queue {queue!r}; see `qconf -sql`" if queue
                              else "qstat -g c lists no queue; check that Grid Engine is up")
    return total
