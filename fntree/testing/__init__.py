"""The conformance kit: a fixed set of workflows and faults that any batch system must pass.

A plug-in's own test suite runs it (docs/batch-systems.md):

    import pytest
    from fntree.testing import CASES, run_case

    @pytest.mark.parametrize("case", CASES)
    def test_conformance(case, tmp_path):
        run_case(case, "mybatch", tmp_path, env={"MYBATCH_QUEUE": "test"})

Each case starts real leaders (`fntree.testing.driver`) as processes of their own
on the batch system named, with the `fntree.run` options and extra environment
given, under `workdir` (which the batch system's workers must see), and checks
what came out: exact values, temp dirs made and removed, failures retried (with
more memory after a MemoryError; with more time after a kill for time, when
`time_limits` says the batch system enforces them), a killed worker's job lost
and run again, SIGTERM leaving no job of the run behind, a restart after a
SIGKILLed leader, and many tiny jobs packed into fewer batch jobs. A case that
cannot apply raises `Skip` (pytest's skip when pytest is running); a case that
fails raises AssertionError. The kit needs no pytest of its own.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fntree.resources import parse_memory


class Skip(Exception):
    """This case does not apply to the batch system; `str()` says why."""


class Leader:
    """One leader process of the kit, and the report it writes when it ends."""

    def __init__(self, kit: Kit, name: str, workflow: str, args: tuple[Any, ...],
                 restart: bool) -> None:
        self.kit = kit
        self.out = kit.workdir / f"{name}.out"
        spec = {"workflow": workflow, "args": list(args), "restart": restart,
                "jobstore": str(kit.store(name)), "batch_system": kit.batch_system,
                "options": kit.options, "out": str(self.out)}
        spec_path = kit.workdir / f"{name}{'-restart' if restart else ''}.json"
        spec_path.write_text(json.dumps(spec))
        self.out.unlink(missing_ok=True)
        with open(kit.workdir / f"{name}.stderr", "ab") as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "fntree.testing.driver", str(spec_path)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
                env=kit.environment(), cwd=kit.workdir)
        self.stderr = kit.workdir / f"{name}.stderr"

    def report(self) -> dict[str, Any]:
        """Wait for the leader to end; what it wrote (AssertionError if it wrote nothing)."""
        try:
            self.proc.wait(timeout=self.kit.timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"the leader ran past {self.kit.timeout:g}s; its stderr:\n"
                                 f"{self.stderr.read_text()[-4000:]}") from None
        assert self.out.exists(), (f"the leader exited {self.proc.returncode} without a "
                                   f"report; its stderr:\n{self.stderr.read_text()[-4000:]}")
        with open(self.out, "rb") as f:
            report: dict[str, Any] = pickle.load(f)
        return report

    def value(self) -> Any:
        report = self.report()
        assert "value" in report, (f"the run failed: {report.get('message')}; the leader's "
                                   f"stderr:\n{self.stderr.read_text()[-4000:]}")
        return report["value"]


class Kit:
    """The batch system under test and where its runs go."""

    def __init__(self, batch_system: str, workdir: Path, *, options: dict[str, Any] | None,
                 env: dict[str, str] | None, time_limits: bool, timeout: float) -> None:
        self.batch_system = batch_system
        self.workdir = Path(workdir).resolve()
        self.options = dict(options or {})
        self.env = dict(env or {})
        self.time_limits = time_limits
        self.timeout = timeout
        self.workdir.mkdir(parents=True, exist_ok=True)

    def store(self, name: str) -> Path:
        return self.workdir / name / "jobstore"

    def record(self, name: str) -> Path:
        path = self.workdir / name / "record"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def environment(self) -> dict[str, str]:
        """This process's environment and import path, and the extra variables given."""
        path = [p for p in sys.path if p] + [os.environ.get("PYTHONPATH", "")]
        return {**os.environ, **self.env,
                "PYTHONPATH": os.pathsep.join(dict.fromkeys(p for p in path if p))}

    def start(self, name: str, workflow: str, *args: Any) -> Leader:
        return Leader(self, name, workflow, args, restart=False)

    def restart(self, name: str) -> Leader:
        return Leader(self, name, "", (), restart=True)

    def run(self, name: str, workflow: str, *args: Any) -> Any:
        return self.start(name, workflow, *args).value()


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached in {timeout:g}s")
        time.sleep(0.1)


def processes_mentioning(text: str | Path) -> list[int]:
    """Pids of this machine's processes (not this one) whose command line contains `text`."""
    needle = str(text).encode()
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                if needle in Path(f"/proc/{entry}/cmdline").read_bytes():
                    found.append(int(entry))
            except OSError:
                continue
    return found


# -- the cases ---------------------------------------------------------------------------
def case_values(kit: Kit) -> None:
    """A fan-out with a follow-on, promises and tail calls give the exact value."""
    assert kit.run("values", "values", 6) == [55, [13, 0]]


def case_temp_dirs(kit: Kit) -> None:
    """Local and global temp dirs are made for jobs and removed once done with."""
    record = kit.record("temp_dirs")
    value = kit.run("temp_dirs", "temp_dirs", str(record))
    assert value == {"same_gtd": True, "shared": "global", "local_exists": True}
    for name in ("founder", "follow"):
        for made in (record / name).read_text().splitlines():
            assert not Path(made).exists(), f"temp dir {made} is left after the run"


def case_failures(kit: Kit) -> None:
    """A failed job is retried and the run completes; one with no retries left fails it."""
    leader = kit.start("failures", "flaky_fan", 4)
    assert leader.value() == 6
    failures = leader.report()["failures"]
    assert sorted(f[0] for f in failures) == ["flaky"] * 4
    assert all(f[2] == 1 and not f[3] and "RuntimeError" in f[4] for f in failures)
    report = kit.start("broken", "broken").report()
    assert report.get("error") == "WorkflowFailed", report
    assert [(f[0], f[3]) for f in report["failures"]] == [("broken", True)]
    assert "ValueError: broken always fails" in report["failures"][0][4]


def case_memory_retry(kit: Kit) -> None:
    """A job that raises MemoryError is retried with twice its memory."""
    leader = kit.start("memory", "hungry")
    assert leader.value() == (2, 2 * (parse_memory("64M") or 0))
    assert "MemoryError" in leader.report()["failures"][0][4]


def case_time_retry(kit: Kit) -> None:
    """A job killed for running past its time is retried with twice its time."""
    if not kit.time_limits:
        raise Skip(f"time limits are not checked on the {kit.batch_system} batch system "
                   "(time_limits=False; pass time_limits=True if it enforces them)")
    leader = kit.start("time", "overtime")
    assert leader.value() == (2, 6.0)
    message = leader.report()["failures"][0][4]
    assert message.startswith("WorkerDied:") and "retrying with 6s of time" in message, message


def case_lost_job(kit: Kit) -> None:
    """A job whose worker is killed is lost, charged to it, and run again with the same resources.

    The batch system reports it as an Update with the job in `lost`, no result and
    no `cause`, which the leader records as a `WorkerDied` failure.
    """
    record = kit.record("lost")
    leader = kit.start("lost", "lost", str(record / "marker"), 4)
    assert leader.value() == [(2, parse_memory("100M")), 14]
    failures = leader.report()["failures"]
    assert [(f[0], f[2], f[3]) for f in failures] == [("suicide", 1, False)], failures
    assert failures[0][4].startswith("WorkerDied: "), failures[0][4]


def case_cancel(kit: Kit) -> None:
    """SIGTERM stops the leader, and no job of the run is left running."""
    record = kit.record("cancel")
    leader = kit.start("cancel", "pulses", str(record), 2, 120.0)
    wait_for(lambda: any(record.glob("pulse-*")), kit.timeout, "a job starting")
    leader.proc.send_signal(signal.SIGTERM)
    report = leader.report()
    assert report.get("error") in ("KeyboardInterrupt", "RunInterrupted"), report
    store = kit.store("cancel")

    def stopped() -> bool:
        newest = max(p.stat().st_mtime for p in record.glob("pulse-*"))
        return time.time() - newest > 3 and not processes_mentioning(store)

    wait_for(stopped, kit.timeout, "every job of the cancelled run stopping")


def case_restart(kit: Kit) -> None:
    """A leader SIGKILLed mid-run is restarted, and the run ends with the exact value."""
    record = kit.record("restart")
    leader = kit.start("restart", "slow_fan", str(record), 4, 0.5)
    wait_for(lambda: any(record.glob("done-*")), kit.timeout, "a job completing")
    leader.proc.kill()
    leader.proc.wait()
    assert kit.restart("restart").value() == 6


def case_packing(kit: Kit) -> None:
    """Many tiny jobs travel in fewer batch jobs (packets) than there are jobs."""
    leader = kit.start("packing", "tiny_fan", 60)
    assert leader.value() == sum(i * i for i in range(60))
    report = leader.report()
    assert report["tasks"] >= 61
    assert report["packets"] < report["tasks"] / 2, report


CASES = ("values", "temp_dirs", "failures", "memory_retry", "time_retry", "lost_job",
         "cancel", "restart", "packing")


def run_case(case: str, batch_system: str, workdir: str | os.PathLike[str], *,
             options: dict[str, Any] | None = None, env: dict[str, str] | None = None,
             time_limits: bool = False, timeout: float = 300.0) -> None:
    """Run conformance case `case` (one of CASES) against the batch system `batch_system`.

    `options` are keyword arguments of `fntree.run` (max_cpus, max_jobs, ...); `env`
    is added to the leaders' environment (which the job store records for workers);
    `time_limits` says the batch system kills a job past its declared time and
    reports cause "time"; `timeout` bounds each leader's run, in seconds. Raises
    AssertionError if the batch system gets it wrong, and `Skip` (or pytest's skip,
    under pytest) if the case does not apply.
    """
    if case not in CASES:
        raise ValueError(f"unknown conformance case {case!r}; choose one of: {', '.join(CASES)}")
    kit = Kit(batch_system, Path(workdir), options=options, env=env, time_limits=time_limits,
              timeout=timeout)
    try:
        globals()[f"case_{case}"](kit)
    except Skip as exc:
        if "pytest" in sys.modules:
            import pytest

            pytest.skip(str(exc))
        raise


def run_all(batch_system: str, workdir: str | os.PathLike[str], **kwargs: Any
            ) -> dict[str, str]:
    """Every case, outside pytest: a dict of case name to "passed", "skipped: ..." or the error."""
    outcome = {}
    for case in CASES:
        try:
            run_case(case, batch_system, Path(workdir) / case, **kwargs)
            outcome[case] = "passed"
        except Skip as exc:
            outcome[case] = f"skipped: {exc}"
        except AssertionError as exc:
            outcome[case] = f"failed: {exc}"
    return outcome
