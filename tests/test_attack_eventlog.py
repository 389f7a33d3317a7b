"""The event log in parts attacked from outside: rotation under a follower, damaged parts,
leftovers of a leader killed mid-rotation."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from processes import wait_for

TESTS = str(Path(__file__).parent)


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": TESTS, **extra}


def _holds_open(pid: int, path: Path) -> bool:
    """Whether process `pid` has `path` open."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == str(path):
                return True
        except OSError:
            pass
    return False


def test_following_messages_across_rotations_shows_each_once(tmp_path: Path) -> None:
    """`fntree logs -f DIR` prints every message once while the event log is rotated into many
    parts under it (it lost those written between its reads and a rotation, and read each new
    log from the old one's offset)."""
    store, go, n = tmp_path / "store", tmp_path / "go", 150
    code = ("import fntree, attack_workflows as aw, sys\n"
            f"print(fntree.run(aw.say_all({n}, {str(go)!r}), jobstore={str(store)!r}))\n")
    leader = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True,
                              env=_env(FNTREE_EVENT_PART_BYTES="1500"))
    follower = None
    try:
        wait_for((store / "events.log").exists, timeout=120)
        follower = subprocess.Popen([sys.executable, "-m", "fntree", "logs", "-f", str(store)],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    env=_env())
        wait_for(lambda: _holds_open(follower.pid, store / "events.log"), timeout=120)
        go.touch()
        out, err = follower.communicate(timeout=300)
        assert leader.wait(timeout=300) == 0
    finally:
        for process in (leader, follower):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
    assert leader.stdout is not None and leader.stdout.read().strip() == str(sum(range(n)))
    assert len(list(store.glob("events.*.log.gz"))) >= 5  # it did rotate, many times
    said = re.findall(r"said (\d+)", out)
    assert sorted(said) == [f"{i:04d}" for i in range(n)], err
