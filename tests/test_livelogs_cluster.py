"""Live logs on a real Slurm and a real Grid Engine: a running job's output, followed through
the shared job store. Skipped without the cluster, unless CI requires it (as in
tests/test_slurm.py and tests/test_gridengine.py)."""

from __future__ import annotations

import os
from pathlib import Path

import live_workflows as lw
import pytest
from test_gridengine import _grid_engine_missing
from test_slurm import _slurm_missing


def _require(reason: str | None, required_by: str, what: str) -> None:
    if reason is None:
        return
    if os.environ.get(required_by):
        pytest.fail(f"{required_by} is set but {what} is unusable: {reason}")
    pytest.skip(f"no {what} reachable: {reason}")


def test_logs_follow_a_running_job_on_slurm(tmp_path: Path) -> None:
    """On Slurm, `fntree logs -f DIR JOB` shows a running job's first message before it ends."""
    _require(_slurm_missing(), "FNTREE_REQUIRE_SLURM", "Slurm")
    lw.follow_a_running_job(tmp_path, "slurm", timeout=300)


def test_logs_follow_a_running_job_on_grid_engine(tmp_path: Path) -> None:
    """On Grid Engine, `fntree logs -f DIR JOB` shows a running job's first message before it
    ends."""
    _require(_grid_engine_missing(), "FNTREE_REQUIRE_SGE", "Grid Engine")
    lw.follow_a_running_job(tmp_path, "gridengine", timeout=300)
