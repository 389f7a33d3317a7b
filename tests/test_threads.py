"""fntree's own threads in a worker reserve next to no address space (fntree/batch/threads.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import workflows as wf

import fntree


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_a_workers_threads_leave_its_address_space_small(tmp_path: Path) -> None:
    """With live output, the peak memory sampler and the heartbeat running, a worker's address
    space stays far below the ~180 MB their default arenas and stacks took: under Grid Engine's
    h_vmem that was memory a job could not use."""
    kib = fntree.run(wf.address_space(1.5), jobstore=tmp_path / "store")
    assert kib < 100 * 1024, f"the worker's address space is {kib / 1024:.0f} MiB"
