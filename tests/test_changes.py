"""Restarts after a code change: what changed is said and counted; no other target is re-bound."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

PIPELINE = textwrap.dedent("""
    import sys
    import fntree

    @fntree.target
    def part(i):
        if i == 2:
            raise ValueError("part 2 is broken")
        return i * 10

    @fntree.target
    def whole(n: int):
        return fntree.children(*[part(i) for i in range(n)])

    if __name__ == "__main__":
        if sys.argv[1] == "run":
            fntree.run(whole(4), jobstore=sys.argv[2], retry_count=0)
        else:
            print(fntree.restart(sys.argv[2]))
""")
FIXED = PIPELINE.replace('raise ValueError("part 2 is broken")', "return -1")


def _python(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120)


def test_edited_script_restarted_from_itself_warns_with_counts(tmp_path: Path) -> None:
    """`python script.py`: the restart from the edited script names the change and counts jobs."""
    script = tmp_path / "pipeline.py"
    script.write_text(PIPELINE)
    store = str(tmp_path / "store")
    failed = _python("pipeline.py", "run", store, cwd=tmp_path)
    assert failed.returncode == 1 and "part 2 is broken" in failed.stderr
    script.write_text(FIXED)
    fixed = _python("pipeline.py", "restart", store, cwd=tmp_path)
    assert fixed.returncode == 0, fixed.stderr
    assert fixed.stdout.strip() == "[0, 10, -1, 30]"
    assert (f"the code of target `part` (__main__.part (script {script})) changed since its "
            "jobs were made: 3 job(s) completed with the old code and their values are kept "
            "(a new run recomputes them); 1 live job(s) will run with the new code"
            ) in fixed.stderr
    # `whole` reads the target `part`, so its code hash changed too; it has no live job.
    assert (f"the code of target `whole` (__main__.whole (script {script})) changed since its "
            "jobs were made: 1 job(s) completed with the old code and their values are kept "
            "(a new run recomputes them); 0 live job(s) will run with the new code"
            ) in fixed.stderr


def test_edited_script_under_fntree_run_warns_the_same(tmp_path: Path) -> None:
    """`fntree run SCRIPT.py:f` then `fntree restart`: the same warning and counts."""
    script = tmp_path / "pipeline.py"
    script.write_text(PIPELINE)
    store = str(tmp_path / "store")
    failed = _python("-m", "fntree", "run", "pipeline.py:whole", "4", "--jobstore", store,
                     "--retry-count", "0", "--no-progress", cwd=tmp_path)
    assert failed.returncode == 1 and "part 2 is broken" in failed.stderr
    script.write_text(FIXED)
    fixed = _python("-m", "fntree", "restart", store, "--no-progress", cwd=tmp_path)
    assert fixed.returncode == 0, fixed.stderr
    assert fixed.stdout.strip() == "[0, 10, -1, 30]"
    assert ("the code of target `part` (pipeline.part) changed since its jobs were made: 3 "
            "job(s) completed with the old code and their values are kept (a new run "
            "recomputes them); 1 live job(s) will run with the new code"
            ) in fixed.stderr.replace("\n", " ")


def test_unchanged_code_restarts_without_warning(tmp_path: Path) -> None:
    """A restart whose code did not change says nothing about code."""
    script = tmp_path / "pipeline.py"
    script.write_text(PIPELINE.replace("i == 2", "i == 2 and not __import__('os').path"
                                       ".exists('fixed')"))
    store = str(tmp_path / "store")
    assert _python("pipeline.py", "run", store, cwd=tmp_path).returncode == 1
    (tmp_path / "fixed").write_text("")
    again = _python("pipeline.py", "restart", store, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "[0, 10, 20, 30]"
    assert "changed" not in again.stderr


STEPS = textwrap.dedent("""
    import os
    import fntree

    @fntree.target
    def process(i):
        if not os.path.exists("fixed"):
            raise RuntimeError("not fixed yet")
        return 2 * i

    @fntree.target
    def main(n):
        return fntree.children(*[process(i) for i in range(n)])
""")

OTHER = textwrap.dedent("""
    import sys
    import fntree

    @fntree.target
    def process(i):
        return f"OTHER-PROJECT({i})"

    print(fntree.restart(sys.argv[1]))
""")


def test_restart_refuses_a_same_named_target_of_another_module(tmp_path: Path) -> None:
    """A script's `process` is not swapped in for module steps' `process`: refused, both named."""
    (tmp_path / "steps.py").write_text(STEPS)
    (tmp_path / "other.py").write_text(OTHER)
    store = str(tmp_path / "store")
    code = f"import fntree, steps; fntree.run(steps.main(3), jobstore={store!r}, retry_count=0)"
    assert _python("-c", code, cwd=tmp_path).returncode == 1
    (tmp_path / "fixed").write_text("")
    refused = _python("other.py", store, cwd=tmp_path)
    assert refused.returncode == 1
    assert "RebindRefused" in refused.stderr
    assert (f"the run's target `process` is steps.process, but the code restarting it defines "
            f"another one, __main__.process (script {tmp_path / 'other.py'})"
            ) in refused.stderr
    assert "OTHER-PROJECT" not in refused.stdout
    done = _python("-m", "fntree", "restart", store, "--no-progress", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[0, 2, 4]"


def test_a_script_target_is_not_rebound_to_another_script(tmp_path: Path) -> None:
    """A `__main__` target is re-bound only from the same script path."""
    first = tmp_path / "a"
    second = tmp_path / "b"
    first.mkdir()
    second.mkdir()
    (first / "pipeline.py").write_text(PIPELINE)
    (second / "pipeline.py").write_text(FIXED)
    store = str(tmp_path / "store")
    assert _python("pipeline.py", "run", store, cwd=first).returncode == 1
    refused = _python("pipeline.py", "restart", store, cwd=second)
    assert refused.returncode == 1
    assert (f"the run's target `part` is __main__.part (script {first / 'pipeline.py'}), but "
            f"the code restarting it defines another one, __main__.part (script "
            f"{second / 'pipeline.py'})") in refused.stderr


def test_shell_restart_of_an_edited_script_says_the_recorded_code_runs(tmp_path: Path) -> None:
    """`python script.py`, then `fntree restart`: the recorded code runs, and that is said."""
    script = tmp_path / "pipeline.py"
    script.write_text(PIPELINE)
    store = str(tmp_path / "store")
    assert _python("pipeline.py", "run", store, cwd=tmp_path).returncode == 1
    script.write_text(FIXED)
    again = _python("-m", "fntree", "restart", store, "--no-progress", cwd=tmp_path)
    assert again.returncode == 1 and "part 2 is broken" in again.stderr
    assert (f"script {script} changed since the run started, but its target `part` travels "
            "by value: this restart runs the code recorded when its jobs were made"
            ) in again.stderr.replace("\n", " ")


def test_current_code_that_cannot_be_saved_keeps_the_recorded_code(tmp_path: Path) -> None:
    """A changed target whose globals cannot be pickled now runs its recorded code, said so."""
    script = tmp_path / "pipeline.py"
    script.write_text(PIPELINE)
    store = str(tmp_path / "store")
    assert _python("pipeline.py", "run", store, cwd=tmp_path).returncode == 1
    script.write_text(FIXED.replace("return -1", "return len(list(PENDING))").replace(
        "import fntree\n", "import fntree\nPENDING = (i for i in range(3))\n", 1))
    again = _python("pipeline.py", "restart", store, cwd=tmp_path)
    assert again.returncode == 1 and "part 2 is broken" in again.stderr
    assert ("the current code of target `part` cannot be used (SerializationError"
            in again.stderr)
