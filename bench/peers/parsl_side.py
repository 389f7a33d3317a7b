"""Parsl's side of bench/vs_peers.py: the four workloads as Parsl apps, as Parsl's docs write
them, on a `ThreadPoolExecutor` of one thread per core (`--mode threads`) or a
`HighThroughputExecutor` with one local block of one worker per core (`--mode htex`; loading
the configuration and the block's start are `startup`, not `run`).

- fanout: `leaf(i)` for each i, then `total(inputs=futures)`;
- chain: `x = step(x)` with each future passed on, n times;
- fib: Parsl's own `join_app` example: `fib(n)` returns `add(fib(n - 1), fib(n - 2))`, and
  the leaves return `add(n)`; the join apps run in the caller's process, the adds on the
  executor: tasks creating tasks at run time;
- cpu: `spin(i)` for each i, then `total(inputs=futures)`.

Durability: none by default. Results live in the caller's memory; the monitoring database is
off. With app caching and `checkpoint_mode` set (not used here) a new run reloads checkpointed
results, so a killed run can skip work done before its last checkpoint.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common
import parsl
from parsl.app.app import join_app, python_app
from parsl.config import Config


@python_app
def leaf(i: int) -> int:
    return i


@python_app
def step(x: int) -> int:
    return x + 1


@python_app
def add(*values: int) -> int:
    return sum(values)


@python_app
def total(inputs: list[Any] = ()) -> int:  # type: ignore[assignment]
    return sum(inputs)


@python_app
def spin(i: int) -> int:
    import common

    return common.spin(i)


@join_app
def fib(n: int) -> Any:
    if n < 2:
        return add(n)
    return add(fib(n - 1), fib(n - 2))


def fanout(n: int) -> int:
    return total(inputs=[leaf(i) for i in range(n)]).result()


def chain(n: int) -> int:
    x: Any = 0
    for _ in range(n):
        x = step(x)
    return x.result()


def cpu(n: int) -> int:
    return total(inputs=[spin(i) for i in range(n)]).result()


WORKLOADS = {"fanout": fanout, "chain": chain, "fib": lambda n: fib(n).result(), "cpu": cpu}


def config(mode: str, run_dir: str) -> Config:
    cores = os.cpu_count() or 1
    if mode == "threads":
        from parsl.executors.threads import ThreadPoolExecutor

        return Config(executors=[ThreadPoolExecutor(max_threads=cores, label="threads")],
                      run_dir=run_dir)
    from parsl.executors import HighThroughputExecutor
    from parsl.providers import LocalProvider

    provider = LocalProvider(init_blocks=1, min_blocks=1, max_blocks=1)
    executor = HighThroughputExecutor(label="htex", max_workers_per_node=cores,
                                      provider=provider, address="127.0.0.1")
    return Config(executors=[executor], run_dir=run_dir)


def main() -> int:
    args = common.parse(("threads", "htex"))
    scratch = tempfile.TemporaryDirectory(prefix="vs-peers-parsl-")
    # HTEX workers import `common` from the spin app: they inherit this path. HTEX starts
    # `interchange.py` and `process_worker_pool.py` from PATH: the virtual environment's.
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).resolve().parent), os.environ.get("PYTHONPATH", "")])
    os.environ["PATH"] = os.pathsep.join(
        [str(Path(sys.executable).parent), os.environ.get("PATH", "")])

    def start() -> Any:
        dfk = parsl.load(config(args.mode, scratch.name))
        if args.mode == "htex":  # wait for the block's workers, as a long-running app would
            add(0).result()
        return dfk

    def stop(dfk: Any) -> None:
        dfk.cleanup()
        scratch.cleanup()

    return common.measure(args, start, lambda _: WORKLOADS[args.workload](args.n), stop)


if __name__ == "__main__":
    sys.exit(main())
