"""End-to-end behaviour on a real Slurm (ci/slurm-up.sh starts one on this machine).

No fake stands in for Slurm here: every run submits real jobs with sbatch. Without a
reachable Slurm the tests are skipped, unless FNTREE_REQUIRE_SLURM is set (as in CI),
where a missing Slurm is a failure. The job stores are under pytest's tmp_path, which
every node of the CI cluster sees (its three nodes share this host). Nothing here assumes
free slots or oversubscription, so the tests also pass on a cluster that others are using.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import slurm_workflows as sw
import workflows as wf
from processes import recorded_done

import fntree
from fntree.batch import slurm_commands
from fntree.runtime.events import Failure, Observer
from fntree.runtime.paths import StorePaths

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # examples.sort, importable by the workers too


def _slurm_missing() -> str | None:
    """Why no Slurm can be used from here, or None."""
    if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
        return "no sbatch/sinfo on PATH (start one with `bash ci/slurm-up.sh`)"
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%a"], capture_output=True, text=True,
                             timeout=20)
    except subprocess.TimeoutExpired:
        return "sinfo did not answer in 20 s"
    if out.returncode != 0 or "up" not in out.stdout:
        return f"sinfo finds no partition that is up: {out.stderr.strip() or out.stdout.strip()}"
    return None


@pytest.fixture(scope="module")
def cluster() -> slurm_commands.Cluster:
    """The default partition of the reachable Slurm; skips (or fails in CI) without one."""
    reason = _slurm_missing()
    if reason is not None:
        if os.environ.get("FNTREE_REQUIRE_SLURM"):
            pytest.fail(f"FNTREE_REQUIRE_SLURM is set but Slurm is unusable: {reason}")
        pytest.skip(f"no Slurm reachable: {reason}")
    out = subprocess.run(["sinfo", "-h", "-N", "-o", "%N|%P|%c|%m|%l"], capture_output=True,
                         text=True, check=True)
    return slurm_commands.parse_sinfo(out.stdout, None)


@pytest.fixture(scope="module", autouse=True)
def overtime_run(cluster: slurm_commands.Cluster, tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """A leader running `sw.overtime()`, started first: Slurm needs a minute or more to kill
    a job at its --time, so that run overlaps the other tests; the last test checks it."""
    where = tmp_path_factory.mktemp("overtime")
    code = (f"import fntree, slurm_workflows as sw; value = fntree.run(sw.overtime(), "
            f"jobstore={str(where / 'jobstore')!r}, batch_system='slurm'); "
            f"open({str(where / 'value')!r}, 'w').write(repr(value))")
    with open(where / "stderr", "wb") as stderr:
        leader = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL,
                                  stderr=stderr, env={**os.environ, "PYTHONPATH": str(TESTS)})
    yield leader, where
    if leader.poll() is None:
        leader.terminate()  # the leader scancels its jobs
        leader.wait(timeout=60)


def _store_id(store: Path) -> str:
    return str(json.loads((store / "fntree.json").read_text())["store_id"])


def _our_jobs(store: Path, states: str = "all") -> dict[str, str]:
    """Slurm id -> state of this store's jobs that squeue knows, by their names."""
    out = subprocess.run(["squeue", "-h", "--me", f"--states={states}", "-o", "%i|%T|%j"],
                         capture_output=True, text=True, check=True)
    prefix = f"fntree-{_store_id(store)}-"
    return {i: s for i, s, name in (line.split("|", 2) for line in out.stdout.splitlines())
            if name.startswith(prefix)}


def _sacct(ids: list[str]) -> dict[str, str]:
    """Job id -> final state in Slurm's accounting (which may lag a job's end by a moment)."""
    states: dict[str, str] = {}

    def final() -> bool:
        out = subprocess.run(["sacct", "-X", "-n", "-P", "-j", ",".join(ids), "-o",
                              "JobID,State"], capture_output=True, text=True, check=True)
        states.clear()
        states.update(line.split("|", 1) for line in out.stdout.splitlines() if line)
        return len(states) == len(ids) and not set(states.values()) & LIVE

    _wait_for(final, timeout=30)
    return states


LIVE = {"PENDING", "RUNNING", "COMPLETING", "CONFIGURING"}


def _wait_until_settled(store: Path, timeout: float = 60.0) -> None:
    """Waits until none of this store's jobs is live in squeue: a job whose program has
    ended stays COMPLETING for a moment (longer on a busy cluster) while Slurm cleans up."""
    _wait_for(lambda: not _our_jobs(store, ",".join(sorted(LIVE))), timeout=timeout)


class Failures(Observer):
    """Collects the failed attempts a run reports."""

    def __init__(self) -> None:
        self.seen: list[Failure] = []

    def failed(self, failure: Failure) -> None:
        self.seen.append(failure)


def _lines(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def _wait_for(condition: Callable[[], object], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.2)


def _start_leader(store: Path, call_source: str) -> subprocess.Popen[bytes]:
    code = (f"import fntree, slurm_workflows as sw; "
            f"fntree.run({call_source}, jobstore={str(store)!r}, batch_system='slurm')")
    return subprocess.Popen([sys.executable, "-c", code],
                            env={**os.environ, "PYTHONPATH": str(TESTS)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_sort_example_on_slurm(cluster: slurm_commands.Cluster, store: Path,
                               tmp_path: Path) -> None:
    """jobTree's file sort runs as Slurm jobs, its files in global temp dirs, and is exact."""
    from examples.sort import sort

    source = sort.generate(tmp_path / "input", 120_000, seed=7)
    output = tmp_path / "output"
    result = fntree.run(sort.setup(str(source), str(output), 30_000), jobstore=store,
                        batch_system="slurm")
    assert result == str(output)
    assert sort.check(source, output) == (len(sort.read_lines(source)), True)
    assert not list((store / "tmp" / "g").glob("*"))


def test_promises_on_slurm(cluster: slurm_commands.Cluster) -> None:
    """Promises, nested promises and values holding calls resolve across Slurm jobs."""
    xs = [(i * 7919) % 101 for i in range(12)]
    assert fntree.run(wf.msort(xs), batch_system="slurm") == sorted(xs)
    assert fntree.run(wf.nested(5), batch_system="slurm") == [11, 3]
    assert fntree.run(wf.calls_in_value(), batch_system="slurm") == {"a": 1, "b": [2, 3]}


def test_temp_dirs_on_slurm(cluster: slurm_commands.Cluster, store: Path, tmp_path: Path) -> None:
    """A job's local temp dir is on the node, named after its Slurm job, and removed after;
    a chain's global temp dir is shared by its follow-on and removed when the chain closes."""
    child, follow = fntree.run(wf.gtd_founder(), jobstore=store, batch_system="slurm")
    assert not child["sees_founder"]
    assert follow["same"] and follow["content"] == "from the founder"
    assert follow["local_exists"] and not Path(follow["local"]).exists()
    assert not list((store / "tmp" / "g").glob("*"))

    seen = fntree.run(sw.where(), batch_system="slurm")
    base = StorePaths.local_base("x").parent
    assert seen["slurm_job"] and seen["local_exists"]
    local = Path(str(seen["local"]))
    assert local.parent.name == f"slurm-{seen['slurm_job']}"
    assert local.is_relative_to(base) and not local.parent.exists()

    marker = tmp_path / "marker"
    with pytest.raises(fntree.WorkflowFailed):
        fntree.run(wf.local_then_fail(str(marker)), jobstore=tmp_path / "failing",
                   batch_system="slurm", retry_count=0)
    assert not Path(marker.read_text()).exists()


def test_failure_then_restart_on_slurm(cluster: slurm_commands.Cluster, store: Path,
                                       tmp_path: Path) -> None:
    """A job that fails on Slurm keeps the store and its log; after the fix, restart ends it."""
    needed = tmp_path / "needed.txt"
    with pytest.raises(fntree.WorkflowFailed) as info:
        fntree.run(wf.some_need_file(str(needed)), jobstore=store, batch_system="slurm",
                   retry_count=1)
    [failed] = info.value.failed
    assert failed.name == "needs_file" and failed.attempts == 2
    assert "is missing" in failed.message and "waiting for" in failed.log_tail
    needed.write_text("here")
    assert fntree.restart(store) == [1, "here", 2]


def test_out_of_memory_killed_by_slurm_and_retried_with_more(cluster: slurm_commands.Cluster,
                                                             store: Path) -> None:
    """A job over its --mem ends OUT_OF_MEMORY in Slurm, and its retry gets twice the memory."""
    failures = Failures()
    assert fntree.run(sw.memory_hog(300), jobstore=store, batch_system="slurm",
                      retry_count=1, observers=[failures]) == (2, 400 * 2**20)
    [failure] = failures.seen
    assert failure.name == "memory_hog" and failure.attempt == 1 and not failure.permanent
    assert "OUT_OF_MEMORY" in failure.message
    assert "retrying with 400.0 MiB" in failure.message
    states = _sacct(_job_ids(store))
    assert sorted(states.values()) == ["COMPLETED", "OUT_OF_MEMORY"]
    log = next((store / "logs").rglob("*.log")).read_text()
    assert "oom-kill" in log and "killed by signal 9" in log


def _job_ids(store: Path) -> list[str]:
    return [line[2] for line in _lines(store / "batch" / "slurm" / "jobs")]


def test_tiny_jobs_packed_into_few_slurm_jobs(cluster: slurm_commands.Cluster, store: Path) -> None:
    """400 tiny targets become a few Slurm jobs, and status takes a few batched queries."""
    calls = slurm_commands.DEFAULT_COMMANDS.calls
    before = calls.copy()
    assert fntree.run(wf.fan(400), jobstore=store, batch_system="slurm") == sum(range(400))
    made = calls - before
    assert 1 <= made["sbatch"] <= 40, made
    assert made["sbatch"] == len(_job_ids(store))
    assert made["squeue"] + made["sacct"] <= 10, made


def test_leader_killed_with_jobs_queued_then_restarted(cluster: slurm_commands.Cluster, store: Path,
                                                       tmp_path: Path) -> None:
    """SIGKILL the leader while its jobs run and wait in Slurm's queue: the restart cancels
    them, no job ever runs twice at once, recorded jobs never run again, and the value is right."""
    record, locks = tmp_path / "record", tmp_path / "locks"
    locks.mkdir()
    memory = cluster.node_memory * 2 // 5  # two such jobs fit on a node, three do not
    nodes = cluster.total_cpus // cluster.node_cpus
    n = 4 * nodes + 3  # three waves: jobs still queued when the first wave is done
    leader = _start_leader(store, f"sw.guarded_fan({n}, 4.0, {str(record)!r}, {str(locks)!r}, "
                                  f"{memory})")
    try:
        _wait_for(lambda: (recorded_done(store) & {j for _, j, _ in _lines(record)}
                           and "PENDING" in _our_jobs(store).values()), timeout=180)
    finally:
        leader.send_signal(signal.SIGKILL)
        leader.wait()
    done_before = recorded_done(store)
    starts_before = [job for kind, job, _ in _lines(record) if kind == "start"]
    waiting = {i for i, s in _our_jobs(store).items() if s == "PENDING"}
    assert waiting, "some jobs should still be queued when the leader is killed"

    assert fntree.restart(store) == sum(range(n))

    lines = _lines(record)
    assert not [line for line in lines if line[0] == "overlap"]
    starts_after = [job for kind, job, _ in lines if kind == "start"]
    for job in done_before & set(starts_before):
        assert starts_after.count(job) == starts_before.count(job), f"{job} ran again"
    assert len({job for kind, job, _ in lines if kind == "end"}) == n
    assert set(_sacct(sorted(waiting)).values()) == {"CANCELLED by 0"}
    assert not {i for kind, _, i in lines if kind == "end"} & waiting
    _wait_until_settled(store)
    assert [p.name for p in (store / "batch" / "slurm").iterdir()] == ["jobs"]


def test_sigterm_cancels_every_slurm_job(cluster: slurm_commands.Cluster, store: Path,
                                         tmp_path: Path) -> None:
    """SIGTERM (as `fntree kill` sends) stops the leader, and its Slurm jobs are cancelled,
    whether they were running or still waiting for a free slot on a busy cluster."""
    record, locks = tmp_path / "record", tmp_path / "locks"
    locks.mkdir()
    leader = _start_leader(store, f"sw.guarded_fan(4, 60.0, {str(record)!r}, {str(locks)!r}, "
                                  "200_000_000)")
    try:
        _wait_for(lambda: _lines(record), timeout=180)  # one leaf runs; others may wait
    finally:
        leader.send_signal(signal.SIGTERM)
    assert leader.wait(timeout=60) != 0
    _wait_until_settled(store)
    ids = _job_ids(store)  # the root's job, then the leaves' jobs
    states = _sacct(ids)
    assert states[ids[0]] == "COMPLETED"
    assert len(ids) >= 2 and {states[i] for i in ids[1:]} == {"CANCELLED by 0"}
    assert not [line for line in _lines(record) if line[0] == "end"]


def test_time_limit_killed_by_slurm_and_retried_with_more(
        overtime_run: tuple[subprocess.Popen[bytes], Path]) -> None:
    """A job past its --time ends TIMEOUT in Slurm, and its retry gets twice the time."""
    leader, where = overtime_run
    assert leader.wait(timeout=240) == 0, (where / "stderr").read_text()
    stderr = (where / "stderr").read_text()  # says why the first attempt ended
    assert (where / "value").read_text() == "(2, 60.0)", stderr
    assert "TIMEOUT) (retrying with 60s of time)" in stderr
    log = next((where / "jobstore" / "logs").rglob("*.log")).read_text()
    assert "DUE TO TIME LIMIT" in log and "sleeping past my time" in log
    states = _sacct(_job_ids(where / "jobstore"))
    assert sorted(states.values()) == ["COMPLETED", "TIMEOUT"]


def test_restart_on_local_cancels_the_earlier_slurm_jobs(cluster: slurm_commands.Cluster,
                                                          store: Path, tmp_path: Path) -> None:
    """A run started on Slurm and restarted on the local batch system cancels its Slurm jobs
    first, so no job runs twice at once."""
    record, locks = tmp_path / "record", tmp_path / "locks"
    locks.mkdir()
    memory = cluster.node_memory * 2 // 7
    leader = _start_leader(store, f"sw.guarded_fan(6, 4.0, {str(record)!r}, {str(locks)!r}, "
                                  f"{memory})")
    try:
        _wait_for(lambda: (store / "fntree.json").exists()
                  and "RUNNING" in _our_jobs(store).values())
    finally:
        leader.send_signal(signal.SIGKILL)
        leader.wait()
    live = set(_our_jobs(store))
    assert live

    assert fntree.restart(store, batch_system="local") == sum(range(6))

    assert not [line for line in _lines(record) if line[0] == "overlap"]
    _wait_until_settled(store)
    assert set(_sacct(sorted(live)).values()) <= {"CANCELLED by 0", "COMPLETED"}
