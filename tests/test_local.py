"""The local batch system under damage: killed and stopped workers, killed leaders, time limits."""

from __future__ import annotations

import os
import pickle
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import process_workflows as pw
import pytest
from processes import processes_mentioning, wait_for, worker_pids

import fntree
from fntree.batch.base import Res, Result, Task, WorkerSetup
from fntree.batch.local import LocalBatchSystem

WORKFLOWS = str(Path(__file__).with_name("process_workflows.py"))


def fntree_command(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "fntree", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})


def first_pid(pidfile: Path) -> int:
    wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), timeout=120)
    return int(pidfile.read_text().split()[0])


def assert_nothing_left(store: Path, mark: str) -> None:
    wait_for(lambda: not processes_mentioning(mark) and not processes_mentioning(store),
             timeout=30)


def test_orphans_of_a_killed_worker_are_killed(tmp_path: Path) -> None:
    """A worker SIGKILLed mid-step takes the step's processes with it: the retry is exact."""
    store, out, pidfile = tmp_path / "store", tmp_path / "out", tmp_path / "pids"
    mark = f"fntree-test-{uuid.uuid4().hex}"
    leader = fntree_command("run", f"{WORKFLOWS}:orphan_step", str(out), str(pidfile), mark,
                            "--jobstore", str(store), "--no-progress")
    os.kill(first_pid(pidfile), signal.SIGKILL)
    stdout, stderr = leader.communicate(timeout=120)
    assert leader.returncode == 0, stderr
    assert stdout.strip() == repr("header\nbody\n")
    assert "Traceback" not in stderr
    assert_nothing_left(store, mark)


def test_orphans_of_a_killed_leader_are_killed(tmp_path: Path) -> None:
    """A leader SIGKILLed mid-step leaves no process of the run; the restart is exact."""
    store, out, pidfile = tmp_path / "store", tmp_path / "out", tmp_path / "pids"
    mark = f"fntree-test-{uuid.uuid4().hex}"
    leader = fntree_command("run", f"{WORKFLOWS}:orphan_step", str(out), str(pidfile), mark,
                            "--jobstore", str(store), "--no-progress")
    first_pid(pidfile)
    leader.kill()
    leader.communicate()
    assert_nothing_left(store, mark)
    again = fntree_command("restart", str(store), "--no-progress")
    stdout, stderr = again.communicate(timeout=120)
    assert again.returncode == 0, stderr
    assert stdout.strip() == repr("header\nbody\n")
    assert_nothing_left(store, mark)


def test_workers_killed_from_outside_at_random_instants(tmp_path: Path) -> None:
    """Dozens of workers SIGKILLed at any instant: the value is exact, the leader never crashes."""
    store = tmp_path / "store"
    rng = random.Random(9)
    leader = fntree_command("run", f"{WORKFLOWS}:naps", "400", "0.01", "--jobstore", str(store),
                            "--no-progress", "--retry-count", "1000")
    kills = 0

    def killer() -> None:
        nonlocal kills
        while leader.poll() is None and kills < 25:
            time.sleep(rng.uniform(0.05, 0.5))
            pids = worker_pids(store)
            if pids:
                try:
                    os.kill(rng.choice(pids), signal.SIGKILL)
                    kills += 1
                except ProcessLookupError:
                    pass

    thread = threading.Thread(target=killer)
    thread.start()
    stdout, stderr = leader.communicate(timeout=600)
    thread.join()
    assert leader.returncode == 0, stderr
    assert int(stdout) == sum(range(400))
    assert "Traceback" not in stderr
    assert kills >= 10
    wait_for(lambda: not processes_mentioning(store), timeout=30)


def test_packet_to_a_dead_worker_is_lost_not_a_crash(tmp_path: Path) -> None:
    """Handing a packet to a worker that has just died gives back its tasks as lost."""
    setup = WorkerSetup(tmp_path / "store", f"test-{uuid.uuid4().hex}", sys.executable,
                        dict(os.environ), tuple(sys.path), os.getcwd(), 1 << 20,
                        tmp_path / "local")
    batch = LocalBatchSystem(setup, max_cpus=1)
    try:
        (worker,) = batch._idle
        worker.proc.kill()
        worker.proc.wait()
        task = Task(7, 1, "t", b"key", b"", (), 7, Res(None, None, 1.0, None))
        packet = batch.submit([task] * 1, {b"key": b"x" * (1 << 20)})  # more than a pipe holds
        updates = []
        wait_for(lambda: updates.extend(batch.poll(0.1)) or updates, timeout=30)
        assert updates[0].packet == packet and updates[0].lost == (7,)
        assert "killed by signal 9" in updates[0].reason
    finally:
        batch.close()


def test_job_past_its_time_is_killed_and_retried_with_twice_the_time(store: Path) -> None:
    """A job declaring time=1 that runs on is killed and retried with time=2."""
    assert fntree.run(pw.overstays(), jobstore=store, retry_count=1) == 2.0
    text = "".join(p.read_text() for p in (store / "logs").rglob("*.log"))
    assert "time limit of 12s" in text


def test_max_job_duration_caps_every_job(store: Path) -> None:
    """--max-job-duration kills a job that declares no time; it fails after its retries."""
    with pytest.raises(fntree.WorkflowFailed) as failed:
        fntree.run(pw.forever(), jobstore=store, retry_count=1, max_job_duration=1.5)
    (job,) = failed.value.failed
    assert job.attempts == 2 and "time limit of 1.5s" in job.message


def test_stopped_worker_is_killed_and_its_job_retried(store: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A SIGSTOPped worker goes silent; the leader kills it and the job runs again."""
    monkeypatch.setenv("FNTREE_WORKER_SILENCE", "2")
    pidfile = tmp_path / "pid"

    def stop() -> None:
        os.kill(first_pid(pidfile), signal.SIGSTOP)

    thread = threading.Thread(target=stop)
    thread.start()
    assert fntree.run(pw.stopped_once(str(pidfile)), jobstore=store, retry_count=1) == 2
    thread.join()
    text = "".join(p.read_text() for p in (store / "logs").rglob("*.log"))
    assert "not heard from" in text


def test_fntree_kill_sweeps_what_a_dead_leader_and_guard_left(tmp_path: Path) -> None:
    """With the leader and its guard both SIGKILLed, `fntree kill` kills the jobs' leftovers."""
    store, out, pidfile = tmp_path / "store", tmp_path / "out", tmp_path / "pids"
    mark = f"fntree-test-{uuid.uuid4().hex}"
    leader = fntree_command("run", f"{WORKFLOWS}:orphan_step", str(out), str(pidfile), mark,
                            "--jobstore", str(store), "--no-progress")
    first_pid(pidfile)
    guards = [p for p in processes_mentioning(store)
              if b"batch/proctree.py" in Path(f"/proc/{p}/cmdline").read_bytes()]
    assert len(guards) == 1
    os.kill(guards[0], signal.SIGKILL)
    leader.kill()
    leader.communicate()
    wait_for(lambda: not worker_pids(store))
    assert processes_mentioning(mark), "the daemons should have outlived leader and guard"
    killed = subprocess.run([sys.executable, "-m", "fntree", "kill", str(store)],
                            capture_output=True, text=True, timeout=60)
    assert killed.returncode == 0 and "leftover process" in killed.stdout + killed.stderr
    assert_nothing_left(store, mark)


def test_worker_hung_in_c_code_is_killed_and_its_job_retried(
        store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A job blocked in C code holding the interpreter silences its worker; the job runs again."""
    monkeypatch.setenv("FNTREE_WORKER_SILENCE", "2")
    assert fntree.run(pw.hangs_in_c_once(), jobstore=store, retry_count=1) == 2
    text = "".join(p.read_text() for p in (store / "logs").rglob("*.log"))
    assert "not heard from" in text


def test_worker_computing_in_c_code_is_left_to_finish(
        store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A job in one long C call holding the interpreter is silent but its main thread is busy:
    it is not killed, though the worker's other threads only wait."""
    monkeypatch.setenv("FNTREE_WORKER_SILENCE", "0.5")
    assert fntree.run(pw.sorts_holding_the_interpreter(3_000_000), jobstore=store,
                      retry_count=1) == 1


@pytest.mark.parametrize("value", [0, -1, float("nan"), float("inf"), True, "10"])
def test_max_job_duration_must_be_positive_seconds(value: object) -> None:
    """A max_job_duration that is not a positive, finite number of seconds is refused."""
    with pytest.raises(fntree.ResourceError, match="max_job_duration="):
        fntree.run(pw.nap(1, 0), max_job_duration=value)  # type: ignore[arg-type]


def test_a_result_with_its_outcome_pickled_carries_the_outcome_once():
    """A result whose `pickled` holds its outcome crosses a pickle with the outcome decoded
    from those bytes, which travel once; one without crosses as it is."""
    outcome = (1, (("a child spec", "x" * 1000),), None)
    fields = (7, 1, True, outcome, "", {}, None, False, (0.0, 0.1, 0.1, 0), (), False)
    plain = Result(*fields)
    pickled = Result(*fields, pickled=pickle.dumps(outcome, pickle.HIGHEST_PROTOCOL))
    assert pickle.loads(pickle.dumps(plain, pickle.HIGHEST_PROTOCOL)) == plain
    data = pickle.dumps(pickled, pickle.HIGHEST_PROTOCOL)
    assert data.count(b"x" * 1000) == 1
    back = pickle.loads(data)
    assert type(back) is Result
    assert back == pickled
