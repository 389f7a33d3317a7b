"""Shared fixtures: a fresh job store path per test; the example batch system plug-in."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from dist_info import install_dist_info

EXAMPLE_PLUGIN = Path(__file__).resolve().parent.parent / "examples" / "plugin_subprocess"


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
