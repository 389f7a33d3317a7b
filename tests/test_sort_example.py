"""examples/sort/sort.py as a user runs it: on a terminal it shows the live progress display;
piped, it prints its result line only."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

SORT = Path(__file__).resolve().parent.parent / "examples" / "sort" / "sort.py"
ARGS = ["--size", "300K", "--max-bytes", "32K", "--max-cpus", "2"]


def _in_a_terminal(argv: list[str], timeout: float = 240) -> tuple[int, str]:
    """Run `argv` with a pseudo-terminal as its stdin, stdout and stderr: (status, screen)."""
    master, slave = pty.openpty()
    os.set_inheritable(slave, True)
    env = {**os.environ, "COLUMNS": "100", "LINES": "40", "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    process = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                               close_fds=True)
    os.close(slave)
    seen = bytearray()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the terminal closed: every process holding it ended
                break
            if not chunk:
                break
            seen += chunk
        elif process.poll() is not None:
            break
    os.close(master)
    return process.wait(timeout=30), seen.decode(errors="replace")


def test_the_sort_example_shows_progress_on_a_terminal() -> None:
    """On a terminal the sort prints the live display (jobs done, per target) and its result."""
    status, screen = _in_a_terminal([sys.executable, str(SORT), *ARGS])
    assert status == 0, screen[-3000:]
    assert "\x1b[" in screen  # drawn for a terminal
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen)
    assert "jobs done" in text and "fntree completed" in text, text[-3000:]
    # the targets' rows: waiting, ready, queued, running, done, failed
    assert re.search(r"^down +0 +0 +0 +0 +\d+ +0", text, re.MULTILINE), text[-3000:]
    assert "sorted " in text and ": OK" in text


def test_the_sort_example_piped_prints_only_its_result() -> None:
    """With stderr not a terminal there is no display; --size takes binary units."""
    done = subprocess.run([sys.executable, str(SORT), *ARGS], capture_output=True, text=True,
                          timeout=240, check=False)
    assert done.returncode == 0, done.stderr
    assert "jobs done" not in done.stderr + done.stdout
    assert f"({300 * 1024:,} bytes)" in done.stdout and ": OK" in done.stdout
