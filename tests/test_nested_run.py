"""`fntree.run` inside a running job, or in a script `fntree run` loads, is refused clearly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import clean_workflows as cw
import pytest

import fntree

UNGUARDED = """\
import os
import fntree

with open({marker!r}, "a") as f:
    f.write(f"{{os.getpid()}}\\n")


@fntree.target
def f():
    return 1


print(fntree.run(f(), jobstore={store!r}))   # module level, not guarded
"""


def test_fntree_run_inside_a_job_is_refused(tmp_path: Path) -> None:
    """A target that calls fntree.run fails with a message naming it and the remedy."""
    with pytest.raises(fntree.WorkflowFailed) as caught:
        fntree.run(cw.nested_run(), jobstore=tmp_path / "s", retry_count=0)
    message = caught.value.failed[0].message
    assert message.startswith("NestedRunError: fntree.run was called inside a job of target "
                              "`nested_run`")
    assert "a target returns calls instead" in message
    assert "if __name__ == '__main__':" in message


def test_fntree_restart_inside_a_job_is_refused(tmp_path: Path) -> None:
    """A target that calls fntree.restart fails the same way, before touching any store."""
    with pytest.raises(fntree.WorkflowFailed) as caught:
        fntree.run(cw.nested_restart(str(tmp_path / "other")), jobstore=tmp_path / "s",
                   retry_count=0)
    assert caught.value.failed[0].message.startswith(
        "NestedRunError: fntree.restart was called inside a job of target `nested_restart`")


def _script(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "imports"
    script = tmp_path / "unguarded.py"
    script.write_text(UNGUARDED.format(marker=str(marker), store=str(tmp_path / "inner")))
    return script, marker


def test_fntree_run_on_a_script_that_runs_at_module_level_starts_no_run(tmp_path: Path) -> None:
    """`fntree run script.py:f` refuses a module-level fntree.run: no run, no nested runs."""
    script, marker = _script(tmp_path)
    done = subprocess.run([sys.executable, "-m", "fntree", "run", f"{script}:f", "--jobstore",
                           str(tmp_path / "outer"), "--no-progress"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode != 0
    assert "calls fntree.run at module level" in done.stderr, done.stderr
    assert "if __name__ == '__main__':" in done.stderr
    assert "Traceback" not in done.stderr
    assert len(marker.read_text().splitlines()) == 1  # imported once, by the CLI only
    assert not (tmp_path / "inner").exists() and not (tmp_path / "outer").exists()


def test_a_module_level_run_imported_by_workers_does_not_nest(tmp_path: Path) -> None:
    """Workers importing a module with an unguarded fntree.run fail its jobs; no run nests."""
    _, marker = _script(tmp_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [
        str(tmp_path), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", "import unguarded"], capture_output=True,
                          text=True, timeout=300, cwd=tmp_path, env=env)
    assert done.returncode != 0
    assert "fntree.run was called inside a job of target `f`" in done.stderr, done.stderr
    imports = marker.read_text().splitlines()
    assert len(imports) == 3  # the script itself, then one import per attempt of f
    assert len(set(imports)) >= 2
