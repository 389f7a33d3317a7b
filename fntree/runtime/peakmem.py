"""`PeakMemory`: the peak memory of a job's own process tree, as a worker measures it."""

from __future__ import annotations

import os
import resource
import threading
import time

from fntree.batch import proctree
from fntree.batch.threads import start_daemon


class PeakMemory:
    """The peak memory of a job's own process tree, in KiB: what it used above the worker.

    Two parts, added: the worker process's growth while the job ran (the kernel's
    high-water mark, VmHWM, reset through `/proc/self/clear_refs` after each job,
    less the resident memory the job started from: the worker's own ~25 MiB is not
    the job's), and the processes the job started (the largest one reaped during the
    job, from RUSAGE_CHILDREN's high-water mark rising, or the sum of the live
    descendants' resident memory sampled every `SAMPLE` seconds while the job runs,
    whichever is more). Jobs shorter than `MIN_WALL` report 0 and cost two
    assignments: reading and resetting the marks costs more than such a job (what it
    kept shows in the next job measured, which starts from the resident memory it
    left). So do jobs that ran longer only because the machine was busy: under
    `MIN_CPU` of the worker's processor time, no process of theirs reaped (the
    children's processor time did not move) and none sampled. Such a job can have
    touched a few MiB at most (a page costs a fault), and on a loaded machine one
    job in ten took 10 ms of wall time. Without /proc (not Linux): the process's
    peak so far, baseline included.
    """

    MIN_WALL = 0.01
    MIN_CPU = 0.005
    SAMPLE = 0.25

    def __init__(self) -> None:
        self._linux = os.path.exists("/proc/self/clear_refs")
        self._base = _status_kib(b"VmRSS:")[0] if self._linux else 0
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        self._children = children.ru_maxrss
        self._children_cpu = children.ru_utime + children.ru_stime
        self._tree = 0
        self._job = False  # a job is running: the sampler reads its tree
        self._sampler: threading.Thread | None = None

    def before(self) -> None:
        """A job starts: from now on its tree's memory is its own."""
        self._tree = 0
        self._job = True
        if self._sampler is None and self._linux:
            self._sampler = start_daemon(self._sample, "fntree-peak-memory")

    def after(self, wall: float, cpu: float = MIN_CPU) -> int:
        """The job ended `wall` seconds after it started, having used `cpu` seconds of
        this process's processor time: its peak, in KiB."""
        self._job = False
        if not self._linux:
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        if wall < self.MIN_WALL:
            return 0
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        children_cpu = usage.ru_utime + usage.ru_stime
        if cpu < self.MIN_CPU and not self._tree and children_cpu == self._children_cpu:
            return 0  # it waited, it did not work: nothing of its own ran
        self._children_cpu = children_cpu
        reaped = usage.ru_maxrss
        children = max(reaped if reaped > self._children else 0, self._tree)
        self._children = max(self._children, reaped)
        try:
            rss, hwm = _status_kib(b"VmRSS:", b"VmHWM:")
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # the high-water mark starts again from the resident memory
        except OSError:
            self._linux = False
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        own, self._base = max(hwm - self._base, 0), rss
        return own + children

    def _sample(self) -> None:
        """While a job runs: the most its live descendants held at once."""
        while True:
            time.sleep(self.SAMPLE)
            if self._job and proctree.has_children():
                self._tree = max(self._tree, _tree_kib())


def _tree_kib() -> int:
    """The resident memory of this process's live descendants together, in KiB."""
    total = 0
    for pid in proctree.descendants(os.getpid()):
        try:
            with open(f"/proc/{pid}/statm", "rb") as f:
                total += int(f.read().split()[1]) * _PAGE_KIB
        except (OSError, IndexError, ValueError):
            continue  # gone since the tree was read
    return total


_PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024 if hasattr(os, "sysconf") else 4


def _status_kib(*fields: bytes) -> tuple[int, ...]:
    """`kB` fields of /proc/self/status (VmRSS, VmHWM), in the order asked; 0 if missing."""
    found = dict.fromkeys(fields, 0)
    with open("/proc/self/status", "rb") as f:
        for line in f:
            key = line[:line.find(b":") + 1]
            if key in found:
                found[key] = int(line.split()[1])
    return tuple(found.values())
