"""Targets for the end-to-end tests on Grid Engine (tests/test_gridengine.py); importable by
workers. The Slurm tests' targets (slurm_workflows) serve too; these are Grid Engine's own."""

from __future__ import annotations

import os
import subprocess
import sys

import fntree


@fntree.target
def where() -> dict[str, object]:
    """The Grid Engine job running this target, and its local temp dir (existing now)."""
    ctx = fntree.context()
    (ctx.local_temp_dir / "scratch").write_text("x")
    return {"job": os.environ.get("JOB_ID"), "local": str(ctx.local_temp_dir),
            "local_exists": ctx.local_temp_dir.is_dir(), "host": os.uname().nodename}


@fntree.target(memory="300M")
def two_processes(megabytes: int) -> tuple[int, int | None]:
    """Two child processes hold `megabytes` MB each for 20 s: together more than the first
    attempt's memory (each alone less), so Grid Engine kills the job; the retry has enough."""
    ctx = fntree.context()
    code = (f"b = bytearray({megabytes} * 1_000_000)\n"
            "for i in range(0, len(b), 4096): b[i] = 1\n"
            "import time; time.sleep(20)")
    children = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(2)]
    for child in children:
        child.wait()
    return ctx.attempt, ctx.memory


@fntree.target(cpu=2, memory="300M")
def two_cores() -> str | None:
    """The parallel environment's slots for this job, as Grid Engine tells the job."""
    return os.environ.get("NSLOTS")
