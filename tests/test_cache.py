"""The cache across runs: pure targets' values kept by code, arguments and file contents."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest
from processes import processes_mentioning, wait_for

from fntree.runtime.cache import Cache, decode_entry, job_key, prune, stats
from fntree.runtime.eventlog import read_events
from fntree.runtime.paths import StorePaths
from fntree.runtime.records import Collected

PIPELINE = textwrap.dedent("""
    import sys
    import time
    from pathlib import Path

    import fntree

    RECORD = Path(__file__).with_name("record")

    def note(text):
        with open(RECORD, "a") as f:
            f.write(text + "\\n")

    @fntree.target(cache=True)
    def leaf_a(i):
        note(f"leaf_a {i}")
        return i * 10

    @fntree.target(cache=True)
    def leaf_b(i: int):
        note(f"leaf_b {i}")
        time.sleep(0.05)
        return i + 1

    @fntree.target(cache=True)
    def combine(a, b):
        return sum(a) + sum(b)

    @fntree.target(cache=True)
    def main(n: int):
        a = [leaf_a(i) for i in range(n)]
        b = [leaf_b(i) for i in range(n)]
        return fntree.children(*a, *b).then(combine(a, b))

    @fntree.target(cache=True)
    def group(i: int):
        return fntree.children(leaf_a(i), leaf_b(i))

    @fntree.target(cache=True)
    def tail(i: int):
        return leaf_a(i)

    @fntree.target(cache=True)
    def groups(n: int):
        return fntree.children(*[group(i) for i in range(n)])

    @fntree.target
    def loose(n: int):
        return combine([leaf_a(i) for i in range(n)], [leaf_b(i) for i in range(n)])

    @fntree.target
    def slow(i):
        time.sleep(0.4)
        return -i

    @fntree.target
    def mixed(n: int, m: int):
        return [leaf_a(i) for i in range(n)] + [slow(i) for i in range(m)]

    @fntree.target(cache=True)
    def measure(where: Path) -> int:
        files = [where] if where.is_file() else sorted(p for p in where.rglob("*") if p.is_file())
        return sum(sum(p.read_bytes()) for p in files)

    if __name__ == "__main__":
        store, cache, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
        print(fntree.run(main(n), jobstore=store, cache=cache))
""")


def expected(n: int, scale: int = 10) -> int:
    return sum(i * scale for i in range(n)) + sum(i + 1 for i in range(n))


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "pipeline.py"
    path.write_text(PIPELINE)
    return path


def fntree_cli(*args: str, cwd: Path, env: dict[str, str] | None = None
               ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fntree", *args], capture_output=True,
                         text=True, cwd=cwd, timeout=180, env=env)


def run_cli(script: Path, store: Path, cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    out = fntree_cli("run", f"{script}:{args[0]}", *args[1:], "--jobstore", str(store),
                     "--cache", str(cache), "--no-progress", cwd=script.parent)
    assert out.returncode == 0, out.stderr
    return out


def ran(store: Path) -> Counter[str]:
    """Jobs that ran their body, by target (from the event log)."""
    return Counter(e["name"] for e in read_events(StorePaths(store))
                   if e.get("ev") == "done" and not e.get("cached"))


def cached(store: Path) -> Counter[str]:
    """Jobs whose value came from the cache, by target."""
    return Counter(e["name"] for e in read_events(StorePaths(store))
                   if e.get("ev") == "done" and e.get("cached"))


def entries_of(cache: Path, name: str) -> list[Path]:
    return [p for p in (cache / "v1").glob("*/*")
            if not p.name.startswith(".") and decode_entry(p.read_bytes(), load=False)[0] == name]


# -- end to end --------------------------------------------------------------------------
def test_second_run_of_unchanged_pipeline_runs_no_pure_job(script: Path, tmp_path: Path) -> None:
    """A second run of an unchanged pipeline takes every pure job's value from the cache."""
    cache = tmp_path / "cache"
    first = run_cli(script, tmp_path / "s1", cache, "loose", "4")
    assert first.stdout.strip() == str(expected(4))
    assert ran(tmp_path / "s1") == {"loose": 1, "leaf_a": 4, "leaf_b": 4, "combine": 1}
    second = run_cli(script, tmp_path / "s2", cache, "loose", "4")
    assert second.stdout.strip() == str(expected(4))
    assert ran(tmp_path / "s2") == {"loose": 1}  # the one target not declared pure
    assert cached(tmp_path / "s2") == {"leaf_a": 4, "leaf_b": 4, "combine": 1}
    status = json.loads(fntree_cli("status", str(tmp_path / "s2"), "--json",
                                   cwd=tmp_path).stdout)
    assert status["cached"] == {"jobs": 9, "targets": {"leaf_a": 4, "leaf_b": 4, "combine": 1}}
    text = fntree_cli("stats", str(tmp_path / "s2"), "--json", cwd=tmp_path).stdout
    assert json.loads(text)["targets"]["leaf_b"]["cached"] == 4


def test_pure_target_that_spawns_is_cached_on_its_final_value(script: Path,
                                                               tmp_path: Path) -> None:
    """A pure root whose body spawns children is cached once its whole subtree completed."""
    cache = tmp_path / "cache"
    assert run_cli(script, tmp_path / "s1", cache, "main", "3").stdout.strip() == str(expected(3))
    assert len(entries_of(cache, "main")) == 1
    second = run_cli(script, tmp_path / "s2", cache, "main", "3")
    assert second.stdout.strip() == str(expected(3))
    assert ran(tmp_path / "s2") == {} and cached(tmp_path / "s2") == {"main": 1}


def test_script_run_and_cli_run_share_entries(script: Path, tmp_path: Path) -> None:
    """A target sent by value (`python script.py`) and by reference (`fntree run`) has one key."""
    cache = tmp_path / "cache"
    out = subprocess.run([sys.executable, str(script), str(tmp_path / "s1"), str(cache), "4"],
                         capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.strip() == str(expected(4)), out.stderr
    assert run_cli(script, tmp_path / "s2", cache, "main", "4").stdout.strip() == str(expected(4))
    assert ran(tmp_path / "s2") == {} and cached(tmp_path / "s2") == {"main": 1}


def test_chains_closing_together_are_each_cached_on_their_value(script: Path,
                                                                 tmp_path: Path) -> None:
    """Pure targets whose chains close in one cascade (children only) each get their entry."""
    cache = tmp_path / "cache"
    assert run_cli(script, tmp_path / "s1", cache, "groups", "3").stdout.strip() == str(
        [[0, 1], [10, 2], [20, 3]])
    assert len(entries_of(cache, "group")) == 3 and len(entries_of(cache, "groups")) == 1
    assert run_cli(script, tmp_path / "s2", cache, "group", "1").stdout.strip() == "[10, 2]"
    assert ran(tmp_path / "s2") == {} and cached(tmp_path / "s2") == {"group": 1}
    assert run_cli(script, tmp_path / "s3", cache, "groups", "3").stdout.strip() == str(
        [[0, 1], [10, 2], [20, 3]])
    assert cached(tmp_path / "s3") == {"groups": 1}


def test_pure_tail_call_is_cached_on_the_value_of_its_follow_on(script: Path,
                                                                 tmp_path: Path) -> None:
    """A pure target that returns a call (its follow-on, run in the same worker) is cached."""
    cache = tmp_path / "cache"
    assert run_cli(script, tmp_path / "s1", cache, "tail", "2").stdout.strip() == "20"
    assert len(entries_of(cache, "tail")) == 1 and len(entries_of(cache, "leaf_a")) == 1
    assert run_cli(script, tmp_path / "s2", cache, "tail", "2").stdout.strip() == "20"
    assert ran(tmp_path / "s2") == {} and cached(tmp_path / "s2") == {"tail": 1}


def test_one_line_change_reruns_that_leaf_and_what_depends_on_it(script: Path,
                                                                 tmp_path: Path) -> None:
    """Editing one leaf target re-runs its calls, its callers and their follow-ons only."""
    cache = tmp_path / "cache"
    run_cli(script, tmp_path / "s1", cache, "main", "5")
    script.write_text(PIPELINE.replace("return i * 10", "return i * 100"))
    out = run_cli(script, tmp_path / "s2", cache, "main", "5")
    assert out.stdout.strip() == str(expected(5, 100))
    # main refers to leaf_a, so its code hash changed; combine gets new inputs
    assert ran(tmp_path / "s2") == {"main": 1, "leaf_a": 5, "combine": 1}
    assert cached(tmp_path / "s2") == {"leaf_b": 5}


def test_path_argument_whose_content_changed_is_a_miss(script: Path, tmp_path: Path) -> None:
    """A Path argument is keyed by the content of its file or directory, not its name."""
    cache = tmp_path / "cache"
    data = tmp_path / "data.txt"
    data.write_bytes(b"abc")
    assert run_cli(script, tmp_path / "s1", cache, "measure", str(data)).stdout.strip() == "294"
    run_cli(script, tmp_path / "s2", cache, "measure", str(data))
    assert cached(tmp_path / "s2") == {"measure": 1}
    data.write_bytes(b"abd")  # same size, new content
    assert run_cli(script, tmp_path / "s3", cache, "measure", str(data)).stdout.strip() == "295"
    assert ran(tmp_path / "s3") == {"measure": 1}
    folder = tmp_path / "folder"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "x").write_bytes(b"\x01")
    run_cli(script, tmp_path / "s4", cache, "measure", str(folder))
    (folder / "sub" / "y").write_bytes(b"\x02")
    assert run_cli(script, tmp_path / "s5", cache, "measure", str(folder)).stdout.strip() == "3"
    assert ran(tmp_path / "s5") == {"measure": 1}


def test_two_concurrent_runs_share_one_cache(script: Path, tmp_path: Path) -> None:
    """Two runs writing the same entries at once both get the exact value; the cache stays whole."""
    cache = tmp_path / "cache"
    runs = [subprocess.Popen([sys.executable, str(script), str(tmp_path / f"s{k}"), str(cache),
                              "12"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for k in (1, 2)]
    for run in runs:
        out, err = run.communicate(timeout=180)
        assert run.returncode == 0, err
        assert out.strip() == str(expected(12))
    figures = stats(Cache.open(cache))
    assert {k: v["entries"] for k, v in figures["targets"].items()} == {
        "leaf_a": 12, "leaf_b": 12, "combine": 1, "main": 1}
    assert not list((cache / "v1").glob("*/.*")), "temp files left behind"
    third = run_cli(script, tmp_path / "s3", cache, "main", "12")
    assert third.stdout.strip() == str(expected(12)) and cached(tmp_path / "s3") == {"main": 1}


def test_damaged_entry_is_a_miss_with_a_warning(script: Path, tmp_path: Path) -> None:
    """A flipped bit in an entry makes it a miss, said in a warning; the value stays right."""
    cache = tmp_path / "cache"
    run_cli(script, tmp_path / "s1", cache, "loose", "3")
    entry = entries_of(cache, "leaf_b")[0]
    data = bytearray(entry.read_bytes())
    data[-3] ^= 0x10
    entry.write_bytes(bytes(data))
    out = run_cli(script, tmp_path / "s2", cache, "loose", "3")
    assert out.stdout.strip() == str(expected(3))
    assert "damaged" in out.stderr and str(entry) in out.stderr
    assert ran(tmp_path / "s2") == {"loose": 1, "leaf_b": 1}
    assert cached(tmp_path / "s2") == {"leaf_a": 3, "leaf_b": 2, "combine": 1}
    again = run_cli(script, tmp_path / "s3", cache, "loose", "3")  # the entry was rewritten
    assert "damaged" not in again.stderr and ran(tmp_path / "s3") == {"loose": 1}


def test_cache_stats_and_prune_by_last_use(script: Path, tmp_path: Path) -> None:
    """`fntree cache` counts entries per target and prunes those unused for too long."""
    cache = tmp_path / "cache"
    run_cli(script, tmp_path / "s1", cache, "loose", "3")
    figures = json.loads(fntree_cli("cache", str(cache), "--stats", "--json", cwd=tmp_path).stdout)
    assert figures["entries"] == 7
    assert {k: v["entries"] for k, v in figures["targets"].items()} == {
        "leaf_a": 3, "leaf_b": 3, "combine": 1}
    old = time.time() - 40 * 86400
    for entry in entries_of(cache, "leaf_a") + entries_of(cache, "leaf_b"):
        os.utime(entry, (old, old))
    run_cli(script, tmp_path / "s2", cache, "leaf_b", "0")  # a hit marks the entry used
    assert cached(tmp_path / "s2") == {"leaf_b": 1}
    out = fntree_cli("cache", str(cache), "--prune", "--older-than", "30d", cwd=tmp_path)
    assert out.returncode == 0 and "removed 5 entries" in out.stdout
    figures = json.loads(fntree_cli("cache", str(cache), "--json", cwd=tmp_path).stdout)
    assert {k: v["entries"] for k, v in figures["targets"].items()} == {
        "leaf_b": 1, "combine": 1}
    text = fntree_cli("cache", str(cache), cwd=tmp_path).stdout
    assert "entries    2" in text and "leaf_b" in text


def test_leader_killed_during_cached_run_then_restarted(script: Path, tmp_path: Path) -> None:
    """SIGKILL the leader of a run taking values from the cache: the restart's value is exact."""
    cache, store = tmp_path / "cache", tmp_path / "s2"
    run_cli(script, tmp_path / "s1", cache, "mixed", "6", "0")
    leader = subprocess.Popen([sys.executable, "-m", "fntree", "run", f"{script}:mixed", "6",
                               "6", "--jobstore", str(store), "--cache", str(cache),
                               "--no-progress"], cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: cached(store), timeout=120)
    assert leader.poll() is None, "the run should still be going (slow jobs)"
    leader.send_signal(signal.SIGKILL)
    leader.wait()
    wait_for(lambda: not processes_mentioning(str(store)), timeout=30)
    out = fntree_cli("restart", str(store), "--no-progress", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str([i * 10 for i in range(6)] + [-i for i in range(6)])
    assert "leaf_a" not in ran(store)
    records = (tmp_path / "record").read_text().split("\n")
    assert sum(line.startswith("leaf_a") for line in records) == 6  # the first run's only


def test_cache_from_environment_and_refused_when_others_can_write(script: Path,
                                                                   tmp_path: Path) -> None:
    """$FNTREE_CACHE names the cache; a cache directory others can write is refused."""
    cache = tmp_path / "cache"
    env = {**os.environ, "FNTREE_CACHE": str(cache)}
    for k in (1, 2):
        out = fntree_cli("run", f"{script}:leaf_b", "7", "--jobstore", str(tmp_path / f"s{k}"),
                         "--no-progress", cwd=tmp_path, env=env)
        assert out.returncode == 0 and out.stdout.strip() == "8", out.stderr
    assert cached(tmp_path / "s2") == {"leaf_b": 1}
    cache.chmod(0o777)
    out = fntree_cli("run", f"{script}:leaf_b", "7", "--jobstore", str(tmp_path / "s3"),
                     "--no-progress", cwd=tmp_path, env=env)
    assert out.returncode == 2 and "writable by others" in out.stderr
    assert "chmod go-w" in out.stderr and not (tmp_path / "s3").exists()


# -- the module --------------------------------------------------------------------------
def test_every_flipped_bit_of_an_entry_is_detected(tmp_path: Path) -> None:
    """Whatever bit of an entry flips, reading it is a miss with a warning, never a value."""
    cache = Cache.open(tmp_path / "c")
    key = bytes(range(32))
    assert cache.put(key, "t", Collected((b"\x80\x05K\x01.", b"xy"))) == ""
    assert cache.get(key) == (True, Collected((b"\x80\x05K\x01.", b"xy")), "")
    path = cache.path(key)
    good = path.read_bytes()
    for position in range(len(good)):
        for bit in (0x01, 0x80):
            damaged = bytearray(good)
            damaged[position] ^= bit
            path.write_bytes(bytes(damaged))
            found, value, warning = cache.get(key)
            assert not found and value is None and "damaged" in warning
    path.write_bytes(good[:-1])
    assert not cache.get(key)[0]
    assert stat.S_IMODE(Cache.open(tmp_path / "c").root.stat().st_mode) == 0o700


def test_key_covers_code_arguments_promised_values_and_file_contents(tmp_path: Path) -> None:
    """The key changes with the code hash, the arguments, a promised value, a file's bytes."""
    data = tmp_path / "f"
    data.write_text("one")
    args = (([data], {}),)
    import pickle

    blob = pickle.dumps(args)
    base = job_key(b"code", blob, [b"v"], args)
    assert base == job_key(b"code", blob, [b"v"], args)
    assert base != job_key(b"edit", blob, [b"v"], args)
    assert base != job_key(b"code", blob + b"x", [b"v"], args)
    assert base != job_key(b"code", blob, [b"w"], args)
    assert base != job_key(b"code", blob, [Collected((b"v",))], args)
    data.write_text("two")
    assert base != job_key(b"code", blob, [b"v"], args)


def test_prune_removes_only_entries_unused_for_longer(tmp_path: Path) -> None:
    """`prune` removes entries by last use (mtime) and keeps the rest."""
    cache = Cache.open(tmp_path / "c")
    for k in range(4):
        cache.put(bytes([k]) * 32, "t", b"v")
    old = time.time() - 100
    for k in range(2):
        os.utime(cache.path(bytes([k]) * 32), (old, old))
    assert prune(cache, 50) == (2, 2 * cache.path(bytes([3]) * 32).stat().st_size)
    assert stats(cache)["entries"] == 2


def test_progress_display_counts_cached_jobs() -> None:
    """The live display counts the jobs taken from the cache and says so."""
    import io

    from rich.console import Console

    from fntree.batch.base import Res, Result, Task
    from fntree.progress import PlainProgress, RunView, render
    from fntree.runtime.records import O_VALUE

    res = Res(None, None, 1.0, None)
    from fntree.runtime.snapshot import Snapshot

    view = RunView()
    view.started("store", 1, Snapshot({}))
    view.issued([Task(k, 1, "leaf", b"k", b"", (), k, res) for k in (1, 2)])
    for k, hit in ((1, True), (2, False)):
        view.completed("leaf", Result(k, 1, True, (O_VALUE, b""), "", {}, None, False,
                                      (time.time(), 0.0, 0.0, 0), (), False, cached=hit))
    assert view.totals().cached == 1 and view.targets["leaf"].done == 2
    console = Console(file=io.StringIO(), width=120, record=True)
    console.print(render(view))
    assert "2 / 2 jobs done, 1 cached" in console.export_text()
    plain = PlainProgress(Console(file=io.StringIO(), width=200, record=True))
    plain.completed("leaf", Result(3, 1, True, (O_VALUE, b""), "", {}, None, False,
                                   (time.time(), 0.0, 0.0, 0), (), False, cached=True))
    plain.finished(True)
    assert "1 cached" in plain.console.export_text()


APPLY = textwrap.dedent("""\
    import sys
    import fntree
    import steps

    @fntree.target(cache=True)
    def apply_to(fn, x):
        return fn.__wrapped__(x)

    if __name__ == "__main__":
        print(fntree.run(apply_to(steps.double, 21), jobstore=sys.argv[1], cache=sys.argv[2]))
""")


def test_a_target_passed_as_an_argument_is_keyed_by_its_code(tmp_path: Path) -> None:
    """A pure call whose argument is a target misses once that target's code changed: the
    target travels by name, so its code hash, not its name, is in the key."""
    (tmp_path / "apply.py").write_text(APPLY)
    steps = tmp_path / "steps.py"
    steps.write_text("import fntree\n\n@fntree.target\ndef double(x):\n    return 2 * x\n")
    cache = tmp_path / "cache"

    def run(store: str) -> str:
        out = subprocess.run([sys.executable, "apply.py", str(tmp_path / store), str(cache)],
                             capture_output=True, text=True, cwd=tmp_path, timeout=180)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    assert run("s1") == "42"
    assert run("s2") == "42" and cached(tmp_path / "s2") == {"apply_to": 1}
    steps.write_text("import fntree\n\n@fntree.target\ndef double(x):\n    return 3 * x\n")
    assert run("s3") == "63" and cached(tmp_path / "s3") == {}
