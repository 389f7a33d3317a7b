"""Crash-only behaviour: the leader SIGKILLed at any instant, then restarted."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import workflows as wf
from processes import processes_mentioning, recorded_done, wait_for

import fntree

TESTS = str(Path(__file__).parent)


def _start_leader(store: Path, call_source: str) -> subprocess.Popen[bytes]:
    code = f"import fntree, workflows as wf; fntree.run({call_source}, jobstore={str(store)!r})"
    env = {**os.environ, "PYTHONPATH": TESTS}
    return subprocess.Popen([sys.executable, "-c", code], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def test_leader_killed_mid_run_then_restarted(store: Path, tmp_path: Path) -> None:
    """SIGKILL the leader mid-run: restart gives the same value, recorded jobs never rerun."""
    record = tmp_path / "record"
    leader = _start_leader(store, f"wf.slow_tree(3, 3, 0.05, {str(record)!r})")
    wait_for(lambda: len(_lines(record)) >= 8)
    leader.send_signal(signal.SIGKILL)
    leader.wait()
    wait_for(lambda: not processes_mentioning(str(store)), timeout=10)
    done_before = recorded_done(store)
    runs_before = Counter(_lines(record))
    assert fntree.restart(store) == 27
    runs_after = Counter(_lines(record))
    leaves_done_before = done_before & set(runs_before)
    assert leaves_done_before, "the kill should land after some leaves completed"
    for job in leaves_done_before:
        assert runs_after[job] == runs_before[job], f"recorded job {job} ran again"
    assert len(runs_after) == 27


def test_leader_killed_repeatedly_at_random_instants(store: Path, tmp_path: Path) -> None:
    """Killing the leader again and again at random instants still ends with the exact value."""
    rng = random.Random(20091007)
    record = tmp_path / "record"
    leader = _start_leader(store, f"wf.slow_tree(2, 6, 0.25, {str(record)!r})")
    wait_for(record.exists)  # kills are for the run, not for the store's creation
    kills = 0
    for _ in range(8):
        time.sleep(rng.uniform(0.2, 0.8))
        if leader.poll() is not None:
            break
        leader.send_signal(signal.SIGKILL)
        leader.wait()
        kills += 1
        code = (f"import fntree; fntree.restart({str(store)!r})")
        leader = subprocess.Popen([sys.executable, "-c", code],
                                  env={**os.environ, "PYTHONPATH": TESTS},
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert leader.wait(timeout=120) == 0
    assert kills >= 3
    assert fntree.restart(store) == 36
    assert set(_lines(record)) and len(set(_lines(record))) == 36
    assert not list((store / "tmp" / "g").glob("*")) if (store / "tmp" / "g").exists() else True


def test_no_worker_outlives_a_killed_leader(store: Path, tmp_path: Path) -> None:
    """Workers die with their leader, so none can report into a later run."""
    record = tmp_path / "record"
    leader = _start_leader(store, f"wf.slow_fan(4, 30.0, {str(record)!r})")
    wait_for(lambda: len(_lines(record)) >= 2)
    assert processes_mentioning(str(store))
    leader.send_signal(signal.SIGKILL)
    leader.wait()
    wait_for(lambda: not processes_mentioning(str(store)), timeout=10)


def test_sigterm_stops_leader_and_workers_cleanly(store: Path, tmp_path: Path) -> None:
    """SIGTERM stops the leader and its workers; the store restarts to the right value."""
    record = tmp_path / "record"
    leader = _start_leader(store, f"wf.slow_fan(6, 0.5, {str(record)!r})")
    wait_for(lambda: len(_lines(record)) >= 2)
    leader.send_signal(signal.SIGTERM)
    assert leader.wait(timeout=30) != 0
    wait_for(lambda: not processes_mentioning(str(store)), timeout=10)
    assert fntree.restart(store) == sum(range(6))


def test_restart_with_pending_work_after_kill_reports_status(store: Path, tmp_path: Path) -> None:
    """`fntree status` on a killed run shows no leader, the jobs it had issued as ready
    again (what a restart makes of them), and the restart command."""
    record = tmp_path / "record"
    leader = _start_leader(store, f"wf.slow_fan(4, 30.0, {str(record)!r})")
    wait_for(lambda: len(_lines(record)) >= 2)
    leader.send_signal(signal.SIGKILL)
    leader.wait()
    out = subprocess.run([sys.executable, "-m", "fntree", "status", str(store),
                          "--fail-if-not-complete"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 1
    assert "none running" in out.stdout and "state      stopped" in out.stdout
    assert re.search(r"jobs +\d+ waiting, [1-9]\d* ready, 0 queued, 0 running", out.stdout)
    assert f"fntree restart {store}" in out.stdout
    assert wf is not None
