"""redun's side of bench/vs_peers.py: the four workloads as redun tasks, as redun's docs write
them, run by `Scheduler.run` with redun's default local executor (a pool of threads) and a
SQLite call graph in a file in a temp dir (what `redun run` keeps in `.redun/redun.db`).

- fanout: `fanout(n)` returns `total([leaf(i) for i in range(n)])`: lazy expressions;
- chain: `hop(n, 0)` returns `hop(n - 1, 1)`, a tail call, n times;
- fib: `fib(n, path)` returns `add(fib(n - 1, path + "L"), fib(n - 2, path + "R"))`: tasks
  returning expressions of tasks, evaluated at run time. The `path` argument is there because
  redun runs a call once per distinct arguments: plain `fib(n)` would make 19 calls, not 8,361;
- cpu: `cpu(n)` returns `total([spin(i) for i in range(n)])`, on the same threads.

Durability: each finished call's result is recorded in the call-graph database (SQLite, with
its own commits); a new run of the same expression reuses every recorded call whose task and
arguments are unchanged, so a killed run resumes, redoing only the calls that were running.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common
from redun import Scheduler, task
from redun.config import Config

redun_namespace = "vs_peers"
DB_URI = "sqlite:///{db}"  # what `redun run` keeps in .redun/redun.db


@task()
def leaf(i: int) -> int:
    return i


@task()
def total(values: list[int]) -> int:
    return sum(values)


@task()
def add(a: int, b: int) -> int:
    return a + b


@task()
def fanout(n: int) -> Any:
    return total([leaf(i) for i in range(n)])


@task()
def hop(remaining: int, done: int) -> Any:
    if remaining == 0:
        return done
    return hop(remaining - 1, done + 1)


@task()
def fib(n: int, path: str) -> Any:
    if n < 2:
        return n
    return add(fib(n - 1, path + "L"), fib(n - 2, path + "R"))


@task()
def spin(i: int) -> int:
    return common.spin(i)


@task()
def cpu(n: int) -> Any:
    return total([spin(i) for i in range(n)])


ROOTS = {"fanout": fanout, "chain": lambda n: hop(n, 0), "fib": lambda n: fib(n, ""),
         "cpu": cpu}


def main() -> int:
    args = common.parse(("local",))
    scratch = tempfile.TemporaryDirectory(prefix="vs-peers-redun-")

    def start() -> Scheduler:
        db = Path(scratch.name) / "redun.db"
        scheduler = Scheduler(config=Config({"backend": {"db_uri": DB_URI.format(db=db)}}))
        scheduler.load()
        return scheduler

    return common.measure(args, start,
                          lambda scheduler: scheduler.run(ROOTS[args.workload](args.n)),
                          lambda _: scratch.cleanup())


if __name__ == "__main__":
    sys.exit(main())
