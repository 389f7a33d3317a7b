"""Every job of a reused worker starts in the state the worker booted in."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import clean_workflows as cw
import pytest

import fntree
from fntree.runtime.clean_state import CleanState


@pytest.mark.parametrize("kind", cw.LEAKS)
def test_a_later_job_in_the_same_worker_is_unaffected(kind: str, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """What one job changes (cwd, environ, signals, closed stdout, umask, fd 0) is undone."""
    monkeypatch.setenv("FNTREE_TEST_KEEP", "kept")
    monkeypatch.delenv("FNTREE_TEST_LEAK", raising=False)
    store = tmp_path / "store"
    state = fntree.run(cw.leak_then_inspect(kind), jobstore=store, max_cpus=1)
    assert state["pid"] == state["leaker"], "both jobs must run in the one worker"
    mask = os.umask(0)
    os.umask(mask)
    assert state == {"cwd": os.getcwd(), "leak": None, "keep": "kept", "usr1": True,
                     "term": True, "umask": mask, "stdin": True, "pid": state["pid"],
                     "leaker": state["pid"]}
    logs = "".join(p.read_text() for p in (store / "logs").glob("*/*.log"))
    assert "innocent output" in logs  # the innocent job's prints still reach its log


def test_restore_puts_back_each_change_in_this_process() -> None:
    """`CleanState.restore` names and undoes each change, and nothing when none was made."""
    clean = CleanState()
    assert clean.restore() == []
    old_cwd, old_stdout = os.getcwd(), sys.stdout
    previous = signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    try:
        os.chdir("/")
        os.environ["FNTREE_TEST_RESTORE"] = "1"
        os.umask(0o777)
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - left for restore to replace
        changed = clean.restore()
        assert changed == ["umask", "working directory", "environment", "signal handlers",
                           "standard streams"]
        assert os.getcwd() == old_cwd and sys.stdout is old_stdout
        assert "FNTREE_TEST_RESTORE" not in os.environ
        assert signal.getsignal(signal.SIGUSR2) is previous
    finally:
        os.chdir(old_cwd)
        sys.stdout = old_stdout
        signal.signal(signal.SIGUSR2, previous)
