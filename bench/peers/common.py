"""What every side of bench/vs_peers.py shares: the workloads' pure functions, their sizes,
their expected values, and the one-line protocol a case speaks to the driver.

A case is one process: `python bench/peers/<side>.py --mode M --workload W`. It starts its
system (the seconds that takes are `startup`), runs the workload once (`run`: from the first
submission to the final value in the caller's hands), checks the value, stops its system and
prints one JSON line starting with `RESULT ` on stdout. Anything else it prints is ignored.

This module imports nothing outside the standard library, so it loads in fntree's virtual
environment and in the peers' alike.
"""

from __future__ import annotations

import argparse
import json
import resource
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

WORKLOADS = ("fanout", "chain", "fib", "cpu")

# Sizes, fixed so that every system does the same work (`--n` overrides for quick trials).
SIZES = {"fanout": 10_000, "chain": 2_000, "fib": 18, "cpu": 200}

# Pure-Python work of about 50 ms on this machine's cores when idle.
SPIN_ITERATIONS = 450_000


def expected(workload: str, n: int) -> int:
    """The value a correct run of `workload` at size `n` returns."""
    if workload == "fanout":
        return n * (n - 1) // 2
    if workload == "chain":
        return n
    if workload == "fib":
        return fib_value(n)
    return n * spin_value()


def units(workload: str, n: int) -> int:
    """The tasks (or calls) a workload counts for its rate: leaves plus the sum, hops, calls."""
    if workload == "fanout":
        return n + 1
    if workload == "fib":
        return fib_calls(n)
    return n


def fib_value(n: int) -> int:
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


def fib_calls(n: int) -> int:
    """Calls that the naive recursion makes: 8,361 for fib(18)."""
    return 2 * fib_value(n + 1) - 1


def leaf(i: int) -> int:
    return i


def step(x: int) -> int:
    return x + 1


def add(*values: int) -> int:
    return sum(values)


def spin(i: int) -> int:
    """About 50 ms of pure-Python arithmetic that holds the interpreter lock throughout."""
    total = 0
    for k in range(SPIN_ITERATIONS):
        total += k * k % 7
    return total % 1000 + 0 * i


_SPIN_VALUE: list[int] = []


def spin_value() -> int:
    """What `spin` returns (the same for every i); computed once, without the 50 ms."""
    if not _SPIN_VALUE:
        _SPIN_VALUE.append(sum(k * k % 7 for k in range(SPIN_ITERATIONS)) % 1000)
    return _SPIN_VALUE[0]


def parse(modes: tuple[str, ...]) -> argparse.Namespace:
    """A case's command line: `--mode`, `--workload`, `--n`."""
    parser = argparse.ArgumentParser(description="one case of bench/vs_peers.py")
    parser.add_argument("--mode", choices=modes, default=modes[0])
    parser.add_argument("--workload", choices=WORKLOADS, required=True)
    parser.add_argument("--n", type=int, default=None, help="size (the workload's default)")
    args = parser.parse_args()
    if args.n is None:
        args.n = SIZES[args.workload]
    return args


def measure(args: argparse.Namespace, start: Callable[[], Any],
            run: Callable[[Any], int], stop: Callable[[Any], None],
            first_job: Callable[[Any], float] | None = None) -> int:
    """Start the system, run the workload once, check it, stop, and print the RESULT line.

    `first_job` gives the wall-clock time at which a system that starts inside `run` (fntree)
    began its first job: what came before it counts as start-up.
    """
    # On the driver's timeout, SIGTERM unwinds through `stop`: the system ends its processes.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped by SIGTERM"))
    began = time.perf_counter()
    system = start()
    started = time.perf_counter()
    try:
        value = run(system)
        finished = time.perf_counter()
        if first_job is not None:
            started = finished - (time.time() - first_job(system))
    finally:
        stop(system)
    want = expected(args.workload, args.n)
    report = {
        "startup": started - began,
        "run": finished - started,
        "units": units(args.workload, args.n),
        "ok": value == want,
        "value": value,
        "expected": want,
        "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    print("RESULT " + json.dumps(report), flush=True)
    return 0 if report["ok"] else 1


def serial_main() -> int:
    """`python common.py serial N`: the CPU workload's N tasks one after another, in-process."""
    n = int(sys.argv[2]) if len(sys.argv) > 2 else SIZES["cpu"]
    args = argparse.Namespace(workload="cpu", n=n)
    return measure(args, lambda: None, lambda _: sum(spin(i) for i in range(n)), lambda _: None)


if __name__ == "__main__":
    sys.exit(serial_main())
