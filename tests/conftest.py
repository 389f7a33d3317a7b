"""Shared fixtures: a fresh job store path per test; the example batch system plug-in.

The README's test command runs the suite in two processes (pytest-xdist's `-n 2`): the
tests of the real clusters share one Slurm and one Grid Engine, and some take a node down,
so they run one after another in one process (`pytest_xdist_make_scheduler` makes them one
unit of work); the rest are spread over both. Without `-n`, everything runs in this process.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dist_info import install_dist_info

EXAMPLE_PLUGIN = Path(__file__).resolve().parent.parent / "examples" / "plugin_subprocess"
# Words in a test's id that say it uses (or may use) the shared clusters.
CLUSTER_WORDS = ("slurm", "gridengine", "sge", "conformance")


def _scope(nodeid: str) -> str:
    """The xdist work unit of a test: the cluster tests share one; every other test is alone."""
    return "clusters" if any(word in nodeid.lower() for word in CLUSTER_WORDS) else nodeid


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """With `-n`: xdist's scope scheduling, one unit holding the cluster tests in order.

    (Not `xdist_group` markers: pytest 9.2 ignores the nodeid suffix through which
    pytest-xdist 3.8 groups them, so marked tests were spread over both processes.)
    """
    from xdist.scheduler import LoadScopeScheduling

    class ClusterScheduling(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return _scope(nodeid)

    return ClusterScheduling(config, log)


CHAOS_TALLY: Counter[str] = Counter()  # tests/chaos: the xdist workers' tallies, summed


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    CHAOS_TALLY.update(getattr(node, "workeroutput", {}).get("chaos_tally", {}))


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    tally = CHAOS_TALLY or getattr(config, "chaos_tally", {})
    if any(tally.values()):
        parts = ", ".join(f"{value} {name}" for name, value in tally.items())
        terminalreporter.write_line(f"chaos: {parts}; no work lost or done twice")


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A job store path that does not exist yet."""
    return tmp_path / "jobstore"


@pytest.fixture(scope="session")
def example_plugin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """examples/plugin_subprocess installed for this session, registered by its entry point.

    As `pip install -e` would leave it, without pip's minute: its package on the import
    path and a .dist-info declaring its entry point. Leaders and workers started from
    here get the same path.
    """
    site = tmp_path_factory.mktemp("site")
    install_dist_info(site, "fntree-subprocess", "0.1.0",
                      "[fntree.batch_systems]\nsubprocess = fntree_subprocess:make\n")
    added = [str(site), str(EXAMPLE_PLUGIN)]
    sys.path[:0] = added
    yield
    for entry in added:
        sys.path.remove(entry)
