"""The local batch system: long-lived worker processes on this machine, fed through pipes.

Each worker is a `python -m fntree._worker pipe ...` process started on demand
and kept for the run, so a trivial job costs a message, not an interpreter. A
worker takes one packet at a time; the packet holds cores and memory (the
largest of its tasks') until it is finished, and no more packets start than fit
`max_cpus` and `max_memory`.

Messages are frames, `u32 length | pickle`, both ways: `("run", tasks, fns)`
to a worker, `("results", [Result, ...], last)` back. A worker dies with its
leader (PR_SET_PDEATHSIG), so a worker of a dead leader can never report into
a restarted run; a worker that dies on its own shows as end-of-file on its
pipe, and its packet's unreported tasks come back as `lost`.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import pickle
import selectors
import shutil
import signal
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from fntree.batch.base import Res, Result, Task, Update, WorkerSetup
from fntree.runtime.durable import make_private_dir, open_private

_LEN = struct.Struct("<I")
MAX_WORKERS = 64


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


class LocalBatchSystem:
    """Runs packets in worker processes of this machine."""

    name = "local"
    packet_time = 0.2

    def __init__(self, setup: WorkerSetup, max_cpus: float | None = None,
                 max_memory: int | None = None) -> None:
        self.setup = setup
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
        _send(worker.wfd, ("run", tasks, send))
        return packet

    def poll(self, timeout: float) -> list[Update]:
        updates: list[Update] = []
        if not self._busy:
            return updates
        for key, _ in self._selector.select(timeout):
            worker: _Worker = key.data
            updates.extend(self._read(worker))
        return updates

    def cancel(self) -> None:
        for worker in list(self._busy.values()) + self._idle:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(worker.proc.pid, signal.SIGKILL)

    def close(self) -> None:
        for worker in self._idle:
            with contextlib.suppress(OSError):
                _send(worker.wfd, ("stop",))
        self.cancel()
        for worker in list(self._busy.values()) + self._idle:
            self._reap(worker)
        self._idle.clear()
        self._busy.clear()
        self._selector.close()

    # -- workers --------------------------------------------------------------------
    def _start(self) -> _Worker:
        number = next(self._numbers)
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
                pass_fds=(to_worker_r, from_worker_w), env=self._env, cwd=self.setup.cwd,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
                start_new_session=True)
        os.close(to_worker_r)
        os.close(from_worker_w)
        os.set_blocking(from_worker_r, False)
        worker = _Worker(number, proc, from_worker_r, to_worker_w, local_dir)
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
            if not chunk:
                eof = True
                break
            chunks.append(chunk)
        worker.buffer += b"".join(chunks)
        updates = []
        for message in _frames(worker.buffer):
            results: list[Result] = message[1]
            worker.reported.update(r.job_id for r in results)
            last = bool(message[2])
            if last:
                self._release(worker)
                self._idle.append(worker)
            updates.append(Update(worker.packet, results, last))
        if eof:
            updates.append(self._died(worker))
        return updates

    def _release(self, worker: _Worker) -> None:
        self._busy.pop(worker.packet, None)
        cpu, memory = worker.held
        self.free_cpus += cpu
        self.free_memory += memory
        worker.held = (0.0, 0)

    def _died(self, worker: _Worker) -> Update:
        output = (_read_output(worker.local_dir / "output", self.setup.log_limit)
                  + _read_output(_stderr_path(worker.local_dir), self.setup.log_limit))
        code = self._reap(worker)
        reason = (f"its worker process was killed by signal {-code}" if code < 0
                  else f"its worker process exited with code {code}")
        lost = tuple(t.job_id for t in worker.tasks if t.job_id not in worker.reported)
        if worker.packet in self._busy:
            self._release(worker)
            return Update(worker.packet, [], True, lost, reason, output)
        if worker in self._idle:
            self._idle.remove(worker)
        return Update(worker.packet, [], True, (), reason)

    def _reap(self, worker: _Worker) -> int:
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(worker.rfd)
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


def _send(fd: int, message: Any) -> None:
    data = pickle.dumps(message, pickle.HIGHEST_PROTOCOL)
    view = memoryview(_LEN.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view):]


def _frames(buffer: bytearray) -> list[Any]:
    messages = []
    offset = 0
    while len(buffer) - offset >= _LEN.size:
        (length,) = _LEN.unpack_from(buffer, offset)
        end = offset + _LEN.size + length
        if end > len(buffer):
            break
        messages.append(pickle.loads(bytes(buffer[offset + _LEN.size:end])))
        offset = end
    del buffer[:offset]
    return messages


def _read_exact(fd: int, n: int) -> bytes | None:
    parts = []
    while n:
        chunk = os.read(fd, n)
        if not chunk:
            return None
        parts.append(chunk)
        n -= len(chunk)
    return b"".join(parts)


def _die_with_parent(parent: int) -> None:
    """Make the kernel SIGKILL this worker when its leader dies.

    `FNTREE_KEEP_ORPHANS=1` turns this off, for the test that shows an orphaned
    worker cannot report into a later leader's run.
    """
    if os.environ.get("FNTREE_KEEP_ORPHANS") == "1":
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os._exit(1)


FLUSH_EVERY = 0.02  # seconds: how long finished results may wait to share a message


class Runner(Protocol):
    def learn(self, fns: dict[bytes, bytes]) -> None: ...

    def run_packet(self, tasks: list[Task]) -> Iterator[list[Result]]: ...


def serve(runner: Runner, rfd: int, wfd: int, parent: int) -> None:
    """The worker's side: take packets from `rfd`, send results to `wfd`, until EOF."""
    import time

    _die_with_parent(parent)
    while True:
        header = _read_exact(rfd, _LEN.size)
        if header is None:
            return
        body = _read_exact(rfd, _LEN.unpack(header)[0])
        if body is None:
            return
        message = pickle.loads(body)
        if message[0] == "stop":
            return
        _, tasks, fns = message
        runner.learn(fns)
        pending: list[Result] = []
        flushed = time.monotonic()
        for results in runner.run_packet(tasks):
            pending.extend(results)
            now = time.monotonic()
            if now - flushed > FLUSH_EVERY:
                _send(wfd, ("results", pending, False))
                pending, flushed = [], now
        _send(wfd, ("results", pending, True))


def make(setup: WorkerSetup, options: dict[str, Any]) -> LocalBatchSystem:
    """The `local` entry point of the `fntree.batch_systems` group."""
    return LocalBatchSystem(setup, max_cpus=options.get("max_cpus"),
                            max_memory=options.get("max_memory"))
