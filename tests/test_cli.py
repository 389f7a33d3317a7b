"""The `fntree` command: run, status and restart, as a user types them."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent("""
    import os
    from pathlib import Path

    import fntree

    @fntree.target
    def square(x: int) -> int:
        return x * x

    @fntree.target
    def add(values) -> int:
        return sum(values)

    @fntree.target
    def squares(n: int, scale: float, loud: bool, where: Path) -> object:
        if not where.exists():
            raise FileNotFoundError(f"{where} does not exist yet")
        return add([square(i) for i in range(n)])
""")


def fntree_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fntree", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=120)


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "pipeline.py"
    path.write_text(SCRIPT)
    return path


def test_run_failure_status_restart(script: Path, tmp_path: Path) -> None:
    """A failed run exits 1 with the restart command; after the fix, restart completes it."""
    store = tmp_path / "store"
    flag = tmp_path / "flag"
    out = fntree_cli("run", f"{script}:squares", "4", "1.5", "yes", str(flag),
                     "--jobstore", str(store), "--retry-count", "0", cwd=tmp_path)
    assert out.returncode == 1, out.stderr
    assert "does not exist yet" in out.stderr
    assert f"fntree restart {store}" in out.stderr
    status = fntree_cli("status", str(store), "--fail-if-not-complete", cwd=tmp_path)
    assert status.returncode == 1
    assert "1 failed" in status.stdout and "squares" in status.stdout
    flag.write_text("")
    out = fntree_cli("restart", str(store), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "14"
    status = fntree_cli("status", str(store), "--fail-if-not-complete", cwd=tmp_path)
    assert status.returncode == 0 and "completed" in status.stdout


def test_arguments_converted_by_annotations(script: Path, tmp_path: Path) -> None:
    """A bad argument for an annotated parameter is a usage error naming the parameter."""
    out = fntree_cli("run", f"{script}:squares", "four", "1", "yes", ".",
                     "--jobstore", str(tmp_path / "s"), cwd=tmp_path)
    assert out.returncode == 2
    assert "argument n of squares must be of type int" in out.stderr


def test_run_needs_jobstore_and_a_target(script: Path, tmp_path: Path) -> None:
    """Missing --jobstore, or a name that is not a target, are clear usage errors."""
    out = fntree_cli("run", f"{script}:squares", "1", "1", "no", ".", cwd=tmp_path)
    assert out.returncode == 2 and "--jobstore" in out.stderr
    out = fntree_cli("run", f"{script}:Path", "--jobstore", str(tmp_path / "s"), cwd=tmp_path)
    assert out.returncode == 2 and "not an @fntree.target" in out.stderr


def test_status_of_missing_or_foreign_directory(tmp_path: Path) -> None:
    """Status of a directory that is not a job store says so."""
    out = fntree_cli("status", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert out.returncode == 2 and "no job store" in out.stderr
    (tmp_path / "other").mkdir()
    out = fntree_cli("status", str(tmp_path / "other"), cwd=tmp_path)
    assert out.returncode == 2 and "not an fntree job store" in out.stderr


PROBE_LOOP = textwrap.dedent("""
    import pathlib, sys
    from fntree.runtime.store import JobStore
    store, stop = JobStore.open(sys.argv[1]), pathlib.Path(sys.argv[2])
    while not stop.exists():
        for _ in range(100):
            store.leader_alive()
""")


def test_status_probes_never_make_a_restart_refuse(script: Path, tmp_path: Path) -> None:
    """Tight loops of `fntree status` and of lock probes never make a restart refuse."""
    store, stop = tmp_path / "store", tmp_path / "stop"
    out = fntree_cli("run", f"{script}:squares", "3", "1", "no", str(tmp_path),
                     "--jobstore", str(store), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    statuses: list[subprocess.CompletedProcess[str]] = []

    def status_loop() -> None:
        while not stop.exists():
            statuses.append(fntree_cli("status", str(store), cwd=tmp_path))

    looping = threading.Thread(target=status_loop)
    looping.start()
    probe = subprocess.Popen([sys.executable, "-c", PROBE_LOOP, str(store), str(stop)])
    try:
        restarts = [fntree_cli("restart", str(store), "--no-progress", cwd=tmp_path)
                    for _ in range(10)]
    finally:
        stop.write_text("")
        looping.join()
        assert probe.wait(timeout=60) == 0
    for out in restarts:
        assert out.returncode == 0 and out.stdout.strip() == "5", out.stderr
    assert statuses and all(s.returncode == 0 for s in statuses), statuses[-1].stderr
