"""The live display in a real terminal: `fntree run` inside tmux at 80 columns, read off the screen.

Set FNTREE_SCREENS=DIR to keep the screens the tests read (the README shows them).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from fntree.cli.status import describe
from fntree.errors import FntreeError
from fntree.runtime.store import JobStore

TESTS = Path(__file__).parent
WORDS = f"{TESTS / 'display_workflows.py'}:words"
# tmux is needed: skipped without it, failed without it when FNTREE_REQUIRE_TMUX=1 (CI, where
# ci/tools-up.sh installs it).
pytestmark = pytest.mark.skipif(
    shutil.which("tmux") is None and os.environ.get("FNTREE_REQUIRE_TMUX") != "1",
    reason="needs tmux (ci/tools-up.sh installs it)")


class Terminal:
    """A tmux session of 80 x 50 running one shell command; the screen read as text."""

    def __init__(self, command: str, cwd: Path) -> None:
        self.name = f"fntree-{uuid.uuid4().hex[:8]}"
        env = f"cd {cwd} && PYTHONPATH={TESTS.parent} TERM=xterm-256color "
        subprocess.run(["tmux", "new-session", "-d", "-s", self.name, "-x", "80", "-y", "50",
                        f"{env}{command}; echo EXIT=$?; sleep 600"], check=True)

    def screen(self) -> str:
        return subprocess.run(["tmux", "capture-pane", "-p", "-t", self.name],
                              capture_output=True, text=True, check=True).stdout

    def wait_for(self, pattern: str, timeout: float = 300) -> str:
        """The first screen on which `pattern` (a regex) shows."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if re.search(pattern, screen):
                return screen
            time.sleep(0.1)
        raise AssertionError(f"{pattern!r} never showed; the screen:\n{self.screen()}")

    def close(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True)


@pytest.fixture
def terminals() -> Iterator[list[Terminal]]:
    opened: list[Terminal] = []
    yield opened
    for terminal in opened:
        terminal.close()


def _fntree(*args: str) -> str:
    return f"{sys.executable} -m fntree {' '.join(args)}"


def _keep(name: str, screen: str) -> None:
    where = os.environ.get("FNTREE_SCREENS")
    if where:
        Path(where).mkdir(parents=True, exist_ok=True)
        Path(where, name).write_text(screen.rstrip() + "\n")


def table(screen: str) -> dict[str, dict[str, int]]:
    """The targets' table on the screen: {row: {column: count}}."""
    lines = screen.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("target "))
    columns = lines[head].split()[1:]
    rows = {}
    for line in lines[head + 1:]:
        tokens = line.rstrip("━─ ").split()
        if len(tokens) <= len(columns):
            break
        numbers = tokens[-len(columns):]
        rows[" ".join(tokens[:-len(columns)])] = {
            column: int(n.replace(",", "")) for column, n in zip(columns, numbers, strict=True)}
    return rows


def test_80_columns_with_many_targets(tmp_path: Path,
                                      terminals: list[Terminal]) -> None:
    """At 80 columns, 14 targets collapse into the 7 busiest and "7 others", names are cut
    with an ellipsis, lines wrap instead of being cut; once enough jobs are timed an ETA
    shows, about right; the final counts are every job done."""
    term = Terminal(_fntree("run", WORDS, "144", "0.3", "--jobstore", "store"), tmp_path)
    terminals.append(term)
    running = term.wait_for(r"fntree running.*\n.*jobs done \(total so far\)"
                            r"(?s:.*)7 others(?s:.*)running longest")
    _keep("run-80-columns.txt", running)
    assert max(len(line) for line in running.splitlines()) <= 80
    assert "count_words_in_a_docume…" in running or "7 others" in running
    rows = table(running)
    assert len(rows) == 9  # 7 targets, "7 others", "all"
    assert sum(rows["all"].get(k, 0) for k in ("waiting", "ready", "queued", "running",
                                                "done", "failed")) == 146
    eta = term.wait_for(r"about (\S+) left \(\+1 job not yet timed\)")
    seen = time.monotonic()
    _keep("run-eta.txt", eta)
    match = re.search(r"about (?:(\d+)m)?([\d.]+)s left", eta)
    assert match is not None
    promised = 60 * int(match[1] or 0) + float(match[2])
    done = term.wait_for(r"EXIT=\d")
    took = time.monotonic() - seen
    _keep("completed-80-columns.txt", done)
    assert "EXIT=0" in done and "fntree completed" in done
    assert "146 / 146 jobs done" in done
    assert table(done)["all"]["done"] == 146
    # Loose on purpose: the machine is shared, so the pace changes under the estimate.
    assert promised / 3 - 2 <= took <= 3 * promised + 5, (promised, took)


def _status(store: Path) -> dict[str, object]:
    try:
        return describe(JobStore.open(store))
    except FntreeError:  # not made yet
        return {"jobs": {"done": 0}}


def test_counts_after_a_sigkill_and_a_restart(tmp_path: Path,
                                              terminals: list[Terminal]) -> None:
    """After the leader is SIGKILLed, the restarted display shows from its first frame the
    jobs done before, the whole known total and the ready ones, as `fntree status` does."""
    store = tmp_path / "store"
    first = Terminal(_fntree("run", WORDS, "80", "0.5", "--jobstore", "store", "--max-cpus",
                             "2"), tmp_path)
    terminals.append(first)
    deadline = time.monotonic() + 300
    while _status(store)["jobs"]["done"] < 20:  # type: ignore[index]
        assert time.monotonic() < deadline, first.screen()
        time.sleep(0.2)
    pid = int(store.joinpath("leader.lock").read_text().split()[1])
    os.kill(pid, signal.SIGKILL)
    first.wait_for(r"EXIT=137")
    after = describe(JobStore.open(store))
    done = after["jobs"]["done"]
    assert after["state"] == "stopped" and after["jobs"]["ready"] == 81 - done
    assert after["jobs"]["waiting"] == 1  # the follow-on adding them up
    status = Terminal(_fntree("status", "store"), tmp_path)
    terminals.append(status)
    said = status.wait_for(r"EXIT=\d")
    _keep("status-after-kill.txt", said)
    assert (f"jobs       1 waiting, {81 - done} ready, 0 queued, 0 running, {done} done, "
            "0 cached, 0 failed") in said
    second = Terminal(_fntree("restart", "store"), tmp_path)
    terminals.append(second)
    frame = second.wait_for(r"leader 2(?s:.*)\nall ")
    _keep("restart-first-frame.txt", frame)
    shown = table(frame)["all"]
    assert sum(shown.get(k, 0) for k in ("waiting", "ready", "queued", "running", "done",
                                         "failed")) == 82
    assert shown["done"] >= done and re.search(r"\b82 jobs done|/ 82 jobs done", frame)
    end = second.wait_for(r"EXIT=\d")
    _keep("restart-completed.txt", end)
    assert "EXIT=0" in end and "82 / 82 jobs done" in end and "leader 2" in end


def test_queued_in_slurm_then_running(tmp_path: Path, terminals: list[Terminal]) -> None:
    """On Slurm an issued job is queued until its packet's batch job starts; then one job
    per started packet is running, so never more than the batch jobs allowed at once."""
    from test_slurm import _slurm_missing

    reason = _slurm_missing()
    if reason is not None:
        pytest.skip(f"no Slurm reachable: {reason}")
    term = Terminal(_fntree("run", WORDS, "24", "3", "4", "--jobstore", "store",
                            "--batch-system", "slurm", "--max-jobs", "4"), tmp_path)
    terminals.append(term)
    frames: list[dict[str, int]] = []
    kept = False
    deadline = time.monotonic() + 600
    while not re.search(r"EXIT=\d", screen := term.screen()):
        assert time.monotonic() < deadline, screen
        if re.search(r"\nall ", screen):
            frames.append(table(screen)["all"])
            if frames[-1]["queued"] and frames[-1]["running"] and not kept:
                _keep("slurm-queued-running.txt", screen)
                kept = True
        time.sleep(0.5)
    assert "EXIT=0" in screen and "26 / 26 jobs done" in screen
    assert all(frame["running"] <= 4 for frame in frames), frames
    assert any(frame["queued"] and frame["running"] for frame in frames), frames
    assert any(frame["queued"] and not frame["running"] for frame in frames), frames
