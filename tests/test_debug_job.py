"""`fntree debug-job`: a failed job replayed here, with its arguments and environment,
writing nothing to the job store."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import ux_workflows as ux
from ux_workflows import cli, tree_digest

import fntree
from fntree.debug import load, replay
from fntree.runtime.store import JobStore


@pytest.fixture
def failed(tmp_path: Path) -> tuple[Path, str]:
    store = tmp_path / "store"
    return store, ux.failed_run(store, tmp_path / "flag").failed[0].job_id


def test_replays_the_failure_and_records_nothing(failed: tuple[Path, str], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The job sees its promised value, its chain's global temp dir and the recorded environment."""
    store, job = failed
    before = tree_digest(store)
    monkeypatch.setenv("UX_COLOUR", "red")  # the run recorded teal
    code, out, err = cli("debug-job", str(store), job, capsys=capsys)
    assert code == 1
    assert "picky got value=41 note='from the founder' UX_COLOUR=teal" in out
    assert f"replaying picky {job} (failed, 2 attempt(s) so far)" in err
    assert 'File "' in err and "ux_workflows.py" in err and "in picky" in err
    package = str(Path(fntree.__file__).parent) + os.sep  # fntree's own frames are left out,
    assert package not in err.split("Traceback")[1]  # whatever the checkout's folder is named
    assert f"picky {job} raised ValueError: no flag at" in err
    assert os.environ["UX_COLOUR"] == "red"  # the environment is given back
    (tmp_path / "flag").write_text("")
    code, _, err = cli("debug-job", str(store), job[:6], capsys=capsys)
    assert code == 0
    assert f"picky {job} returned 'from the founder:41:teal'" in err
    assert tree_digest(store) == before  # not one file of the job store changed


def test_name_finds_the_failed_job_and_completed_jobs_are_refused(
        failed: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    """A target's name picks its failed job; a completed job or a wrong id is refused."""
    store, job = failed
    loaded = load(JobStore.open(store), "picky")
    assert loaded.describe() == f"picky {job} (failed, 2 attempt(s) so far)"
    code, _, err = cli("debug-job", str(store), "work", capsys=capsys)
    assert code == 2 and "no live job of this run is 'work'" in err
    code, _, err = cli("debug-job", str(store), "0123456789abcdef", capsys=capsys)
    assert code == 2 and "fntree status DIR --failed" in err


def test_replay_in_process_returns_the_exception(failed: tuple[Path, str]) -> None:
    """`replay` hands back the exception, runs at the given attempt, restores cwd and path."""
    store, job = failed
    cwd, path = os.getcwd(), list(sys.path)
    replayed = replay(load(JobStore.open(store), job), attempt=7)
    assert isinstance(replayed.error, ValueError) and replayed.attempt == 7
    assert replayed.outcome is None
    assert os.getcwd() == cwd and sys.path == path


def test_a_waiting_job_cannot_be_replayed(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """A follow-on still waiting for children has no arguments yet: refused, with the reason."""
    store = tmp_path / "store"
    with pytest.raises(fntree.WorkflowFailed):
        fntree.run(ux.some_fail(), jobstore=store, retry_count=0)
    code, _, err = cli("debug-job", str(store), "add_up", capsys=capsys)
    assert code == 2 and "is waiting for 1 child job(s)" in err


def test_pdb_stops_at_the_exception(failed: tuple[Path, str]) -> None:
    """--pdb enters the debugger in the target's frame, where its arguments can be read."""
    store, job = failed
    out = subprocess.run([sys.executable, "-m", "fntree", "debug-job", str(store), job, "--pdb"],
                         input="p value, os.path.basename(flag)\nq\n", capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 1
    assert "-> raise ValueError" in out.stdout
    assert "(41, 'flag')" in out.stdout


def test_failure_summary_prints_the_command_that_replays_it(tmp_path: Path) -> None:
    """`fntree run`'s failure summary ends each job with a debug-job command that works as is."""
    store = tmp_path / "my store"  # a path that needs quoting
    env = {**os.environ, "UX_COLOUR": "teal"}
    run = subprocess.run([sys.executable, "-m", "fntree", "run",
                          f"{Path(__file__).parent / 'ux_workflows.py'}:founder",
                          str(tmp_path / "flag"), "--jobstore", str(store), "--retry-count", "0",
                          "--no-progress"], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 1
    commands = [line.strip().removeprefix("debug it: ") for line in run.stderr.splitlines()
                if line.strip().startswith("debug it: ")]
    assert commands == [f"fntree debug-job '{store}' {commands[0].split()[-1]}"]
    argv = shlex.split(commands[0])
    replay_run = subprocess.run([sys.executable, "-m", "fntree", *argv[1:]], capture_output=True,
                                text=True, timeout=60)
    assert replay_run.returncode == 1
    assert "picky got value=41 note='from the founder' UX_COLOUR=teal" in replay_run.stdout
