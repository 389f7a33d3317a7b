"""An example batch system plug-in: each packet a subprocess, started from a fake queue.

Files (the store is this plug-in's to use under `batch/subprocess/`):

    <store>/batch/subprocess/jobs             one line "<token> <packet> <pid>" per process
    <store>/batch/subprocess/<token>/<n>.in   packet n, written before its process starts
    <store>/batch/subprocess/<token>/<n>.out.<k>  its results, written by fntree's file worker

`<token>` is new for every leader, so no leader reads an earlier one's results. A new
leader kills the processes earlier leaders left (recorded in `jobs`, checked to still
run a packet of this store), waits until they are gone, and removes their files; so
does `close`, which leaves `jobs` empty: nothing of this batch system is left to cancel.
Options come from the run's recorded environment: FNTREE_SUBPROCESS_SLOTS (packets
running at once, default 2), FNTREE_SUBPROCESS_DELAY (seconds a packet waits, default 0).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

from fntree.batch.base import Res, Task, Update, WorkerSetup
from fntree.batch.slurm import SlurmPaths, read_result, write_packet
from fntree.runtime.durable import make_private_dir


class _Packet:
    def __init__(self, number: int, tasks: list[Task]) -> None:
        self.number = number
        self.tasks = tasks
        self.proc: subprocess.Popen[bytes] | None = None
        self.due = 0.0
        self.chunk = 0
        self.reported: set[int] = set()


class SubprocessBatchSystem:
    """Runs packets as `python -m fntree._worker file` subprocesses; see the module docstring."""

    name = "subprocess"
    packet_time = 0.5

    def __init__(self, setup: WorkerSetup, slots: int = 2, delay: float = 0.0) -> None:
        self.setup = setup
        self.parallelism = slots
        self.delay = delay
        self.base = setup.store_root / "batch" / self.name
        self.jobs = self.base / "jobs"
        self.dir = self.base / uuid.uuid4().hex[:12]
        self._cancel_earlier()
        make_private_dir(self.dir)
        self._live: dict[int, _Packet] = {}
        self._numbers = iter(range(1, 1 << 62))

    def limits(self) -> tuple[float, int]:
        return float(os.cpu_count() or 1), 1 << 40

    def can_take(self, res: Res) -> bool:
        return len(self._live) < 4 * self.parallelism

    def submit(self, tasks: list[Task], fns: dict[bytes, bytes]) -> int:
        packet = _Packet(next(self._numbers), tasks)
        write_packet(self._packet_file(packet.number), tasks, fns)
        packet.due = time.monotonic() + self.delay
        self._live[packet.number] = packet
        return packet.number

    def poll(self, timeout: float) -> list[Update]:
        deadline = time.monotonic() + timeout
        while True:
            self._start_due()
            updates = [u for p in list(self._live.values()) for u in self._updates(p)]
            if updates or not self._live or time.monotonic() >= deadline:
                return updates
            time.sleep(0.02)

    def cancel(self) -> None:
        for packet in self._live.values():
            if packet.proc is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(packet.proc.pid, signal.SIGKILL)
                packet.proc.wait()
        self._live.clear()

    def close(self) -> None:
        self.cancel()
        shutil.rmtree(self.dir, ignore_errors=True)
        self.jobs.write_bytes(b"")

    # -- files: the packet and output; fntree's file worker names its results after the packet
    def _packet_file(self, number: int) -> Path:
        return self.dir / f"{number}.in"

    def _output_file(self, number: int) -> Path:
        return self.dir / f"{number}.log"

    # -- the fake queue -------------------------------------------------------------------
    def _start_due(self) -> None:
        running = sum(p.proc is not None for p in self._live.values())
        for packet in self._live.values():
            if running >= self.parallelism:
                return
            if packet.proc is None and packet.due <= time.monotonic():
                command = self.setup.command(
                    "file", str(self._packet_file(packet.number)), str(self.setup.store_root),
                    self.setup.store_id, str(self.setup.log_limit))
                with open(self._output_file(packet.number), "wb") as out:
                    packet.proc = subprocess.Popen(
                        command, env=self.setup.worker_env(), cwd=self.setup.cwd,
                        stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                        start_new_session=True)
                with open(self.jobs, "a") as jobs:
                    jobs.write(f"{self.dir.name} {packet.number} {packet.proc.pid}\n")
                    jobs.flush()
                    os.fsync(jobs.fileno())
                running += 1

    def _updates(self, packet: _Packet) -> list[Update]:
        updates = []
        code = packet.proc.poll() if packet.proc is not None else None
        packet_file = self._packet_file(packet.number)
        while (path := SlurmPaths.result_of(packet_file, packet.chunk)).exists():
            results, last = read_result(path, self.setup.store_root)
            path.unlink()
            packet.chunk += 1
            packet.reported.update(r.job_id for r in results)
            updates.append(Update(packet.number, results, last))
            if last:
                self._forget(packet)
                return updates
        if code is not None:  # exited without its last results: its unreported tasks are lost
            output = self._output_file(packet.number).read_bytes()[-self.setup.log_limit:]
            lost = tuple(t.job_id for t in packet.tasks if t.job_id not in packet.reported)
            updates.append(Update(packet.number, [], True, lost,
                                  f"its process exited with code {code}", output))
            self._forget(packet)
        return updates

    def _forget(self, packet: _Packet) -> None:
        if packet.proc is not None:
            packet.proc.wait()
        self._live.pop(packet.number, None)
        packet_file = self._packet_file(packet.number)
        for path in (packet_file, SlurmPaths.started_of(packet_file),
                     self._output_file(packet.number)):
            path.unlink(missing_ok=True)

    # -- restart --------------------------------------------------------------------------
    def _cancel_earlier(self) -> None:
        """Kill the processes earlier leaders of this store left; remove their files."""
        lines = self.jobs.read_text().split("\n") if self.jobs.exists() else []
        pids = {int(f[2]) for f in (line.split() for line in lines) if len(f) == 3}
        alive = {pid for pid in pids if _runs_store(pid, self.setup.store_root)}
        for pid in alive:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while any(_runs_store(pid, self.setup.store_root) for pid in alive):
            if time.monotonic() > deadline:
                raise RuntimeError(f"processes {sorted(alive)} of an earlier leader outlive "
                                   "SIGKILL; kill them, then restart")
            time.sleep(0.05)
        if self.base.is_dir():
            for directory in self.base.iterdir():
                if directory.is_dir():
                    shutil.rmtree(directory, ignore_errors=True)
        make_private_dir(self.base)
        self.jobs.write_bytes(b"")


def _runs_store(pid: int, store: Path) -> bool:
    """Whether process `pid` still runs (not a zombie) a worker of job store `store`."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z" and b"fntree._worker" in cmdline and str(store).encode() in cmdline


def make(setup: WorkerSetup, options: dict[str, Any]) -> SubprocessBatchSystem:
    """The `subprocess` entry point of the `fntree.batch_systems` group."""
    return SubprocessBatchSystem(setup, slots=int(setup.env.get("FNTREE_SUBPROCESS_SLOTS", 2)),
                                 delay=float(setup.env.get("FNTREE_SUBPROCESS_DELAY", 0)))
