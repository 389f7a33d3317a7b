"""Ray's side of bench/vs_peers.py: the four workloads as Ray remote functions, as Ray's docs
write them, on a local Ray started with `ray.init(num_cpus=cores)` (its start is `startup`,
not `run`; the dashboard is off and the object store small, to share the machine).

- fanout: `leaf.remote(i)` for each i, then `total.remote(*refs)`;
- chain: `x = step.remote(x)` with each object ref passed on, n times;
- fib: nested remote calls: `fib(n)` calls `fib.remote(n - 1)` and `fib.remote(n - 2)` and
  `ray.get`s them: tasks creating tasks at run time. A task blocked in `ray.get` gives back its
  CPU and Ray starts another worker process, so the recursion holds a process per waiting call;
- cpu: `spin.remote(i)` for each i, then `total.remote(*refs)`.

Durability: none for tasks. Results live in the object store's memory; if the driver dies its
tasks and objects are gone, and a new run starts from nothing (Ray's fault tolerance retries
tasks whose worker died within a run; Ray Workflows, which persisted steps, is deprecated).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common
import ray


@ray.remote
def leaf(i: int) -> int:
    return i


@ray.remote
def step(x: int) -> int:
    return x + 1


@ray.remote
def total(*values: int) -> int:
    return sum(values)


@ray.remote
def spin(i: int) -> int:
    return common.spin(i)


@ray.remote
def fib(n: int) -> int:
    if n < 2:
        return n
    return sum(ray.get([fib.remote(n - 1), fib.remote(n - 2)]))


def fanout(n: int) -> int:
    return ray.get(total.remote(*[leaf.remote(i) for i in range(n)]))


def chain(n: int) -> int:
    x: Any = 0
    for _ in range(n):
        x = step.remote(x)
    return ray.get(x)


def cpu(n: int) -> int:
    return ray.get(total.remote(*[spin.remote(i) for i in range(n)]))


WORKLOADS = {"fanout": fanout, "chain": chain, "fib": lambda n: ray.get(fib.remote(n)),
             "cpu": cpu}


def main() -> int:
    args = common.parse(("local",))
    # Ray's worker processes import `common` for spin: they inherit this path.
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).resolve().parent), os.environ.get("PYTHONPATH", "")])

    def start() -> None:
        ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False,
                 object_store_memory=200 * 1024 * 1024, log_to_driver=False)
        ray.get(leaf.remote(0))  # the first worker process is up, as in a long-running driver

    return common.measure(args, start, lambda _: WORKLOADS[args.workload](args.n),
                          lambda _: ray.shutdown())


if __name__ == "__main__":
    sys.exit(main())
