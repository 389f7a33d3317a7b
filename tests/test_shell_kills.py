"""Shell targets under kills: outputs whole or absent, nothing left running, exact after restart."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import shell_workflows as sw
from processes import processes_mentioning, shells_mentioning, wait_for, worker_pids

import fntree

TESTS = str(Path(__file__).parent)
CHUNKS = 10


def _leader(code: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", f"import fntree, shell_workflows as sw; {code}"],
                            env={**os.environ, "PYTHONPATH": TESTS},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _outputs_whole_or_absent(directory: Path) -> int:
    """Every chunk file under its final name is whole; how many there are. No stray file."""
    present = 0
    for path in directory.iterdir():
        assert path.name.startswith("chunk "), f"a stray file {path.name}"
        i = int(path.stem.split()[1])
        assert path.read_text() == sw.chunk_text(i), f"{path.name} is partial"
        present += 1
    return present


def _no_process(marker: str) -> bool:
    return not processes_mentioning(marker)


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_command_killed_leaves_no_output(store: Path, tmp_path: Path) -> None:
    """SIGKILL of the command mid-write fails the job and leaves no output under its name."""
    out, pid_file = tmp_path / "out.txt", tmp_path / "pid"
    leader = _leader(f"fntree.run(sw.slow_write({str(out)!r}, {str(pid_file)!r}), "
                     f"jobstore={str(store)!r})")
    wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), timeout=120)
    assert not out.exists()  # written under a temporary name meanwhile
    os.kill(int(pid_file.read_text()), signal.SIGKILL)
    assert leader.wait(timeout=120) != 0
    assert not out.exists()
    wait_for(lambda: _no_process("300.25"), timeout=30)


def test_workers_killed_at_random_instants(store: Path, tmp_path: Path) -> None:
    """Workers SIGKILLed mid-command: outputs whole or absent at each kill, exact at the end."""
    rng = random.Random(1507)
    out = tmp_path / "out"
    out.mkdir()
    leader = _leader(f"print(fntree.run(sw.chunks({CHUNKS}, {str(out)!r}), "
                     f"jobstore={str(store)!r}, retry_count=5))")
    kills = 0
    deadline = time.monotonic() + 240
    while leader.poll() is None and kills < 4 and time.monotonic() < deadline:
        time.sleep(rng.uniform(0.2, 0.9))
        workers = worker_pids(store)
        if workers:
            os.kill(rng.choice(workers), signal.SIGKILL)
            kills += 1
            _outputs_whole_or_absent(out)
    assert leader.wait(timeout=240) == 0
    assert kills >= 1
    assert _outputs_whole_or_absent(out) == CHUNKS
    assert fntree.restart(store) == [sw.chunk_text(i) for i in range(CHUNKS)]


def test_leader_killed_at_random_instants(store: Path, tmp_path: Path) -> None:
    """The leader SIGKILLed again and again: outputs whole or absent, exact after the restart."""
    rng = random.Random(1508)
    out = tmp_path / "out"
    out.mkdir()
    leader = _leader(f"fntree.run(sw.chunks({CHUNKS}, {str(out)!r}), jobstore={str(store)!r})")
    wait_for((store / "journal").exists, timeout=120)
    kills = 0
    for _ in range(5):
        time.sleep(rng.uniform(0.3, 1.2))
        if leader.poll() is not None:
            break
        leader.send_signal(signal.SIGKILL)
        leader.wait()
        kills += 1
        wait_for(lambda: not worker_pids(store), timeout=30)
        wait_for(lambda: _no_process("sleep 0.3"), timeout=30)
        _outputs_whole_or_absent(out)
        leader = _leader(f"fntree.restart({str(store)!r})")
    assert leader.wait(timeout=240) == 0
    assert kills >= 1
    assert fntree.restart(store) == [sw.chunk_text(i) for i in range(CHUNKS)]
    assert _outputs_whole_or_absent(out) == CHUNKS


def _kill_cli(leader: subprocess.Popen[bytes], store: Path, marker: str) -> None:
    subprocess.run([sys.executable, "-m", "fntree", "kill", str(store)], check=True,
                   capture_output=True, timeout=120)


def _ctrl_c(leader: subprocess.Popen[bytes], store: Path, marker: str) -> None:
    leader.send_signal(signal.SIGINT)


def _kill_leader(leader: subprocess.Popen[bytes], store: Path, marker: str) -> None:
    leader.send_signal(signal.SIGKILL)


def _kill_worker(leader: subprocess.Popen[bytes], store: Path, marker: str) -> None:
    """SIGKILL the worker running the command: the parent of its outer bash."""
    shells = shells_mentioning(marker)
    outer = [pid for pid in shells if _parent(pid) not in shells]
    assert len(outer) == 1, outer
    worker = _parent(outer[0])
    assert worker in worker_pids(store)
    os.kill(worker, signal.SIGKILL)


@pytest.mark.parametrize("cancel", [_kill_cli, _ctrl_c, _kill_leader, _kill_worker],
                         ids=["fntree-kill", "ctrl-c", "leader-death", "worker-death"])
def test_cancellation_kills_the_whole_command_tree(store: Path, tmp_path: Path,
                                                   cancel: object) -> None:
    """fntree kill, Ctrl-C, and the death of the leader or of the worker leave no process."""
    marker = f"fntree-shell-marker-{os.getpid()}-{tmp_path.name}"
    leader = _leader(f"fntree.run(sw.sleeper(300, {marker!r}), jobstore={str(store)!r}, "
                     "retry_count=0)")
    try:
        wait_for(lambda: len(shells_mentioning(marker)) >= 2, timeout=120)  # bash and its child
        cancel(leader, store, marker)  # type: ignore[operator]
        leader.wait(timeout=120)
    finally:
        leader.kill()
    wait_for(lambda: _no_process(marker), timeout=30)
    wait_for(lambda: _no_process(str(store)), timeout=30)


def test_time_limit_kills_the_whole_command_tree(store: Path, tmp_path: Path) -> None:
    """A command over the run's time limit is killed with every process it started."""
    marker = f"fntree-shell-limit-{os.getpid()}"
    with pytest.raises(fntree.WorkflowFailed):
        fntree.run(sw.sleeper(300, marker), jobstore=store, max_job_duration=2, retry_count=0)
    wait_for(lambda: _no_process(marker), timeout=30)
