"""A job store damaged at rest between a kill and a restart: each file kind, each damage."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from processes import wait_for

from fntree.runtime.check import ERROR, check
from fntree.runtime.objects import INLINE_LIMIT

TESTS = str(Path(__file__).parent)
BIG = 3 * INLINE_LIMIT


def _fntree(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fntree", *args], capture_output=True,
                          text=True, timeout=180, env={**os.environ, "PYTHONPATH": TESTS})


@pytest.fixture(scope="module")
def killed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store whose leader and workers were SIGKILLed while a job held a long value."""
    base = tmp_path_factory.mktemp("killed")
    store, marker = base / "store", base / "marker"
    code = (f"import fntree, attack_workflows as aw\n"
            f"fntree.run(aw.made_then_held({BIG}, {str(marker)!r}), jobstore={str(store)!r})\n")
    leader = subprocess.Popen([sys.executable, "-c", code],
                              env={**os.environ, "PYTHONPATH": TESTS, "FNTREE_LIVE_EVERY": "0.1"},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(marker.exists, timeout=120)
        wait_for(lambda: any((store / "logs").glob("live/*.log")), timeout=60)
    finally:
        leader.kill()
        leader.wait()
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(marker.read_text()), signal.SIGKILL)
    return store


@pytest.mark.parametrize("damage", ["empty", "delete"])
def test_a_lost_journal_in_a_store_that_ran_is_not_called_an_interrupted_creation(
        killed: Path, tmp_path: Path, damage: str) -> None:
    """A journal emptied or deleted after jobs ran is reported as lost, with what shows that
    jobs ran and to restore it, never as a creation to remove and run again."""
    store = tmp_path / "store"
    shutil.copytree(killed, store, symlinks=True)
    segment = store / "journal" / "1.log"
    if damage == "empty":
        segment.write_bytes(b"")
    else:
        segment.unlink()
    errors = [f.text for f in check(store) if f.level == ERROR]
    assert len(errors) == 1 and "yet jobs ran in it" in errors[0], errors
    assert "remove it and run again" not in errors[0]
    out = _fntree("restart", str(store), "--no-progress")
    assert out.returncode == 2 and "restore" in out.stderr.lower(), out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("kind", ["fifo", "directory", "symlink"])
def test_following_a_live_log_replaced_by_something_else_is_refused_at_once(
        killed: Path, tmp_path: Path, kind: str) -> None:
    """`fntree logs -f` of a job whose live log was replaced by a FIFO, a directory or a symlink
    exits at once with an error naming it (never waits forever on a FIFO, no traceback)."""
    store = tmp_path / "store"
    shutil.copytree(killed, store, symlinks=True)
    (live,) = (store / "logs" / "live").iterdir()
    live.unlink()
    {"fifo": lambda: os.mkfifo(live), "directory": live.mkdir,
     "symlink": lambda: live.symlink_to("/etc/passwd")}[kind]()
    out = _fntree("logs", str(store), "-f", live.stem)
    assert out.returncode == 2, out.stderr
    assert f"the live log {live} cannot be followed" in out.stderr
    assert "Traceback" not in out.stderr and "root:" not in out.stdout


def test_check_reports_an_objects_directory_replaced_by_a_file(killed: Path,
                                                               tmp_path: Path) -> None:
    """`fntree check` of a store whose objects/ is a file reports it as an error (exit 1),
    never an OSError."""
    store = tmp_path / "store"
    shutil.copytree(killed, store, symlinks=True)
    shutil.rmtree(store / "objects")
    (store / "objects").write_bytes(b"x")
    out = _fntree("check", str(store))
    assert out.returncode == 1, out.stderr
    assert "objects, where values over 64 KiB are kept, is not a directory" in out.stdout


def test_a_lock_file_replaced_by_a_directory_is_named_with_its_remedy(killed: Path,
                                                                      tmp_path: Path) -> None:
    """A restart of a store whose leader.lock is a directory says so and to remove it, and
    `fntree check` reports it as an error."""
    store = tmp_path / "store"
    shutil.copytree(killed, store, symlinks=True)
    (store / "leader.lock").unlink()
    (store / "leader.lock").mkdir()
    out = _fntree("restart", str(store), "--no-progress")
    assert out.returncode == 2, out.stderr
    assert "leader.lock" in out.stderr and "if it is not a file" in out.stderr
    errors = [f.text for f in check(store) if f.level == ERROR]
    assert errors == ["leader.lock is not a file, so no leader can start; remove it (no leader "
                      "runs while it is not a file)"]
