"""Diagnostics are never lost or misplaced: boot failures, dying jobs, chained follow-ons."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import clean_workflows as cw
import pytest
from processes import wait_for

import fntree

TESTS = str(Path(__file__).parent)
BOOT_CHECK = """\
import os, sys
if os.environ.get("FNTREE_TEST_BOOT_FAIL") == "1":
    sys.stderr.write("boot check: this machine lacks the frobnicator\\n")
    sys.stderr.flush()
    os._exit(3)
"""


def test_a_worker_that_cannot_boot_shows_its_stderr_on_every_attempt(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker that dies at start-up (a recorded variable: workers only) shows its stderr."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BOOT_CHECK)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [
        os.environ.get("PYTHONPATH"), str(site)])))
    monkeypatch.setenv("FNTREE_TEST_BOOT_FAIL", "1")  # recorded: the workers get it
    with pytest.raises(fntree.WorkflowFailed) as caught:
        fntree.run(cw.read_counter(), jobstore=tmp_path / "s", max_cpus=1, retry_count=1)
    job = caught.value.failed[0]
    assert job.attempts == 2
    assert "exited with code 3 before it could run a job" in job.message
    assert "lacks the frobnicator" in job.message
    log = Path(job.log_path or "").read_text()
    assert log.count("=== read_counter") == 2
    assert log.count("\nboot check: this machine lacks the frobnicator\n") == 2  # its stderr


def test_a_dying_jobs_output_is_kept_across_restarts(tmp_path: Path) -> None:
    """Output printed by a job that kills its worker is in its log, on the restarted run too."""
    store = tmp_path / "s"
    marker = tmp_path / "marker"
    for go in (lambda: fntree.run(cw.killer(str(marker)), jobstore=store, retry_count=0),
               lambda: fntree.restart(store)):
        with pytest.raises(fntree.WorkflowFailed) as caught:
            go()
    log = Path(caught.value.failed[0].log_path or "").read_text()
    assert log.count("killer's last words") == 2
    assert log.count("killed by signal 9") == 2


def test_output_of_a_job_stopped_with_its_leader_is_kept(tmp_path: Path) -> None:
    """A job's prints before its leader was SIGKILLed are in its log after the restart."""
    store, flag = tmp_path / "s", tmp_path / "flag"
    code = f"import fntree, clean_workflows as cw; fntree.run(cw.halfway({str(flag)!r}), " \
           f"jobstore={str(store)!r})"
    leader = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": TESTS},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: flag.exists() and flag.read_text(), timeout=120)
    finally:
        leader.kill()
        leader.wait()
    worker = Path(f"/proc/{int(flag.read_text())}/stat")
    wait_for(lambda: not worker.exists() or ") Z" in worker.read_text(), timeout=30)
    assert fntree.restart(store) == "finished"
    [log] = (store / "logs").glob("*/*.log")
    text = log.read_text()
    assert "attempt 1 (interrupted: its worker was stopped with its leader) ===\nhalfway there" \
        in text
    assert text.count("halfway there") == 2


def test_output_of_a_job_stopped_by_its_leader_is_kept(tmp_path: Path) -> None:
    """A job's prints before its leader stopped it (SIGTERM, as `fntree kill` sends) are kept."""
    store, flag = tmp_path / "s", tmp_path / "flag"
    code = f"import fntree, clean_workflows as cw; fntree.run(cw.halfway({str(flag)!r}), " \
           f"jobstore={str(store)!r})"
    leader = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": TESTS},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: flag.exists() and flag.read_text(), timeout=120)
        leader.send_signal(signal.SIGTERM)
        assert leader.wait(timeout=60) != 0
    finally:
        leader.kill()
    [log] = (store / "logs").glob("*/*.log")
    assert "(interrupted: its worker was stopped with its leader) ===\nhalfway there" \
        in log.read_text()


def test_a_chained_follow_on_that_kills_its_worker_is_charged(tmp_path: Path) -> None:
    """The tail-called follow-on running when the worker died is charged, not its predecessor."""
    store, marker = tmp_path / "s", tmp_path / "marker"
    with pytest.raises(fntree.WorkflowFailed) as caught:
        fntree.run(cw.predecessor(str(marker)), jobstore=store, retry_count=1, max_cpus=1)
    [job] = caught.value.failed
    assert job.name == "killer" and job.attempts == 2
    assert job.message.startswith("WorkerDied: its worker process was killed by signal 9")
    runs = marker.read_text().splitlines()
    # chained once (the predecessor then runs again, alone), then twice on its own
    assert runs == ["predecessor", "killer", "predecessor", "killer", "killer"]
    log = Path(job.log_path or "").read_text()
    assert "chained in its predecessor's worker" in log
    assert log.count("killer's last words") == 3
    assert not list((store / "logs").glob(f"*/{_predecessor_id(store)}.log"))
    replay = subprocess.run([sys.executable, "-m", "fntree", "debug-job", str(store), job.job_id],
                            capture_output=True, text=True, timeout=120)
    assert replay.returncode == -9, replay.stderr  # debug-job agrees: this job kills
    assert "killer's last words" in replay.stdout
    other = subprocess.run([sys.executable, "-m", "fntree", "debug-job", str(store),
                            "predecessor"], capture_output=True, text=True, timeout=120)
    assert other.returncode != 0 and "no live job" in other.stderr


def _predecessor_id(store: Path) -> str:
    from fntree.runtime.records import ROOT_ID, job_hex

    return job_hex(ROOT_ID)


@pytest.fixture
def full_temp_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A 1 MiB tmpfs, nearly full, as the local temp dir (skipped where it cannot be mounted)."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {made.stderr.strip()}")
    try:
        (mount / "filler").write_bytes(b"\0" * (1024 - 160) * 1024)  # 160 KiB left
        monkeypatch.setattr(tempfile, "tempdir", str(mount))
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_temp_disk_is_named_as_the_cause(full_temp_disk: Path, tmp_path: Path) -> None:
    """A job whose prints do not fit the local temp disk fails saying that disk is full."""
    with pytest.raises(fntree.WorkflowFailed) as caught:
        fntree.run(cw.chatty(64), jobstore=tmp_path / "s", retry_count=0)
    job = caught.value.failed[0]
    assert job.message.startswith("TempDiskFull: the local temp disk is full"), job.message
    assert "TMPDIR" in job.message and "fntree restart" in job.message
    assert "WorkerDied" not in job.message
