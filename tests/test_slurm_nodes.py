"""What only a Slurm of several nodes shows (ci/slurm-up.sh starts three, n1..n3, on this host).

One run's jobs land on different nodes; each job's local temp dir is made and removed by the
node that ran it; a node taken down mid-run costs only a retry of its jobs; a leader killed
while jobs run on every node is restarted to the exact value. Skipped without Slurm unless
FNTREE_REQUIRE_SLURM is set (as in CI), and skipped when the default partition has fewer than
three usable nodes. Taking a node down needs the CI cluster (root, and the slurmd pid files
that ci/slurm-up.sh writes); on a site cluster that test is skipped.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import node_workflows as nw
import pytest
from processes import recorded_done
from test_slurm import (
    Failures,
    _job_ids,
    _lines,
    _sacct,
    _slurm_missing,
    _wait_for,
    _wait_until_settled,
)

import fntree
from fntree.batch import slurm_commands

TESTS = Path(__file__).resolve().parent
RUN = Path("/run/slurm")  # where ci/slurm-up.sh keeps each node's slurmd pid file
USABLE = ("idle", "mix", "alloc", "comp")  # sinfo's short states of a node that takes jobs
DOWNED = "n2"


def _usable_nodes() -> list[str]:
    """The nodes of the partition fntree uses (the default one, or all sinfo lists when
    SINFO_PARTITION names another) that can take jobs now."""
    out = subprocess.run(["sinfo", "-h", "-N", "-o", "%N|%t|%P"], capture_output=True,
                         text=True, check=True)
    rows = [line.split("|") for line in out.stdout.splitlines() if line.count("|") == 2]
    rows = [r for r in rows if r[2].endswith("*")] or rows
    return sorted({node for node, state, _ in rows
                   if state.rstrip("~#!%$@^-") in USABLE})


@pytest.fixture(scope="module")
def cluster() -> slurm_commands.Cluster:
    """The default partition, with three usable nodes or more; skips (or fails in CI) without."""
    reason = _slurm_missing()
    if reason is not None:
        if os.environ.get("FNTREE_REQUIRE_SLURM"):
            pytest.fail(f"FNTREE_REQUIRE_SLURM is set but Slurm is unusable: {reason}")
        pytest.skip(f"no Slurm reachable: {reason}")
    nodes = _usable_nodes()
    if len(nodes) < 3 and os.environ.get("FNTREE_REQUIRE_SLURM"):
        # The node the node-down test took down may be coming back: in two processes
        # (pytest -n 2) this module's tests need not run one after another.
        with contextlib.suppress(AssertionError):
            _wait_for(lambda: len(_usable_nodes()) >= 3, timeout=120)
        nodes = _usable_nodes()
        if len(nodes) < 3:
            pytest.fail(f"FNTREE_REQUIRE_SLURM is set but the default partition has "
                        f"{len(nodes)} usable nodes, not 3 ({', '.join(nodes) or 'none'})")
    if len(nodes) < 3:
        pytest.skip(f"these tests need 3 usable nodes in the default partition; it has "
                    f"{len(nodes)} ({', '.join(nodes) or 'none'}): start the CI cluster with "
                    f"`bash ci/slurm-up.sh`")
    out = subprocess.run(["sinfo", "-h", "-N", "-o", "%N|%P|%c|%m|%l"], capture_output=True,
                         text=True, check=True)
    return slurm_commands.parse_sinfo(out.stdout, None)


def _starts(record: Path) -> list[list[str]]:
    """The "start JOB SLURM_ID NODE LOCAL_DIR" lines the leaves recorded."""
    return [line for line in _lines(record) if line[0] == "start"]


def _ran_on(slurm_ids: list[str]) -> dict[str, str]:
    """Slurm job id -> the node that sacct says it ran on."""
    out = subprocess.run(["sacct", "-X", "-n", "-P", "-j", ",".join(slurm_ids), "-o",
                          "JobID,NodeList"], capture_output=True, text=True, check=True)
    return dict(line.split("|", 1) for line in out.stdout.splitlines() if line)


@pytest.fixture(scope="module")
def spread_run(cluster: slurm_commands.Cluster, tmp_path_factory: pytest.TempPathFactory
               ) -> tuple[Path, Path]:
    """A finished run of six leaves of which at most two fit on a node: (store, record)."""
    where = tmp_path_factory.mktemp("spread")
    store, record, locks = where / "jobstore", where / "record", where / "locks"
    locks.mkdir()
    memory = cluster.node_memory * 2 // 5
    assert fntree.run(nw.node_fan(6, 3.0, str(record), str(locks), memory), jobstore=store,
                      batch_system="slurm") == sum(range(6))
    _wait_until_settled(store)
    return store, record


def test_one_runs_jobs_land_on_several_nodes(spread_run: tuple[Path, Path]) -> None:
    """The jobs of one run ran on at least two nodes, as both the jobs and sacct record."""
    _, record = spread_run
    starts = _starts(record)
    assert len(starts) == 6
    nodes = {node for _, _, _, node, _ in starts}
    assert len(nodes) >= 2, starts
    ran_on = _ran_on(sorted({slurm_id for _, _, slurm_id, _, _ in starts}))
    assert {ran_on[slurm_id] for _, _, slurm_id, _, _ in starts} == nodes


def test_local_temp_dirs_are_removed_by_the_node_that_made_them(
        spread_run: tuple[Path, Path]) -> None:
    """Each job's local temp dir is named after the Slurm job that made it on its node, and
    is gone once that job has ended."""
    store, record = spread_run
    starts = _starts(record)
    ran_on = _ran_on(sorted({slurm_id for _, _, slurm_id, _, _ in starts}))
    for _, _, slurm_id, node, local in starts:
        assert ran_on[slurm_id] == node
        assert Path(local).parent.name == f"slurm-{slurm_id}"
        assert not Path(local).parent.exists(), f"{local} (made on {node}) is left behind"
    assert set(_sacct(_job_ids(store)).values()) == {"COMPLETED"}


def _slurmd_pid(node: str) -> int:
    return int((RUN / f"slurmd-{node}.pid").read_text())


def _take_down(node: str) -> None:
    """Kills `node` as a dead node dies: its slurmd (by its pid file) and every process of its
    jobs (its cgroup) get SIGKILL; then `scontrol` marks it down (its jobs end NODE_FAIL).
    Killing first keeps the slurmd from answering, which ReturnToService=2 would take as the
    node coming back."""
    os.kill(_slurmd_pid(node), signal.SIGKILL)
    procs = Path(f"/sys/fs/cgroup/freezer/slurm_{node}")

    def killed_all() -> bool:
        pids = {int(pid) for f in procs.rglob("cgroup.procs") for pid in f.read_text().split()}
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return not pids

    _wait_for(killed_all, timeout=30)
    subprocess.run(["scontrol", "update", f"nodename={node}", "state=down", "reason=test"],
                   check=True)


def _bring_back(node: str) -> None:
    """Restarts `node`'s slurmd if it is not running, resumes the node, waits until usable."""
    try:
        os.kill(_slurmd_pid(node), 0)
    except (OSError, ValueError):
        subprocess.run(["slurmd", "-N", node], check=True)
    _wait_for(lambda: subprocess.run(["scontrol", "update", f"nodename={node}", "state=resume"],
                                     capture_output=True).returncode == 0
              or node in _usable_nodes(), timeout=60)
    _wait_for(lambda: node in _usable_nodes(), timeout=120)


def test_node_taken_down_mid_run_costs_only_a_retry(cluster: slurm_commands.Cluster,
                                                    tmp_path: Path) -> None:
    """A node marked down with its slurmd killed while it runs jobs: those jobs (and only
    those) are retried on the other nodes, nothing runs twice at once, the value is exact."""
    if not (RUN / f"slurmd-{DOWNED}.pid").exists():
        pytest.skip(f"taking node {DOWNED} down needs ci/slurm-up.sh's cluster "
                    f"({RUN}/slurmd-{DOWNED}.pid)")
    store, record, locks = tmp_path / "jobstore", tmp_path / "record", tmp_path / "locks"
    locks.mkdir()
    memory = cluster.node_memory * 2 // 5
    on_downed: list[str] = []

    def take_down_when_busy() -> None:
        _wait_for(lambda: [s for s in _starts(record) if s[3] == DOWNED], timeout=240)
        on_downed.extend(s[1] for s in _starts(record) if s[3] == DOWNED)
        _take_down(DOWNED)

    failures = Failures()
    killer = threading.Thread(target=take_down_when_busy, daemon=True)
    killer.start()
    try:
        value = fntree.run(nw.node_fan(6, 15.0, str(record), str(locks), memory),
                           jobstore=store, batch_system="slurm", retry_count=2,
                           observers=[failures])
    finally:
        killer.join(timeout=300)
        _bring_back(DOWNED)
    assert value == sum(range(6))
    assert on_downed, f"no job started on {DOWNED}"
    lines = _lines(record)
    assert not [line for line in lines if line[0] == "overlap"]
    failed = {f.job_id for f in failures.seen}
    assert set(on_downed) <= failed and not [f for f in failures.seen if f.permanent]
    ended = [line for line in lines if line[0] == "end"]
    assert len({line[1] for line in ended}) == 6
    assert not [line for line in ended if line[3] == DOWNED and line[1] in on_downed]
    for line in _starts(record):
        if line[1] not in failed:
            assert [s[1] for s in _starts(record)].count(line[1]) == 1, f"{line[1]} ran again"


def test_leader_killed_with_jobs_on_three_nodes_then_restarted(
        cluster: slurm_commands.Cluster, tmp_path: Path) -> None:
    """SIGKILL the leader while its jobs run on three nodes; the restart gives the exact
    value, no job runs twice at once, and recorded jobs never run again."""
    store, record, locks = tmp_path / "jobstore", tmp_path / "record", tmp_path / "locks"
    locks.mkdir()
    memory = cluster.node_memory * 2 // 5
    code = (f"import fntree, node_workflows as nw; fntree.run(nw.node_fan(6, 8.0, "
            f"{str(record)!r}, {str(locks)!r}, {memory}), jobstore={str(store)!r}, "
            f"batch_system='slurm')")
    leader = subprocess.Popen([sys.executable, "-c", code],
                              env={**os.environ, "PYTHONPATH": str(TESTS)},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: len({s[3] for s in _starts(record)}) >= 3, timeout=240)
    finally:
        leader.send_signal(signal.SIGKILL)
        leader.wait()
    done_before = recorded_done(store)
    starts_before = [s[1] for s in _starts(record)]

    assert fntree.restart(store) == sum(range(6))

    lines = _lines(record)
    assert not [line for line in lines if line[0] == "overlap"]
    starts_after = [s[1] for s in _starts(record)]
    for job in done_before & set(starts_before):
        assert starts_after.count(job) == starts_before.count(job), f"{job} ran again"
    assert len({line[1] for line in lines if line[0] == "end"}) == 6
    _wait_until_settled(store)
