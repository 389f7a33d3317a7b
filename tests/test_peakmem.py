"""`PeakMemory`: a job's own peak, and what it skips for jobs that only waited."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from fntree.runtime.peakmem import PeakMemory

MIB = 1024
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def _job(peak: PeakMemory, body: object) -> int:
    """Run `body` as the worker runs a job; its peak in KiB."""
    peak.before()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    body()  # type: ignore[operator]
    return peak.after(time.perf_counter() - wall0, time.process_time() - cpu0)


def test_a_job_that_only_waited_reports_nothing() -> None:
    """A job that slept past the wall-time floor, using no processor time, reports 0."""
    peak = PeakMemory()
    assert _job(peak, lambda: time.sleep(0.05)) == 0


def test_a_waiting_job_whose_process_held_memory_reports_it() -> None:
    """A job that waits on a process it started is charged that process's peak."""
    peak = PeakMemory()
    # Every page written, and held past two of the sampler's looks: in a process that has
    # reaped a larger child before (a long-lived test process), RUSAGE_CHILDREN's
    # high-water mark does not rise for this one, and only the sampler sees it.
    hog = "x = b\"\\x01\" * (80 << 20); import time; time.sleep(0.6)"
    rss = _job(peak, lambda: subprocess.run([sys.executable, "-c", hog], check=True))
    assert rss >= 70 * MIB, rss


def test_a_working_job_reports_what_it_touched() -> None:
    """A job that writes 128 MiB in the worker reports at least that."""
    peak = PeakMemory()
    held: list[bytes] = []
    rss = _job(peak, lambda: held.append(b"\x01" * (128 << 20)))
    assert rss >= 120 * MIB, rss
