"""Targets for the tests on a Slurm of several nodes (tests/test_slurm_nodes.py); importable by
workers. Each leaf records its node and local temp dir, and holds a lock named after its job
while it runs, so that a second run of it at the same time is recorded as an overlap."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from slurm_workflows import _append, total

import fntree


@fntree.target(time="5m")
def node_leaf(i: int, delay: float, record: str, locks: str) -> int:
    """Appends "start JOB SLURM_ID NODE LOCAL_DIR", sleeps `delay` s, appends "end ..."."""
    ctx = fntree.context()
    node = os.environ.get("SLURMD_NODENAME", "-")
    where = f"{ctx.job_id} {os.environ.get('SLURM_JOB_ID', '-')} {node} {ctx.local_temp_dir}"
    (ctx.local_temp_dir / "scratch").write_text(node)
    with open(Path(locks) / ctx.job_id, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _append(record, f"overlap {where}")
            raise
        _append(record, f"start {where}")
        time.sleep(delay)
        _append(record, f"end {where}")
    return i


@fntree.target
def node_fan(n: int, delay: float, record: str, locks: str, memory: int) -> fntree.Spawn:
    """`n` leaves, each asking for `memory` bytes (so that few fit on one node), then their sum."""
    leaves = [node_leaf.options(memory=memory)(i, delay, record, locks) for i in range(n)]
    return fntree.children(*leaves).then(total(leaves))
