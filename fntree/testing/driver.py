"""A leader for the conformance kit: `python -m fntree.testing.driver SPEC.json`.

The kit runs each leader as a process of its own, so that it can be sent SIGTERM
or SIGKILL. SPEC names a workflow of `fntree.testing.workflows` and its arguments,
the job store, the batch system and the options of `fntree.run`; with "restart"
it continues the store instead. What happened is written to SPEC's "out" file
(pickled, atomically): the value or the error, each failed attempt, and how many
packets and tasks the leader handed to the batch system.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
from typing import Any

import fntree
from fntree.runtime.events import Failure, Observer
from fntree.runtime.records import Task
from fntree.testing import workflows


class Recorder(Observer):
    """Counts packets and tasks issued, and keeps every failed attempt."""

    def __init__(self) -> None:
        self.packets = 0
        self.tasks = 0
        self.failures: list[Failure] = []

    def issued(self, tasks: list[Task]) -> None:
        self.packets += 1
        self.tasks += len(tasks)

    def failed(self, failure: Failure) -> None:
        self.failures.append(failure)


def main(argv: list[str]) -> int:
    with open(argv[0]) as spec_file:
        spec: dict[str, Any] = json.load(spec_file)
    recorder = Recorder()
    options = {**spec["options"], "batch_system": spec["batch_system"],
               "observers": [recorder]}
    report: dict[str, Any] = {}
    try:
        if spec.get("restart"):
            report["value"] = fntree.restart(spec["jobstore"], **options)
        else:
            call = getattr(workflows, spec["workflow"])(*spec["args"])
            report["value"] = fntree.run(call, jobstore=spec["jobstore"], **options)
    except (fntree.FntreeError, KeyboardInterrupt) as exc:
        report["error"] = type(exc).__name__
        report["message"] = str(exc)
    report.update(packets=recorder.packets, tasks=recorder.tasks,
                  failures=[tuple(f) for f in recorder.failures])
    temp = spec["out"] + ".tmp"
    with open(temp, "wb") as f:
        pickle.dump(report, f)
    os.replace(temp, spec["out"])
    return 0 if "value" in report else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
