"""`fntree restart --rerun-changed`: a fresh run's answer, re-running only what changed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

from processes import processes_mentioning, wait_for
from test_cache import PIPELINE, expected, fntree_cli, run_cli

from fntree.runtime.eventlog import read_events
from fntree.runtime.paths import StorePaths

SCRIPT = textwrap.dedent("""
    import sys

    import fntree

    BROKEN = True

    @fntree.target
    def leaf(i):
        return i * 10

    @fntree.target
    def total(xs):
        if BROKEN:
            raise ValueError("total is broken")
        return sum(xs)

    @fntree.target
    def main(n):
        xs = [leaf(i) for i in range(n)]
        return fntree.children(*xs).then(total(xs))

    if __name__ == "__main__":
        store = sys.argv[2]
        if sys.argv[1] == "run":
            print(fntree.run(main(4), jobstore=store, retry_count=0))
        else:
            print(fntree.restart(store, rerun_changed=True))
""")


def since_rerun(store: Path, cached: bool = False) -> Counter[str]:
    """Jobs completed after the last `rerun` event (ran, or taken from the cache), by target."""
    events = list(read_events(StorePaths(store)))
    last = max(i for i, e in enumerate(events) if e.get("ev") == "rerun")
    return Counter(e["name"] for e in events[last:]
                   if e.get("ev") == "done" and bool(e.get("cached")) == cached)


def check(store: Path) -> None:
    out = fntree_cli("check", str(store), cwd=store.parent)
    assert out.returncode == 0, out.stdout + out.stderr


def test_edited_leaf_reruns_its_calls_and_what_depends_on_them(tmp_path: Path) -> None:
    """A completed cached run, one leaf edited, `fntree restart --rerun-changed`: a fresh
    run's value, with only the leaf's calls, their caller and its follow-on run again."""
    script = tmp_path / "pipeline.py"
    script.write_text(PIPELINE)
    store, cache = tmp_path / "s1", tmp_path / "cache"
    assert run_cli(script, store, cache, "main", "5").stdout.strip() == str(expected(5))
    script.write_text(PIPELINE.replace("return i * 10", "return i * 100"))
    out = fntree_cli("restart", str(store), "--rerun-changed", "--no-progress", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(expected(5, 100))
    assert "`leaf_a`" in out.stderr and "5 job(s) completed with the old code" in out.stderr
    assert since_rerun(store) == {"main": 1, "leaf_a": 5, "combine": 1}
    assert since_rerun(store, cached=True) == {"leaf_b": 5}
    status = json.loads(fntree_cli("status", str(store), "--json", cwd=tmp_path).stdout)
    assert status["state"] == "completed" and len(status["reruns"]) == 1
    assert status["reruns"][0]["root"] == "main"
    text = fntree_cli("status", str(store), cwd=tmp_path).stdout
    assert "restarted from its root" in text
    check(store)


def test_failed_run_without_cache_reruns_everything_and_says_so(tmp_path: Path) -> None:
    """A failed run with no cache, edited, restarted with rerun_changed=True from its script:
    every job runs again with the new code (a fresh run's value) and a warning says why."""
    script, store = tmp_path / "script.py", tmp_path / "store"
    script.write_text(SCRIPT)
    first = subprocess.run([sys.executable, str(script), "run", str(store)], cwd=tmp_path,
                           capture_output=True, text=True, timeout=180)
    assert first.returncode != 0 and "total is broken" in first.stderr
    script.write_text(SCRIPT.replace("BROKEN = True", "BROKEN = False")
                      .replace("return i * 10", "return i * 100"))
    again = subprocess.run([sys.executable, str(script), "rerun", str(store)], cwd=tmp_path,
                           capture_output=True, text=True, timeout=180)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == str(sum(i * 100 for i in range(4)))
    assert "has no cache" in again.stderr and "--cache DIR" in again.stderr
    assert since_rerun(store) == {"main": 1, "leaf": 4, "total": 1}
    check(store)


def test_leader_killed_right_after_the_rerun_record(tmp_path: Path) -> None:
    """A leader SIGKILLed once the RERUN record is durable: a plain restart runs the new
    code from the new root and gives a fresh run's value."""
    script = tmp_path / "pipeline.py"
    script.write_text(PIPELINE)
    store, cache = tmp_path / "s1", tmp_path / "cache"
    run_cli(script, store, cache, "main", "4")
    script.write_text(PIPELINE.replace("return i * 10", "return i * 100"))
    env = {**os.environ, "FNTREE_CRASH_AT": "leader.start"}
    killed = fntree_cli("restart", str(store), "--rerun-changed", "--no-progress",
                        cwd=tmp_path, env=env)
    assert killed.returncode == -signal.SIGKILL
    check(store)
    out = fntree_cli("restart", str(store), "--no-progress", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(expected(4, 100))
    check(store)


def test_leader_killed_during_the_rerun_then_restarted(tmp_path: Path) -> None:
    """SIGKILL the leader in the middle of a --rerun-changed re-run; a plain restart
    finishes it with a fresh run's value."""
    script = tmp_path / "pipeline.py"
    script.write_text(PIPELINE)
    store, cache = tmp_path / "s1", tmp_path / "cache"
    run_cli(script, store, cache, "mixed", "6", "6")
    script.write_text(PIPELINE.replace("return i * 10", "return i * 100"))
    leader = subprocess.Popen([sys.executable, "-m", "fntree", "restart", str(store),
                               "--rerun-changed", "--no-progress"], cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def some_done() -> bool:
        events = list(read_events(StorePaths(store)))
        reran = [i for i, e in enumerate(events) if e.get("ev") == "rerun"]
        return bool(reran) and any(e.get("ev") == "done" for e in events[reran[-1]:])

    wait_for(some_done, timeout=120)
    assert leader.poll() is None, "the re-run should still be going (slow jobs)"
    leader.send_signal(signal.SIGKILL)
    leader.wait()
    wait_for(lambda: not processes_mentioning(str(store)), timeout=30)
    check(store)
    out = fntree_cli("restart", str(store), "--no-progress", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str([i * 100 for i in range(6)] + [-i for i in range(6)])
    check(store)


def test_shell_rerun_of_a_script_run_is_refused(tmp_path: Path) -> None:
    """`fntree restart --rerun-changed` from the shell cannot see a `python script.py`
    run's edited targets: it refuses, names the script, and writes nothing."""
    script, store = tmp_path / "script.py", tmp_path / "store"
    script.write_text(SCRIPT.replace("BROKEN = True", "BROKEN = False"))
    first = subprocess.run([sys.executable, str(script), "run", str(store)], cwd=tmp_path,
                           capture_output=True, text=True, timeout=180)
    assert first.returncode == 0 and first.stdout.strip() == "60", first.stderr
    out = fntree_cli("restart", str(store), "--rerun-changed", "--no-progress", cwd=tmp_path)
    assert out.returncode != 0 and "nothing was run" in out.stderr
    assert f"from the script {script}" in out.stderr and "Traceback" not in out.stderr
    status = json.loads(fntree_cli("status", str(store), "--json", cwd=tmp_path).stdout)
    assert status["state"] == "completed" and status["reruns"] == []
    check(store)
