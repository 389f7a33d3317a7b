"""The conformance kit (fntree.testing) passes on every batch system we ship or show.

`local` and the example plug-in `subprocess` (examples/plugin_subprocess, made
visible as an installed distribution would be, by conftest's `example_plugin`)
always run; `slurm` and `gridengine` run against the real Slurm and Grid Engine
that ci/slurm-up.sh and ci/sge-up.sh start, and are skipped without them unless
FNTREE_REQUIRE_SLURM / FNTREE_REQUIRE_SGE is set (as in CI), as their own test
files do.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_gridengine import _grid_engine_missing
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
    # Likewise tests/test_gridengine.py proves h_rt kills retried with twice the time.
    "gridengine": {"time_limits": False, "timeout": 600.0},
}
# Each cluster: how to tell it is missing, and the variable that makes that a failure.
CLUSTERS = {"slurm": (_slurm_missing, "FNTREE_REQUIRE_SLURM"),
            "gridengine": (_grid_engine_missing, "FNTREE_REQUIRE_SGE")}


@pytest.fixture(params=list(SYSTEMS))
def system(request: pytest.FixtureRequest) -> str:
    """A batch system name; a cluster's is skipped (or fails in CI) when it is unreachable."""
    name: str = request.param
    if name in CLUSTERS:
        missing, required = CLUSTERS[name]
        reason = missing()
        if reason is not None:
            if os.environ.get(required):
                pytest.fail(f"{required} is set but {name} is unusable: {reason}")
            pytest.skip(f"no {name} reachable: {reason}")
    if name == "subprocess":
        request.getfixturevalue("example_plugin")
    return name


@pytest.mark.parametrize("case", CASES)
def test_conformance(system: str, case: str, tmp_path: Path) -> None:
    """Each batch system passes each case of the conformance kit."""
    run_case(case, system, tmp_path, **SYSTEMS[system])


def test_example_plugin_is_registered(example_plugin: None) -> None:
    """The example plug-in is found through its entry point, beside fntree's own."""
    assert {"local", "slurm", "gridengine", "sge", "subprocess"} <= set(batch.names())
