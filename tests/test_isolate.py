"""`@target(isolate=True)`: each job of the target runs in a fresh process of its worker."""

from __future__ import annotations

import os
from pathlib import Path

import clean_workflows as cw
import pytest

import fntree


def test_an_isolated_jobs_changes_to_the_interpreter_are_not_seen_later(tmp_path: Path) -> None:
    """A module global mutated by an isolated job is unchanged for the next job of the worker."""
    seen, reader_pid = fntree.run(cw.isolated_then_read(), jobstore=tmp_path / "s", max_cpus=1)
    assert seen == 0
    assert reader_pid != os.getpid()


def test_isolated_job_value_and_pid(tmp_path: Path) -> None:
    """An isolated job returns its value through the pipe, from a process of its own."""
    assert fntree.run(cw.bump_isolated(), jobstore=tmp_path / "s")[0] == 1


def test_an_isolated_failure_is_reported_with_its_traceback(tmp_path: Path) -> None:
    """The job's exception is its failure message; its prints and traceback are in its log."""
    with pytest.raises(fntree.WorkflowFailed) as caught:
        fntree.run(cw.isolated_fails(), jobstore=tmp_path / "s", retry_count=0)
    job = caught.value.failed[0]
    assert job.message == "ValueError: isolated boom"
    log = Path(job.log_path or "").read_text()
    assert "isolated says hi" in log and "Traceback" in log and "isolated boom" in log


def test_a_killed_isolated_process_fails_its_job_not_the_worker(tmp_path: Path) -> None:
    """An isolated job killed by a signal fails as IsolatedJobDied, with its output kept."""
    with pytest.raises(fntree.WorkflowFailed) as caught:
        fntree.run(cw.isolated_dies(), jobstore=tmp_path / "s", retry_count=0)
    job = caught.value.failed[0]
    assert job.message.startswith("IsolatedJobDied: ") and "killed by signal 9" in job.message
    assert "about to die" in Path(job.log_path or "").read_text()


def test_isolate_must_be_a_bool() -> None:
    """isolate= takes True or False, checked when the decorator runs."""
    with pytest.raises(fntree.ResourceError, match="isolate='yes'"):
        fntree.target(isolate="yes")(len)
