"""The worker's side of the cluster batch systems (Slurm, Grid Engine): run one packet from
the job store, as `fntree.batch.files` lays it out.

`supervise` runs the packet in a forked child, so that when the child dies (out of
memory, scancel, --time) the small parent still removes the local temp dir and
copies what the dying task had printed into the Slurm job's output, which the
leader reads. `serve_file` reads the packet and writes its results in chunks, and
running jobs' messages, as they come, in message files beside them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from fntree.batch.base import Result
from fntree.batch.files import (
    FLUSH_EVERY,
    PacketPaths,
    messages_bytes,
    read_packet,
    read_tail,
    result_bytes,
)
from fntree.batch.local import Runner

WARNINGS = (signal.SIGTERM, signal.SIGUSR1)  # what a scheduler sends before it kills


def serve_file(runner: Runner, packet: Path, write: Callable[[Path, bytes], None],
               clock: Callable[[], float] = time.monotonic) -> None:
    """Run the packet in file `packet`; write its results in chunks with `write` (atomic).

    A packet whose file is gone belongs to a leader that has moved on: nothing runs.
    """
    try:
        tasks, fns = read_packet(packet)
    except FileNotFoundError:
        print(f"fntree worker: {packet} is gone (its leader moved on); nothing to run")
        return
    PacketPaths.started_of(packet).touch(mode=0o600)
    runner.learn(fns)
    chunks = iter(range(1 << 62))

    def send_messages(messages: list[tuple[str, str, str]]) -> None:  # the live thread's
        write(PacketPaths.messages_of(packet, next(chunks)), messages_bytes(messages))

    runner.send_messages(send_messages)
    pending: list[Result] = []
    chunk, flushed = 0, clock()
    for results in runner.run_packet(tasks):
        pending.extend(results)
        if clock() - flushed > FLUSH_EVERY:
            write(PacketPaths.result_of(packet, chunk), result_bytes(pending, False))
            chunk, pending, flushed = chunk + 1, [], clock()
    write(PacketPaths.result_of(packet, chunk), result_bytes(pending, True))


def supervise(work: Callable[[], None], local_dir: Path, output: Path) -> int:
    """Do `work` in a child process; if it dies, show what its last task printed, and clean up.

    The parent stays small, so the kernel's out-of-memory killer picks the child, and
    passes SIGTERM (scancel, --time) and SIGUSR1 (Grid Engine's warning at s_rt) on to the
    child as SIGTERM, so that it outlives it: either way it copies `output` (the dying
    task's prints) to its own stdout (the batch job's output, which the leader reads) and
    removes `local_dir`. Returns the exit status to exit with.
    """
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in WARNINGS}
    pid = os.fork()
    if pid == 0:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        code = 1
        try:
            work()
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    def warn(signum: int, frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):  # it died of the signal too
            os.kill(pid, signal.SIGTERM)

    for sig in WARNINGS:
        signal.signal(sig, warn)
    _, status = os.waitpid(pid, 0)
    for sig in WARNINGS:
        signal.signal(sig, signal.SIG_IGN)  # the child's pid may now be reused
    code = os.waitstatus_to_exitcode(status)
    if code:
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        sys.stdout.write(f"fntree worker: the process running the packet {how}\n")
        sys.stdout.flush()
        os.write(1, read_tail(output, 1 << 20))
    shutil.rmtree(local_dir, ignore_errors=True)
    return 128 - code if code < 0 else code
