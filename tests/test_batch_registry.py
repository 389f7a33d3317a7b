"""The batch system registry: entry points of the `fntree.batch_systems` group, found as a
third party's would be (a .dist-info on the import path), aliases, and clear errors."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from dist_info import install_dist_info
from processes import wait_for

import fntree
from fntree import batch
from fntree.batch import BatchSystemLookupError
from fntree.cli import main as cli_main


@fntree.target
def square(x: int) -> int:
    return x * x


def _plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, module: str,
            entry_points: str) -> None:
    """A distribution `demo-plugin` with module `name` (source `module`) on the path."""
    site = tmp_path / "site"
    site.mkdir()
    (site / f"{name}.py").write_text(module)
    install_dist_info(site, "demo-plugin", "1.2", entry_points)
    monkeypatch.syspath_prepend(str(site))


def test_unknown_batch_system_lists_the_registered_ones() -> None:
    """An unknown name is an error that lists every registered batch system."""
    with pytest.raises(BatchSystemLookupError, match=r"unknown batch system 'lsf'; choose one of: "
                                                     r"gridengine \(alias sge\), local, slurm"):
        fntree.run(square(2), batch_system="lsf")


def test_cli_refuses_an_unknown_batch_system(capsys: pytest.CaptureFixture[str]) -> None:
    """`--batch-system` offers the registered names and refuses others."""
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["run", "--batch-system", "lsf", "x.py:main"])
    assert exit_info.value.code == 2
    assert "'local'" in capsys.readouterr().err


def test_a_plugin_and_its_alias_run_a_workflow(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A plug-in registered under two names is one batch system, and runs under either."""
    _plugin(tmp_path, monkeypatch, "alias_plugin", "from fntree.batch.local import make\n",
            "[fntree.batch_systems]\ndemo = alias_plugin:make\ndm = alias_plugin:make\n")
    assert {"demo", "dm"} <= set(batch.names())
    assert "demo (alias dm)" in batch.describe()
    assert fntree.run(square(7), batch_system="dm") == 49


def test_a_plugin_that_fails_to_load_is_named(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A plug-in whose module fails at import is an error naming its distribution and why."""
    _plugin(tmp_path, monkeypatch, "broken_plugin", "import no_such_module_anywhere\n",
            "[fntree.batch_systems]\nbroken = broken_plugin:make\n")
    with pytest.raises(BatchSystemLookupError, match=r"batch system 'broken' \(broken_plugin:make, "
                                               r"from distribution demo-plugin 1.2\) fails to "
                                               r"load: ModuleNotFoundError"):
        fntree.run(square(2), batch_system="broken")


def test_restart_on_another_batch_system_cancels_the_earlier_ones_jobs(
        tmp_path: Path, example_plugin: None) -> None:
    """A store restarted on `local` after a killed leader on a plug-in first cancels its jobs."""
    store, record = tmp_path / "jobstore", tmp_path / "record"
    record.mkdir()
    code = ("import fntree; from fntree.testing import workflows as w; "
            f"fntree.run(w.pulses({str(record)!r}, 2, 120.0), jobstore={str(store)!r}, "
            "batch_system='subprocess')")
    leader = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL,
                              env={"PYTHONPATH": ":".join(sys.path)})
    wait_for(lambda: len(list(record.glob("pulse-*"))) == 2 and _issued(store) >= 3,
             timeout=120)  # both pulsing, and their first attempts durable in the journal
    leader.send_signal(signal.SIGKILL)
    leader.wait()
    jobs = (store / "batch" / "subprocess" / "jobs").read_text().split()
    pids = [int(p) for p in jobs[2::3]]
    assert pids
    assert fntree.restart(store, batch_system="local") == 1  # the restart's attempts return
    for pid in pids:
        assert _state(pid) == "gone", f"process {pid} of the killed leader still runs"
    assert not (store / "batch" / "subprocess" / "jobs").read_bytes()


def _state(pid: int) -> str:
    """A process's state letter, or "gone" for one that has exited (or is a zombie)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "gone"
    return "gone" if state == "Z" else state


def _issued(store: Path) -> int:
    """How many job attempts the job store's journal records as issued."""
    from fntree.runtime.journal import read_records
    from fntree.runtime.records import R_ISSUE

    return sum(r[0] == R_ISSUE for segment in sorted((store / "journal").glob("*.log"))
               for r in read_records(segment)[0])
