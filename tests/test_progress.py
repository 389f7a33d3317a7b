"""The live display: counts from real runs, failures as they happen, plain lines off a terminal."""

from __future__ import annotations

import io
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import ux_workflows as ux
from rich.console import Console

import fntree
from fntree.batch.base import Res
from fntree.cli.status import describe
from fntree.errors import FntreeError
from fntree.progress import LiveProgress, RunView, render
from fntree.runtime.events import Failure
from fntree.runtime.records import O_SPAWN, O_VALUE, Result, Spec, Task
from fntree.runtime.snapshot import STATES, LiveChain, Snapshot, snapshot
from fntree.runtime.store import JobStore

TESTS = Path(__file__).parent
RES = Res(None, None, 1.0, None)


def _console() -> Console:
    return Console(file=io.StringIO(), force_terminal=True, width=120, record=True)


def _text(view: RunView, width: int = 120) -> str:
    console = Console(file=io.StringIO(), width=width, record=True)
    console.print(render(view, width=width))
    return console.export_text()


def test_display_counts_a_real_run(store: Path) -> None:
    """After a run, every target's jobs are done, none queued or running, messages kept."""
    view = LiveProgress(_console())
    assert fntree.run(ux.spread(12), jobstore=store, observers=[view]) == sum(
        i * i for i in range(12))
    counts = {name: (c.left(), c.done, c.failed, c.retried) for name, c in view.targets.items()}
    assert counts == {"spread": (0, 1, 0, 0), "work": (0, 12, 0, 0), "add_up": (0, 1, 0, 0)}
    assert not view.jobs and not view.chains and not view.issued_in and not view.packets
    assert any("working on" in m for m in view.messages)
    text = _text(view)
    assert "fntree completed" in text and "14 / 14 jobs done" in text
    assert "so far" not in text  # the total is final once the run ended


def test_failure_shown_with_log_tail_and_debug_command(tmp_path: Path) -> None:
    """A failed job appears at once with its message, log tail and the debug-job command."""
    store = tmp_path / "store"
    shown: list[str] = []

    class Watching(LiveProgress):
        def failed(self, failure: Failure) -> None:
            super().failed(failure)
            # what the next refresh draws, wide enough for the command on one line whatever
            # the length of the test's temporary path
            shown.append(_text(self, width=300))

    view = Watching(_console())
    with pytest.raises(fntree.WorkflowFailed) as caught:
        fntree.run(ux.founder(str(tmp_path / "flag")), jobstore=store, retry_count=1,
                   observers=[view])
    job = caught.value.failed[0].job_id
    assert len(shown) == 2
    assert "failed on attempt 1, will be retried" in shown[0]
    assert "failed on attempt 2, no retries left" in shown[1]
    assert "ValueError: no flag at" in shown[1]
    assert "picky got value=41" in shown[1]  # the log's tail
    assert f"debug it: fntree debug-job {store} {job}" in shown[1]
    picky = view.targets["picky"]
    assert (picky.left(), picky.failed, picky.retried) == (0, 1, 1)


def _spec(job: int, name: str, deps: tuple[Spec, ...] = ()) -> Spec:
    return Spec(job, name, b"k", b"", RES, (), deps)


def _task(job: int, name: str) -> Task:
    return Task(job, 1, name, b"k", b"", (), job, RES)


def _result(job: int, outcome: tuple[object, ...], start: float, wall: float,
            chained: bool = False) -> Result:
    return Result(job, 1, True, outcome, "", {}, None, False, (start, wall, wall, 1000), (),
                  chained)


def _states(view: RunView) -> dict[str, tuple[int, ...]]:
    """(waiting, ready, queued, running, done) of each target."""
    return {name: (c.waiting, c.ready, c.queued, c.running, c.done)
            for name, c in view.targets.items()}


def test_jobs_move_through_the_states_as_the_leader_has_them() -> None:
    """Children are ready or waiting for their deps; a follow-on waits until its children
    close; an issued packet runs one job at a time, the others queued behind it."""
    view = RunView()
    view.started("store", 1, Snapshot({"root": dict.fromkeys(STATES, 0) | {"ready": 1}},
                                      (LiveChain(1, None, 0, 1, "root", "ready"),)))
    view.issued([_task(1, "root")])
    assert _states(view) == {"root": (0, 0, 0, 1, 0)}
    children = (_spec(2, "leaf"), _spec(3, "leaf", deps=(_spec(4, "dep"),)))
    view.completed("root", _result(1, (O_SPAWN, children, _spec(5, "sum")), 0.0, 0.1))
    assert _states(view) == {"root": (0, 0, 0, 0, 1), "leaf": (1, 1, 0, 0, 0),
                             "dep": (0, 1, 0, 0, 0), "sum": (1, 0, 0, 0, 0)}
    view.issued([_task(2, "leaf"), _task(4, "dep")])
    assert view.targets["leaf"].running == 1 and view.targets["dep"].queued == 1
    view.issued([_task(4, "dep")])  # requeued by the leader (its worker died): counted once
    assert view.targets["dep"].running == 1 and view.targets["dep"].queued == 0
    now = time.time()
    view.completed("leaf", _result(2, (O_VALUE, b""), now - 1.0, 0.5))
    view.completed("dep", _result(4, (O_VALUE, b""), now, 0.0))
    assert _states(view)["leaf"] == (0, 1, 0, 0, 1)  # its dep closed: ready
    assert _states(view)["sum"] == (1, 0, 0, 0, 0)  # one child still open
    view.issued([_task(3, "leaf")])
    view.completed("leaf", _result(3, (O_VALUE, b""), now, 0.0))
    assert _states(view)["sum"] == (0, 1, 0, 0, 0)
    view.completed("sum", _result(5, (O_VALUE, b""), now, 0.0, chained=True))
    total = view.totals()
    assert (total.left(), total.done, total.known()) == (0, 5, 5)
    assert not view.packets and not view.jobs and not view.chains


def test_restart_counts_come_from_the_snapshot(tmp_path: Path) -> None:
    """After a leader is killed, the next one's display starts from the store's state:
    jobs done before, the ready ones, and the waiting follow-on, which the model then
    follows to the end."""
    store = JobStore.open(_killed_midway(tmp_path))
    state, _, _ = store.recover(repair=False)
    state.running.clear()  # what the restarting leader's EPOCH does
    shot = snapshot(state)
    view = RunView()
    view.started(str(store.paths.root), 2, shot)
    work = view.targets["work"]
    assert work.done >= 3 and work.done + work.ready == 12
    assert _states(view)["add_up"] == (1, 0, 0, 0, 0)
    assert view.totals().known() == 14
    ready = [c for c in shot.chains if c.name == "work" and c.state == "ready"]
    for c in ready:
        view.issued([_task(c.chain_id, "work")])
        view.completed("work", _result(c.chain_id, (O_VALUE, b""), time.time(), 0.0))
    assert _states(view)["add_up"] == (0, 1, 0, 0, 0)  # its last child closed
    assert view.totals().done == 13


def _killed_midway(tmp_path: Path) -> Path:
    """A store of `spread(12, 1.0)` whose leader was SIGKILLed after some jobs completed."""
    store = tmp_path / "store"
    proc = subprocess.Popen([sys.executable, "-m", "fntree", "run",
                             f"{TESTS / 'ux_workflows.py'}:spread", "12", "1.0", "--jobstore",
                             str(store), "--no-progress", "--max-cpus", "1"], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if store.exists() and fntree_status(store)["jobs"]["done"] >= 4:
            break
        time.sleep(0.2)
    proc.kill()
    proc.wait()
    return store


def fntree_status(store: Path) -> dict[str, Any]:
    """What `fntree status --json` says, or no job done while the store is being made."""
    try:
        return describe(JobStore.open(store))
    except FntreeError:
        return {"jobs": {"done": 0}}


def test_queued_in_the_scheduler_until_its_packet_starts() -> None:
    """On a batch system that says when a packet starts, issued jobs are queued until then."""
    view = RunView()
    view.started("store", 1, Snapshot({}, (), reports_start=True))
    view.issued([_task(1, "a"), _task(2, "a")])
    assert _states(view)["a"] == (0, 0, 2, 0, 0)
    assert view.longest(time.time()) == []
    view.packet_started([_task(1, "a"), _task(2, "a")])
    assert _states(view)["a"] == (0, 0, 1, 1, 0)
    view.completed("a", _result(1, (O_VALUE, b""), time.time(), 0.1))
    assert _states(view)["a"] == (0, 0, 0, 1, 1)


def test_eta_only_once_enough_jobs_are_timed() -> None:
    """No ETA before each target with jobs ready has 5 timed jobs and 10 s have passed;
    then the work left over the work done per second; untimed waiting jobs said apart."""
    now = [1000.0]
    view = RunView(clock=lambda: now[0])
    counts = dict.fromkeys(STATES, 0)
    view.started("store", 1, Snapshot({"a": counts | {"ready": 24}, "sum": counts | {
        "waiting": 1}}, tuple(LiveChain(k, None, 0, k, "a", "ready") for k in range(24))))
    for k in range(4):
        now[0] += 2.5
        view.issued([_task(k, "a")])
        view.completed("a", _result(k, (O_VALUE, b""), now[0] - 2.0, 2.0))
    assert view.eta(now[0]) is None  # 4 timed jobs: not enough
    view.issued([_task(4, "a")])
    view.completed("a", _result(4, (O_VALUE, b""), now[0] - 2.0, 2.0))
    assert now[0] - view.started_at == 10.0
    # 19 jobs of 2 s left; 10 s of work done in 10 s: 1 job-second per second
    assert view.eta(now[0]) == (38.0, 1)
    text = _text(view, 80)
    assert "about 38.0s left (+1 job not yet timed)" in text


def test_fits_80_columns_and_collapses_many_targets() -> None:
    """With 12 targets at 80 columns no line is longer than the terminal, the busiest
    targets keep a row and a bar, and the rest share one "N others" row."""
    view = RunView()
    names = [f"target_with_a_rather_long_name_{k}" for k in range(12)]
    view.started("store", 1, Snapshot({n: dict.fromkeys(STATES, 0) | {"ready": 10 + k,
                                                                        "done": 100}
                                       for k, n in enumerate(names)}))
    text = _text(view, 80)
    lines = text.splitlines()
    assert all(len(line) <= 80 for line in lines), text
    rows = [line for line in lines if line.startswith("target_with")]
    assert len(rows) == 7 and all("━" in row for row in rows)
    assert any(line.startswith("5 others") for line in lines)
    assert "1,200 / 1,386 jobs done (total so far)" in text
    assert any(line.startswith("all ") and " 186 " in line for line in lines)


def test_longest_running_job_of_each_packet() -> None:
    """A packet's running job is its first unfinished task, timed from its predecessor's end."""
    now = [1000.0]
    view = RunView(clock=lambda: now[0])
    view.started("store", 1, Snapshot({}))
    view.issued([_task(1, "a"), _task(2, "b")])
    now[0] = 1002.0
    view.issued([_task(3, "c")])
    view.completed("a", _result(1, (O_VALUE, b""), 1000.5, 4.0))  # b starts at 1004.5
    assert [(task.name, elapsed) for task, elapsed in view.longest(1010.0)] == [
        ("c", 8.0), ("b", 5.5)]
    view.completed("b", _result(2, (O_VALUE, b""), 1004.5, 1.0))
    assert [task.name for task, _ in view.longest(1010.0)] == ["c"]
    assert "running longest" in _text(view) and "c " in _text(view)


def test_refreshes_on_its_own_clock_not_per_event(store: Path) -> None:
    """The display is drawn a few times a second, however many jobs complete."""
    drawn = []

    class Counting(LiveProgress):
        def __rich_console__(self, console, options):  # type: ignore[no-untyped-def]
            drawn.append(time.monotonic())
            return super().__rich_console__(console, options)

    view = Counting(_console(), refresh_per_second=4)
    started = time.monotonic()
    fntree.run(ux.spread(1500), jobstore=store, observers=[view])
    elapsed = time.monotonic() - started
    assert view.targets["work"].done == 1500
    assert len(drawn) <= 4 * elapsed + 3


def _fntree(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fntree", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=120)


def test_plain_lines_when_not_a_terminal_and_none_with_no_progress(tmp_path: Path) -> None:
    """Off a terminal the CLI prints progress lines; --no-progress prints none."""
    script = f"{TESTS / 'ux_workflows.py'}:spread"
    out = _fntree("run", script, "5", "--jobstore", str(tmp_path / "a"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "30"
    assert f"[fntree] leader 1 started on {tmp_path / 'a'}" in out.stderr
    assert "[fntree] completed after" in out.stderr and "7/7 jobs done" in out.stderr
    assert "\x1b[" not in out.stderr
    quiet = _fntree("run", script, "5", "--jobstore", str(tmp_path / "b"), "--no-progress",
                    cwd=tmp_path)
    assert quiet.returncode == 0 and quiet.stdout.strip() == "30"
    assert "[fntree] leader" not in quiet.stderr and "jobs done" not in quiet.stderr


def test_live_display_in_a_terminal(tmp_path: Path) -> None:
    """On a terminal `fntree run` draws the live table in place."""
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "fntree", "run", f"{TESTS / 'ux_workflows.py'}:spread", "30",
         "0.05", "--jobstore", str(tmp_path / "store")], cwd=tmp_path,
        stdin=secondary, stdout=secondary, stderr=secondary,
        env={**os.environ, "COLUMNS": "110", "LINES": "40", "TERM": "xterm-256color"})
    os.close(secondary)
    chunks = []
    while True:
        ready, _, _ = select.select([primary], [], [], 60)
        assert ready, "the run produced no output for a minute"
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # the terminal closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    assert proc.wait(timeout=60) == 0
    os.close(primary)
    raw = b"".join(chunks).decode(errors="replace")
    assert "\x1b[" in raw  # drawn with terminal controls, in place
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", raw)
    assert "fntree running" in screen and "(total so far)" in screen  # while it ran
    assert "fntree completed" in screen and "32 / 32 jobs done" in screen
    assert re.search(r"work +0 +0 +0 +0 +30 +0", screen)
    assert "running longest" in screen
    # the targets' messages (which come last depends on the issuing order: newest first)
    assert re.search(r"work [0-9a-f]{8}: working on \d+", screen), screen[-2000:]
    assert screen.rstrip().endswith("8555")  # the value, printed after the display


def _failure(job: int, permanent: bool) -> Failure:
    return Failure("merge", f"{job:016x}", 1, permanent, f"boom {job}", "tail line", None)


def test_a_failure_for_good_stays_and_a_retried_one_goes_at_the_end() -> None:
    """A later retry does not hide a job failed for good; one a retry made good goes at the end."""
    view = RunView()
    view.started("DIR", 1, Snapshot({}))
    view.issued([_task(7, "merge"), _task(8, "merge")])
    view.failed(_failure(7, permanent=False))
    assert "boom 7" in _text(view)
    view.failed(_failure(8, permanent=True))
    view.failed(_failure(7, permanent=False))
    text = _text(view)
    assert "boom 8" in text and "boom 7" not in text
    assert f"debug it: fntree debug-job DIR {8:016x}" in text
    retried = RunView()
    retried.started("DIR", 1, Snapshot({}))
    retried.issued([_task(7, "merge")])
    retried.failed(_failure(7, permanent=False))
    retried.issued([Task(7, 2, "merge", b"k", b"", (), 7, RES)])
    retried.completed("merge", _result(7, (O_VALUE, b""), time.time(), 0.1))
    retried.finished(True)
    assert "boom" not in _text(retried) and "fntree completed" in _text(retried)
