"""Helpers the end-to-end tests share: waiting, finding a run's processes and its completions."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


def wait_for(condition: Callable[[], object], timeout: float = 60.0) -> None:
    """Poll `condition` until it is true; AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def processes_mentioning(text: str | Path) -> list[int]:
    """Pids of the processes (not this one) whose command line contains `text`."""
    needle = str(text).encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if needle in cmdline:
            found.append(int(entry))
    return found


def worker_pids(store: str | Path) -> list[int]:
    """The pids of the store's local workers (not its leader's guard)."""
    found = []
    for pid in processes_mentioning(store):
        try:
            if b"fntree._worker" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
        except OSError:
            continue
    return found


def kill_run(leader: subprocess.Popen[bytes], store: str | Path) -> None:
    """SIGKILL a leader, then its store's local workers, as a crash of the whole machine's
    share of the run would leave them."""
    leader.kill()
    leader.wait()
    for pid in worker_pids(store):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def shells_mentioning(text: str | Path) -> list[int]:
    """Pids of the bash processes whose command line contains `text`.

    Not the leader that names `text` in its own command line, nor a process it forked
    that has not yet run exec and so still shows the leader's command line.
    """
    found = []
    for pid in processes_mentioning(text):
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"bash\0"):
                found.append(pid)
        except OSError:
            continue
    return found


def recorded_done(store: Path) -> set[str]:
    """Ids of the jobs whose completion the job store's journal records."""
    from fntree.runtime.journal import read_records
    from fntree.runtime.records import R_DONE, job_hex

    done = set()
    for segment in sorted((store / "journal").glob("*.log")):
        records, _, _ = read_records(segment)
        done.update(job_hex(r[1]) for r in records if r[0] == R_DONE)
    return done
