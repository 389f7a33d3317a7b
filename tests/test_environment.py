"""Changing the run's environment at a restart: recorded, shown by status, used by debug-job."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import fntree

SCRIPT = textwrap.dedent("""
    import os
    import fntree

    @fntree.target
    def work(i: int) -> int:
        mode = os.environ.get("MODE")
        if mode is not None:
            raise RuntimeError(f"MODE={mode} breaks work")
        return i + 1
""")


def fntree_cli(*args: str, cwd: Path, env: dict[str, str] | None = None
               ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fntree", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=120, env={**os.environ, **(env or {})})


def test_env_and_env_unset_on_restart_fix_a_failure(tmp_path: Path) -> None:
    """--env changes the failing value, debug-job and status show it, --env-unset fixes it."""
    (tmp_path / "job.py").write_text(SCRIPT)
    store = str(tmp_path / "store")
    out = fntree_cli("run", "job.py:work", "1", "--jobstore", store, "--retry-count", "0",
                     "--no-progress", cwd=tmp_path, env={"MODE": "bad"})
    assert out.returncode == 1 and "MODE=bad breaks work" in out.stderr
    out = fntree_cli("restart", store, "--env", "MODE=worse", "--no-progress", cwd=tmp_path)
    assert out.returncode == 1 and "MODE=worse breaks work" in out.stderr
    debug = fntree_cli("debug-job", store, "work", cwd=tmp_path, env={"MODE": "here"})
    assert "MODE=worse breaks work" in debug.stderr + debug.stdout
    status = fntree_cli("status", store, cwd=tmp_path)
    assert "changed at a restart" in status.stdout and "MODE=worse" in status.stdout
    out = fntree_cli("restart", store, "--env-unset", "MODE", "--no-progress", cwd=tmp_path,
                     env={"MODE": "ignored: the run's environment is the recorded one"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "2"
    changes = json.loads(fntree_cli("status", store, "--json", cwd=tmp_path).stdout)
    assert [(c["set"], c["unset"]) for c in changes["env_changes"]] == [
        ({"MODE": "worse"}, []), ({}, ["MODE"])]


def test_env_on_restart_through_the_api(tmp_path: Path) -> None:
    """fntree.restart(env=...) sets a variable for the jobs run from then on."""
    (tmp_path / "job.py").write_text(SCRIPT)
    store = str(tmp_path / "store")
    out = fntree_cli("run", "job.py:work", "4", "--jobstore", store, "--retry-count", "0",
                     "--no-progress", cwd=tmp_path, env={"MODE": "bad"})
    assert out.returncode == 1
    with pytest.raises(fntree.WorkflowFailed) as failed:
        fntree.restart(store, env={"MODE": "api"})
    assert "MODE=api breaks work" in failed.value.failed[0].message
    assert fntree.restart(store, env_unset=["MODE"]) == 5


def test_a_malformed_env_option_is_refused(tmp_path: Path) -> None:
    """`--env NAME` without a value, or a name both set and unset, changes nothing."""
    (tmp_path / "job.py").write_text(SCRIPT)
    store = str(tmp_path / "store")
    fntree_cli("run", "job.py:work", "1", "--jobstore", store, "--retry-count", "0",
               "--no-progress", cwd=tmp_path, env={"MODE": "bad"})
    out = fntree_cli("restart", store, "--env", "MODE", cwd=tmp_path)
    assert out.returncode == 2 and "is not NAME=VALUE" in out.stderr
    out = fntree_cli("restart", store, "--env", "MODE=1", "--env-unset", "MODE", cwd=tmp_path)
    assert out.returncode == 2 and "both set and unset" in out.stderr
    assert json.loads(fntree_cli("status", store, "--json", cwd=tmp_path).stdout
                      )["env_changes"] == []
