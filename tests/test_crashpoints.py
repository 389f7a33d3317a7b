"""Crash points (fntree/runtime/crashpoints.py): where they count, whom they kill, and that a
run's recorded environment never carries one to a later leader's workers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from processes import processes_mentioning, wait_for

from fntree.runtime import crashpoints
from fntree.runtime.check import ERROR, check

CHAOS = Path(__file__).parent / "chaos"
sys.path.insert(0, str(CHAOS))
import long_tree  # noqa: E402  (tests/chaos/long_tree.py: values across the inline limit)

TREE = f"{CHAOS / 'long_tree.py'}:long_tree"


def _fntree(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`fntree ARGS`, its stdout and stderr read to their end: a process that held either
    open after the leader died would make this time out."""
    return subprocess.run([sys.executable, "-m", "fntree", *args], capture_output=True,
                          text=True, timeout=300, env={**os.environ, **env})


@pytest.mark.parametrize("value", ["nowhere", "objects.write:x", "objects.write@elsewhere",
                                   "journal.torn:2@"])
def test_a_malformed_crash_point_is_refused_naming_the_points(value: str) -> None:
    """A value that is not NAME[:N][@leader|@worker] is a ValueError that lists the points."""
    with pytest.raises(ValueError, match=r"objects\.write"):
        crashpoints._parse(value)


def test_a_workers_value_write_cut_by_its_leaders_kill_restarts_exact(tmp_path: Path) -> None:
    """`objects.write@worker`: the worker writing the first long value SIGKILLs its leader; the
    leader's pipes close, the temp file is left, check is sound, and a restart without the
    variable runs to the exact value (the recorded environment does not re-arm its workers)."""
    store = tmp_path / "store"
    args = ("1", "2", "20")
    killed = _fntree("run", TREE, *args, "--jobstore", str(store), "--no-progress",
                     FNTREE_CRASH_AT="objects.write:1@worker")
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert [p.name for p in (store / "objects").iterdir() if p.name.endswith(".tmp")]
    wait_for(lambda: not processes_mentioning(store), timeout=60)
    assert not [f.text for f in check(store) if f.level == ERROR]
    again = _fntree("restart", str(store), "--no-progress")
    assert again.returncode == 0, again.stderr[-2000:]
    assert int(again.stdout) == long_tree.expected(1, 2, 20)
    assert not list(check(store)), "the restart left something to explain"


def test_a_restart_arms_its_own_workers_only(tmp_path: Path) -> None:
    """A restart's `FNTREE_CRASH_AT=...@worker` reaches its workers (the leader passes its
    own), though the run's recorded environment has none."""
    store = tmp_path / "store"
    first = _fntree("run", TREE, "1", "2", "20", "--jobstore", str(store), "--no-progress",
                    FNTREE_CRASH_AT="leader.start@leader")
    assert first.returncode == -9, first.stderr[-2000:]
    wait_for(lambda: not processes_mentioning(store), timeout=60)
    killed = _fntree("restart", str(store), "--no-progress",
                     FNTREE_CRASH_AT="objects.write:1@worker")
    assert killed.returncode == -9, killed.stderr[-2000:]
    wait_for(lambda: not processes_mentioning(store), timeout=60)
    again = _fntree("restart", str(store), "--no-progress")
    assert again.returncode == 0 and int(again.stdout) == long_tree.expected(1, 2, 20)
