"""The event log in parts attacked from outside: rotation under a follower, damaged parts,
leftovers of a leader killed mid-rotation."""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from processes import kill_run, wait_for, worker_pids

from fntree.runtime.check import ERROR, check
from fntree.runtime.eventparts import read_events
from fntree.runtime.paths import StorePaths

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


def _fntree(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fntree", *args], capture_output=True,
                          text=True, timeout=300, env=_env())


N = 40


@pytest.fixture(scope="module")
def rotated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store whose leader was SIGKILLed after its event log rotated into a part, its jobs
    waiting for `DIR/../go`."""
    base = tmp_path_factory.mktemp("rotated")
    store = base / "store"
    code = ("import fntree, attack_workflows as aw\n"
            f"fntree.run(aw.say_all({N}, {str(base / 'go')!r}), jobstore={str(store)!r})\n")
    leader = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, env=_env(FNTREE_EVENT_PART_BYTES="500"))
    try:
        wait_for(lambda: len(list(store.glob("events.*.log.gz"))) >= 1, timeout=120)
        wait_for(lambda: len(worker_pids(store)) >= 1, timeout=120)
    finally:
        kill_run(leader, store)
    return store


def _copy(rotated: Path, tmp_path: Path) -> Path:
    store = tmp_path / "store"
    shutil.copytree(rotated, store, symlinks=True)
    return store


def _done_per_target(store: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for event in read_events(StorePaths(store)):
        if event["ev"] == "done":
            counts[event["name"]] = counts.get(event["name"], 0) + 1
    return counts


def test_a_leader_killed_mid_rotation_leaves_nothing_counted_twice(rotated: Path,
                                                                   tmp_path: Path) -> None:
    """What a leader killed while archiving leaves (a half-written part, a log already whole in
    its part) is noted by `fntree check`, never counted twice by `fntree stats`, and removed by
    the next leader (the log was read twice, and the temporary part stayed for ever)."""
    store = _copy(rotated, tmp_path)
    paths = StorePaths(store)
    newest = paths.event_parts()[-1]
    number = int(newest.name.split(".")[1])
    with gzip.open(newest, "rb") as f:
        paths.event_log().write_bytes(f.read())  # killed between the rename and the unlink
    temp = store / f".events.{number + 1}.log.gz.4242.tmp"
    temp.write_bytes(newest.read_bytes()[:20])  # killed while writing the next part
    notes = [f.text for f in check(store)]
    assert any("half-written" in n for n in notes) and any("archived whole" in n for n in notes)
    assert not [f for f in check(store) if f.level == ERROR]
    before = list(read_events(paths))
    assert len(before) == len({json.dumps(e, sort_keys=True) for e in before})
    (rotated.parent / "go").touch()  # the path its jobs wait for
    code = f"import fntree\nprint(fntree.restart({str(store)!r}))\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, env=_env())
    assert done.stdout.strip() == str(sum(range(N))), done.stderr
    assert not temp.exists() and not paths.event_part_temps()
    assert _done_per_target(store) == {"say_all": 1, "say_when": N, "sum_of": 1}
    stats = _fntree("stats", str(store))
    assert f"{N + 2} jobs done" in stats.stdout, stats.stdout + stats.stderr


@pytest.fixture(scope="module")
def parts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A completed store whose event log was archived into at least three parts."""
    store = tmp_path_factory.mktemp("parts") / "store"
    code = ("import fntree, attack_workflows as aw\n"
            f"print(fntree.run(aw.say_all({N}, ''), jobstore={str(store)!r}))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, env=_env(FNTREE_EVENT_PART_BYTES="300"))
    assert done.stdout.strip() == str(sum(range(N))), done.stderr
    assert len(StorePaths(store).event_parts()) >= 3
    assert not [f for f in check(store) if f.level == ERROR]
    return store


def _flip(part: Path) -> None:
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0xFF
    part.write_bytes(bytes(data))


def _swap(store: Path) -> None:
    a, b = store / "events.1.log.gz", store / "events.2.log.gz"
    data = a.read_bytes()
    a.write_bytes(b.read_bytes())
    b.write_bytes(data)


DAMAGES = {
    "truncated": (lambda s: os.truncate(s / "events.2.log.gz", 40), "events.2.log.gz is cut"),
    "flipped": (lambda s: _flip(s / "events.2.log.gz"), "events.2.log.gz is cut short or damaged"),
    "deleted": (lambda s: (s / "events.2.log.gz").unlink(), "part(s) 2 are missing"),
    "swapped": (_swap, "events.1.log.gz does not follow"),
    "added": (lambda s: shutil.copy(s / "events.1.log.gz", StorePaths(s).event_part(
        len(StorePaths(s).event_parts()) + 1)), "log.gz does not follow"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_a_damaged_missing_or_foreign_part_is_named_never_counted_silently(
        parts: Path, tmp_path: Path, damage: str) -> None:
    """A part cut, flipped, deleted, swapped with another, or added after the last is an error
    for `fntree check` and a note beside the figures of `stats` and `timeline` (they showed
    fewer or more jobs, silently, and check called the store sound)."""
    store = _copy(parts, tmp_path)
    harm, said = DAMAGES[damage]
    harm(store)
    errors = [f.text for f in check(store) if f.level == ERROR]
    assert any(said in e for e in errors), errors
    for command in (("stats",), ("timeline", "-o", str(tmp_path / "t.html"))):
        out = _fntree(command[0], str(store), *command[1:])
        assert out.returncode == 0 and said in out.stdout + out.stderr, out.stderr
        assert "Traceback" not in out.stderr


def test_following_a_finished_run_shows_its_last_messages_from_the_parts(parts: Path) -> None:
    """`fntree logs -f DIR` of a finished run whose log was archived into parts prints its last
    messages, then that no leader runs (it printed none: it read only events.log)."""
    out = _fntree("logs", "-f", str(parts))
    assert out.returncode == 0, out.stderr
    said = re.findall(r"said (\d+)", out.stdout)
    assert len(said) == 10 and len(set(said)) == 10, out.stdout
    assert "no leader is running" in out.stdout


@pytest.mark.parametrize("knob", ["FNTREE_EVENT_PART_BYTES", "FNTREE_COMPACT_BYTES",
                                  "FNTREE_COMPACT_RATIO"])
def test_a_bad_value_of_a_size_knob_is_named_never_a_traceback(tmp_path: Path,
                                                               knob: str) -> None:
    """A run with FNTREE_EVENT_PART_BYTES (or FNTREE_COMPACT_BYTES) set to a word names the
    variable and goes on with the default (it ended in a ValueError traceback)."""
    code = ("import fntree, attack_workflows as aw\n"
            f"print(fntree.run(aw.say_all(3, ''), jobstore={str(tmp_path / 'store')!r}))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, env=_env(**{knob: "abc"}))
    assert done.stdout.strip() == "3" and "Traceback" not in done.stderr, done.stderr
    assert knob in done.stderr


@pytest.mark.parametrize("where", ["events.log", "events.2.log.gz"])
def test_a_fifo_in_place_of_the_event_log_or_a_part_is_named_never_waited_on(
        parts: Path, tmp_path: Path, where: str) -> None:
    """A FIFO put where the event log or a part belongs makes `stats`, `check` and `logs -f`
    say so and end (they waited on it for ever)."""
    store = _copy(parts, tmp_path)
    (store / where).unlink(missing_ok=True)
    os.mkfifo(store / where)
    for command in ("stats", "check", "logs -f"):
        out = _fntree(*command.split(), str(store))  # a hang is a TimeoutExpired
        if command != "logs -f" or where == "events.log":  # it reads the newest part alone
            assert "not a regular file" in out.stdout + out.stderr, (command, out.stderr)
        assert "Traceback" not in out.stderr


def test_stats_skips_an_event_whose_time_a_damaged_part_turned_to_text() -> None:
    """An event line that parses but whose time is not a number (a flipped bit in a part can
    make one) is skipped by stats, never an internal error."""
    from fntree.cli.stats import RunStats
    stats = RunStats(None).add([{"t": 1.0, "ev": "leader", "cores": 2},
                                {"t": "said 0024", "ev": "done"}])
    assert len(stats.leaders) == 1
