"""Shell targets on the local batch system: quoting, outputs, failures, resources, debug-job."""

from __future__ import annotations

import pickle
import tempfile
from pathlib import Path

import pytest
import shell_workflows as sw
from ux_workflows import cli

import fntree
from fntree.shell_outputs import Outputs
from fntree.shell_target import CommandError, sh


def _failed(store: Path, call: fntree.Call) -> fntree.FailedJob:
    with pytest.raises(fntree.WorkflowFailed) as caught:
        fntree.run(call, jobstore=store)
    (failed,) = caught.value.failed
    return failed


def _failure(store: Path, call: fntree.Call) -> str:
    return _failed(store, call).message


def test_sh_quotes_every_value_as_one_word() -> None:
    """fntree.sh quotes values with spaces, quotes, ; and $() so bash reads each as one word."""
    assert sh("cat {a} {b}", a="x y", b="it's") == "cat 'x y' 'it'\"'\"'s'"
    assert sh("ls {a}", a="$(rm -rf /); echo") == "ls '$(rm -rf /); echo'"
    assert sh("echo {words}", words=["-n", "a b"]) == "echo -n 'a b'"
    assert sh("echo {n:03d} {{literal}}", n=7) == "echo 007 {literal}"


def test_sh_names_a_missing_value() -> None:
    """A field with no value raises CommandError naming it; {memory_mb} says to declare memory."""
    with pytest.raises(CommandError, match=r"\{ref\}.*pass ref="):
        sh("bwa mem {ref}")
    with pytest.raises(CommandError, match="declares no memory"):
        sh("sort -S {memory_mb}M")


def test_shell_rejects_bad_declarations() -> None:
    """outputs=, capture= and version= are checked when the decorator runs."""
    with pytest.raises(fntree.ResourceError, match="names an output twice"):
        fntree.shell(outputs=["a", "a"])
    with pytest.raises(fntree.ResourceError, match="capture="):
        fntree.shell(capture=-1)
    with pytest.raises(fntree.ResourceError, match="version="):
        fntree.shell(version=2)


def test_values_reach_the_command_verbatim(store: Path, tmp_path: Path) -> None:
    """Spaces, quotes, ;, $(), backticks, globs and newlines in values neither break nor inject."""
    pwned = tmp_path / "pwned"
    values = ["a b", "it's", 'say "hi"', f"x; touch {pwned}", f"$(touch {pwned})",
              f"`touch {pwned}`", "*", "two\nlines", "-n", "", "ünï €"]
    assert fntree.run(sw.echo_all(values), jobstore=store) == values + values
    assert fntree.run(sw.echo_words(values[:4]), jobstore=tmp_path / "s2") == \
        "".join(v + "\n" for v in values[:4])
    assert not pwned.exists()


def test_output_renamed_into_place_and_is_the_value(store: Path, tmp_path: Path) -> None:
    """A declared output appears under its final name, and its path is the target's value."""
    src, out = tmp_path / "in put's.txt", tmp_path / "sub dir" / "out; put.txt"
    src.write_text("hello\n")
    made = fntree.run(sw.copy_upper(src, out), jobstore=store)
    assert made == out and out.read_text() == "HELLO\n"
    assert fntree.run(sw.read(sw.copy_upper(src, tmp_path / "again")),
                      jobstore=tmp_path / "s2") == "HELLO\n"


def test_exit_status_command_and_stderr_tail_in_the_summary(store: Path) -> None:
    """A non-zero exit is a failure showing the status, the command and the end of stderr."""
    failed = _failed(store, sw.fail_with(3))
    message = failed.message
    assert "exited with status 3" in message
    assert "exit 3" in message  # the command as run
    assert "the real cause: disk on fire" in message and "noise 40" in message
    assert "noise 1\n" not in message  # a tail, not the whole stream
    assert failed.log_path is not None
    log = Path(failed.log_path).read_text()
    assert "on stdout" in log and "noise 1\n" in log  # the whole output is in the job's log


@pytest.mark.parametrize(("call", "said"), [
    (lambda: sw.killed_by("TERM"), "killed by signal SIGTERM (15)"),
    (sw.argv_killed, "killed by signal SIGKILL (9)"),
    (sw.child_killed, "status 137 (a process in it was killed by signal SIGKILL (9))"),
    (sw.missing_tool, "could not be started"),
    (lambda: sw.forgets_output("never"), "did not write its declared output"),
    (sw.chatty, "more than 8 bytes"),
])
def test_signals_and_other_failures_are_reported(store: Path, call: object, said: str) -> None:
    """A command killed by a signal, a missing tool or output, and too much stdout each say so."""
    assert said in _failure(store, call())  # type: ignore[operator]


def test_cores_and_memory_reach_the_command(store: Path) -> None:
    """The granted cores and memory are in the environment and in {cpu} and {memory_mb}."""
    assert fntree.run(sw.cores(), jobstore=store).split() == ["2", "2", "2", "300", "2", "300"]


def test_failed_command_leaves_no_output(store: Path, tmp_path: Path) -> None:
    """A command that wrote its output and then failed leaves nothing under the final name."""
    out = tmp_path / "out"
    message = _failure(store, sw.fails_after_writing(str(out)))
    assert "exited with status 1" in message
    assert not out.exists()


def test_debug_job_runs_the_command_in_the_foreground(store: Path,
                                                     capfd: pytest.CaptureFixture[str]) -> None:
    """`fntree debug-job` runs a failed shell job's command again, its stderr on the terminal."""
    _failure(store, sw.fail_with(4))
    capfd.readouterr()
    code, out, err = cli("debug-job", str(store), "fail_with", capsys=capfd)
    assert code != 0
    assert "the real cause: disk on fire" in out + err
    assert "exited with status 4" in out + err


def test_shell_targets_travel_by_value_and_by_reference() -> None:
    """A shell target pickles by reference, keeping its declaration."""
    again = pickle.loads(pickle.dumps(sw.copy_upper))
    assert again is sw.copy_upper and again.spec.outputs == ("out",)


def test_outputs_cross_file_systems_whole(tmp_path: Path) -> None:
    """Staged on another file system, an output is copied beside its final name, then renamed."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no second file system (/dev/shm) here")
    with tempfile.TemporaryDirectory(dir=shm) as staging_root:
        final = tmp_path / "deep" / "result.tar.gz"
        bound: dict[str, object] = {"out": final}
        outputs = Outputs.stage(("out",), bound, Path(staging_root) / "outputs")
        staged = bound["out"]
        assert isinstance(staged, Path) and staged.name == "0.tar.gz"
        assert outputs.missing() == [f"out={final}"]
        staged.write_bytes(b"x" * 100_000)
        outputs.commit()
    assert final.read_bytes() == b"x" * 100_000
    assert sorted(p.name for p in final.parent.iterdir()) == ["result.tar.gz"]
    assert outputs.value() == final


def test_options_keep_a_shell_target_a_shell_target(store: Path) -> None:
    """`target.options(cpu=1)` changes the resources a shell job's command sees, nothing else."""
    assert fntree.run(sw.cores.options(cpu=1)(), jobstore=store).split() == \
        ["1", "1", "1", "300", "1", "300"]
