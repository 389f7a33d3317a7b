"""`fntree logs`: a job's whole kept log, the failed jobs' logs, head and tail of big ones."""

from __future__ import annotations

from pathlib import Path

import pytest
import ux_workflows as ux
from ux_workflows import cli

import fntree
from fntree.runtime.records import job_hex


def test_failed_jobs_logs_with_every_attempt(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """Without JOB, each failed job's log: every attempt's output and traceback."""
    store = tmp_path / "store"
    exc = ux.failed_run(store, tmp_path / "flag")
    job = exc.failed[0].job_id
    code, out, _ = cli("logs", str(store), capsys=capsys)
    assert code == 0
    assert f"failed: picky {job}" in out
    for attempt in (1, 2):
        assert f"=== picky {job} attempt {attempt} ===" in out
    assert out.count("ValueError: no flag at") == 2
    assert f"debug it: fntree debug-job {store} {job}" in out


def test_one_jobs_log_by_id_prefix_or_name(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """JOB is an id, a unique prefix of one, or a failed target's name."""
    store = tmp_path / "store"
    exc = ux.failed_run(store, tmp_path / "flag")
    kept = sorted((store / "logs").glob("*/*.log"))
    work = next(p for p in kept if "=== work " in p.read_text())
    code, out, _ = cli("logs", str(store), work.stem[:6], capsys=capsys)
    assert code == 0 and f"=== work {work.stem} attempt 1 ===" in out
    assert "[fntree] working on" in out  # the job's context().log message
    _, by_name, _ = cli("logs", str(store), "picky", capsys=capsys)
    assert f"=== picky {exc.failed[0].job_id} attempt 2 ===" in by_name
    code, _, err = cli("logs", str(store), "ffff0000ffff0000", capsys=capsys)
    assert code == 2 and "no kept log for 'ffff0000ffff0000'" in err


def test_big_log_keeps_head_and_tail(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Past the worker's limit the log keeps head and tail; --max-log-mb cuts what is printed."""
    store = tmp_path / "store"
    lines = 100_000  # 2.9 MB of output, over the worker's 2 MiB limit
    with pytest.raises(fntree.WorkflowFailed) as caught:
        fntree.run(ux.chatty(lines, True), jobstore=store, retry_count=0)
    job = caught.value.failed[0].job_id
    _, out, _ = cli("logs", str(store), job, capsys=capsys)
    assert "line 000000 of chatty output" in out
    assert "bytes cut by fntree: log limit" in out  # the worker's cut, marked
    assert f"RuntimeError: chatty failed after {lines} lines" in out
    _, out, _ = cli("logs", str(store), job, "--max-log-mb", "0.05", capsys=capsys)
    assert len(out) < 60_000
    assert out.splitlines()[1] == f"=== chatty {job} attempt 1 ==="
    assert "bytes cut by fntree logs" in out and "--max-log-mb 0.05" in out
    assert out.rstrip().endswith(f"RuntimeError: chatty failed after {lines} lines")


def test_logs_of_a_run_without_failures(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """With nothing failed, `logs` says so and how to see one job's log."""
    store = tmp_path / "store"
    assert fntree.run(ux.spread(2), jobstore=store) == 1
    code, out, _ = cli("logs", str(store), capsys=capsys)
    assert code == 0 and "no failed jobs" in out
    code, out, err = cli("logs", str(store), job_hex(1), capsys=capsys)
    assert code == 2 and out == ""  # the root printed nothing, so nothing was kept
    assert "no kept log for '0000000000000001'" in err
