"""End-to-end behaviour of fntree.run / fntree.restart on the local batch system."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import workflows as wf
from processes import wait_for

import fntree


def test_fan_out_with_summing_follow_on(store: Path) -> None:
    """Children run, then the follow-on gets their values through promises."""
    assert fntree.run(wf.fan(50), jobstore=store) == sum(range(50))


def test_children_only_value_is_list_in_order(store: Path) -> None:
    """A job that spawns children and no follow-on has the list of their values."""
    assert fntree.run(wf.collect(7), jobstore=store) == list(range(7))


def test_recursive_promises_sort(store: Path) -> None:
    """`return merge(msort(a), msort(b))` lowers to children and a follow-on, recursively."""
    xs = [(i * 7919) % 101 for i in range(60)]
    assert fntree.run(wf.msort(xs), jobstore=store) == sorted(xs)


def test_nested_promises_and_value_holding_calls() -> None:
    """Promises nest (a call's argument may itself take promises), and values may hold calls."""
    assert fntree.run(wf.nested(5)) == [11, 3]
    assert fntree.run(wf.calls_in_value()) == {"a": 1, "b": [2, 3]}


def test_follow_on_chain_shares_one_chain(store: Path) -> None:
    """Tail calls continue the chain: each hop is a new job, run in order."""
    seen = fntree.run(wf.countdown(30), jobstore=store)
    assert len(seen) == 31 and len(set(seen)) == 31


def test_temporary_job_store_removed_after_success(tmp_path: Path) -> None:
    """With no job store path, the value comes back and the temporary store is gone."""
    before = set(Path(tmp_path).glob("*"))
    assert fntree.run(wf.leaf(3)) == 3
    assert set(Path(tmp_path).glob("*")) == before


def test_existing_job_store_refused(store: Path) -> None:
    """A path that exists is refused with a message naming fntree.restart."""
    fntree.run(wf.leaf(1), jobstore=store)
    with pytest.raises(fntree.JobStoreError, match="restart"):
        fntree.run(wf.leaf(1), jobstore=store)


def test_restart_of_finished_run_returns_value(store: Path) -> None:
    """Restarting a completed run returns its value without running anything."""
    fntree.run(wf.fan(5), jobstore=store)
    assert fntree.restart(store) == 10


def test_follow_on_waits_for_all_descendants(tmp_path: Path) -> None:
    """A follow-on runs only after every child and every child's descendants completed."""
    marks = tmp_path / "marks"
    marks.mkdir()
    seen = fntree.run(wf.ordered(str(marks)))
    assert seen == ["a", "b", "c-grandchild"]


def test_global_temp_dir_lifetime(store: Path) -> None:
    """A chain's global temp dir is shared by its follow-on, not its child, and then removed."""
    child, follow = fntree.run(wf.gtd_founder(), jobstore=store)
    assert not child["sees_founder"]
    assert child["gtd"] != follow["local"]
    assert follow["same"] and follow["content"] == "from the founder"
    assert follow["local_exists"]
    assert not Path(follow["local"]).exists()
    leftovers = list((store / "tmp" / "g").glob("*")) if (store / "tmp" / "g").exists() else []
    assert leftovers == []


def test_local_temp_dir_removed_when_target_raises(store: Path, tmp_path: Path) -> None:
    """The local temp dir is removed after the run even when the target raises."""
    marker = tmp_path / "marker"
    with pytest.raises(fntree.WorkflowFailed):
        fntree.run(wf.local_then_fail(str(marker)), jobstore=store, retry_count=0)
    assert not Path(marker.read_text()).exists()


def test_retry_succeeds(store: Path) -> None:
    """A job that fails once is retried and its attempt number is visible."""
    assert fntree.run(wf.flaky(), jobstore=store, retry_count=1) == 2


def test_failure_then_restart_after_fix(store: Path, tmp_path: Path) -> None:
    """A failed run keeps its store; after the cause is fixed, restart finishes it."""
    needed = tmp_path / "needed.txt"
    with pytest.raises(fntree.WorkflowFailed) as info:
        fntree.run(wf.some_need_file(str(needed)), jobstore=store, retry_count=1)
    failed = info.value.failed
    assert [f.name for f in failed] == ["needs_file"]
    assert failed[0].attempts == 2
    assert "is missing" in failed[0].message
    assert "waiting for" in failed[0].log_tail
    assert Path(failed[0].log_path).is_file()
    assert "fntree restart" in str(info.value)
    needed.write_text("here")
    assert fntree.restart(store) == [1, "here", 2]


def test_worker_killed_counts_as_attempt(store: Path) -> None:
    """A worker SIGKILLed mid-job is replaced, the job retried, and what it printed kept."""
    assert fntree.run(wf.killed_once(), jobstore=store, retry_count=1) == 2
    (log,) = (store / "logs").rglob("*.log")
    text = log.read_text()
    assert "killed by signal 9" in text and "about to be killed" in text


def test_memory_error_retried_with_more_memory(store: Path) -> None:
    """A job that runs out of memory is retried with twice the memory it asked for."""
    assert fntree.run(wf.hungry(), jobstore=store, retry_count=1) == 200_000_000


def test_environment_replicated(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment of the process that starts the run is given to every target."""
    monkeypatch.setenv("FNTREE_TEST_VARIABLE", "replicated")
    assert fntree.run(wf.environment("FNTREE_TEST_VARIABLE"), jobstore=store) == "replicated"


def test_job_output_and_messages_kept(store: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A job's prints are kept in its log, and context().log reaches the leader."""
    caplog.set_level("INFO", logger="fntree")
    assert fntree.run(wf.talk("hello leader"), jobstore=store) == "hello leader"
    assert any("hello leader" in r.getMessage() for r in caplog.records)
    logs = list((store / "logs").rglob("*.log"))
    assert len(logs) == 1
    text = logs[0].read_text()
    assert "stdout line from talk" in text and "hello leader" in text


def test_resource_request_too_large_fails_at_once(store: Path) -> None:
    """A target asking for more cores than the batch system has fails with ResourceError."""
    with pytest.raises(fntree.ResourceError, match=r"greedy.*64 cpu.*has 2 cpu"):
        fntree.run(wf.greedy(), jobstore=store, max_cpus=2)


def test_bad_resource_value_raises_at_decoration() -> None:
    """A malformed resource raises ResourceError when the decorator runs."""
    with pytest.raises(fntree.ResourceError, match="memory"):
        fntree.target(memory="lots")
    with pytest.raises(ValueError, match="time"):
        fntree.target(time=-5)


def test_unpicklable_argument_fails_at_the_call() -> None:
    """An argument that cannot be serialized fails at the call, before anything runs."""
    with pytest.raises(fntree.SerializationError, match=r"argument 1 of target `leaf`.*generator"):
        wf.leaf(i for i in range(3))


def test_main_module_targets_from_a_script(tmp_path: Path) -> None:
    """Targets defined in a script's __main__ travel by value to workers."""
    script = tmp_path / "pipeline.py"
    script.write_text(textwrap.dedent("""
        import fntree

        SCALE = 3

        @fntree.target
        def square(x):
            return x * x * SCALE // SCALE

        @fntree.target
        def squares(n):
            return add([square(i) for i in range(n)])

        @fntree.target
        def add(values):
            return sum(values)

        if __name__ == "__main__":
            print(fntree.run(squares(10)))
    """))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         cwd=tmp_path, timeout=120, check=True)
    assert out.stdout.strip() == str(sum(i * i for i in range(10)))


def test_second_leader_refused(store: Path, tmp_path: Path) -> None:
    """While a leader runs on a job store, another is refused with a clear error."""
    record = tmp_path / "record"
    code = (f"import fntree, workflows as wf; "
            f"fntree.run(wf.slow_fan(4, 3.0, {str(record)!r}), jobstore={str(store)!r})")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    leader = subprocess.Popen([sys.executable, "-c", code], env=env)
    try:
        wait_for(record.exists)
        with pytest.raises(fntree.LeaderRunningError, match="in use by a leader"):
            fntree.restart(store)
    finally:
        leader.kill()
        leader.wait()


def test_restart_runs_fixed_main_targets(tmp_path: Path) -> None:
    """Restarting from a script whose __main__ target was fixed runs the fixed code."""
    store = tmp_path / "store"
    broken = textwrap.dedent(f"""
        import sys
        import fntree

        @fntree.target
        def part(i):
            if i == 2:
                raise ValueError("part 2 is broken")
            return i

        @fntree.target
        def whole(n):
            return fntree.children(*[part(i) for i in range(n)])

        if __name__ == "__main__":
            if sys.argv[1] == "run":
                fntree.run(whole(4), jobstore={str(store)!r}, retry_count=0)
            else:
                print(fntree.restart({str(store)!r}))
    """)
    script = tmp_path / "pipeline.py"
    script.write_text(broken)
    failed = subprocess.run([sys.executable, str(script), "run"], capture_output=True,
                            text=True, cwd=tmp_path, timeout=120)
    assert failed.returncode == 1 and "part 2 is broken" in failed.stderr
    script.write_text(broken.replace('raise ValueError("part 2 is broken")', "return 20"))
    fixed = subprocess.run([sys.executable, str(script), "restart"], capture_output=True,
                           text=True, cwd=tmp_path, timeout=120)
    assert fixed.returncode == 0, fixed.stderr
    assert fixed.stdout.strip() == "[0, 1, 20, 3]"
