"""The run's default resources: what a job whose target declares no `time` or `memory`
is given, on any batch system.

`with_defaults(batch, options)` returns `batch` itself when the run sets neither
`default_time` nor `default_memory` (config keys `default-time`, `default-memory`; see
docs/config.md), else a `DefaultResources` in front of it. That wrapper fills the
unsaid fields of each task's `Res` as it is submitted, so the scheduler's request
(`sbatch --time/--mem`, Grid Engine's `h_rt/h_vmem`), the local batch system's
admission and time limit, and `context().memory` / `.time` in the job all see them;
`can_take` is asked with the same filled `Res`. A target's own declaration always
wins. The leader's records keep the target's declaration: a retry after a job went
over its memory or time doubles from the batch system's built-in default, as before.
"""

from __future__ import annotations

from typing import Any

from fntree.batch.base import BatchSystem, Res, Task, Update
from fntree.errors import ResourceError
from fntree.resources import format_memory


class DefaultResources:
    """`batch`, with unsaid time and memory filled from the run's defaults."""

    def __init__(self, batch: BatchSystem, time: float | None, memory: int | None) -> None:
        self.batch = batch
        self.time = time
        self.memory = memory
        self.name = batch.name
        self.parallelism = batch.parallelism
        self.packet_time = batch.packet_time
        _, most = batch.limits()
        if memory is not None and memory > most:
            raise ResourceError(
                f"the default memory {format_memory(memory)} is more than one job may have "
                f"on the {batch.name} batch system ({format_memory(most)}); lower "
                "default-memory in the config file or $FNTREE_DEFAULT_MEMORY")

    def fill(self, res: Res) -> Res:
        return res._replace(time=self.time if res.time is None else res.time,
                            memory=self.memory if res.memory is None else res.memory)

    def limits(self) -> tuple[float, int]:
        return self.batch.limits()

    def can_take(self, res: Res) -> bool:
        return self.batch.can_take(self.fill(res))

    def submit(self, tasks: list[Task], fns: dict[bytes, bytes]) -> int:
        return self.batch.submit([t._replace(res=self.fill(t.res)) for t in tasks], fns)

    def poll(self, timeout: float) -> list[Update]:
        return self.batch.poll(timeout)

    def cancel(self) -> None:
        self.batch.cancel()

    def close(self) -> None:
        self.batch.close()


def with_defaults(batch: BatchSystem, options: dict[str, Any]) -> BatchSystem:
    """`batch`, or `batch` behind the run's default resources when it sets any."""
    time, memory = options.get("default_time"), options.get("default_memory")
    if time is None and memory is None:
        return batch
    return DefaultResources(batch, time, memory)
