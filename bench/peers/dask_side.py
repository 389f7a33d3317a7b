"""Dask's side of bench/vs_peers.py: the four workloads with `dask.delayed`, as Dask's docs
write them, computed by the threaded scheduler (`--mode threads`) or by `dask.distributed`
on a `LocalCluster` of one worker process per core (`--mode distributed`; the cluster's
start is `startup`, not `run`).

- fanout: `delayed(leaf)(i)` for each i, then `delayed(sum)` of the list;
- chain: `x = delayed(step)(x)`, n times;
- fib: `delayed` recursion built in the caller: a static graph of 8,361 calls (plus the adds),
  not tasks creating tasks. The threaded scheduler cannot run tasks that submit tasks; the
  distributed one can (`worker_client`, Dask's "submit tasks from tasks"), which `--mode
  distributed-dynamic` runs for the record;
- cpu: `delayed(spin)(i)` for each i, then `delayed(sum)`.

Durability: none. The graph and every result live in memory (the caller's, or the scheduler's
and workers'); a killed run loses everything and starts again from nothing.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common
import dask
from dask import delayed


def fanout(n: int) -> Any:
    return delayed(sum)([delayed(common.leaf)(i) for i in range(n)])


def chain(n: int) -> Any:
    x: Any = 0
    for _ in range(n):
        x = delayed(common.step)(x)
    return x


def fib(n: int) -> Any:
    if n < 2:
        return delayed(common.leaf)(n)
    return delayed(common.add)(fib(n - 1), fib(n - 2))


def cpu(n: int) -> Any:
    return delayed(sum)([delayed(common.spin)(i) for i in range(n)])


GRAPHS = {"fanout": fanout, "chain": chain, "fib": fib, "cpu": cpu}


def dynamic_fib(n: int) -> int:
    """Dask's "submit tasks from tasks": each call submits its two children and waits."""
    from distributed import worker_client

    if n < 2:
        return n
    with worker_client() as client:  # secedes from the worker's thread pool while waiting
        a, b = client.gather([client.submit(dynamic_fib, n - 1, pure=False),
                              client.submit(dynamic_fib, n - 2, pure=False)])
    return a + b


def main() -> int:
    args = common.parse(("threads", "distributed", "distributed-dynamic"))
    sys.setrecursionlimit(100_000)  # a chain of 2,000 delayed calls is a deep graph

    if args.mode == "threads":
        return common.measure(
            args, lambda: None,
            lambda _: dask.compute(GRAPHS[args.workload](args.n), scheduler="threads")[0],
            lambda _: None)

    def start() -> Any:
        from distributed import Client, LocalCluster

        cores = os.cpu_count() or 1
        cluster = LocalCluster(n_workers=cores, threads_per_worker=1, processes=True,
                               dashboard_address=None)
        return cluster, Client(cluster)

    def run(system: Any) -> int:
        _, client = system
        if args.mode == "distributed-dynamic" and args.workload == "fib":
            return client.submit(dynamic_fib, args.n, pure=False).result()
        return client.compute(GRAPHS[args.workload](args.n)).result()

    def stop(system: Any) -> None:
        cluster, client = system
        client.close()
        cluster.close()

    return common.measure(args, start, run, stop)


if __name__ == "__main__":
    sys.exit(main())
