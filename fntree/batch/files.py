"""The file transport of the cluster batch systems (Slurm, Grid Engine): packets and results
as sealed files in the job store, which the leader and every compute node see.

Each cluster batch system owns one directory of the store (`PacketPaths`):

    <store>/batch/<system>/jobs              one line "<token> <packet> <job id>" per job
    <store>/batch/<system>/<token>/<n>.in    packet n: (tasks, fns), pickled and sealed
                                             (fntree.checksum), written before submitting
    <store>/batch/<system>/<token>/<n>.run   made by the worker when it starts
    <store>/batch/<system>/<token>/<n>.out.<k>  the worker's k-th batch of results
                                             (atomic, sealed)
    <store>/batch/<system>/<token>/<n>.msg.<k>  the k-th batch of running jobs' messages
                                             (atomic, sealed; fntree.runtime.live)
    <store>/batch/<system>/<token>/<n>.log   the scheduler's output file for the job

`<token>` is new for every leader, so results that a job of an earlier leader
writes are never read. Submitting a packet: write `<n>.in`, submit, append the
scheduler's job id to `jobs` and fsync (`FileJobs.record`), so that a restarted
leader finds every job an earlier one may have left.

`FileJobs` is the leader's side both systems share: the poll loop that reads the
message and result files at every SCAN_EVERY and asks the scheduler (the subclass's
`_query`) only at its own interval, and the bookkeeping of live packets. The worker's side is
`slurm_worker` (`python -m fntree._worker file ...`), the same for both.

Workers copy their running jobs' output to the store's `logs/live/` (fntree.runtime.live),
which the leader and `fntree logs -f` read: `open_jobs` clears it (an earlier leader's
jobs are gone by then) and a packet lost with its jobs drops their live files.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fntree.batch.base import Res, Result, Task, Update, WorkerSetup
from fntree.batch.slurm_commands import Commands, Completed
from fntree.checksum import read_sealed, seal
from fntree.errors import BatchSystemError, FntreeError
from fntree.runtime.durable import make_private_dir, open_private
from fntree.runtime.live import clear_live, drop_live

log = logging.getLogger("fntree")

SCAN_EVERY = 0.1      # seconds between looks at the result files
FLUSH_EVERY = 5.0     # seconds a worker may hold results before writing them
CANCEL_WAIT = 120.0   # seconds a restarted leader waits for an earlier leader's jobs to end
RETRY_WAITS = (1.0, 2.0, 4.0, 8.0)  # seconds between tries of a submission refused for a while


class PacketPaths:
    """A cluster batch system's files in a job store (see the module docstring)."""

    def __init__(self, store_root: Path, token: str, system: str = "slurm") -> None:
        self.base = store_root / "batch" / system
        self.jobs = self.base / "jobs"
        self.dir = self.base / token

    def packet(self, number: int) -> Path:
        return self.dir / f"{number}.in"

    def output(self, number: int) -> Path:
        return self.dir / f"{number}.log"

    def started(self, number: int) -> Path:
        return self.started_of(self.packet(number))

    @staticmethod
    def started_of(packet: Path) -> Path:
        return packet.with_name(f"{packet.stem}.run")

    def result(self, number: int, chunk: int) -> Path:
        return self.result_of(self.packet(number), chunk)

    @staticmethod
    def result_of(packet: Path, chunk: int) -> Path:
        return packet.with_name(f"{packet.stem}.out.{chunk}")

    def messages(self, number: int, chunk: int) -> Path:
        return self.messages_of(self.packet(number), chunk)

    @staticmethod
    def messages_of(packet: Path, chunk: int) -> Path:
        return packet.with_name(f"{packet.stem}.msg.{chunk}")


def write_packet(path: Path, tasks: list[Task], fns: dict[bytes, bytes]) -> None:
    """Packet file `path` holding `tasks` and `fns`, sealed with a checksum."""
    path.write_bytes(seal(pickle.dumps((tasks, fns), pickle.HIGHEST_PROTOCOL)))


def read_packet(path: Path) -> tuple[list[Task], dict[bytes, bytes]]:
    """The verified tasks and functions of packet file `path` (FileNotFoundError if gone)."""
    body = read_sealed(path, "this batch job runs none of its tasks; the leader sees it end "
                             "without results and runs them again")
    tasks, fns = pickle.loads(body)
    return tasks, fns


def result_bytes(results: list[Result], last: bool) -> bytes:
    """The contents of a result file: a batch of results, sealed, and whether it is the last."""
    return seal(pickle.dumps((results, last), pickle.HIGHEST_PROTOCOL))


def read_result(path: Path, store_root: Path) -> tuple[list[Result], bool]:
    """The verified results in result file `path`; DamagedFile rather than a wrong value."""
    body = read_sealed(path, "the run stops rather than use a wrong value: continue it with "
                             f"`fntree restart {store_root}`, which runs the packet's "
                             "unfinished jobs again")
    results, last = pickle.loads(body)
    return results, last


def messages_bytes(messages: list[tuple[str, str, str]]) -> bytes:
    """The contents of a message file: running jobs' (name, job id, text), sealed."""
    return seal(pickle.dumps(messages, pickle.HIGHEST_PROTOCOL))


def read_messages(path: Path) -> tuple[tuple[str, str, str], ...]:
    """The verified messages in message file `path` (news: a damaged one is skipped)."""
    try:
        body = read_sealed(path, "its messages are skipped; the job's log has them")
    except (OSError, FntreeError) as exc:
        log.warning("%s", exc)
        return ()
    return tuple(pickle.loads(body))


def read_tail(path: Path, limit: int) -> bytes:
    """The last `limit` bytes of `path` (what a job printed before it died)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - limit))
            return f.read()
    except OSError:
        return b""


def recorded_jobs(jobs: Path) -> set[str]:
    """The scheduler ids in a `jobs` file: every job earlier leaders of the store submitted."""
    if not jobs.exists():
        return set()
    return {line.split()[2] for line in jobs.read_text().splitlines() if len(line.split()) == 3}


def forget_earlier(paths: PacketPaths, earlier: list[Path]) -> None:
    """Remove earlier leaders' packet directories and empty `jobs`, once their jobs are gone."""
    for directory in earlier:
        shutil.rmtree(directory, ignore_errors=True)
    with open(open_private(paths.jobs, os.O_WRONLY | os.O_TRUNC), "wb") as f:
        os.fsync(f.fileno())


class Packet:
    """A live packet as the leader follows it."""

    def __init__(self, number: int, job_id: str, tasks: list[Task], memory: int,
                 minutes: float) -> None:
        self.number = number
        self.job_id = job_id
        self.tasks = tasks
        self.memory = memory    # MiB requested
        self.minutes = minutes  # minutes requested
        self.reported: set[int] = set()
        self.chunk = 0
        self.message_chunk = 0
        self.gone = 0
        self.started = False
        self.announced = False  # the leader was told that it started

    @property
    def slurm_id(self) -> str:
        return self.job_id

    def lost(self) -> tuple[int, ...]:
        """The ids of its tasks that no result file reported."""
        return tuple(t.job_id for t in self.tasks if t.job_id not in self.reported)


class FileJobs:
    """The leader's side shared by the cluster batch systems; see the module docstring.

    A subclass sets `setup`, `commands`, `cluster` (with `node_cpus`), `max_jobs`,
    `max_memory`, `parallelism` and `paths`, calls `_cancel_earlier` then `open_jobs`,
    and provides `cancel()` and these hooks: `_query()` asks the scheduler about every
    live packet and returns the Updates of those that ended without (all) their
    results; `_earlier_live(ids)` the ids of this store's jobs still in the queue
    (those given, or named after the store); `_delete(ids)` cancels jobs in one call;
    `_still_there(ids)` the error when they outlive CANCEL_WAIT.
    """

    scheduler = ""               # its name in messages: "Slurm", "Grid Engine"
    reachable = ""               # how to check that it answers, for error messages
    transient = r"(?!)"          # what a submission refused only for a while says
    error: type[BatchSystemError] = BatchSystemError
    reports_start = True         # an Update with `started` when a queued packet starts

    setup: WorkerSetup
    commands: Commands
    cluster: Any
    max_jobs: int
    max_memory: int
    parallelism: int
    paths: PacketPaths
    _live: dict[int, Packet]
    _env: dict[str, str]
    _jobs_fd: int
    _clock: Callable[[], float]
    _sleep: Callable[[float], None]

    # -- the protocol's shared verbs ------------------------------------------------------
    def limits(self) -> tuple[float, int]:
        return float(self.cluster.node_cpus), self.max_memory

    def can_take(self, res: Res) -> bool:
        queued = sum(not p.started for p in self._live.values())
        return (len(self._live) < self.max_jobs and queued < self.parallelism
                and res.cpu <= self.cluster.node_cpus and (res.memory or 0) <= self.max_memory)

    def cancel(self) -> None:
        if self._live:
            self._delete([p.job_id for p in self._live.values()])
            self._live.clear()

    def close(self) -> None:
        self.cancel()
        if self._jobs_fd >= 0:
            os.close(self._jobs_fd)
            self._jobs_fd = -1
        shutil.rmtree(self.paths.dir, ignore_errors=True)

    # -- commands -------------------------------------------------------------------------
    def _check(self, argv: list[str], purpose: str) -> str:
        """The output of `argv`, which must succeed (`self.error` otherwise)."""
        done = self.commands.run(argv)
        if done.returncode != 0:
            raise self.error(
                f"`{argv[0]}` failed to {purpose} (exit {done.returncode}): "
                f"{done.stderr.strip() or done.stdout.strip()}; check that {self.reachable}, "
                "or choose another --batch-system", argv[0], done.returncode, done.stderr)
        return done.stdout

    def _submit_command(self, argv: Sequence[str]) -> Completed:
        """Run a submission, again after a pause while the scheduler is only busy."""
        for wait in (*RETRY_WAITS, 0.0):
            done = self.commands.run(argv, env=self._env)
            if done.returncode == 0 or not wait or not re.search(self.transient, done.stderr,
                                                                  re.I):
                return done
            log.warning("%s failed (%s); trying again in %gs", argv[0], done.stderr.strip(),
                        wait)
            self._sleep(wait)
        raise AssertionError("unreachable")

    # -- restart --------------------------------------------------------------------------
    def _cancel_earlier(self) -> None:
        """Cancel the jobs earlier leaders of this store left queued or running; wait for them."""
        base = self.paths.base
        earlier = [d for d in base.iterdir() if d.is_dir()] if base.is_dir() else []
        recorded = recorded_jobs(self.paths.jobs)
        if not earlier and not recorded:
            return
        ours = self._earlier_live(recorded)
        if ours:
            log.info("cancelling %d %s job(s) left by an earlier leader of this job store",
                     len(ours), self.scheduler)
            self._delete(sorted(ours))
        wait_until_gone(ours, lambda left: self._earlier_live(recorded | left), self._clock,
                        self._sleep, CANCEL_WAIT, self._still_there)
        forget_earlier(self.paths, earlier)

    def _earlier_live(self, recorded: set[str]) -> set[str]:
        raise NotImplementedError

    def _delete(self, ids: list[str]) -> None:
        raise NotImplementedError

    def _still_there(self, ids: set[str]) -> Exception:
        raise NotImplementedError

    def open_jobs(self, clock: Callable[[], float], sleep: Callable[[float], None],
                  first_query: float) -> None:
        """Make this leader's packet directory and open `jobs` for appending."""
        self._clock, self._sleep = clock, sleep
        make_private_dir(self.paths.dir)
        self._jobs_fd = os.open(self.paths.jobs, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._live = {}
        self._numbers = iter(range(1, 1 << 62))
        clear_live(self.setup.store_root)
        self._next_query = clock() + first_query

    def record(self, number: int, job_id: str, tasks: list[Task], memory: int,
               minutes: float) -> None:
        """Durably note that packet `number` is scheduler job `job_id`, and follow it."""
        os.write(self._jobs_fd, f"{self.paths.dir.name} {number} {job_id}\n".encode())
        os.fdatasync(self._jobs_fd)
        self._live[number] = Packet(number, job_id, tasks, memory, minutes)

    def poll(self, timeout: float) -> list[Update]:
        deadline = self._clock() + timeout
        while True:
            updates = self._collect()
            if self._live and self._clock() >= self._next_query:
                updates.extend(self._query())
            left = deadline - self._clock()
            if updates or not self._live or left <= 0:
                return updates
            self._sleep(min(SCAN_EVERY, left))

    def _query(self) -> list[Update]:
        raise NotImplementedError

    def _collect(self, announce: bool = True) -> list[Update]:
        """Updates from the result files the workers wrote; with `announce`, one saying
        that a packet started, once, for each packet still live that did."""
        try:
            names = set(os.listdir(self.paths.dir))
        except FileNotFoundError:
            return []
        updates = []
        for packet in list(self._live.values()):
            packet.started = packet.started or self.paths.started(packet.number).name in names
            while (path := self.paths.messages(packet.number, packet.message_chunk)).name in names:
                updates.append(Update(packet.number, [], False, messages=read_messages(path)))
                path.unlink()
                packet.message_chunk += 1
            while (path := self.paths.result(packet.number, packet.chunk)).name in names:
                results, last = read_result(path, self.setup.store_root)
                path.unlink()
                packet.chunk += 1
                packet.reported.update(r.job_id for r in results)
                updates.append(Update(packet.number, results, last))
                if last:
                    self._forget(packet)
                    break
            if (announce and packet.started and not packet.announced
                    and packet.number in self._live):
                packet.announced = True
                updates.append(Update(packet.number, [], False, started=True))
        return updates

    def _lost(self, packet: Packet, reason: str, cause: str) -> Update:
        """The final Update of a packet whose job ended without reporting all its tasks."""
        output = read_tail(self.paths.output(packet.number), self.setup.log_limit)
        drop_live(self.setup.store_root, packet.lost())
        self._forget(packet)
        return Update(packet.number, [], True, packet.lost(), reason, output, cause)

    def _forget(self, packet: Packet) -> None:
        self._live.pop(packet.number, None)
        self.paths.packet(packet.number).unlink(missing_ok=True)
        self.paths.output(packet.number).unlink(missing_ok=True)
        self.paths.started(packet.number).unlink(missing_ok=True)


def wait_until_gone(ours: set[str], live: Callable[[set[str]], set[str]],
                    clock: Callable[[], float], sleep: Callable[[float], None], timeout: float,
                    error: Callable[[set[str]], Exception]) -> None:
    """Wait, backing off to 5 s, until `live(ours)` (the ids still live) is empty.

    `error(ids)` is raised for those still live after `timeout` seconds.
    """
    deadline, wait = clock() + timeout, 0.5
    while ours:
        if clock() > deadline:
            raise error(ours)
        sleep(wait)
        wait = min(2 * wait, 5.0)
        ours = live(ours)

