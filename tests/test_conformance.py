"""The conformance kit (fntree.testing) passes on every batch system we ship or show.

`local` and the example plug-in `subprocess` (examples/plugin_subprocess, made
visible as an installed distribution would be: its package on the path and a
.dist-info declaring its entry point) always run; `slurm` runs against the real
Slurm that ci/slurm-up.sh starts, and is skipped without one unless
FNTREE_REQUIRE_SLURM is set (as in CI), as tests/test_slurm.py does.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_slurm import _slurm_missing

from fntree import batch
from fntree.testing import CASES, run_case

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "plugin_subprocess"

# The batch systems, with the kit's settings for each.
SYSTEMS = {
    "local": {"options": {"max_cpus": 2}},
    "subprocess": {"env": {"FNTREE_SUBPROCESS_SLOTS": "2", "FNTREE_SUBPROCESS_DELAY": "0.05"}},
    "slurm": {"time_limits": True, "timeout": 600.0},
}


def install_dist_info(site: Path, name: str, version: str, entry_points: str) -> None:
    """A .dist-info in `site` declaring `entry_points`: what pip leaves for an install."""
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(entry_points)


@pytest.fixture(scope="session")
def example_plugin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """examples/plugin_subprocess installed for this session, registered by its entry point."""
    site = tmp_path_factory.mktemp("site")
    install_dist_info(site, "fntree-subprocess", "0.1.0",
                      "[fntree.batch_systems]\nsubprocess = fntree_subprocess:make\n")
    added = [str(site), str(EXAMPLE)]
    sys.path[:0] = added
    yield
    for entry in added:
        sys.path.remove(entry)


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
