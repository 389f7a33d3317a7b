"""Parsing Slurm's output, the state table and the query schedule, with a fake command runner.

The fake answers sinfo/squeue/sacct with canned text (as Slurm 22.05 prints it) and a
fake clock stands in for time: these tests are about reading Slurm's answers and
about how often fntree asks. Whether the backend works is tests/test_slurm.py's
business, against a real Slurm.
"""

from __future__ import annotations

import pickle
import shlex
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from fntree.batch import slurm, slurm_commands, slurm_worker
from fntree.batch.base import (
    DEFAULT_MEMORY,
    FNTREE_HOME,
    WORKER_BOOT,
    Res,
    Result,
    Task,
    WorkerSetup,
)
from fntree.batch.slurm_commands import SlurmState
from fntree.checksum import DamagedFile
from fntree.errors import SlurmError

SINFO = """\
vm|main*|2|24105|infinite
big1|long|64|512000|7-00:00:00
big2|long|32|256000|7-00:00:00
vm|long|2|24105|7-00:00:00
"""


class FakeCommands:
    """Answers each command with the next canned reply for it; records every call."""

    def __init__(self, replies: Mapping[str, list[slurm_commands.Completed]]) -> None:
        self.replies = {name: list(answers) for name, answers in replies.items()}
        self.argv: list[list[str]] = []
        self.calls: Counter[str] = Counter()

    def run(self, argv: Sequence[str], env: Mapping[str, str] | None = None
            ) -> slurm_commands.Completed:
        self.argv.append(list(argv))
        self.calls[argv[0]] += 1
        answers = self.replies.get(argv[0]) or [slurm_commands.Completed(0, "", "")]
        return answers.pop(0) if len(answers) > 1 else answers[0]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def ok(text: str) -> slurm_commands.Completed:
    return slurm_commands.Completed(0, text, "")


def task(job_id: int, time: float | None = None, memory: int | None = None,
         cpu: float = 1.0, name: str = "leaf") -> Task:
    return Task(job_id, 1, name, b"k", b"", (), job_id, Res(time, memory, cpu, None))


def make(tmp_path: Path, commands: FakeCommands, clock: FakeClock | None = None,
         **options: object) -> slurm.SlurmBatchSystem:
    clock = clock or FakeClock()
    setup = WorkerSetup(tmp_path / "store", "0123abcd", "/usr/bin/python3", {"PATH": "/bin"},
                        (), str(tmp_path), 1 << 20, tmp_path / "local")
    return slurm.SlurmBatchSystem(setup, commands=commands, clock=clock,
                                  sleep=clock.sleep, **options)  # type: ignore[arg-type]


# -- parsing -------------------------------------------------------------------------------------
def test_squeue_lines_parse_to_states_and_reasons() -> None:
    """`squeue -h -o %i|%T|%r` lines become id -> (state, reason); blank lines are skipped."""
    text = "12|PENDING|Resources\n13|RUNNING|None\n\n14_2|OUT_OF_MEMORY|OutOfMemory\n"
    assert slurm_commands.parse_squeue(text) == {"12": ("PENDING", "Resources"),
                                                 "13": ("RUNNING", "None"),
                                                 "14_2": ("OUT_OF_MEMORY", "OutOfMemory")}


def test_sacct_lines_parse_with_cancelled_by() -> None:
    """`sacct -X -n -P` lines give state and exit code; "CANCELLED by 0" reads as CANCELLED."""
    text = "2|COMPLETED|0:0\n3|FAILED|3:0\n4|OUT_OF_MEMORY|0:125\n5|CANCELLED by 0|0:0"
    parsed = slurm_commands.parse_sacct(text)
    assert parsed["3"] == ("FAILED", "3:0")
    assert slurm_commands.native_state(parsed["5"][0]) is SlurmState.CANCELLED
    assert slurm_commands.native_state(parsed["4"][0]) is SlurmState.OUT_OF_MEMORY


@pytest.mark.parametrize(("text", "seconds"), [
    ("infinite", None), ("UNLIMITED", None), ("45", 2700.0), ("30:00", 1800.0),
    ("2:00:00", 7200.0), ("1-12", 129600.0), ("1-12:30", 131400.0),
    ("7-00:00:00", 604800.0),
])
def test_time_limits_parse_to_seconds(text: str, seconds: float | None) -> None:
    """Every form Slurm prints a time limit in reads as seconds (None when unlimited)."""
    assert slurm_commands.parse_time_limit(text) == seconds


def test_sinfo_gives_the_default_partition_largest_node_and_cores() -> None:
    """Without a partition, the default one (starred) is read: its largest node and cores."""
    default = slurm_commands.parse_sinfo(SINFO, None)
    assert default == slurm_commands.Cluster("main", 2, 24105 << 20, 2, None)
    long = slurm_commands.parse_sinfo(SINFO, "long")
    assert long == slurm_commands.Cluster("long", 64, 512000 << 20, 98, 7 * 86400.0)


def test_sinfo_without_the_partition_is_an_error() -> None:
    """Asking for a partition Slurm does not have names it in a SlurmError."""
    with pytest.raises(SlurmError, match="no partition 'gpu'"):
        slurm_commands.parse_sinfo(SINFO, "gpu")


# -- the state table -------------------------------------------------------------------------------
def test_state_table_covers_every_terminal_state_and_causes() -> None:
    """Each native state maps to one SlurmState; only memory and time kills carry a cause."""
    assert {s for s, v in slurm_commands.STATES.items() if v.live} == {
        "PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESV_DEL_HOLD",
        "RUNNING", "COMPLETING", "RESIZING", "SIGNALING", "STAGE_OUT", "SUSPENDED", "STOPPED"}
    assert slurm_commands.STATES["NODE_FAIL"] is SlurmState.LOST
    assert slurm_commands.STATES["PREEMPTED"] is SlurmState.LOST
    assert slurm_commands.CAUSES == {SlurmState.OUT_OF_MEMORY: "memory", SlurmState.TIMEOUT: "time"}
    assert slurm_commands.native_state("WHATEVER") is None
    assert slurm_commands.native_state("") is None
    assert all(member.__doc__ for member in SlurmState)


# -- requests --------------------------------------------------------------------------------
def test_packet_request_sums_times_and_takes_largest_memory_and_cpu() -> None:
    """--time is the sum of the packet's times (an hour each when unsaid), in whole minutes."""
    tasks = [task(1, time=61.0, memory=100_000_000), task(2, time=30.0, cpu=1.5),
             task(3)]
    cpus, mib, minutes = slurm.packet_request(tasks, None)
    assert (cpus, mib) == (2, 96)
    assert minutes == 62  # (61 + 30 + 3600) s = 61.5 min, rounded up
    assert slurm.packet_request([task(1)], None)[1] == DEFAULT_MEMORY >> 20
    assert slurm.packet_request([task(1, time=1e6)], 3600.0)[2] == 60  # capped by the partition


def test_job_name_is_store_and_target() -> None:
    """Jobs are named fntree-<store id>-<target>, with odd characters replaced."""
    assert slurm.job_name("ab12", [task(1, name="sort chunk/2")]) == "fntree-ab12-sort_chunk_2"


def test_query_interval_backs_off_to_a_minute_and_resets_on_news() -> None:
    """The wait between squeue calls grows 1.5x from 2 s to 60 s, and drops back on news."""
    waits = [slurm.QUERY_MIN]
    for _ in range(12):
        waits.append(slurm.next_interval(waits[-1], news=False))
    assert waits[:4] == [2.0, 3.0, 4.5, 6.75] and waits[-1] == 60.0
    assert slurm.next_interval(60.0, news=True) == 2.0


# -- the batch system reading Slurm's answers --------------------------------------------------
def test_limits_and_parallelism_come_from_sinfo(tmp_path: Path) -> None:
    """One sinfo at start gives the largest node (the limit) and the cores (the parallelism)."""
    commands = FakeCommands({"sinfo": [ok(SINFO)]})
    batch = make(tmp_path, commands, partition="long", max_jobs=50, max_memory=1 << 30)
    assert batch.limits() == (64.0, 1 << 30)
    assert batch.parallelism == 50
    assert not batch.can_take(Res(None, 2 << 30, 1.0, None))
    assert commands.argv == [["sinfo", "-h", "-N", "-o", "%N|%P|%c|%m|%l", "-p", "long"]]


def test_sbatch_gets_resources_name_output_and_the_worker_command(tmp_path: Path) -> None:
    """The sbatch line carries --cpus-per-task, --mem, --time, the name and extra args."""
    commands = FakeCommands({"sinfo": [ok(SINFO)], "sbatch": [ok("77;cluster\n")]})
    batch = make(tmp_path, commands, extra_args="--qos=long --account 'my lab'")
    batch.submit([task(5, time=90.0, memory=2_000_000_000)], {b"k": b"fn"})
    argv = commands.argv[-1]
    assert argv[:3] == ["sbatch", "--parsable", "--job-name"]
    flags = dict(zip(argv[2::2], argv[3::2], strict=False))
    assert flags["--cpus-per-task"] == "1" and flags["--mem"] == "1908M"
    assert flags["--time"] == "2" and flags["--job-name"] == "fntree-0123abcd-leaf"
    assert argv[argv.index("--qos=long") + 1:argv.index("--qos=long") + 3] == [
        "--account", "my lab"]
    assert argv[-1].startswith(
        f"exec /usr/bin/python3 -c {shlex.quote(WORKER_BOOT)} {shlex.quote(FNTREE_HOME)} file ")
    jobs = (tmp_path / "store" / "batch" / "slurm" / "jobs").read_text().split()
    assert jobs[1:] == ["1", "77"]


def test_a_targets_own_slurm_args_follow_the_runs(tmp_path: Path) -> None:
    """A target's slurm_args come after the run's --slurm-args, so that they win."""
    commands = FakeCommands({"sinfo": [ok(SINFO)], "sbatch": [ok("78")]})
    batch = make(tmp_path, commands, extra_args="--qos=normal")
    gpu = task(6)._replace(res=Res(None, None, 1.0, None, "--qos=long --gres=gpu:1"))
    batch.submit([gpu], {b"k": b"fn"})
    argv = commands.argv[-1]
    assert argv.index("--qos=normal") < argv.index("--qos=long") < argv.index("--gres=gpu:1")


def test_results_are_read_from_files_without_asking_slurm(tmp_path: Path) -> None:
    """A finished packet shows through its result files: no squeue, no sacct."""
    commands = FakeCommands({"sinfo": [ok(SINFO)], "sbatch": [ok("77")]})
    clock = FakeClock()
    batch = make(tmp_path, commands, clock)
    number = batch.submit([task(5), task(6)], {b"k": b"fn"})
    packet = batch.paths.packet(number)
    slurm_worker.serve_file(TwoResults(), packet, lambda path, data: path.write_bytes(data))
    [update] = batch.poll(1.0)
    assert update.finished and [r.job_id for r in update.results] == [5, 6]
    assert commands.calls["squeue"] == commands.calls["sacct"] == 0
    assert not packet.exists()


class TwoResults:
    def learn(self, fns: dict[bytes, bytes]) -> None:
        assert fns == {b"k": b"fn"}

    def send_messages(self, send: object) -> None:
        """Its jobs send no messages while they run."""

    def run_packet(self, tasks: list[Task]) -> Iterator[list[Result]]:
        for t in tasks:
            yield [Result(t.job_id, 1, True, (0, t.job_id), "", {}, None, False,
                          (0.0, 0.0, 0.0, 0), (), False)]


@pytest.mark.parametrize(("native", "exit_code", "cause", "words"), [
    ("OUT_OF_MEMORY", "0:125", "memory", "went over its --mem=954M (OUT_OF_MEMORY)"),
    ("TIMEOUT", "0:0", "time", "ran past its --time of 60 min (TIMEOUT)"),
    ("FAILED", "1:0", "", "ended FAILED, exit code 1:0"),
    ("NODE_FAIL", "0:0", "", "ended NODE_FAIL"),
])
def test_jobs_that_end_without_results_are_lost_with_their_cause(
        tmp_path: Path, native: str, exit_code: str, cause: str, words: str) -> None:
    """A job gone from the queue without results: one squeue, one sacct, its tasks lost."""
    commands = FakeCommands({
        "sinfo": [ok(SINFO)], "sbatch": [ok("77")],
        "squeue": [ok(f"77|{native}|whatever\n")], "sacct": [ok(f"77|{native}|{exit_code}")]})
    clock = FakeClock()
    batch = make(tmp_path, commands, clock)
    batch.submit([task(5, memory=1_000_000_000)], {})
    batch.paths.output(1).write_text("last words\n")
    [update] = batch.poll(5.0)
    assert update.finished and update.lost == (5,) and update.cause == cause
    assert words in update.reason and update.output == b"last words\n"
    assert commands.calls["squeue"] == commands.calls["sacct"] == 1
    squeue = next(a for a in commands.argv if a[0] == "squeue")
    assert squeue[squeue.index("-j") + 1] == "77"


def test_a_completed_job_without_results_is_given_time_then_lost(tmp_path: Path) -> None:
    """COMPLETED with no result file waits ENDED_GRACE queries (files may lag), then is lost."""
    commands = FakeCommands({"sinfo": [ok(SINFO)], "sbatch": [ok("77")],
                             "squeue": [ok("77|COMPLETED|None")],
                             "sacct": [ok("77|COMPLETED|0:0")]})
    clock = FakeClock()
    batch = make(tmp_path, commands, clock)
    batch.submit([task(5)], {})
    updates = []
    while not updates:  # (an update saying that the packet started is not what is awaited)
        updates = [u for u in batch.poll(1.0) if not u.started]
    assert commands.calls["squeue"] == slurm.ENDED_GRACE + 1
    assert "without writing all its results" in updates[0].reason


def test_squeue_calls_back_off_while_jobs_just_run(tmp_path: Path) -> None:
    """Ten quiet minutes with one running job cost about a dozen squeue calls, not hundreds."""
    commands = FakeCommands({"sinfo": [ok(SINFO)], "sbatch": [ok("77")],
                             "squeue": [ok("77|RUNNING|None")]})
    clock = FakeClock()
    batch = make(tmp_path, commands, clock)
    batch.submit([task(5)], {})
    end = clock.now + 600
    started = 0
    while clock.now < end:
        updates = batch.poll(1.0)
        started += sum(u.started for u in updates)
        assert [u for u in updates if not u.started] == []
    assert started == 1  # the packet's start is said once
    assert 12 <= commands.calls["squeue"] <= 20
    assert commands.calls["sacct"] == 0


def test_cancel_is_one_scancel_for_all_live_jobs(tmp_path: Path) -> None:
    """cancel() names every live job in one scancel call."""
    commands = FakeCommands({"sinfo": [ok(SINFO)], "sbatch": [ok("77"), ok("78"), ok("79")]})
    batch = make(tmp_path, commands)
    for i in range(3):
        batch.submit([task(i + 1)], {})
    batch.cancel()
    assert [a for a in commands.argv if a[0] == "scancel"] == [["scancel", "77", "78", "79"]]


def test_restart_cancels_earlier_jobs_of_this_store_and_waits(tmp_path: Path) -> None:
    """A new leader scancels, in one call, the earlier leader's live jobs (recorded or named)."""
    base = tmp_path / "store" / "batch" / "slurm"
    (base / "oldtoken").mkdir(parents=True)
    (base / "oldtoken" / "3.out.0").write_bytes(pickle.dumps(([], True)))
    (base / "jobs").write_text("oldtoken 1 70\noldtoken 2 71\noldtoken 3 72\n")
    listing = ("70|RUNNING|fntree-0123abcd-leaf\n71|PENDING|fntree-0123abcd-leaf\n"
               "80|PENDING|fntree-0123abcd-leaf\n81|RUNNING|someone-else\n")
    commands = FakeCommands({"sinfo": [ok(SINFO)],
                             "squeue": [ok(listing), ok("70|COMPLETING|fntree-0123abcd-leaf"),
                                        ok("")]})
    make(tmp_path, commands)
    assert [a for a in commands.argv if a[0] == "scancel"] == [["scancel", "70", "71", "80"]]
    assert commands.calls["squeue"] == 3
    assert not (base / "oldtoken").exists()
    assert (base / "jobs").read_text() == ""


def _flip(path: Path, position: int) -> None:
    data = bytearray(path.read_bytes())
    data[position] ^= 0x08
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("where", [0, 10, 18, -1])
def test_a_packet_file_with_a_flipped_bit_runs_nothing(tmp_path: Path, where: int) -> None:
    """A worker refuses a packet file whose checksum does not match, naming the file."""
    commands = FakeCommands({"sinfo": [ok(SINFO)], "sbatch": [ok("77")]})
    batch = make(tmp_path, commands)
    packet = batch.paths.packet(batch.submit([task(5)], {b"k": b"fn"}))
    assert slurm.read_packet(packet) == ([task(5)], {b"k": b"fn"})
    _flip(packet, where)
    with pytest.raises(DamagedFile, match=rf"{packet.name} is damaged .*runs none of its tasks"):
        slurm_worker.serve_file(TwoResults(), packet, lambda path, data: path.write_bytes(data))
    assert not slurm.SlurmPaths.result_of(packet, 0).exists()


@pytest.mark.parametrize("where", [0, 10, 18, -1])
def test_a_result_file_with_a_flipped_bit_stops_the_leader(tmp_path: Path, where: int) -> None:
    """The leader refuses a result file whose checksum does not match: never a wrong value."""
    commands = FakeCommands({"sinfo": [ok(SINFO)], "sbatch": [ok("77")]})
    batch = make(tmp_path, commands)
    packet = batch.paths.packet(batch.submit([task(5), task(6)], {b"k": b"fn"}))
    slurm_worker.serve_file(TwoResults(), packet, lambda path, data: path.write_bytes(data))
    result = slurm.SlurmPaths.result_of(packet, 0)
    _flip(result, where)
    with pytest.raises(DamagedFile, match=rf"{result.name} is damaged .*fntree restart"):
        batch.poll(1.0)
