"""Batch systems: where tasks run. `base` is the protocol; one module per system."""

from __future__ import annotations

from typing import Any

from fntree.batch.base import BatchSystem, WorkerSetup
from fntree.batch.files import cancel_gridengine_leftovers
from fntree.errors import FntreeError, SlurmError

NAMES = ("local", "slurm", "gridengine", "sge")


def make(name: str, setup: WorkerSetup, options: dict[str, Any]) -> BatchSystem:
    """The batch system called `name`, ready to take tasks; it reads what it needs of `options`.

    `options` holds the run's resolved options (see fntree.api.DEFAULTS).
    """
    if name == "local":
        from fntree.batch.local import LocalBatchSystem

        _cancel_slurm_leftovers(setup)
        cancel_gridengine_leftovers(setup)
        return LocalBatchSystem(setup, max_cpus=options["max_cpus"],
                                max_memory=options["max_memory"])
    if name == "slurm":
        from fntree.batch.slurm import SlurmBatchSystem

        cancel_gridengine_leftovers(setup)
        return SlurmBatchSystem(setup, max_jobs=options.get("max_jobs"),
                                partition=options.get("slurm_partition"),
                                extra_args=options.get("slurm_args"),
                                max_memory=options.get("max_memory"))
    if name in ("gridengine", "sge"):
        from fntree.batch.gridengine import GridEngineBatchSystem

        _cancel_slurm_leftovers(setup)
        return GridEngineBatchSystem(setup, max_jobs=options.get("max_jobs"),
                                     queue=options.get("sge_queue"), pe=options.get("sge_pe"),
                                     extra_args=options.get("sge_args"),
                                     resources=options.get("sge_resources"),
                                     max_memory=options.get("max_memory"))
    raise FntreeError(f"unknown batch system {name!r}; choose one of: {', '.join(NAMES)}")


def _cancel_slurm_leftovers(setup: WorkerSetup) -> None:
    """A store whose earlier leader ran on Slurm may still have jobs there: cancel them first.

    Otherwise a restart on another batch system could run a job that an earlier
    leader's Slurm job is still running.
    """
    jobs = setup.store_root / "batch" / "slurm" / "jobs"
    if not jobs.is_file() or not jobs.stat().st_size:
        return
    from fntree.batch.slurm import SlurmBatchSystem

    try:
        SlurmBatchSystem(setup).close()  # which cancels them, and waits until they are gone
    except SlurmError as exc:
        raise SlurmError(
            f"an earlier leader of job store {setup.store_root} ran its jobs on Slurm, and "
            f"whether they still run cannot be checked ({exc}); cancel them "
            f"(`scancel --name fntree-{setup.store_id}-...`), or restart with "
            "--batch-system slurm") from exc
