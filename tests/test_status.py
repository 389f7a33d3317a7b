"""`fntree status`: a failed run's jobs, its failures with the debug-job command, --json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import ux_workflows as ux
from ux_workflows import cli

import fntree
from fntree.cli.status import _issued_now
from fntree.runtime.store import JobStore


@pytest.fixture
def failed(tmp_path: Path) -> tuple[Path, fntree.WorkflowFailed]:
    store = tmp_path / "store"
    return store, ux.failed_run(store, tmp_path / "flag")


def test_status_of_a_failed_run(failed: tuple[Path, fntree.WorkflowFailed],
                                capsys: pytest.CaptureFixture[str]) -> None:
    """Status says no leader runs, counts jobs per target, and prints the debug-job command."""
    store, exc = failed
    job = exc.failed[0].job_id
    code, out, _ = cli("status", str(store), capsys=capsys)
    assert code == 0
    assert "leader     none running" in out
    assert "state      failed" in out
    assert ("jobs       0 waiting, 0 ready, 0 queued, 0 running, 7 done, 0 cached, 1 failed"
            in out)
    picky = next(line for line in out.splitlines() if line.startswith("picky "))
    assert picky.split() == ["picky", "0", "0", "0", "0", "0", "0", "1"]
    assert f"failed: picky {job}, 2 attempt(s)" in out
    assert "ValueError: no flag at" in out
    assert f"debug it: fntree debug-job {store} {job}" in out
    assert out.rstrip().endswith(f"Continue with: fntree restart {store}")
    code, _, _ = cli("status", str(store), "--fail-if-not-complete", capsys=capsys)
    assert code == 1


def test_status_failed_and_logs(failed: tuple[Path, fntree.WorkflowFailed], tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    """--failed prints only the failed jobs, with their log tails; --logs their whole logs."""
    store, _ = failed
    _, out, _ = cli("status", str(store), "--failed", capsys=capsys)
    assert "job store" not in out and "Continue with" not in out
    assert "failed: picky" in out and "attempt 2 ===" in out
    chatty = tmp_path / "chatty"
    with pytest.raises(fntree.WorkflowFailed):
        fntree.run(ux.chatty(40, True), jobstore=chatty, retry_count=0)
    _, out, _ = cli("status", str(chatty), "--failed", capsys=capsys)
    assert "line 000039" in out and "line 000000" not in out
    _, out, _ = cli("status", str(chatty), "--failed", "--logs", capsys=capsys)
    assert "line 000000" in out and "line 000039" in out
    assert "RuntimeError: chatty failed after 40 lines" in out


def test_status_json_is_stable(failed: tuple[Path, fntree.WorkflowFailed],
                               capsys: pytest.CaptureFixture[str]) -> None:
    """--json prints one object with the documented keys and values."""
    store, exc = failed
    code, out, _ = cli("status", str(store), "--json", capsys=capsys)
    assert code == 0
    status = json.loads(out)
    assert set(status) == {"format", "jobstore", "state", "leader", "epoch", "jobs", "targets",
                           "cached", "running", "failed", "restart_command", "env_changes",
                           "reruns"}
    assert status["env_changes"] == []
    assert status["reruns"] == []
    assert status["cached"] == {"jobs": 0, "targets": {}}
    assert status["format"] == 2 and status["jobstore"] == str(store)
    assert status["state"] == "failed" and status["epoch"] == 1
    assert status["leader"] == {"alive": False, "holder": None}
    assert status["jobs"] == {"waiting": 0, "ready": 0, "queued": 0, "running": 0, "done": 7,
                              "cached": 0, "failed": 1}
    assert status["targets"]["work"] == {"waiting": 0, "ready": 0, "queued": 0, "running": 0,
                                         "done": 3, "cached": 0, "failed": 0}
    assert status["running"] == []
    [failure] = status["failed"]
    job = exc.failed[0].job_id
    assert failure == {"name": "picky", "job_id": job, "attempts": 2,
                       "message": f"ValueError: no flag at {store.parent / 'flag'}; value was 41",
                       "log": exc.failed[0].log_path, "log_tail": failure["log_tail"],
                       "debug_command": f"fntree debug-job {store} {job}"}
    assert failure["log_tail"].endswith("value was 41")
    assert status["restart_command"] == f"fntree restart {store}"
    _, out, _ = cli("status", str(store), "--json", "--logs", capsys=capsys)
    assert "attempt 1 ===" in json.loads(out)["failed"][0]["log_text"]


def test_status_of_a_completed_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A completed run is said to be so, with nothing to restart."""
    store = tmp_path / "store"
    assert fntree.run(ux.spread(3), jobstore=store) == 5
    code, out, _ = cli("status", str(store), "--fail-if-not-complete", capsys=capsys)
    assert code == 0 and "completed: 5 jobs done" in out
    status = json.loads(cli("status", str(store), "--json", capsys=capsys)[1])
    assert status["state"] == "completed" and status["restart_command"] is None
    assert status["failed"] == [] and status["jobs"]["done"] == 5
    _, out, _ = cli("status", str(store), "--failed", capsys=capsys)
    assert out.strip() == "no failed jobs"


def test_issued_jobs_are_queued_until_their_packet_starts(tmp_path: Path) -> None:
    """From the event log: on a batch system that reports starts, an issued job is queued
    until a `started` line names it; on the others it is running once issued."""
    store = tmp_path / "store"
    fntree.run(ux.spread(1), jobstore=store)
    events = store / "events.log"
    lines = [{"t": 1.0, "ev": "leader", "epoch": 2, "queues": True},
             {"t": 2.0, "ev": "issued", "packet": 1, "cpu": 1, "memory": None,
              "jobs": [["00000000000000aa", "work", 1], ["00000000000000bb", "work", 1]]},
             {"t": 3.0, "ev": "started", "jobs": ["00000000000000aa"]}]
    events.write_text("".join(json.dumps(line) + "\n" for line in lines))
    issued = _issued_now(JobStore.open(store))
    assert issued == {"00000000000000aa": (1, 2.0, "running"),
                      "00000000000000bb": (1, 2.0, "queued")}
    lines[0]["queues"] = False
    events.write_text("".join(json.dumps(line) + "\n" for line in lines[:2]))
    assert {state for _, _, state in _issued_now(JobStore.open(store)).values()} == {"running"}
