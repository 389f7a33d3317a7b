"""Shell targets on a real Slurm (ci/slurm-up.sh): quoting, resources, failures, outputs, kills.

Skipped without a reachable Slurm, a failure when FNTREE_REQUIRE_SLURM is set (as in
tests/test_slurm.py). The cluster's nodes run on this host, so the tests can look for
the commands' processes in /proc.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import shell_workflows as sw
from processes import processes_mentioning, shells_mentioning, wait_for
from test_slurm import _slurm_missing

import fntree

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # examples.sort, importable by the workers too


@pytest.fixture(scope="module", autouse=True)
def slurm() -> None:
    """Skips (or fails in CI) without a usable Slurm."""
    reason = _slurm_missing()
    if reason is not None:
        if os.environ.get("FNTREE_REQUIRE_SLURM"):
            pytest.fail(f"FNTREE_REQUIRE_SLURM is set but Slurm is unusable: {reason}")
        pytest.skip(f"no Slurm reachable: {reason}")


def _leader(code: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", f"import fntree, shell_workflows as sw; {code}"],
                            env={**os.environ, "PYTHONPATH": str(TESTS)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_quoting_resources_and_failures_on_slurm(tmp_path: Path) -> None:
    """On Slurm, values reach commands verbatim, cores are in the environment, and a failing
    command's status and stderr tail are in the summary."""
    pwned = tmp_path / "pwned"
    values = ["a b", "it's", f"x; touch {pwned}", f"$(touch {pwned})"]
    assert fntree.run(sw.echo_all(values), jobstore=tmp_path / "s1",
                      batch_system="slurm") == values + values
    assert not pwned.exists()
    assert fntree.run(sw.cores(), jobstore=tmp_path / "s2", batch_system="slurm").split() == \
        ["2", "2", "2", "300", "2", "300"]
    with pytest.raises(fntree.WorkflowFailed) as caught:
        fntree.run(sw.fail_with(5), jobstore=tmp_path / "s3", batch_system="slurm")
    message = caught.value.failed[0].message
    assert "exited with status 5" in message and "the real cause: disk on fire" in message


def test_command_killed_on_slurm_leaves_no_output(tmp_path: Path) -> None:
    """A command SIGKILLed mid-write on a Slurm node leaves no output under its final name."""
    out, pid_file = tmp_path / "out.txt", tmp_path / "pid"
    leader = _leader(f"fntree.run(sw.slow_write({str(out)!r}, {str(pid_file)!r}), "
                     f"jobstore={str(tmp_path / 'store')!r}, batch_system='slurm')")
    wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), timeout=180)
    assert not out.exists()
    os.kill(int(pid_file.read_text()), signal.SIGKILL)
    assert leader.wait(timeout=180) != 0
    assert not out.exists()


def test_fntree_kill_on_slurm_kills_the_command_tree(tmp_path: Path) -> None:
    """`fntree kill` of a Slurm run leaves none of its commands' processes on the nodes."""
    store = tmp_path / "store"
    marker = f"fntree-shell-slurm-{os.getpid()}"
    leader = _leader(f"fntree.run(sw.sleeper(300, {marker!r}), jobstore={str(store)!r}, "
                     "batch_system='slurm', retry_count=0)")
    wait_for(lambda: len(shells_mentioning(marker)) >= 2, timeout=180)
    subprocess.run([sys.executable, "-m", "fntree", "kill", str(store)], check=True,
                   capture_output=True, timeout=120)
    leader.wait(timeout=120)
    wait_for(lambda: not processes_mentioning(marker), timeout=120)


def test_shell_sort_on_slurm(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The shell version of the sort example is exact on Slurm."""
    from examples.sort import shell_sort

    code = shell_sort.main(["--size", "400K", "--max-bytes", "128K", "--jobstore",
                            str(tmp_path / "store"), "--batch-system", "slurm"])
    assert code == 0 and "OK" in capsys.readouterr().out
