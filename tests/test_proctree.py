"""Finding and killing what a job started (fntree.batch.proctree) and the watch's verdicts."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

from processes import processes_mentioning, wait_for

from fntree.batch import proctree, watch

SLEEPER = "import time; time.sleep(1000)"


def test_subreaper_kills_setsid_daemons_and_double_forks(tmp_path: Path) -> None:
    """A subreaper's kill_descendants leaves nothing behind, daemons and double forks included."""
    mark = f"fntree-test-{uuid.uuid4().hex}"
    script = textwrap.dedent(f"""
        import subprocess, sys, time
        from fntree.batch import proctree
        assert proctree.become_subreaper()
        subprocess.Popen(["setsid", sys.executable, "-c", {SLEEPER!r}, {mark!r}])
        subprocess.run(["sh", "-c", "({sys.executable} -c '{SLEEPER}' {mark} &)"])
        while not proctree.has_children():
            time.sleep(0.01)
        time.sleep(0.5)
        print(proctree.kill_descendants(), proctree.has_children())
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60, check=True).stdout.split()
    assert int(out[0]) >= 2 and out[1] == "False"
    assert not processes_mentioning(mark)


def test_sweep_kills_every_process_carrying_the_mark(tmp_path: Path) -> None:
    """Processes exec'd with the run's mark, however detached, are found and killed."""
    mark = f"fntree-test-{uuid.uuid4().hex}"
    env = {**os.environ, proctree.RUN_MARK: mark}
    subprocess.run(["sh", "-c", f"(setsid {sys.executable} -c '{SLEEPER}' {mark} &)"], env=env,
                   check=True)
    wait_for(lambda: processes_mentioning(mark))
    assert proctree.sweep(proctree.RUN_MARK, mark) >= 1
    wait_for(lambda: not processes_mentioning(mark), timeout=10)


def test_sweep_spares_other_runs(tmp_path: Path) -> None:
    """A process carrying another run's mark is left alone."""
    mark = f"fntree-test-{uuid.uuid4().hex}"
    other = subprocess.Popen([sys.executable, "-c", SLEEPER, mark],
                             env={**os.environ, proctree.RUN_MARK: "another-run"})
    try:
        wait_for(lambda: processes_mentioning(mark))
        assert proctree.sweep(proctree.RUN_MARK, mark) == 0
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_guard_sweeps_the_run_whatever_the_working_directory_holds(tmp_path: Path) -> None:
    """The guard, started where a package named fntree would shadow ours, sweeps the run
    when its leader's pipe closes."""
    mark = f"fntree-test-{uuid.uuid4().hex}"
    (tmp_path / "fntree").mkdir()
    (tmp_path / "fntree" / "__init__.py").write_text("raise SystemExit(3)\n")
    marked = subprocess.Popen(["setsid", sys.executable, "-c", SLEEPER, mark],
                              env={**os.environ, proctree.RUN_MARK: mark})
    read, write = os.pipe()
    guard = subprocess.Popen(proctree.guard_command(sys.executable, mark, str(tmp_path)),
                             stdin=read, cwd=tmp_path, env={**os.environ, "PYTHONPATH": "."})
    os.close(read)
    try:
        wait_for(lambda: processes_mentioning(mark))
        os.close(write)
        assert guard.wait(timeout=60) == 0
        assert marked.wait(timeout=10) == -9
    finally:
        marked.kill()
        guard.kill()


def test_time_limit_is_twice_the_declared_time_plus_grace_capped() -> None:
    """A job's limit is 2x its time plus the grace; --max-job-duration caps it."""
    assert watch.time_limit(None, None) == math.inf
    assert watch.time_limit(5, None) == 2 * 5 + watch.TIME_GRACE
    assert watch.time_limit(5, 3) == 3
    assert watch.time_limit(None, 7) == 7


def test_verdicts_on_busy_workers() -> None:
    """Over time wins; silence is forgiven only to a worker using the processor."""
    silence = 10.0
    fine = watch.judge(100, 95, 1.0, 30, silence, None, False)
    over = watch.judge(100, 95, 26.0, 30, silence, None, False)
    stopped = watch.judge(100, 80, 1.0, math.inf, silence, "T", True)
    hung = watch.judge(100, 80, 1.0, math.inf, silence, "S", False)
    computing = watch.judge(100, 80, 1.0, math.inf, silence, "R", True)
    gone = watch.judge(100, 80, None, math.inf, silence, None, False)
    assert fine is watch.Verdict.FINE and over is watch.Verdict.OVER_TIME
    assert stopped is hung is gone is watch.Verdict.SILENT
    assert computing is watch.Verdict.BUSY_IN_C


def test_a_killed_leaders_stdout_and_stderr_close_though_its_jobs_left_daemons(
        tmp_path: Path) -> None:
    """SIGKILL of a leader whose jobs started setsid daemons and double forks: its stdout and
    stderr reach their end at once (`fntree run ... | tee log` ends), and its run's
    processes are gone."""
    started = tmp_path / "started"
    script = tmp_path / "daemons.py"
    script.write_text(textwrap.dedent(f"""
        import os, subprocess, sys, time
        import fntree

        @fntree.target
        def lurk(i: int) -> int:
            subprocess.Popen(["setsid", sys.executable, "-c", {SLEEPER!r}])
            subprocess.run(["sh", "-c", "({sys.executable} -c '{SLEEPER}' &)"])
            open({str(started)!r} + str(i), "w").close()
            time.sleep(1000)
            return i

        @fntree.target
        def total(values: list[int]) -> int:
            return sum(values)

        @fntree.target
        def lurkers(n: int) -> fntree.Call:
            return total([lurk(i) for i in range(n)])
    """))
    store = tmp_path / "store"
    leader = subprocess.Popen([sys.executable, "-m", "fntree", "run", f"{script}:lurkers", "2",
                               "--jobstore", str(store), "--no-progress"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for(lambda: all(Path(f"{started}{i}").exists() for i in range(2))
             or leader.poll() is not None, timeout=120)
    assert leader.poll() is None, leader.communicate()[1].decode()[-2000:]
    leader.kill()
    leader.communicate(timeout=60)  # TimeoutExpired if any process held them open
    assert leader.returncode == -9
    wait_for(lambda: not processes_mentioning(store), timeout=60)
