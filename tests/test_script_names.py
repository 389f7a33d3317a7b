"""Scripts named like a module fntree imports (random.py, json.py, dill.py), and a script
beside a folder named `fntree`: they run, or fail saying what to rename."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import fntree

HOME = str(Path(fntree.__file__).resolve().parent.parent)
SCRIPT = textwrap.dedent("""
    import fntree

    @fntree.target
    def double(n: int) -> int:
        return 2 * n

    @fntree.target
    def pair(n: int) -> fntree.Spawn:
        return fntree.children(double(n), double(n + 1))

    if __name__ == "__main__":
        import sys
        print("value", fntree.run(pair(20), jobstore=sys.argv[1]))
""")


def _python(script: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`python SCRIPT ARGS` from the script's folder, fntree importable as when installed."""
    env = {**os.environ, "PYTHONPATH": HOME}
    return subprocess.run([sys.executable, script.name, *args], cwd=script.parent, env=env,
                          capture_output=True, text=True, timeout=180, check=False)


@pytest.mark.parametrize("name", ["random", "json"])
def test_a_script_named_like_a_standard_module_runs(tmp_path: Path, name: str) -> None:
    """`python random.py` and `python json.py` run their workflow, leader and workers."""
    script = tmp_path / f"{name}.py"
    script.write_text(SCRIPT)
    done = _python(script, str(tmp_path / "store"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "value [40, 42]" in done.stdout


def test_a_script_named_like_a_dependency_says_what_to_rename(tmp_path: Path) -> None:
    """`python dill.py` fails in one message naming the file, the module and the remedy."""
    script = tmp_path / "dill.py"
    script.write_text(SCRIPT)
    done = _python(script, str(tmp_path / "store"))
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: fntree cannot be imported: the file ")
    assert f"{script} is named like the module `dill`" in last
    assert "rename it (e.g. to dill_pipeline.py)" in last


def test_fntree_run_refuses_a_script_named_like_a_standard_module(tmp_path: Path) -> None:
    """`fntree run random.py:pair` exits 2 before any store is made, saying what to rename."""
    script = tmp_path / "random.py"
    script.write_text(SCRIPT)
    done = subprocess.run([sys.executable, "-m", "fntree", "run", "--jobstore",
                           str(tmp_path / "store"), "random.py:pair", "3"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 2, done.stderr
    assert "named like the standard library's module `random`" in done.stderr
    assert "rename it (e.g. to random_pipeline.py)" in done.stderr
    assert not (tmp_path / "store").exists()


def test_a_script_beside_a_folder_named_fntree_runs_its_workers(tmp_path: Path) -> None:
    """A checkout folder named `fntree` beside the script does not replace fntree in workers."""
    checkout = tmp_path / "fntree"  # as `git clone` names it: no __init__.py at its top
    (checkout / "fntree").mkdir(parents=True)
    (checkout / "README.md").write_text("a checkout\n")
    script = tmp_path / "pipeline.py"
    script.write_text(SCRIPT)
    command = Path(sys.executable).parent / "fntree"  # the installed command, as users type it
    if not command.exists():
        pytest.skip("the fntree command is not installed beside this Python")
    done = subprocess.run([str(command), "run", "--jobstore",
                           str(tmp_path / "store"), "pipeline.py:pair", "3"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[6, 8]"
