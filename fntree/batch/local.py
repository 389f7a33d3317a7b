"""The local batch system: long-lived worker processes on this machine, fed through pipes.

Each worker is a `fntree._worker` process (`WorkerSetup.command`) started on demand
and kept for the run, so a trivial job costs a message, not an interpreter. A
worker takes one packet at a time; the packet holds cores and memory (the
largest of its tasks') until it is finished, and no more packets start than fit
`max_cpus` and `max_memory`.

Messages are frames (fntree.batch.local_worker, the worker's side): `("run",
tasks, fns)` to a worker (each task a plain tuple of a `Task`'s fields: the C
pickler saves a tuple without calling back into Python, a NamedTuple not),
`("results", [Result, ...], last)` back, and `("messages", [(name, job id,
text), ...])` while a job runs (an Update with only `messages`).
Workers copy their running jobs' output to the store's `logs/live/` (fntree.runtime.live):
this batch system clears it when it starts and drops the live files of the jobs a
dead worker took with it. A worker dies with its
leader (PR_SET_PDEATHSIG), so a worker of a dead leader can never report into
a restarted run; a worker that dies on its own shows as end-of-file on its
pipe, and its packet's unreported tasks come back as `lost`.

A dying worker is a lost packet, never a leader crash, at every moment:
any OSError writing to or reading from its pipes, end-of-file, or its process
found exited, counts as its death (`_died`). The leader never blocks on a
worker: packets go out through a per-worker outbox flushed when the pipe is
writable, so a stopped worker cannot stall the leader mid-packet.

No process outlives its job (fntree.batch.proctree): each worker is started
with the run's marks in its environment (`FNTREE_RUN`, `FNTREE_WORKER`), is a
child subreaper that kills what each job started, and when it dies the leader
kills what carries its mark; a guard process kills what carries the run's mark
when the leader dies, and this batch system sweeps the run's mark when it starts.

Time limits and silence (fntree.batch.watch): a busy worker sends
`("alive", job_id, attempt, elapsed, time)` heartbeats; a job past its time
limit is killed with its worker and comes back as lost with cause "time"
(retried with twice the time); a worker silent too long is killed.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import selectors
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fntree.batch import proctree, watch
from fntree.batch.base import Res, Result, Task, Update, WorkerSetup
from fntree.batch.local_worker import Runner, frame, read_frames, send_frame, serve

__all__ = ["LocalBatchSystem", "Runner", "serve"]
from fntree.batch.jobmark import boot_failure, read_mark
from fntree.knobs import env_number
from fntree.private import make_private_dir, open_private
from fntree.runtime.live import clear_live, drop_live

MAX_WORKERS = 64
WATCH_EVERY = 0.5  # seconds between two looks at the busy workers (fntree.batch.watch)
AWAY = 5.0  # seconds between two looks past which the leader itself was away (stopped)


def machine_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


class _Worker:
    def __init__(self, number: int, proc: subprocess.Popen[bytes], rfd: int, wfd: int,
                 local_dir: Path) -> None:
        self.number = number
        self.proc = proc
        self.rfd = rfd
        self.wfd = wfd
        self.local_dir = local_dir
        self.buffer = bytearray()
        self.packet = 0
        self.tasks: list[Task] = []
        self.reported: set[int] = set()
        self.held: tuple[float, int] = (0.0, 0)
        self.known: set[bytes] = set()
        self.token = ""          # its FNTREE_WORKER mark
        self.outbox = bytearray()  # what the leader has still to write to it
        self.heard = 0.0         # when the leader last heard from it, or sent it a packet
        self.elapsed: float | None = None  # how long its task had run, when last heard of
        self.job: tuple[int, float | None] | None = None  # (job id, declared time) running
        self.ticks = -1          # its processor ticks at the last look


class LocalBatchSystem:
    """Runs packets in worker processes of this machine."""

    name = "local"
    packet_time = 0.2

    def __init__(self, setup: WorkerSetup, max_cpus: float | None = None,
                 max_memory: int | None = None, max_job_duration: float | None = None,
                 silence: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.setup = setup
        self.max_job_duration = max_job_duration
        self.silence = silence or env_number("FNTREE_WORKER_SILENCE", watch.SILENCE)
        self._clock = clock
        self._looked = clock()
        self._broken: list[_Worker] = []
        self.max_cpus = float(max_cpus or os.cpu_count() or 1)
        self.max_memory = int(max_memory or machine_memory())
        self.parallelism = max(1, int(self.max_cpus))
        self.free_cpus = self.max_cpus
        self.free_memory = self.max_memory
        self._base = setup.local_base
        self._selector = selectors.DefaultSelector()
        self._idle: list[_Worker] = []
        self._busy: dict[int, _Worker] = {}
        self._numbers = itertools.count(1)
        self._packets = itertools.count(1)
        self._env = setup.worker_env()
        self._env["FNTREE_HEARTBEAT"] = str(watch.heartbeat_every(self.silence))
        # What an earlier leader of this store left running goes first (its guard may be
        # dead too); then this leader's guard.
        proctree.sweep(proctree.RUN_MARK, setup.store_id)
        clear_live(setup.store_root)
        self._guard, self._guard_fd = proctree.start_guard(
            setup.python or sys.executable, setup.store_id, setup.store_root, self._env,
            setup.cwd)
        # Start the workers the first jobs will need now: they boot (about 0.1 s each)
        # while the leader recovers and runs the first job, instead of after it.
        for _ in range(self.parallelism):
            self._idle.append(self._start())

    # -- the protocol ---------------------------------------------------------------
    def limits(self) -> tuple[float, int]:
        return self.max_cpus, self.max_memory

    def can_take(self, res: Res) -> bool:
        if res.cpu > self.free_cpus + 1e-9 or (res.memory or 0) > self.free_memory:
            return False
        return bool(self._idle) or len(self._busy) < MAX_WORKERS

    def submit(self, tasks: list[Task], fns: dict[bytes, bytes]) -> int:
        worker = self._idle.pop() if self._idle else self._start()
        packet = next(self._packets)
        cpu = max(t.res.cpu for t in tasks)
        memory = max(t.res.memory or 0 for t in tasks)
        self.free_cpus -= cpu
        self.free_memory -= memory
        worker.held = (cpu, memory)
        worker.packet, worker.tasks, worker.reported = packet, tasks, set()
        send = {k: v for k, v in fns.items() if k not in worker.known}
        worker.known.update(send)
        self._busy[packet] = worker
        worker.heard, worker.elapsed, worker.job = self._clock(), None, None
        self._post(worker, ("run", [tuple(t) for t in tasks], send))  # plain: pickled in C
        return packet

    def poll(self, timeout: float) -> list[Update]:
        updates = [self._died(w) for w in self._take_broken()]
        if not self._busy:
            return updates
        for key, _events in self._selector.select(0 if updates else timeout):
            worker: _Worker = key.data
            if worker.rfd < 0:
                continue  # died earlier in this round
            if key.fd == worker.wfd:
                self._flush(worker)
            else:
                updates.extend(self._read(worker))
        updates.extend(self._died(w) for w in self._take_broken())
        updates.extend(self._watch())
        return updates

    def cancel(self) -> None:
        for worker in list(self._busy.values()) + self._idle:
            _kill(worker)

    def close(self) -> None:
        for worker in self._idle:
            with contextlib.suppress(OSError):
                send_frame(worker.wfd, ("stop",))
        self.cancel()
        for worker in list(self._busy.values()) + self._idle:
            self._reap(worker)
        self._idle.clear()
        self._busy.clear()
        self._selector.close()
        proctree.stop_guard(self._guard, self._guard_fd)

    # -- workers --------------------------------------------------------------------
    def _start(self) -> _Worker:
        number = next(self._numbers)
        token = f"{self.setup.store_id}.{os.getpid()}.{number}"
        env = {**self._env, proctree.RUN_MARK: self.setup.store_id, proctree.WORKER_MARK: token}
        to_worker_r, to_worker_w = os.pipe()
        from_worker_r, from_worker_w = os.pipe()
        local_dir = self._base / f"w{os.getpid()}-{number}"
        make_private_dir(self._base)
        # The worker's own stderr (not its jobs': those go to their logs) is kept in a
        # file, so that a worker never holds the leader's stdout or stderr open.
        with open(open_private(_stderr_path(local_dir), os.O_WRONLY | os.O_TRUNC), "wb") as stderr:
            proc = subprocess.Popen(
                self.setup.command("pipe", str(to_worker_r), str(from_worker_w),
                                   str(self.setup.store_root), str(local_dir),
                                   str(self.setup.log_limit), str(os.getpid())),
                pass_fds=(to_worker_r, from_worker_w), env=env, cwd=self.setup.cwd,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
                start_new_session=True)
        os.close(to_worker_r)
        os.close(from_worker_w)
        os.set_blocking(from_worker_r, False)
        os.set_blocking(to_worker_w, False)
        worker = _Worker(number, proc, from_worker_r, to_worker_w, local_dir)
        worker.token = token
        self._selector.register(from_worker_r, selectors.EVENT_READ, worker)
        return worker

    def _read(self, worker: _Worker) -> list[Update]:
        chunks = []
        eof = False
        while True:
            try:
                chunk = os.read(worker.rfd, 1 << 20)
            except BlockingIOError:
                break
            except OSError:  # as good as end-of-file: the worker is lost
                chunk = b""
            if not chunk:
                eof = True
                break
            chunks.append(chunk)
        worker.buffer += b"".join(chunks)
        updates = []
        if chunks:
            worker.heard = self._clock()
        for message in read_frames(worker.buffer):
            if message[0] == "alive":
                _, job_id, _attempt, elapsed, declared = message
                worker.job, worker.elapsed = (job_id, declared), elapsed
                continue
            if message[0] == "messages":
                updates.append(Update(worker.packet, [], False, messages=tuple(message[1])))
                continue
            worker.job, worker.elapsed = None, None
            results: list[Result] = message[1]
            worker.reported.update([r.job_id for r in results])
            last = bool(message[2])
            if last:
                self._release(worker)
                self._idle.append(worker)
            updates.append(Update(worker.packet, results, last))
        if eof:
            updates.append(self._died(worker))
        return updates

    # -- writing to workers, and watching them ----------------------------------------
    def _post(self, worker: _Worker, message: Any) -> None:
        worker.outbox += frame(message)
        self._flush(worker)

    def _flush(self, worker: _Worker) -> None:
        """Write what the pipe takes now; the rest when it is writable (never block)."""
        try:
            while worker.outbox:
                del worker.outbox[:os.write(worker.wfd, worker.outbox)]
        except BlockingIOError:
            pass
        except OSError:  # BrokenPipeError and the like: the worker is lost
            worker.outbox.clear()
            self._broken.append(worker)
        waiting = worker.wfd in self._selector.get_map()
        if worker.outbox and not waiting:
            self._selector.register(worker.wfd, selectors.EVENT_WRITE, worker)
        elif waiting and not worker.outbox:
            self._selector.unregister(worker.wfd)

    def _take_broken(self) -> list[_Worker]:
        broken = [w for w in dict.fromkeys(self._broken) if w.rfd >= 0]
        self._broken.clear()
        return broken

    def _watch(self) -> list[Update]:
        """Workers found dead, over their job's time limit, or silent (fntree.batch.watch)."""
        now = self._clock()
        if now - self._looked < WATCH_EVERY:
            return []
        if now - self._looked > max(self.silence / 2, AWAY):
            # The leader itself was away (stopped, swapped out): it heard nothing, but
            # that is not the workers' silence.
            for worker in self._busy.values():
                worker.heard = max(worker.heard, now)
        self._looked = now
        updates: list[Update] = []
        for worker in list(self._busy.values()):
            if worker.rfd < 0:
                continue
            if worker.proc.poll() is not None:  # dead, though a job's process holds its pipe
                updates.append(self._died(worker))
                continue
            declared = worker.job[1] if worker.job else None
            limit = watch.time_limit(declared, self.max_job_duration)
            state, moved = None, False
            if now - worker.heard > self.silence:
                ticks = proctree.cpu_ticks(worker.proc.pid)
                if ticks is not None:
                    state, moved = ticks[0], ticks[1] > worker.ticks
                    worker.ticks = ticks[1]
            verdict = watch.judge(now, worker.heard, worker.elapsed, limit, self.silence,
                                  state, moved)
            if verdict is watch.Verdict.OVER_TIME:
                updates.extend(self._over_time(worker, limit))
            elif verdict is watch.Verdict.SILENT:
                updates.append(self._died(
                    worker, f"its worker was not heard from for {now - worker.heard:.0f}s "
                    "and was not using the processor (stopped or hung), so it was killed"))
        return updates

    def _over_time(self, worker: _Worker, limit: float) -> list[Update]:
        """Kill a worker whose job ran past its limit; that job is lost with cause "time"."""
        assert worker.job is not None
        unreported = [t.job_id for t in worker.tasks if t.job_id not in worker.reported]
        # A chained follow-on is not known to the leader yet: its chain's head is charged.
        culprit = worker.job[0] if worker.job[0] in unreported else next(iter(unreported), None)
        update = self._died(worker, f"its job ran past its time limit of {limit:g}s, so it "
                            "was killed with its worker and every process it started")
        if culprit is None or culprit not in update.lost:
            return [update]
        return [update._replace(finished=False, lost=(culprit,), cause="time"),
                Update(update.packet, [], True)]

    def _release(self, worker: _Worker) -> None:
        self._busy.pop(worker.packet, None)
        cpu, memory = worker.held
        self.free_cpus += cpu
        self.free_memory += memory
        worker.held = (0.0, 0)

    def _died(self, worker: _Worker, why: str = "") -> Update:
        _kill(worker)  # a worker whose pipe broke may still be alive
        stderr = _read_output(_stderr_path(worker.local_dir), self.setup.log_limit)
        output = _read_output(worker.local_dir / "output", self.setup.log_limit) + stderr
        running = read_mark(worker.local_dir)
        if running is not None and running.job_id in worker.reported:
            running = None  # died after reporting it: the job it was running is unknown
        unbooted = boot_failure(worker.local_dir, stderr)
        code = self._reap(worker)
        proctree.sweep(proctree.WORKER_MARK, worker.token)
        reason = why or ((f"its worker process was killed by signal {-code}" if code < 0
                          else f"its worker process exited with code {code}") + unbooted)
        lost = tuple(t.job_id for t in worker.tasks if t.job_id not in worker.reported)
        drop_live(self.setup.store_root, lost)
        if worker.packet in self._busy:
            self._release(worker)
            return Update(worker.packet, [], True, lost, reason, output, running=running)
        if worker in self._idle:
            self._idle.remove(worker)
        return Update(worker.packet, [], True, (), reason)

    def _reap(self, worker: _Worker) -> int:
        for fd in (worker.rfd, worker.wfd):
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(fd)
        for fd in (worker.rfd, worker.wfd):
            with contextlib.suppress(OSError):
                os.close(fd)
        worker.rfd = worker.wfd = -1
        try:
            code = worker.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            worker.proc.kill()
            code = worker.proc.wait()
        shutil.rmtree(worker.local_dir, ignore_errors=True)
        _stderr_path(worker.local_dir).unlink(missing_ok=True)
        return code


def _kill(worker: _Worker) -> None:
    """SIGKILL a worker and its process group (its jobs' processes that kept the group)."""
    if worker.proc.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(worker.proc.pid, signal.SIGKILL)


def _stderr_path(local_dir: Path) -> Path:
    return local_dir.with_name(local_dir.name + ".stderr")


def _read_output(path: Path, limit: int) -> bytes:
    """The head and tail of what a dead worker's last task printed."""
    try:
        data = path.read_bytes()
    except OSError:
        return b""
    if len(data) <= limit:
        return data
    half = limit // 2
    return data[:half] + f"\n[... {len(data) - 2 * half} bytes cut ...]\n".encode() + data[-half:]


def make(setup: WorkerSetup, options: dict[str, Any]) -> LocalBatchSystem:
    """The `local` entry point of the `fntree.batch_systems` group."""
    return LocalBatchSystem(setup, max_cpus=options.get("max_cpus"),
                            max_memory=options.get("max_memory"),
                            max_job_duration=options.get("max_job_duration"))
