"""Targets the tests of live logs run: jobs that log, print and wait while they run."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import fntree


@fntree.target
def talker(gate: str) -> str:
    """Logs, prints, then waits for `gate` to exist (at most 120 s) and logs again."""
    fntree.context().log("first message")
    print("first output line", flush=True)
    deadline = time.monotonic() + 120
    while not Path(gate).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    fntree.context().log("last message")
    return "done"


@fntree.target
def flood(megabytes: int, messages: int, gate: str) -> int:
    """Prints `megabytes` MiB and logs `messages` messages, then waits for `gate`."""
    line = "x" * 1023 + "\n"
    for _ in range(megabytes * 1024):
        sys.stdout.write(line)
    sys.stdout.flush()
    for i in range(messages):
        fntree.context().log(f"message {i}")
    deadline = time.monotonic() + 120
    while not Path(gate).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return megabytes


# -- driving a run and `fntree logs -f` as real processes ------------------------------------
TESTS = Path(__file__).resolve().parent


def start_leader(store: Path, call_source: str, batch_system: str = "local",
                 env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """A leader process running `call_source` (an expression over `lw`) on `store`."""
    code = (f"import fntree, live_workflows as lw; fntree.run({call_source}, "
            f"jobstore={str(store)!r}, batch_system={batch_system!r})")
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONPATH": str(TESTS), **(env or {})})


class Follower:
    """`fntree logs -f ARGS` as a real process; its stdout lines collected by a thread."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "fntree", "logs", "-f", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines: list[bytes] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def wait_for(self, text: bytes, timeout: float) -> None:
        """Until a line holding `text` came; AssertionError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            assert self.proc.poll() is None or self._reader.is_alive(), self.output()
            assert time.monotonic() < deadline, f"no {text!r} in {self.output()!r}"
            time.sleep(0.05)

    def end(self, timeout: float) -> tuple[int, bytes]:
        """Its exit status and whole output, once it ended by itself."""
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return code, self.output()

    def output(self) -> bytes:
        return b"".join(self.lines)


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not in {timeout:g} s"
        time.sleep(0.1)


def follow_a_running_job(tmp_path: Path, batch_system: str, timeout: float) -> None:
    """A `talker` job on `batch_system`: `fntree logs -f` (a real process) shows its first
    message while it runs, then the rest, and ends when the job ends; the leader has the
    message while the job runs."""
    store, gate = tmp_path / "store", tmp_path / "gate"
    leader = start_leader(store, f"lw.talker({str(gate)!r})", batch_system)
    try:
        live = store / "logs" / "live"
        wait_for(lambda: live.is_dir() and any(live.iterdir()), timeout, "a live file")
        job = next(live.iterdir()).stem
        follower = Follower(str(store), job)
        follower.wait_for(b"[fntree] first message", timeout=60)
        events = store / "events.log"  # the leader had the message as it came, too
        wait_for(lambda: b'"text": "first message"' in events.read_bytes(), 60,
                 "the message in the leader's event log")
        assert leader.poll() is None and not gate.exists()  # the job is still running
        gate.touch()
        code, out = follower.end(timeout=timeout)
        assert code == 0, out
        assert out.count(b"[fntree] first message") == 1
        assert out.count(b"[fntree] last message") == 1
        assert out.startswith(f"=== talker {job} attempt 1 ===\n".encode())
        assert leader.wait(timeout=timeout) == 0
        assert not any(live.iterdir())  # the kept log has it now
    finally:
        gate.touch()
        if leader.poll() is None:
            leader.terminate()
            leader.wait(timeout=60)


@fntree.target
def floods(megabytes: int, messages: int, gate: str) -> fntree.Call:
    """A root whose only child is a `flood` job."""
    return flood(megabytes, messages, gate)
