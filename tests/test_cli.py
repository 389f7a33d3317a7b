"""The `fntree` command: run, status and restart, as a user types them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent("""
    import os
    from pathlib import Path

    import fntree

    @fntree.target
    def square(x: int) -> int:
        return x * x

    @fntree.target
    def add(values) -> int:
        return sum(values)

    @fntree.target
    def squares(n: int, scale: float, loud: bool, where: Path) -> object:
        if not where.exists():
            raise FileNotFoundError(f"{where} does not exist yet")
        return add([square(i) for i in range(n)])
""")


def fntree_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fntree", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=120)


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "pipeline.py"
    path.write_text(SCRIPT)
    return path


def test_run_failure_status_restart(script: Path, tmp_path: Path) -> None:
    """A failed run exits 1 with the restart command; after the fix, restart completes it."""
    store = tmp_path / "store"
    flag = tmp_path / "flag"
    out = fntree_cli("run", f"{script}:squares", "4", "1.5", "yes", str(flag),
                     "--jobstore", str(store), "--retry-count", "0", cwd=tmp_path)
    assert out.returncode == 1, out.stderr
    assert "does not exist yet" in out.stderr
    assert f"fntree restart {store}" in out.stderr
    status = fntree_cli("status", str(store), "--fail-if-not-complete", cwd=tmp_path)
    assert status.returncode == 1
    assert "1 failed" in status.stdout and "squares" in status.stdout
    flag.write_text("")
    out = fntree_cli("restart", str(store), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "14"
    status = fntree_cli("status", str(store), "--fail-if-not-complete", cwd=tmp_path)
    assert status.returncode == 0 and "completed" in status.stdout


def test_arguments_converted_by_annotations(script: Path, tmp_path: Path) -> None:
    """A bad argument for an annotated parameter is a usage error naming the parameter."""
    out = fntree_cli("run", f"{script}:squares", "four", "1", "yes", ".",
                     "--jobstore", str(tmp_path / "s"), cwd=tmp_path)
    assert out.returncode == 2
    assert "argument n of squares must be of type int" in out.stderr


def test_run_needs_a_target(script: Path, tmp_path: Path) -> None:
    """No target, or a name that is not a target, are clear usage errors."""
    out = fntree_cli("run", "--jobstore", str(tmp_path / "s"), cwd=tmp_path)
    assert out.returncode == 2 and "needs the target to run" in out.stderr
    out = fntree_cli("run", f"{script}:Path", "--jobstore", str(tmp_path / "s"), cwd=tmp_path)
    assert out.returncode == 2 and "not an @fntree.target" in out.stderr


def test_run_without_jobstore_uses_a_temporary_store(script: Path, tmp_path: Path) -> None:
    """Without --jobstore: removed after success; kept, its path printed, after a failure."""
    temp = tmp_path / "temp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp)}
    run = [sys.executable, "-m", "fntree", "run", f"{script}:squares", "3", "1", "no"]
    out = subprocess.run([*run, str(tmp_path)], capture_output=True, text=True,
                         cwd=tmp_path, env=env, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "5", out.stderr
    assert not [p for p in temp.iterdir() if p.name.startswith("fntree-") and
                (p / "jobstore").exists()]
    out = subprocess.run([*run, str(tmp_path / "absent"), "--retry-count", "0"],
                         capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert out.returncode == 1, out.stderr
    kept = [p / "jobstore" for p in temp.iterdir() if (p / "jobstore").exists()]
    assert len(kept) == 1
    assert f"temporary job store is kept at {kept[0]}" in out.stderr
    assert f"fntree restart {kept[0]}" in out.stderr
    (tmp_path / "absent").write_text("")
    out = fntree_cli("restart", str(kept[0]), cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.strip() == "5", out.stderr


def test_an_empty_directory_is_taken_as_a_new_store(script: Path, tmp_path: Path) -> None:
    """An empty existing --jobstore runs; a non-empty one that is no store is refused."""
    empty = tmp_path / "empty"
    empty.mkdir()
    out = fntree_cli("run", f"{script}:square", "3", "--jobstore", str(empty), cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.strip() == "9", out.stderr
    out = fntree_cli("status", str(empty), "--fail-if-not-complete", cwd=tmp_path)
    assert out.returncode == 0
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    out = fntree_cli("run", f"{script}:square", "3", "--jobstore", str(tmp_path / "full"),
                     cwd=tmp_path)
    assert out.returncode == 2
    assert "neither an empty directory nor an fntree job store" in out.stderr
    assert "continue that run" not in out.stderr
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["notes.txt"]


def test_status_of_missing_or_foreign_directory(tmp_path: Path) -> None:
    """Status of a directory that is not a job store says so."""
    out = fntree_cli("status", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert out.returncode == 2 and "no job store" in out.stderr
    (tmp_path / "other").mkdir()
    out = fntree_cli("status", str(tmp_path / "other"), cwd=tmp_path)
    assert out.returncode == 2 and "not an fntree job store" in out.stderr


PROBE_LOOP = textwrap.dedent("""
    import pathlib, sys
    from fntree.runtime.store import JobStore
    store, stop = JobStore.open(sys.argv[1]), pathlib.Path(sys.argv[2])
    while not stop.exists():
        for _ in range(100):
            store.leader_alive()
""")


def test_status_probes_never_make_a_restart_refuse(script: Path, tmp_path: Path) -> None:
    """Tight loops of `fntree status` and of lock probes never make a restart refuse."""
    store, stop = tmp_path / "store", tmp_path / "stop"
    out = fntree_cli("run", f"{script}:squares", "3", "1", "no", str(tmp_path),
                     "--jobstore", str(store), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    statuses: list[subprocess.CompletedProcess[str]] = []

    def status_loop() -> None:
        while not stop.exists():
            statuses.append(fntree_cli("status", str(store), cwd=tmp_path))

    looping = threading.Thread(target=status_loop)
    looping.start()
    probe = subprocess.Popen([sys.executable, "-c", PROBE_LOOP, str(store), str(stop)])
    try:
        restarts = [fntree_cli("restart", str(store), "--no-progress", cwd=tmp_path)
                    for _ in range(10)]
    finally:
        stop.write_text("")
        looping.join()
        assert probe.wait(timeout=60) == 0
    for out in restarts:
        assert out.returncode == 0 and out.stdout.strip() == "5", out.stderr
    assert statuses and all(s.returncode == 0 for s in statuses), statuses[-1].stderr


def assert_message(out: subprocess.CompletedProcess[str], *parts: str) -> None:
    """Exit status 2 with one `fntree: error:` message holding `parts`, and no traceback."""
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr and "fntree: error:" in out.stderr, out.stderr
    for part in parts:
        assert part in out.stderr, out.stderr


def test_script_with_a_syntax_error_or_failing_import(tmp_path: Path) -> None:
    """A script (or module) that does not parse, or raises at import, is named with its line."""
    broken = tmp_path / "broken.py"
    broken.write_text("import fntree\n\ndef f(:\n    pass\n")
    out = fntree_cli("run", f"{broken}:f", "--jobstore", str(tmp_path / "s"), cwd=tmp_path)
    assert_message(out, f"{broken}, line 3", "invalid syntax", "fix it and run again")
    broken.write_text("import fntree\n\nCONFIG = {}\nVALUE = CONFIG['missing']\n")
    out = fntree_cli("run", f"{broken}:f", "--jobstore", str(tmp_path / "s"), cwd=tmp_path)
    assert_message(out, "raised KeyError: 'missing'", f"{broken}, line 4", "module-level code")
    (tmp_path / "needsdep.py").write_text("import not_installed_anywhere\n")
    out = fntree_cli("run", "needsdep:f", "--jobstore", str(tmp_path / "s"), cwd=tmp_path)
    assert_message(out, "importing needsdep raised ModuleNotFoundError", "needsdep.py, line 1")
    assert not (tmp_path / "s").exists()


def test_bad_options_and_paths_refused_before_a_store_is_made(script: Path,
                                                              tmp_path: Path) -> None:
    """--max-log-mb nan or 0, a path in /proc, a path under a file: a message, no store."""
    store = tmp_path / "store"
    for option, words in (("nan", "max_log_mb=nan"), ("0", "max_log_mb=0.0")):
        out = fntree_cli("run", f"{script}:square", "3", "--jobstore", str(store),
                         "--max-log-mb", option, cwd=tmp_path)
        assert_message(out, words, "positive number of megabytes")
        assert not store.exists()
    out = fntree_cli("run", f"{script}:square", "3", "--jobstore", "/proc/x", cwd=tmp_path)
    assert_message(out, "cannot create the job store directory /proc/x")
    (tmp_path / "afile").write_text("")
    out = fntree_cli("run", f"{script}:square", "3", "--jobstore",
                     str(tmp_path / "afile" / "store"), cwd=tmp_path)
    assert_message(out, f"{tmp_path / 'afile'} is a file, not a directory")
    out = fntree_cli("run", f"{script}:square", "--jobstore", str(store), cwd=tmp_path)
    assert_message(out, "square needs a value for x")
    for argv, words in ((["logs", str(store), "--max-log-mb", "nan"], "megabytes"),
                        (["kill", str(store), "--timeout", "nan"], "seconds"),
                        (["debug-job", str(store), "j", "--attempt", "0"], "attempt number")):
        out = fntree_cli(*argv, cwd=tmp_path)
        assert out.returncode == 2 and words in out.stderr and "Traceback" not in out.stderr


def test_clean_on_a_symlink(script: Path, tmp_path: Path) -> None:
    """`clean` on a link to a store refuses, naming the store; the store and link stay."""
    store, link = tmp_path / "store", tmp_path / "link"
    out = fntree_cli("run", f"{script}:square", "3", "--jobstore", str(store), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    link.symlink_to(store)
    out = fntree_cli("clean", str(link), cwd=tmp_path)
    assert_message(out, "is a symbolic link", f"fntree clean {store}", f"rm {link}")
    assert link.is_symlink() and (store / "fntree.json").is_file()
    out = fntree_cli("clean", str(store), cwd=tmp_path)
    assert out.returncode == 0 and not store.exists(), out.stderr


def test_deleted_working_directory(script: Path, tmp_path: Path) -> None:
    """A run from a deleted directory, or a restart whose run's directory is gone, says so;
    once it is back, the restart finishes."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    store = tmp_path / "store"
    out = fntree_cli("run", f"{script}:squares", "3", "1", "no", str(tmp_path / "flag"),
                     "--jobstore", str(store), "--retry-count", "0", cwd=workdir)
    assert out.returncode == 1, out.stderr
    workdir.rmdir()
    out = fntree_cli("restart", str(store), cwd=tmp_path)
    assert_message(out, f"was started in {workdir}, which no longer exists",
                   f"mkdir -p {workdir}")
    workdir.mkdir()
    (tmp_path / "flag").write_text("")
    out = fntree_cli("restart", str(store), cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.strip() == "5", out.stderr
    gone = tmp_path / "gone"
    gone.mkdir()
    proc = subprocess.run(f"cd {gone} && rmdir {gone} && {sys.executable} -m fntree run "
                          f"{script}:square 2 --jobstore {tmp_path / 's2'}", shell=True,
                          capture_output=True, text=True, timeout=120)
    assert_message(proc, "the current directory was deleted")


def test_reader_that_goes_away(tmp_path: Path) -> None:
    """`fntree status --json --logs | head` ends quietly when head stops reading."""
    loud = tmp_path / "loud.py"
    loud.write_text(textwrap.dedent("""
        import fntree

        @fntree.target
        def shout(i: int) -> int:
            print("x" * 100_000)
            raise ValueError(i)

        @fntree.target
        def many(n: int) -> object:
            return [shout(i) for i in range(n)]
    """))
    store = tmp_path / "store"
    out = fntree_cli("run", f"{loud}:many", "4", "--jobstore", str(store), "--retry-count",
                     "0", "--no-progress", cwd=tmp_path)
    assert out.returncode == 1, out.stderr
    for command in (["status", "--json", "--logs"], ["status", "--logs"], ["logs"]):
        reader = subprocess.Popen([sys.executable, "-m", "fntree", *command, str(store)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
        assert reader.stdout is not None and reader.stderr is not None
        assert reader.stdout.read(10)
        reader.stdout.close()
        errors = reader.stderr.read().decode()
        assert reader.wait(timeout=120) in (1, 141) and errors == "", errors


def test_unexpected_error_is_one_line_naming_its_traceback(tmp_path: Path) -> None:
    """A bug (an exception fntree does not expect) is reported in a line naming the file
    that holds the full traceback."""
    program = textwrap.dedent("""
        import sys
        from fntree.cli import main, status

        def broken(args, console):
            raise ZeroDivisionError("a bug")

        status.run = broken
        sys.exit(main(["status", "."]))
    """)
    out = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                         cwd=tmp_path, timeout=120)
    assert out.returncode == 3 and "Traceback" not in out.stderr, out.stderr
    assert "internal error: ZeroDivisionError: a bug. This is a bug in fntree" in out.stderr
    saved = Path(out.stderr.split("which is in ")[1].split()[0])
    assert "in broken\nZeroDivisionError: a bug" in saved.read_text()
    saved.unlink()


def test_paths_that_look_like_markup(tmp_path: Path) -> None:
    """A path holding `[/x]` or `[red]` is printed as it is, never read as markup."""
    for name in ("[/oops]", "[red]x"):
        out = fntree_cli("status", str(tmp_path / name), cwd=tmp_path)
        assert_message(out, f"no job store at {tmp_path / name};")


def test_run_goes_on_when_the_reader_of_its_messages_goes_away(tmp_path: Path) -> None:
    """`fntree run ... 2>&1 | head -1`: the run still completes and prints its value."""
    slow = tmp_path / "slow.py"
    slow.write_text(textwrap.dedent("""
        import time
        import fntree

        @fntree.target
        def nap(i: int) -> int:
            time.sleep(0.2)
            return i

        @fntree.target
        def naps(n: int) -> object:
            return [nap(i) for i in range(n)]
    """))
    run = subprocess.Popen([sys.executable, "-m", "fntree", "run", f"{slow}:naps", "12",
                            "--jobstore", str(tmp_path / "store")], cwd=tmp_path,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert run.stderr is not None and run.stdout is not None
    assert run.stderr.readline()
    run.stderr.close()
    assert run.stdout.read().strip() == repr(list(range(12)))
    assert run.wait(timeout=120) == 0


def test_interrupted_run_keeps_its_temporary_store_and_names_it(tmp_path: Path) -> None:
    """Ctrl-C on a run without --jobstore keeps the store and prints its restart command."""
    slow = tmp_path / "slow.py"
    slow.write_text("import time\nimport fntree\n\n@fntree.target\ndef nap(s: float) -> float:"
                    "\n    time.sleep(s)\n    return s\n")
    temp = tmp_path / "temp"
    temp.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "fntree", "run", f"{slow}:nap", "60",
                             "--no-progress"], cwd=tmp_path, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "TMPDIR": str(temp)})
    deadline = time.monotonic() + 120
    while not list(temp.glob("fntree-*/jobstore/journal")) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(2)  # the leader is past its start
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    store = next(temp.glob("fntree-*/jobstore"))
    assert f"fntree restart {store}" in err


def test_readers_piped_into_head_exit_quietly(tmp_path: Path) -> None:
    """`fntree status --json DIR | head` and the other readers: no traceback, exit 141."""
    script = tmp_path / "chatty.py"
    script.write_text(textwrap.dedent("""
        import fntree

        @fntree.target
        def chatty(lines: int) -> int:
            for k in range(lines):
                print(f"line {k:06d} of chatty output")
            raise RuntimeError("chatty failed")
    """))
    store = tmp_path / "store"
    made = fntree_cli("run", "--jobstore", str(store), "--retry-count", "0",
                      "chatty.py:chatty", "40000", cwd=tmp_path)
    assert made.returncode == 1, made.stderr
    for reader in ("status --json --logs", "status --failed --logs", "logs", "status --json"):
        piped = subprocess.run(
            f"{sys.executable} -m fntree {reader} {store} 2>{tmp_path / 'err'} | head -1 "
            ">/dev/null; echo ${PIPESTATUS[0]}", shell=True, executable="/bin/bash",
            cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert piped.stdout.strip().isdigit(), (reader, piped.stdout, piped.stderr)
        status = int(piped.stdout.strip())
        assert (tmp_path / "err").read_text() == "", reader
        assert status in (0, 141), (reader, status)  # 0: it wrote all before head left
