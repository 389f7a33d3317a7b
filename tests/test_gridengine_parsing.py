"""Parsing Grid Engine's output, the state table and the query schedule, with a fake runner.

The fake answers qhost/qstat/qacct/qsub with text recorded from Son of Grid Engine 8.1.9
(Debian 12) and a fake clock stands in for time: these tests are about reading Grid
Engine's answers and about how often fntree asks. Whether the backend works is
tests/test_gridengine.py's business, against a real Grid Engine.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from test_slurm_parsing import FakeClock, FakeCommands, ok, task

from fntree.batch import gridengine as ge
from fntree.batch import gridengine_commands as gc
from fntree.batch.base import FNTREE_HOME, WORKER_BOOT, WorkerSetup
from fntree.batch.gridengine_commands import JobState
from fntree.errors import GridEngineError

QHOST = """\
HOSTNAME                ARCH         NCPU NSOC NCOR NTHR  LOAD  MEMTOT  MEMUSE  SWAPTO  SWAPUS
----------------------------------------------------------------------------------------------
global                  -               -    -    -    -     -       -       -       -       -
vm                      lx-amd64        2    1    2    2 12.98   23.5G    1.3G     0.0     0.0
big                     lx-amd64       64    2   32   64  0.50  503.8G   10.0G     0.0     0.0
"""

QSTAT_GC = """\
CLUSTER QUEUE                   CQLOAD   USED    RES  AVAIL  TOTAL aoACDS  cdsuE
--------------------------------------------------------------------------------
all.q                             6.49      3      0      5      8      0      0
long.q                            0.01      0      0     64     64      0      0
"""


def qstat_xml(*jobs: tuple[str, str, str]) -> str:
    """`qstat -xml` as 8.1.9 prints it, for (id, state, name) jobs."""
    items = "".join(f"""
    <job_list state="{'running' if 'r' in state else 'pending'}">
      <JB_job_number>{number}</JB_job_number>
      <JAT_prio>0.25000</JAT_prio>
      <JB_name>{name}</JB_name>
      <JB_owner>root</JB_owner>
      <state>{state}</state>
      <JAT_start_time>2026-11-29T11:56:28</JAT_start_time>
      <queue_name>all.q@vm</queue_name>
      <slots>1</slots>
    </job_list>""" for number, state, name in jobs)
    return f"""<?xml version='1.0'?>
<job_info  xmlns:xsd="http://arc.liv.ac.uk/repos/darcs/sge/source/dist/util/resources/schemas/qstat/qstat.xsd">
  <queue_info>{items}
  </queue_info>
  <job_info>
  </job_info>
</job_info>
"""


def qacct(failed: str, exit_status: str, wallclock: str, maxvmem: str) -> str:
    """`qacct -j ID` as 8.1.9 prints it (fields fntree does not read trimmed)."""
    return f"""==============================================================
qname        all.q
hostname     vm
jobname      fntree-0123abcd-leaf
jobnumber    77
granted_pe   NONE
slots        1
failed       {failed}
exit_status  {exit_status}
ru_wallclock {wallclock}
cpu          0.014s
maxvmem      {maxvmem}
category     -l h_rt=60,h_vmem=300M
"""


QSTAT_J_EQW = """\
==============================================================
job_number:                 32
jobname:                    fntree-0123abcd-leaf
error reason          1:      11/29/2026 11:56:32 [0:27830]: error: can't chdir to \
/nonexistent: No such file or directory
scheduling info:            Job is in error state
"""


def make(tmp_path: Path, commands: FakeCommands, clock: FakeClock | None = None,
         **options: object) -> ge.GridEngineBatchSystem:
    clock = clock or FakeClock()
    setup = WorkerSetup(tmp_path / "store", "0123abcd", "/usr/bin/python3", {"PATH": "/bin"},
                        (), str(tmp_path), 1 << 20, tmp_path / "local")
    replies = {"qhost": [ok(QHOST)], "qstat": [ok(QSTAT_GC)], **commands.replies}
    commands.replies = replies
    return ge.GridEngineBatchSystem(setup, commands=commands, clock=clock,
                                    sleep=clock.sleep, **options)  # type: ignore[arg-type]


# -- parsing -------------------------------------------------------------------------------------
def test_qstat_xml_parses_to_states_and_names() -> None:
    """Running and pending jobs both come out of qstat -xml with their letters and names."""
    jobs = gc.parse_qstat_xml(qstat_xml(("30", "r", "fntree-a-x"), ("32", "Eqw", "fntree-a-z")))
    assert jobs == {"30": gc.Job("r", "fntree-a-x"), "32": gc.Job("Eqw", "fntree-a-z")}
    with pytest.raises(GridEngineError, match="does not parse"):
        gc.parse_qstat_xml("qstat: not XML")


@pytest.mark.parametrize(("letters", "state"), [
    ("qw", JobState.QUEUED), ("hqw", JobState.QUEUED), ("r", JobState.RUNNING),
    ("t", JobState.RUNNING), ("dr", JobState.RUNNING), ("Rr", JobState.RUNNING),
    ("Eqw", JobState.FAILED), ("Ehqw", JobState.FAILED), ("dEhRqw", JobState.FAILED),
    ("z", JobState.COMPLETED), ("", None),
])
def test_state_letters_map_through_the_table(letters: str, state: JobState | None) -> None:
    """qstat's letters map to the small state enum; any E is an error state."""
    assert gc.native_state(letters) is state


def test_qacct_gives_the_last_record() -> None:
    """qacct's failed code, exit status, wall clock and maxvmem; the last of several records."""
    text = qacct("0", "0", "3s", "10.000MB") + qacct("37  : qmaster enforced h_rt, h_cpu, or "
                                                     "h_vmem limit", "137", "21s", "350.2MB")
    acct = gc.parse_qacct(text)
    assert acct is not None and acct.failed == 37 and acct.exit_status == 137
    assert acct.wallclock == 21.0 and acct.maxvmem == int(350.2 * (1 << 20))
    assert gc.parse_qacct("") is None
    assert gc.parse_qacct("error: job id 77 not found\n") is None


@pytest.mark.parametrize(("failed", "status", "wall", "maxvmem", "state"), [
    ("0", "0", "5s", "100MB", JobState.COMPLETED),
    ("0", "1", "5s", "100MB", JobState.FAILED),
    ("0", "138", "60s", "100MB", JobState.TIMEOUT),
    ("37  : qmaster enforced h_rt, h_cpu, or h_vmem limit", "137", "12s", "350MB",
     JobState.OUT_OF_MEMORY),
    ("37  : qmaster enforced h_rt, h_cpu, or h_vmem limit", "137", "60s", "120MB",
     JobState.TIMEOUT),
    ("100 : assumedly after job", "137", "9s", "4.672MB", JobState.CANCELLED),
    ("26  : opening input/output file", "0", "0s", "0.000B", JobState.LOST),
])
def test_ended_jobs_are_told_apart_by_failed_code_wall_clock_and_memory(
        failed: str, status: str, wall: str, maxvmem: str, state: JobState) -> None:
    """Ending at the time asked for (60 s here) is a timeout, by s_rt's SIGUSR1 or h_rt's
    kill (failed 37); failed 37 earlier is memory."""
    acct = gc.parse_qacct(qacct(failed, status, wall, maxvmem))
    assert acct is not None and gc.final_state(acct, 300, 60.0) is state


def test_error_reason_comes_from_qstat_j() -> None:
    """The reason of an error state is qstat -j's `error reason` line, without its stamp."""
    assert gc.parse_error_reason(QSTAT_J_EQW) == (
        "error: can't chdir to /nonexistent: No such file or directory")


def test_qhost_and_queue_slots() -> None:
    """The largest host's cores and memory; the slots of a queue, or of all queues."""
    assert gc.parse_qhost(QHOST) == (64, int(503.8 * (1 << 30)))
    assert gc.parse_queue_slots(QSTAT_GC, "all.q") == 8
    assert gc.parse_queue_slots(QSTAT_GC, None) == 72
    with pytest.raises(GridEngineError, match=r"no queue 'gpu\.q'"):
        gc.parse_queue_slots(QSTAT_GC, "gpu.q")


def test_resource_names_are_configurable() -> None:
    """--sge-resources names the site's memory and time resources; nonsense is refused."""
    assert ge.resource_names(None) == ("h_vmem", "h_rt")
    assert ge.resource_names("mem_free, s_rt") == ("mem_free", "s_rt")
    with pytest.raises(GridEngineError, match="must name a memory and a time"):
        ge.resource_names("h_vmem")


# -- the batch system reading Grid Engine's answers -------------------------------------------
def test_qsub_gets_a_script_resources_pe_queue_and_extra_args(tmp_path: Path) -> None:
    """qsub runs the job script (not -b y) with h_vmem per slot, h_rt, -pe, -q and extra args."""
    commands = FakeCommands({"qsub": [ok("77\n")]})
    batch = make(tmp_path, commands, queue="all.q", extra_args="-P lab -l scratch=1",
                 max_jobs=4)
    assert batch.parallelism == 4 and batch.limits() == (64.0, int(503.8 * (1 << 30)))
    batch.submit([task(5, time=90.0, memory=2_000_000_000, cpu=2.0)], {b"k": b"fn"})
    argv = commands.argv[-1]
    assert argv[0] == "qsub" and "-b" not in argv
    assert argv[argv.index("-l") + 1] == "h_vmem=954M,s_rt=90,h_rt=105"
    assert argv[argv.index("-pe") + 1:argv.index("-pe") + 3] == ["smp", "2"]
    assert argv[argv.index("-q") + 1] == "all.q" and argv[argv.index("-N") + 1] == (
        "fntree-0123abcd-leaf")
    script = Path(argv[argv.index("scratch=1") + 1])
    assert script.read_text().endswith('exec "$@"\n')
    assert argv[argv.index("scratch=1") + 2:][:5] == ["/usr/bin/python3", "-c",
                                                      WORKER_BOOT, FNTREE_HOME, "file"]
    jobs = (tmp_path / "store" / "batch" / "gridengine" / "jobs").read_text().split()
    assert jobs[1:] == ["1", "77"]


def test_one_core_jobs_get_no_pe_and_site_resource_names(tmp_path: Path) -> None:
    """A one-core packet asks for no parallel environment; resources use the site's names."""
    commands = FakeCommands({"qsub": [ok("78")]})
    batch = make(tmp_path, commands, resources="mem_free,s_rt")
    batch.submit([task(6, time=30.0, memory=100 << 20)], {})
    argv = commands.argv[-1]
    assert "-pe" not in argv and argv[argv.index("-l") + 1] == "mem_free=100M,s_rt=30"


def test_results_are_read_from_files_without_asking_grid_engine(tmp_path: Path) -> None:
    """A finished packet shows through its result files: no qstat, no qacct."""
    from fntree.batch.files import result_bytes

    commands = FakeCommands({"qsub": [ok("77")]})
    clock = FakeClock()
    batch = make(tmp_path, commands, clock)
    batch.submit([task(5)], {})
    batch.paths.result(1, 0).write_bytes(result_bytes([], True))
    [update] = batch.poll(5.0)
    assert update.finished and not update.lost
    assert commands.calls["qstat"] == 1 and commands.calls["qacct"] == 0  # only qstat -g c


@pytest.mark.parametrize(("acct", "cause", "words"), [
    (qacct("37  : qmaster enforced h_rt, h_cpu, or h_vmem limit", "137", "4s", "980MB"),
     "memory", "went over its h_vmem of 954M"),
    (qacct("37  : qmaster enforced h_rt, h_cpu, or h_vmem limit", "137", "3600s", "80MB"),
     "time", "ran past its s_rt of 3600s"),
    (qacct("0", "138", "3600s", "80MB"), "time", "exit status 138"),
    (qacct("0", "1", "4s", "80MB"), "", "ended with exit status 1"),
    (qacct("100 : assumedly after job", "137", "4s", "80MB"), "", "failed 100"),
])
def test_jobs_that_leave_without_results_are_lost_with_their_cause(
        tmp_path: Path, acct: str, cause: str, words: str) -> None:
    """A job gone from qstat without results: one qstat, one qacct, its tasks lost."""
    commands = FakeCommands({"qsub": [ok("77")], "qacct": [ok(acct)]})
    clock = FakeClock()
    batch = make(tmp_path, commands, clock)
    commands.replies["qstat"] = [ok(qstat_xml())]
    batch.submit([task(5, memory=1_000_000_000)], {})
    batch.paths.output(1).write_text("last words\n")
    [update] = batch.poll(5.0)
    assert update.finished and update.lost == (5,) and update.cause == cause
    assert words in update.reason and update.output == b"last words\n"
    assert commands.calls["qacct"] == 1
    assert ["qstat", "-xml", "-u", batch.user] in commands.argv


def test_an_error_state_fails_with_the_reason_and_is_deleted(tmp_path: Path) -> None:
    """A job in Eqw is lost at once with qstat -j's reason, and qdel'd."""
    commands = FakeCommands({"qsub": [ok("32")], "qdel": [ok("root has deleted job 32\n")]})
    clock = FakeClock()
    batch = make(tmp_path, commands, clock)
    commands.replies["qstat"] = [ok(qstat_xml(("32", "Eqw", "fntree-x"))),
                                 ok(QSTAT_J_EQW)]
    batch.submit([task(5)], {})
    [update] = batch.poll(5.0)
    assert update.lost == (5,) and "error state Eqw" in update.reason
    assert "can't chdir to /nonexistent" in update.reason
    assert ["qdel", "32"] in commands.argv and commands.calls["qacct"] == 0


def test_a_job_that_completed_without_results_is_given_time_then_lost(tmp_path: Path) -> None:
    """exit 0 with no result file waits ENDED_GRACE queries (files may lag), then is lost."""
    commands = FakeCommands({"qsub": [ok("77")], "qacct": [ok(qacct("0", "0", "1s", "1MB"))]})
    clock = FakeClock()
    batch = make(tmp_path, commands, clock)
    commands.replies["qstat"] = [ok(qstat_xml())]
    batch.submit([task(5)], {})
    updates = []
    while not updates:
        updates = batch.poll(1.0)
    assert commands.calls["qacct"] == ge.ENDED_GRACE + 1
    assert "without writing all its results" in updates[0].reason


def test_qstat_calls_back_off_while_jobs_just_run(tmp_path: Path) -> None:
    """Ten quiet minutes with one running job cost about a dozen qstat calls, not hundreds."""
    commands = FakeCommands({"qsub": [ok("77")]})
    clock = FakeClock()
    batch = make(tmp_path, commands, clock)
    commands.replies["qstat"] = [ok(qstat_xml(("77", "r", "fntree-x")))]
    batch.submit([task(5)], {})
    end = clock.now + 600
    started = 0
    while clock.now < end:
        updates = batch.poll(1.0)
        started += sum(u.started for u in updates)
        assert [u for u in updates if not u.started] == []
    assert started == 1  # the packet's start is said once
    assert 12 <= commands.calls["qstat"] - 1 <= 20
    assert commands.calls["qacct"] == 0


def test_cancel_is_one_qdel_for_all_live_jobs(tmp_path: Path) -> None:
    """cancel() names every live job in one qdel call."""
    commands = FakeCommands({"qsub": [ok("77"), ok("78"), ok("79")]})
    batch = make(tmp_path, commands)
    for i in range(3):
        batch.submit([task(i + 1)], {})
    batch.cancel()
    assert [a for a in commands.argv if a[0] == "qdel"] == [["qdel", "77", "78", "79"]]


def test_restart_deletes_earlier_jobs_of_this_store_and_waits(tmp_path: Path) -> None:
    """A new leader qdels, in one call, the earlier leader's live jobs (recorded or named)."""
    base = tmp_path / "store" / "batch" / "gridengine"
    (base / "oldtoken").mkdir(parents=True)
    (base / "oldtoken" / "3.out.0").write_bytes(pickle.dumps(([], True)))
    (base / "jobs").write_text("oldtoken 1 70\noldtoken 2 71\noldtoken 3 72\n")
    listing = qstat_xml(("70", "r", "fntree-0123abcd-leaf"), ("71", "qw", "other-name"),
                        ("80", "qw", "fntree-0123abcd-leaf"), ("81", "r", "someone-else"))
    commands = FakeCommands({})
    commands.replies["qstat"] = [ok(QSTAT_GC), ok(listing),
                                 ok(qstat_xml(("70", "dr", "fntree-0123abcd-leaf"))),
                                 ok(qstat_xml())]
    make(tmp_path, commands)
    assert [a for a in commands.argv if a[0] == "qdel"] == [["qdel", "70", "71", "80"]]
    assert commands.calls["qstat"] == 4
    assert not (base / "oldtoken").exists()
    assert (base / "jobs").read_text() == ""
