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

import pytest
import ux_workflows as ux
from rich.console import Console

import fntree
from fntree.batch.base import Res
from fntree.progress import LiveProgress, RunView, render
from fntree.runtime.events import Failure
from fntree.runtime.records import O_SPAWN, O_VALUE, Result, Spec, Task

TESTS = Path(__file__).parent
RES = Res(None, None, 1.0, None)


def _console() -> Console:
    return Console(file=io.StringIO(), force_terminal=True, width=120, record=True)


def _text(view: RunView) -> str:
    console = Console(file=io.StringIO(), width=120, record=True)
    console.print(render(view))
    return console.export_text()


def test_display_counts_a_real_run(store: Path) -> None:
    """After a run, every target's jobs are done, none queued or running, messages kept."""
    view = LiveProgress(_console())
    assert fntree.run(ux.spread(12), jobstore=store, observers=[view]) == sum(
        i * i for i in range(12))
    counts = {name: (c.queued, c.running, c.done, c.failed, c.retried)
              for name, c in view.targets.items()}
    assert counts == {"spread": (0, 0, 1, 0, 0), "work": (0, 0, 12, 0, 0),
                      "add_up": (0, 0, 1, 0, 0)}
    assert not view.pending and not view.running and not view.packets
    assert any("working on" in m for m in view.messages)
    text = _text(view)
    assert "fntree completed" in text and "14 / 14 jobs done" in text
    assert "known so far" not in text  # the total is final once the run ended


def test_failure_shown_with_log_tail_and_debug_command(tmp_path: Path) -> None:
    """A failed job appears at once with its message, log tail and the debug-job command."""
    store = tmp_path / "store"
    shown: list[str] = []

    class Watching(LiveProgress):
        def failed(self, failure: Failure) -> None:
            super().failed(failure)
            shown.append(_text(self))  # what the next refresh draws

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
    assert (picky.queued, picky.running, picky.failed, picky.retried) == (0, 0, 1, 1)


def _spec(job: int, name: str, deps: tuple[Spec, ...] = ()) -> Spec:
    return Spec(job, name, b"k", b"", RES, (), deps)


def _task(job: int, name: str) -> Task:
    return Task(job, 1, name, b"k", b"", (), job, RES)


def _result(job: int, outcome: tuple[object, ...], start: float, wall: float,
            chained: bool = False) -> Result:
    return Result(job, 1, True, outcome, "", {}, None, False, (start, wall, wall, 1000), (),
                  chained)


def test_total_grows_as_jobs_spawn_children() -> None:
    """Spawned jobs are queued until issued; the known total grows with each spawn."""
    view = RunView()
    view.started("store", 1, 0, 1)
    view.issued([_task(1, "root")])
    assert view.totals().known() == 1
    children = (_spec(2, "leaf"), _spec(3, "leaf", deps=(_spec(4, "dep"),)))
    view.completed("root", _result(1, (O_SPAWN, children, _spec(5, "sum")), 0.0, 0.1))
    total = view.totals()
    assert (total.queued, total.running, total.done, total.known()) == (4, 0, 1, 5)
    view.issued([_task(2, "leaf"), _task(4, "dep")])
    view.issued([_task(4, "dep")])  # requeued by the leader (its worker died): counted once
    assert view.targets["dep"].running == 1 and view.targets["leaf"].queued == 1
    now = time.time()
    view.completed("leaf", _result(2, (O_VALUE, b""), now - 1.0, 0.5))
    view.completed("dep", _result(4, (O_VALUE, b""), now, 0.0))
    view.issued([_task(3, "leaf")])
    view.completed("leaf", _result(3, (O_VALUE, b""), now, 0.0))
    view.completed("sum", _result(5, (O_VALUE, b""), now, 0.0, chained=True))
    total = view.totals()
    assert (total.queued, total.running, total.done, total.known()) == (0, 0, 5, 5)
    assert not view.packets and not view.pending


def test_longest_running_job_of_each_packet() -> None:
    """A packet's running job is its first unfinished task, timed from its predecessor's end."""
    now = [1000.0]
    view = RunView(clock=lambda: now[0])
    view.started("store", 1, 0, 1)
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
        def __rich__(self):  # type: ignore[no-untyped-def]
            drawn.append(time.monotonic())
            return super().__rich__()

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
    assert "fntree running" in screen and "known so far" in screen  # while it ran
    assert "fntree completed" in screen and "32 / 32 jobs done" in screen
    assert re.search(r"work +0 +0 +30 +0 +0", screen)
    assert "running longest" in screen
    assert "working on 29" in screen  # the targets' messages
    assert screen.rstrip().endswith("8555")  # the value, printed after the display


def _failure(job: int, permanent: bool) -> Failure:
    return Failure("merge", f"{job:016x}", 1, permanent, f"boom {job}", "tail line", None)


def test_a_failure_for_good_stays_and_a_retried_one_goes_at_the_end() -> None:
    """A later retry does not hide a job failed for good; one a retry made good goes at the end."""
    view = RunView()
    view.started("DIR", 1, 0, 1)
    view.issued([_task(7, "merge"), _task(8, "merge")])
    view.failed(_failure(7, permanent=False))
    assert "boom 7" in _text(view)
    view.failed(_failure(8, permanent=True))
    view.failed(_failure(7, permanent=False))
    text = _text(view)
    assert "boom 8" in text and "boom 7" not in text
    assert f"debug it: fntree debug-job DIR {8:016x}" in text
    retried = RunView()
    retried.started("DIR", 1, 0, 1)
    retried.issued([_task(7, "merge")])
    retried.failed(_failure(7, permanent=False))
    retried.issued([Task(7, 2, "merge", b"k", b"", (), 7, RES)])
    retried.completed("merge", _result(7, (O_VALUE, b""), time.time(), 0.1))
    retried.finished(True)
    assert "boom" not in _text(retried) and "fntree completed" in _text(retried)
