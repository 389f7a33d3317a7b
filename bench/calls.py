"""Calls: what making a `Call` costs, in CPU µs (the best of several rounds).

Making a call serializes its arguments, records the file and line that made it,
and, inside a job's body, lists it for the dropped-call check. Printed: a call
with a small argument, a call taking a promise, and the same inside
`made_calls()` as in a job's body.

    python bench/calls.py
"""

from __future__ import annotations

import sys
import time
import timeit

import fntree
from fntree import dsl


@fntree.target
def square(n: int) -> int:
    return n * n


@fntree.target
def add(a: int, b: int) -> int:
    return a + b


def plain() -> object:
    return square(3)


def promise() -> object:
    return add(square(1), 2)


def best(fn: object, number: int = 20_000, rounds: int = 9) -> float:
    """CPU µs per call of `fn`: the fastest of `rounds` rounds of `number` calls."""
    times = timeit.repeat(fn, number=number, repeat=rounds, timer=time.process_time)  # type: ignore[arg-type]
    return min(times) / number * 1e6


def main() -> int:
    print(f"square(3):             {best(plain):.2f} µs")
    print(f"add(square(1), 2):     {best(promise):.2f} µs")
    if hasattr(dsl, "made_calls"):
        with dsl.made_calls() as made:
            inside = best(plain)
            made.clear()
        print(f"square(3) in a body:   {inside:.2f} µs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
