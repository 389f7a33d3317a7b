"""Batch systems: where tasks run. `base` is the protocol; one module per system."""

from __future__ import annotations

from typing import Any

from fntree.batch.base import BatchSystem, WorkerSetup
from fntree.errors import FntreeError

NAMES = ("local", "slurm")


def make(name: str, setup: WorkerSetup, options: dict[str, Any]) -> BatchSystem:
    """The batch system called `name`, ready to take tasks; it reads what it needs of `options`.

    `options` holds the run's resolved options (see fntree.api.DEFAULTS).
    """
    if name == "local":
        from fntree.batch.local import LocalBatchSystem

        return LocalBatchSystem(setup, max_cpus=options["max_cpus"],
                                max_memory=options["max_memory"])
    if name == "slurm":
        from fntree.batch.slurm import SlurmBatchSystem

        return SlurmBatchSystem(setup, max_jobs=options.get("max_jobs"),
                                partition=options.get("slurm_partition"),
                                extra_args=options.get("slurm_args"),
                                max_memory=options.get("max_memory"))
    raise FntreeError(f"unknown batch system {name!r}; choose one of: {', '.join(NAMES)}")
