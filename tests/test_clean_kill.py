"""`fntree kill` stops a running leader and its jobs; `fntree clean` removes a job store,
never while a leader runs on it, and never a directory that is not one."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import ux_workflows as ux
from processes import wait_for
from ux_workflows import cli

import fntree
from fntree.cli.kill import leader_pid

TESTS = Path(__file__).parent


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "Z" not in \
        Path(f"/proc/{pid}/stat").read_text().split(")")[1][:3]


def test_kill_a_running_leader_then_restart_and_clean(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Status sees the live leader; clean refuses; kill stops leader and jobs; restart finishes."""
    store, record = tmp_path / "store", tmp_path / "pid"
    leader = subprocess.Popen(
        [sys.executable, "-m", "fntree", "run", f"{TESTS / 'ux_workflows.py'}:sleepy_fan", "2",
         "60", str(record), "--jobstore", str(store), "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    workers = [Path(f"{record}.{i}") for i in range(2)]
    wait_for(lambda: all(p.exists() and p.read_text() for p in workers))
    pids = [int(p.read_text()) for p in workers]

    def status_now() -> dict[str, Any]:
        status: dict[str, Any] = json.loads(cli("status", str(store), "--json", capsys=capsys)[1])
        return status

    # Both jobs have started; the event log that says so is written twice a second.
    wait_for(lambda: len(status_now()["running"]) == 2, timeout=60)
    status = status_now()
    assert status["state"] == "running" and status["leader"]["alive"]
    assert leader_pid(status["leader"]["holder"])[0] == leader.pid
    assert sorted(r["name"] for r in status["running"]) == ["sleeper", "sleeper"]
    assert all(r["since"] is not None for r in status["running"])
    code, _, err = cli("clean", str(store), capsys=capsys)
    assert code == 2 and "in use by a leader" in err and store.is_dir()
    code, _, err = cli("debug-job", str(store), "sleeper", capsys=capsys)
    assert code == 2 and "a leader is running" in err

    started = time.monotonic()
    code, _, err = cli("kill", str(store), capsys=capsys)
    assert code == 0 and f"stopped the leader (pid {leader.pid})" in err
    assert time.monotonic() - started < 30  # not the jobs' 60 seconds
    assert leader.wait(timeout=30) == 130
    wait_for(lambda: not any(_alive(pid) for pid in pids), timeout=10)
    status = status_now()
    assert status["state"] == "stopped" and not status["leader"]["alive"]
    assert status["jobs"]["running"] == 0  # no leader: they are ready, to run at the restart
    assert status["jobs"]["ready"] == 2
    assert status["restart_command"] == f"fntree restart {store}"
    code, _, err = cli("kill", str(store), capsys=capsys)
    assert code == 0 and "no leader is running" in err

    code, _, err = cli("clean", str(store), capsys=capsys)
    assert code == 0 and f"removed the job store {store}" in err
    assert not store.exists()


def test_clean_refuses_what_is_not_a_job_store(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """A plain directory, or a missing one, is left alone with a clear error."""
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "precious.txt").write_text("keep me")
    code, _, err = cli("clean", str(plain), capsys=capsys)
    assert code == 2 and "not an fntree job store" in err
    assert (plain / "precious.txt").read_text() == "keep me"
    code, _, err = cli("clean", str(tmp_path / "missing"), capsys=capsys)
    assert code == 2 and "there is no job store" in err


def test_clean_a_finished_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A finished run's store, events and logs included, is removed."""
    store = tmp_path / "store"
    assert fntree.run(ux.spread(2), jobstore=store) == 1
    assert (store / "events.1.log.gz").is_file()
    code, _, _ = cli("clean", str(store), capsys=capsys)
    assert code == 0 and not store.exists()


def test_kill_refuses_a_leader_on_another_host(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """A leader's lock naming another host is not signalled from here."""
    store = tmp_path / "store"
    assert fntree.run(ux.spread(1), jobstore=store) == 0
    fd = os.open(store / "leader.lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.pwrite(fd, b"pid 1 on elsewhere.example\n", 0)
        code, _, err = cli("kill", str(store), capsys=capsys)
    finally:
        os.close(fd)
    assert code == 2 and "runs on elsewhere.example (pid 1)" in err
    with pytest.raises(fntree.FntreeError, match="cannot read the leader's pid"):
        leader_pid("garbage")
