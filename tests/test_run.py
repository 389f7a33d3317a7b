"""End-to-end behaviour of fntree.run / fntree.restart on the local batch system."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import shape_workflows as sw
import workflows as wf
from processes import wait_for

import fntree
from fntree.runtime import codec
from fntree.runtime.check import check
from fntree.runtime.store import JobStore


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
    assert fntree.run(wf.hungry(), jobstore=store, retry_count=1) == 2 * 100 * 2**20  # MiB


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


# -- the shape of a workflow has no recursion limit ----------------------------------------
# Depths here are past Python's recursion limit (fntree used to fail at about 330 and 500);
# bench/shapes.py runs the full sizes (children-only nesting 100,000 deep, a static promise
# chain of 10,000 calls, 1,000,000 tail calls) and prints their times.


def test_children_only_nesting_far_past_the_recursion_limit(store: Path) -> None:
    """Children-only nesting 1,100 deep completes with the value nested 1,100 deep."""
    assert sw.unwrap(fntree.run(sw.nest(1100), jobstore=store)) == (1100, "leaf")


def test_static_promise_chains_far_past_the_recursion_limit(store: Path) -> None:
    """`inc(inc(...))` 1,100 calls deep runs as the root, and as what a body returns."""
    assert fntree.run(sw.promise_chain(1100), jobstore=store) == 1100
    assert fntree.run(sw.returns_promise_chain(1100)) == 1100


def test_a_long_chain_of_tail_calls(store: Path) -> None:
    """5,000 tail calls, one job each, complete with the exact count."""
    assert fntree.run(sw.hop(5000, 0), jobstore=store) == 5000


def test_deep_nesting_finishes_after_the_leader_is_killed(store: Path, tmp_path: Path) -> None:
    """SIGKILL the leader of a 1,100-deep nesting (snapshots on): the restart still finishes."""
    marker = tmp_path / "halfway"
    code = (f"import fntree, shape_workflows as sw; "
            f"fntree.run(sw.nest(1100, {str(marker)!r}, 550), jobstore={str(store)!r})")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent),
           "FNTREE_COMPACT_BYTES": "65536"}
    leader = subprocess.Popen([sys.executable, "-c", code], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(marker.exists, timeout=300)
    leader.send_signal(signal.SIGKILL)
    leader.wait()
    assert list((store / "journal").glob("snapshot.*")), "compaction should have run"
    assert not [f for f in check(store) if f.level == "error"]
    assert sw.unwrap(fntree.restart(store)) == (1100, "leaf")
    assert sw.unwrap(fntree.restart(store)) == (1100, "leaf")


# -- no call is dropped silently ---------------------------------------------------------


def test_a_forgotten_return_fails_the_job_naming_the_call_and_its_line(store: Path) -> None:
    """`fntree.children(*parts).then(total(parts))` without `return` fails, naming `total`."""
    with pytest.raises(fntree.WorkflowFailed) as info:
        fntree.run(sw.forgets_return(3), jobstore=store, retry_count=0)
    (failed,) = info.value.failed
    assert failed.name == "forgets_return"
    assert "the call `total(...)`" in failed.message
    assert sw.line_of("forgotten") in failed.message


def test_formatting_a_call_in_a_body_fails_the_job(store: Path) -> None:
    """`f"{part(n)}"` in a body raises that a call is not yet a value."""
    with pytest.raises(fntree.WorkflowFailed) as info:
        fntree.run(sw.formats_a_call(2), jobstore=store, retry_count=0)
    message = info.value.failed[0].message
    assert "the call `part(...)`" in message and "is not yet a value" in message
    assert sw.line_of("formatted") in message


def test_calls_passed_on_in_every_way_all_run() -> None:
    """Calls listed, promised, nested, made in a helper or built into values are not flagged."""
    assert fntree.run(sw.keeps_every_call(3)) == {"parts": [0, 1, 2], "pair": (2, [9])}


def test_a_root_cannot_leave_calls_unlowered(store: Path) -> None:
    """What a root returns is lowered whole: its value holds no call, and every call ran."""
    value = fntree.run(sw.root_returning_calls(), jobstore=store)
    assert value == {"a": 1, "b": [2, 12], "c": (7,)}
    done = JobStore.open(store).recover(repair=False)[0].done
    assert done == {"root_returning_calls": 1, "value": 1, "part": 4, "add": 2, "inc": 1}
    with pytest.raises(fntree.SerializationError, match="cannot be stored inside a value"):
        codec.encode_value([sw.part(1)])


def test_a_package_named_fntree_in_the_working_directory_does_not_reach_the_workers(
        tmp_path: Path) -> None:
    """Workers import fntree from the leader's path, never from the run's working directory,
    where a checkout or another copy named `fntree` would make them run other code."""
    decoy = tmp_path / "cwd"
    (decoy / "fntree").mkdir(parents=True)
    (decoy / "fntree" / "__init__.py").write_text("raise ImportError('the decoy fntree')\n")
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "pipeline.py").write_text(
        "import fntree\n\n@fntree.target\ndef double(x):\n    return 2 * x\n\n"
        "@fntree.target\ndef main(n):\n"
        "    return fntree.children(*[double(i) for i in range(n)])\n\n"
        "if __name__ == '__main__':\n    print(fntree.run(main(4)))\n")
    out = subprocess.run([sys.executable, str(scripts / "pipeline.py")], cwd=decoy,
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[0, 2, 4, 6]"
