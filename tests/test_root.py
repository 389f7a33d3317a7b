"""A new store's directory and the word on a store with no root job (fntree/runtime/root.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fntree.runtime.check import ERROR, check

TREE = f"{Path(__file__).parent / 'chaos' / 'long_tree.py'}:long_tree"
PAD = "p" * 70_000  # a root argument over the inline limit: the leader stores it out of line


def _fntree(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fntree", *args], capture_output=True,
                          text=True, timeout=300, env={**os.environ, **env})


@pytest.mark.parametrize("point", ["objects.write", "objects.rename"])
def test_a_creation_cut_writing_the_roots_long_argument_is_an_interrupted_creation(
        tmp_path: Path, point: str) -> None:
    """A leader killed storing the root's long argument left a value in objects/ but no
    journal: check and restart call it an interrupted creation (remove it, run again), not a
    lost journal to restore."""
    store = tmp_path / "store"
    cut = _fntree("run", TREE, "1", "1", "3", PAD, "--jobstore", str(store), "--no-progress",
                  FNTREE_CRASH_AT=f"{point}:1@leader")
    assert cut.returncode == -9, cut.stderr[-2000:]
    assert any((store / "objects").iterdir())
    errors = [f.text for f in check(store) if f.level == ERROR]
    assert len(errors) == 1 and "creation was interrupted" in errors[0], errors
    again = _fntree("restart", str(store), "--no-progress")
    assert again.returncode == 2 and "remove it and run again" in again.stderr, again.stderr
