"""Live logs: messages and output leave a running job's worker while it runs (local)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import live_workflows as lw
import pytest
import ux_workflows as ux

import fntree
from fntree.private import make_private_dir, open_private
from fntree.runtime.context import MESSAGE_LIMIT
from fntree.runtime.events import Observer
from fntree.runtime.paths import StorePaths
from fntree.runtime.records import Result
from fntree.runtime.worker import LOG_LIMIT


class Seen(Observer):
    """Records messages and completions in order; opens `gate` at the first message."""

    def __init__(self, gate: Path | None = None) -> None:
        self.gate = gate
        self.events: list[tuple[str, str]] = []

    def message(self, name: str, job_id: str, text: str) -> None:
        self.events.append(("message", text))
        if self.gate is not None:
            self.gate.touch()

    def completed(self, name: str, result: Result) -> None:
        self.events.append(("completed", name))


def test_messages_reach_an_observer_before_the_job_completes(tmp_path: Path) -> None:
    """A job's first message reaches observers while it runs: the observer itself lets it end."""
    seen = Seen(tmp_path / "gate")
    assert fntree.run(lw.talker(str(tmp_path / "gate")), jobstore=tmp_path / "store",
                      observers=[seen]) == "done"
    assert seen.events == [("message", "first message"), ("message", "last message"),
                           ("completed", "talker")]


def test_logs_follow_shows_a_running_jobs_output_as_it_comes(tmp_path: Path) -> None:
    """`fntree logs -f DIR JOB` prints the first message before the job ends, then ends with it."""
    lw.follow_a_running_job(tmp_path, "local", timeout=120)


def test_logs_follow_without_job_shows_the_runs_messages(tmp_path: Path) -> None:
    """`fntree logs -f DIR` prints running jobs' messages as they come, and ends with the run."""
    store, gate = tmp_path / "store", tmp_path / "gate"
    leader = lw.start_leader(store, f"lw.talker({str(gate)!r})")
    try:
        lw.wait_for(lambda: (store / "leader.lock").exists() and (store / "events.log").exists(),
                    120, "the leader's event log")
        follower = lw.Follower(str(store))
        follower.wait_for(b"talker 00000000: first message", timeout=60)
        assert leader.poll() is None
        gate.touch()
        code, out = follower.end(timeout=120)
        assert code == 0 and out.count(b": first message") == 1, out
        assert leader.wait(timeout=120) == 0
    finally:
        gate.touch()
        if leader.poll() is None:
            leader.kill()
            leader.wait()


def test_a_flood_of_output_and_messages_is_bounded(tmp_path: Path) -> None:
    """A job printing 8 MiB and logging 5000 messages: the live copy stops at the log limit
    and says so (as does `fntree logs -f` on it), MESSAGE_LIMIT messages and two notes reach
    the leader, and the kept log has them all."""
    store, gate = tmp_path / "store", tmp_path / "gate"
    paths = StorePaths(store)
    cut = b"[... fntree: the live copy stops at"
    found: list[Path] = []
    followers: list[lw.Follower] = []

    def cut_file() -> bool:
        found[:] = [p for p in paths.live_dir.glob("*.log") if cut in p.read_bytes()]
        return bool(found)

    def open_gate_once_cut() -> None:
        lw.wait_for(lambda: paths.live_dir.is_dir() and cut_file(), 120, "the live cut")
        assert found[0].stat().st_size < LOG_LIMIT + 1000
        followers.append(lw.Follower(str(store), found[0].stem))
        followers[0].wait_for(b"the live copy stops at", timeout=60)
        gate.touch()

    opener = threading.Thread(target=open_gate_once_cut, daemon=True)
    opener.start()
    seen = Seen()
    try:
        assert fntree.run(lw.floods(8, 5000, str(gate)), jobstore=store,
                          observers=[seen]) == 8
    finally:
        gate.touch()
    opener.join(timeout=10)
    assert found, "the live copy was never cut"
    texts = [text for kind, text in seen.events if kind == "message"]
    assert texts[:MESSAGE_LIMIT] == [f"message {i}" for i in range(MESSAGE_LIMIT)]
    notes = texts[MESSAGE_LIMIT:]
    assert len(notes) == 2, notes
    assert notes[0].startswith(f"[fntree: this job logged more than {MESSAGE_LIMIT} messages")
    assert notes[1] == "[fntree: 4000 message(s) of this job were not passed on]"
    assert not found[0].exists()
    code, out = followers[0].end(timeout=60)  # it ended with the job, pointing to the kept log
    assert code == 0 and len(out) < LOG_LIMIT + 1000
    assert out.endswith(b"shows its kept log]\n"), out[-300:]
    kept = paths.log(int(found[0].stem, 16)).read_bytes()
    assert b"[fntree] message 4999" in kept and b"bytes cut by fntree: log limit" in kept


def test_short_jobs_pass_each_message_once_and_make_no_live_file(tmp_path: Path) -> None:
    """Jobs shorter than a look at them send their messages with their results, once each."""
    seen = Seen()
    assert fntree.run(ux.spread(40), jobstore=tmp_path / "store", observers=[seen]) == sum(
        i * i for i in range(40))
    texts = sorted(text for kind, text in seen.events if kind == "message")
    assert texts == sorted(f"working on {i}" for i in range(40))
    live = StorePaths(tmp_path / "store").live_dir
    assert not live.exists() or not any(live.iterdir())


def test_a_new_leader_clears_live_files_left_behind(tmp_path: Path) -> None:
    """Live files of an earlier leader's jobs are removed before a new leader's first job."""
    store, flag = tmp_path / "store", tmp_path / "flag"
    ux.failed_run(store, flag)
    paths = StorePaths(store)
    make_private_dir(paths.live_dir)
    stale = paths.live(99)
    with open(open_private(stale, os.O_WRONLY), "wb") as f:
        f.write(b"=== stale 0000000000000063 attempt 1 ===\n")
    flag.touch()
    fntree.restart(store)
    assert not stale.exists()


def test_logs_follow_after_the_run_prints_what_was_kept(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """With no leader running, `logs -f DIR JOB` prints the kept log and `logs -f DIR` the
    last messages, and both end at once."""
    store = tmp_path / "store"
    ux.failed_run(store, tmp_path / "flag")
    work = next(p for p in sorted((store / "logs").glob("*/*.log"))
                if "=== work " in p.read_text())
    code, out, _ = ux.cli("logs", "-f", str(store), work.stem, capsys=capsys)
    assert code == 0 and f"=== work {work.stem} attempt 1 ===" in out
    code, out, _ = ux.cli("logs", "-f", str(store), capsys=capsys)
    assert code == 0 and f"work {work.stem[:8]}: working on" in out
    assert f"no leader is running {store}" in out


def test_logs_follow_takes_its_flag_after_the_store(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """`fntree logs DIR -f JOB` (the flag between the positionals) follows JOB as `-f DIR JOB`
    does, and an extra positional is still refused."""
    store = tmp_path / "store"
    ux.failed_run(store, tmp_path / "flag")
    work = next(p for p in sorted((store / "logs").glob("*/*.log"))
                if "=== work " in p.read_text())
    for argv in (("logs", str(store), "-f", work.stem), ("logs", str(store), work.stem, "-f")):
        code, out, _ = ux.cli(*argv, capsys=capsys)
        assert code == 0 and f"=== work {work.stem} attempt 1 ===" in out, argv
    with pytest.raises(SystemExit):
        ux.cli("logs", str(store), "-f", work.stem, "extra", capsys=capsys)
