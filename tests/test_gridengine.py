"""End-to-end behaviour on a real Grid Engine (ci/sge-up.sh starts one on this machine).

No fake stands in for Grid Engine here: every run submits real jobs with qsub. Without a
reachable Grid Engine the tests are skipped, unless FNTREE_REQUIRE_SGE is set (as in CI),
where a missing Grid Engine is a failure. Nothing assumes free slots: other work may share
the queue, so the tests wait for states rather than for counts of running jobs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import gridengine_workflows as gw
import pytest
import slurm_workflows as sw
import workflows as wf
from processes import recorded_done
from test_slurm import Failures, _lines, _wait_for

import fntree
from fntree.batch import gridengine_commands as gc
from fntree.batch import slurm_commands
from fntree.runtime.paths import StorePaths

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # examples.sort, importable by the workers too
GE = "gridengine"


def _grid_engine_missing() -> str | None:
    """Why no Grid Engine can be used from here, or None."""
    if shutil.which("qsub") is None or shutil.which("qstat") is None:
        return "no qsub/qstat on PATH (start one with `bash ci/sge-up.sh`)"
    try:
        out = subprocess.run(["qstat", "-g", "c"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "qstat did not answer in 20 s"
    if out.returncode != 0:
        return f"qstat fails: {out.stderr.strip() or out.stdout.strip()}"
    return None


@pytest.fixture(scope="module")
def cluster() -> gc.Cluster:
    """The reachable Grid Engine's largest host and slots; skips (or fails in CI) without one."""
    reason = _grid_engine_missing()
    if reason is not None:
        if os.environ.get("FNTREE_REQUIRE_SGE"):
            pytest.fail(f"FNTREE_REQUIRE_SGE is set but Grid Engine is unusable: {reason}")
        pytest.skip(f"no Grid Engine reachable: {reason}")
    qhost = subprocess.run(["qhost"], capture_output=True, text=True, check=True).stdout
    slots = subprocess.run(["qstat", "-g", "c"], capture_output=True, text=True, check=True)
    return gc.Cluster(*gc.parse_qhost(qhost), gc.parse_queue_slots(slots.stdout, None))


@pytest.fixture(scope="module", autouse=True)
def overtime_run(cluster: gc.Cluster, tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """A leader running `sw.overtime` with 20 s, started first: Grid Engine takes a while to
    kill a job at its h_rt, so that run overlaps the other tests; a later test checks it."""
    where = tmp_path_factory.mktemp("overtime")
    code = (f"import fntree, slurm_workflows as sw; value = fntree.run(sw.overtime.options("
            f"time='20s', memory='300M')(), jobstore={str(where / 'jobstore')!r}, "
            f"batch_system='gridengine'); "
            f"open({str(where / 'value')!r}, 'w').write(repr(value))")
    with open(where / "stderr", "wb") as stderr:
        leader = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL,
                                  stderr=stderr, env={**os.environ, "PYTHONPATH": str(TESTS)})
    yield leader, where
    if leader.poll() is None:
        leader.terminate()  # the leader qdels its jobs
        leader.wait(timeout=60)


def _store_id(store: Path) -> str:
    return str(json.loads((store / "fntree.json").read_text())["store_id"])


def _our_jobs(store: Path) -> dict[str, str]:
    """Grid Engine id -> state letters of this store's jobs that qstat lists, by their names."""
    out = subprocess.run(["qstat", "-xml", "-u", "*"], capture_output=True, text=True,
                         check=True)
    prefix = f"fntree-{_store_id(store)}-"
    return {i: job.state for i, job in gc.parse_qstat_xml(out.stdout).items()
            if job.name.startswith(prefix)}


def _failed(ids: list[str]) -> dict[str, int]:
    """Job id -> qacct's `failed` code, waiting until accounting has every job."""
    codes: dict[str, int] = {}

    def final() -> bool:
        for job in ids:
            out = subprocess.run(["qacct", "-j", job], capture_output=True, text=True)
            acct = gc.parse_qacct(out.stdout) if out.returncode == 0 else None
            if acct is not None:
                codes[job] = acct.failed
        return len(codes) == len(ids)

    _wait_for(final, timeout=30)
    return codes


def _job_ids(store: Path) -> list[str]:
    return [line[2] for line in _lines(store / "batch" / GE / "jobs")]


def _start_leader(store: Path, call_source: str) -> subprocess.Popen[bytes]:
    code = (f"import fntree, slurm_workflows as sw; "
            f"fntree.run({call_source}, jobstore={str(store)!r}, batch_system='gridengine')")
    return subprocess.Popen([sys.executable, "-c", code],
                            env={**os.environ, "PYTHONPATH": str(TESTS)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_sort_example_on_grid_engine(cluster: gc.Cluster, store: Path, tmp_path: Path) -> None:
    """jobTree's file sort runs as Grid Engine jobs, its files in global temp dirs, and is exact."""
    from examples.sort import sort

    source = sort.generate(tmp_path / "input", 60_000, seed=7)
    output = tmp_path / "output"
    result = fntree.run(sort.setup(str(source), str(output), 20_000), jobstore=store,
                        batch_system="sge")
    assert result == str(output)
    assert sort.check(source, output) == (len(sort.read_lines(source)), True)
    assert not list((store / "tmp" / "g").glob("*"))


def test_promises_on_grid_engine(cluster: gc.Cluster) -> None:
    """Promises, nested promises and values holding calls resolve across Grid Engine jobs."""
    xs = [(i * 7919) % 101 for i in range(8)]
    assert fntree.run(wf.msort(xs), batch_system=GE) == sorted(xs)
    assert fntree.run(wf.calls_in_value(), batch_system=GE) == {"a": 1, "b": [2, 3]}


def test_temp_dirs_on_grid_engine(cluster: gc.Cluster, store: Path, tmp_path: Path) -> None:
    """A job's local temp dir is on the host, named after its Grid Engine job, and removed
    after; a chain's global temp dir is shared by its follow-on and removed when it closes."""
    child, follow = fntree.run(wf.gtd_founder(), jobstore=store, batch_system=GE)
    assert not child["sees_founder"]
    assert follow["same"] and follow["content"] == "from the founder"
    assert follow["local_exists"] and not Path(follow["local"]).exists()
    assert not list((store / "tmp" / "g").glob("*"))

    seen = fntree.run(gw.where(), batch_system=GE)
    local = Path(str(seen["local"]))
    assert seen["job"] and seen["local_exists"]
    assert local.parent.name == f"sge-{seen['job']}" and not local.parent.exists()
    assert local.parent.parent.parent.name == StorePaths.local_base("x").parent.name

    marker = tmp_path / "marker"
    with pytest.raises(fntree.WorkflowFailed):
        fntree.run(wf.local_then_fail(str(marker)), jobstore=tmp_path / "failing",
                   batch_system=GE, retry_count=0)
    assert not Path(marker.read_text()).exists()


def test_failure_then_restart_on_grid_engine(cluster: gc.Cluster, store: Path,
                                             tmp_path: Path) -> None:
    """A job that fails on Grid Engine keeps the store and its log; after the fix, restart
    ends it."""
    needed = tmp_path / "needed.txt"
    with pytest.raises(fntree.WorkflowFailed) as info:
        fntree.run(wf.some_need_file(str(needed)), jobstore=store, batch_system=GE,
                   retry_count=1)
    [failed] = info.value.failed
    assert failed.name == "needs_file" and failed.attempts == 2
    assert "is missing" in failed.message and "waiting for" in failed.log_tail
    needed.write_text("here")
    assert fntree.restart(store) == [1, "here", 2]


def test_one_process_over_h_vmem_is_out_of_memory_and_retried_with_more(
        cluster: gc.Cluster, store: Path) -> None:
    """A single process over its h_vmem gets MemoryError (h_vmem is its address-space limit):
    the attempt counts as out of memory, and the retry gets twice the memory."""
    failures = Failures()
    assert fntree.run(sw.memory_hog(300), jobstore=store, batch_system=GE,
                      retry_count=1, observers=[failures]) == (2, 400 * 2**20)
    [failure] = failures.seen
    assert failure.attempt == 1 and not failure.permanent
    assert failure.message.startswith("MemoryError")
    assert "retrying with 400.0 MiB" in failure.message
    assert sorted(_failed(_job_ids(store)).values()) == [0, 0]


def test_processes_over_h_vmem_together_are_killed_and_retried_with_more(
        cluster: gc.Cluster, store: Path) -> None:
    """Processes over h_vmem together are killed by Grid Engine (failed 37, maxvmem over the
    request): out of memory, not time, and the retry gets twice the memory."""
    failures = Failures()
    assert fntree.run(gw.two_processes(150), jobstore=store, batch_system=GE,
                      retry_count=1, observers=[failures]) == (2, 600 * 2**20)
    [failure] = failures.seen
    assert "went over its h_vmem" in failure.message and "failed 37" in failure.message
    assert "retrying with 600.0 MiB of memory" in failure.message
    first = _job_ids(store)[0]
    assert _failed([first]) == {first: gc.FAILED_LIMIT}


def test_multi_core_targets_get_a_parallel_environment(cluster: gc.Cluster) -> None:
    """A target asking for two cores runs in the `smp` parallel environment with two slots."""
    assert fntree.run(gw.two_cores(), batch_system=GE) == "2"


def test_error_state_fails_with_grid_engines_reason(cluster: gc.Cluster, store: Path) -> None:
    """A job Grid Engine puts in Eqw (here: a missing working directory) fails at once with
    the reason `qstat -j` gives, and is deleted rather than left in the queue."""
    options = argparse.Namespace(sge_args="-wd /nonexistent/fntree")
    with pytest.raises(fntree.WorkflowFailed) as info:
        fntree.run(wf.fan(2), jobstore=store, batch_system=GE, retry_count=0, options=options)
    [failed] = info.value.failed
    assert "error state Eqw" in failed.message and "/nonexistent/fntree" in failed.message
    _wait_for(lambda: not _our_jobs(store), timeout=30)


def test_tiny_jobs_packed_into_few_grid_engine_jobs(cluster: gc.Cluster, store: Path) -> None:
    """400 tiny targets become a few Grid Engine jobs, and status takes a few batched queries."""
    calls = slurm_commands.DEFAULT_COMMANDS.calls
    before = calls.copy()
    assert fntree.run(wf.fan(400), jobstore=store, batch_system=GE) == sum(range(400))
    made = calls - before
    assert 1 <= made["qsub"] <= 40, made
    assert made["qsub"] == len(_job_ids(store))
    assert made["qstat"] + made["qacct"] <= 10, made


def test_leader_killed_with_jobs_queued_then_restarted(cluster: gc.Cluster, store: Path,
                                                       tmp_path: Path) -> None:
    """SIGKILL the leader while its jobs run and wait in the queue: the restart deletes them,
    no job ever runs twice at once, recorded jobs never run again, and the value is right."""
    record, locks = tmp_path / "record", tmp_path / "locks"
    locks.mkdir()
    memory = cluster.node_memory * 2 // 7  # three such jobs fit on the largest host, four do not
    leader = _start_leader(store, f"sw.guarded_fan(9, 4.0, {str(record)!r}, {str(locks)!r}, "
                                  f"{memory})")
    try:
        _wait_for(lambda: (recorded_done(store) & {j for _, j, _ in _lines(record)}
                           and "qw" in _our_jobs(store).values()))
    finally:
        leader.send_signal(signal.SIGKILL)
        leader.wait()
    done_before = recorded_done(store)
    starts_before = [job for kind, job, _ in _lines(record) if kind == "start"]
    waiting = {i for i, s in _our_jobs(store).items() if s == "qw"}
    assert waiting, "some jobs should still be queued when the leader is killed"

    assert fntree.restart(store) == sum(range(9))

    lines = _lines(record)
    assert not [line for line in lines if line[0] == "overlap"]
    starts_after = [job for kind, job, _ in lines if kind == "start"]
    for job in done_before & set(starts_before):
        assert starts_after.count(job) == starts_before.count(job), f"{job} ran again"
    assert len({job for kind, job, _ in lines if kind == "end"}) == 9
    _wait_for(lambda: not _our_jobs(store), timeout=60)  # the last job may still be ending
    assert [p.name for p in (store / "batch" / GE).iterdir()] == ["jobs"]


def test_sigterm_deletes_every_grid_engine_job(cluster: gc.Cluster, store: Path,
                                               tmp_path: Path) -> None:
    """SIGTERM (as `fntree kill` sends) stops the leader, and its jobs are deleted in one qdel,
    running or queued."""
    record, locks = tmp_path / "record", tmp_path / "locks"
    locks.mkdir()
    leader = _start_leader(store, f"sw.guarded_fan(4, 60.0, {str(record)!r}, {str(locks)!r}, "
                                  "300_000_000)")
    try:
        _wait_for(lambda: _lines(record) and len(_job_ids(store)) >= 5)
    finally:
        leader.send_signal(signal.SIGTERM)
    assert leader.wait(timeout=60) != 0
    _wait_for(lambda: not _our_jobs(store), timeout=60)
    codes = _failed(_job_ids(store)[:1])  # the root's job; the leaves may never have started
    assert codes == {_job_ids(store)[0]: 0}
    assert not [line for line in _lines(record) if line[0] == "end"]


def test_time_limit_killed_by_grid_engine_and_retried_with_more(
        overtime_run: tuple[subprocess.Popen[bytes], Path]) -> None:
    """A job past its s_rt gets SIGUSR1 and ends, showing what its task printed: out of time,
    and its retry gets twice the time."""
    leader, where = overtime_run
    assert leader.wait(timeout=300) == 0, (where / "stderr").read_text()
    assert (where / "value").read_text() == "(2, 40.0)"
    stderr = (where / "stderr").read_text()
    assert "ran past its s_rt of 20s" in stderr and "(retrying with 40s of time)" in stderr
    log = next((where / "jobstore" / "logs").rglob("*.log")).read_text()
    assert "sleeping past my time" in log and "killed by signal" in log
    assert sorted(_failed(_job_ids(where / "jobstore")).values()) == [0, 0]


def test_restart_on_local_deletes_the_earlier_grid_engine_jobs(cluster: gc.Cluster,
                                                                store: Path,
                                                                tmp_path: Path) -> None:
    """A run started on Grid Engine and restarted on the local batch system deletes its Grid
    Engine jobs first, so no job runs twice at once."""
    record, locks = tmp_path / "record", tmp_path / "locks"
    locks.mkdir()
    leader = _start_leader(store, f"sw.guarded_fan(4, 4.0, {str(record)!r}, {str(locks)!r}, "
                                  "300_000_000)")
    try:
        _wait_for(lambda: (store / "fntree.json").exists() and "r" in _our_jobs(store).values())
    finally:
        leader.send_signal(signal.SIGKILL)
        leader.wait()
    assert _our_jobs(store)

    assert fntree.restart(store, batch_system="local") == sum(range(4))

    assert not [line for line in _lines(record) if line[0] == "overlap"]
    _wait_for(lambda: not _our_jobs(store), timeout=60)  # the last job may still be ending
