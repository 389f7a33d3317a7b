"""Failures on real workers: which are retried, how they are grouped, and --fail-fast."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import failing_workflows as fw
import pytest

import fntree
from fntree.runtime.retrying import type_names, worth_retry

TESTS = Path(__file__).resolve().parent


def test_identical_failures_are_grouped_and_not_retried(store: Path) -> None:
    """30 identical KeyErrors fail at once (no retry) and WorkflowFailed names them in one group."""
    with pytest.raises(fntree.WorkflowFailed) as caught:
        fntree.run(fw.words(90), jobstore=store, retry_count=2)
    failed = caught.value.failed
    assert len(failed) == 30 and {f.attempts for f in failed} == {1}
    groups = caught.value.groups()
    assert len(groups) == 1 and len(groups[0].jobs) == 30
    message = str(caught.value)
    assert message.startswith("30 job(s) failed after their retries: 30 \u00d7 KeyError: 'x' "
                              "(not retried) in count_words, e.g. job ")
    assert message.count("count_words") == 1
    assert f"fntree restart {store}" in message


def test_retry_on_and_no_retry_choose_what_is_retried(store: Path) -> None:
    """The default, retry_on= and no_retry= (a user's own class too) decide each job's attempts."""
    with pytest.raises(fntree.WorkflowFailed) as caught:
        fntree.run(fw.kinds(), jobstore=store, retry_count=1)
    attempts = {f.name: f.attempts for f in caught.value.failed}
    assert attempts == {"default_key_error": 1, "default_runtime_error": 2,
                        "only_os_value_error": 1, "only_os_missing_file": 2,
                        "no_retry_own_class": 1, "retry_on_key_error": 2,
                        "isolated_zero_division": 1}


def test_the_default_policy_by_name() -> None:
    """Deterministic errors and their subclasses are not retried by default; the rest are."""
    for kind in (KeyError, TypeError, ValueError, AttributeError, ZeroDivisionError,
                 AssertionError, UnicodeDecodeError, ModuleNotFoundError, IndexError):
        assert not worth_retry(type_names(kind)), kind
    for kind in (OSError, TimeoutError, MemoryError, RuntimeError, fw.FlakyServer):
        assert worth_retry(type_names(kind)), kind
    assert worth_retry(())  # a dead worker, a limit: not an exception of the target
    assert not worth_retry(type_names(OSError), no_retry=type_names(OSError)[:1])


def test_a_bad_policy_is_refused_when_decorating() -> None:
    """retry_on= must list exception classes."""
    with pytest.raises(fntree.ResourceError, match="must be an exception class"):
        fntree.target(retry_on=("OSError",))


def test_fail_fast_stops_issuing_and_a_restart_continues(store: Path, tmp_path: Path) -> None:
    """At the first failure for good no new job starts; the running one is recorded, and a
    restart runs the rest once."""
    flag, trail = tmp_path / "flag", tmp_path / "trail"
    with pytest.raises(fntree.WorkflowFailed) as caught:
        fntree.run(fw.stages(str(flag), 8, str(trail)), jobstore=store, retry_count=0,
                   fail_fast=True)
    assert "stopped at the first (fail-fast)" in str(caught.value)
    ran = trail.read_text().split()
    assert "0" in ran and len(ran) < 8, ran
    flag.write_text("")
    fntree.restart(store, fail_fast=False)
    assert sorted(trail.read_text().split(), key=int) == [str(k) for k in range(8)]


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fntree", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


def test_cli_prints_each_message_once_and_log_level_and_quiet_govern(tmp_path: Path) -> None:
    """Each `context().log` line is printed once; --log-level ERROR and --quiet silence them."""
    entry = f"{TESTS / 'failing_workflows.py'}:chatty"
    out = _cli("run", entry, "3", "--jobstore", str(tmp_path / "a"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    for i in range(3):
        assert out.stderr.count(f"note {i} of chatty") == 1, out.stderr
    for flags in (["--log-level", "ERROR"], ["--quiet"]):
        out = _cli("run", entry, "3", "--jobstore", str(tmp_path / flags[0][2:]), *flags,
                   cwd=tmp_path)
        assert out.returncode == 0 and "note 0" not in out.stderr, out.stderr
        assert out.stdout.strip() == "3"
    assert "leader 1 started" not in out.stderr  # --quiet: no progress lines either
    assert out.stderr.startswith("[fntree] completed after ")
    assert out.stderr.endswith(": 1 jobs done\n"), out.stderr  # the one summary line


def test_cli_summary_of_identical_failures_is_short(tmp_path: Path) -> None:
    """30 identical failures print a few lines, not one traceback each."""
    out = _cli("run", f"{TESTS / 'failing_workflows.py'}:words", "90", "--jobstore",
               str(tmp_path / "s"), "--quiet", cwd=tmp_path)
    assert out.returncode == 1
    lines = out.stderr.splitlines()
    assert len(lines) < 25, out.stderr
    assert "fntree: 30 job(s) failed" in out.stderr
    assert "30 \u00d7 KeyError: 'x' (not retried) in count_words, e.g. job" in out.stderr
    assert out.stderr.count("Traceback") == 1  # the first of its kind, in full
    assert f"fntree restart {tmp_path / 's'}" in lines[-1]
    assert any(line.startswith("[fntree] stopped after ") and line.endswith(
        ": 61 jobs done, 30 failed") for line in lines), out.stderr
