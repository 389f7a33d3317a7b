"""The conformance kit (fntree.testing) passes on every batch system we ship or show.

`local` and the example plug-in `subprocess` (examples/plugin_subprocess, made
made visible as an installed distribution would be, by conftest's
`example_plugin`) always run; `slurm` runs against the real
Slurm that ci/slurm-up.sh starts, and is skipped without one unless
FNTREE_REQUIRE_SLURM is set (as in CI), as tests/test_slurm.py does.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_slurm import _slurm_missing

from fntree import batch
from fntree.testing import CASES, run_case

# The batch systems, with the kit's settings for each.
SYSTEMS = {
    "local": {"options": {"max_cpus": 2}, "time_limits": True},  # killed past 2 x time + 10 s
    "subprocess": {"env": {"FNTREE_SUBPROCESS_SLOTS": "2", "FNTREE_SUBPROCESS_DELAY": "0.05"}},
    # Slurm's --time counts whole minutes, so the kit's time case takes about 100 s there;
    # tests/test_slurm.py proves TIMEOUT retried with twice the time on the same cluster.
    "slurm": {"time_limits": False, "timeout": 600.0},
}


@pytest.fixture(params=list(SYSTEMS))
def system(request: pytest.FixtureRequest) -> str:
    """A batch system name; Slurm's is skipped (or fails in CI) without a reachable Slurm."""
    name: str = request.param
    if name == "slurm":
        reason = _slurm_missing()
        if reason is not None:
            if os.environ.get("FNTREE_REQUIRE_SLURM"):
                pytest.fail(f"FNTREE_REQUIRE_SLURM is set but Slurm is unusable: {reason}")
            pytest.skip(f"no Slurm reachable: {reason}")
    if name == "subprocess":
        request.getfixturevalue("example_plugin")
    return name


@pytest.mark.parametrize("case", CASES)
def test_conformance(system: str, case: str, tmp_path: Path) -> None:
    """Each batch system passes each case of the conformance kit."""
    run_case(case, system, tmp_path, **SYSTEMS[system])


def test_example_plugin_is_registered(example_plugin: None) -> None:
    """The example plug-in is found through its entry point, beside fntree's own."""
    assert {"local", "slurm", "subprocess"} <= set(batch.names())
