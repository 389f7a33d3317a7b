"""Targets of the tests on a workflow's shape (depth) and on calls a body made.

Importable by workers (tests/ is on the recorded path). Lines that make a call
a test looks for in an error message carry a `# line:NAME` marker; `line_of`
finds them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fntree


def line_of(marker: str) -> str:
    """`file:line` of the line of this module marked `# line:<marker>`."""
    lines = Path(__file__).read_text().splitlines()
    number = next(i for i, text in enumerate(lines, 1) if text.endswith(f"# line:{marker}"))
    return f"{__file__}:{number}"


def unwrap(value: Any) -> tuple[int, Any]:
    """(depth, innermost) of a value nested in one-item lists, without recursion."""
    depth = 0
    while isinstance(value, list):
        assert len(value) == 1, value
        value, depth = value[0], depth + 1
    return depth, value


# -- depth ------------------------------------------------------------------------------


@fntree.target
def nest(n: int, marker: str = "", at: int = -1) -> Any:
    """Children-only nesting `n` deep: the value is "leaf" inside `n` one-item lists."""
    if n == at:
        Path(marker).touch()
    if n == 0:
        return "leaf"
    return fntree.children(nest(n - 1, marker, at))


@fntree.target
def inc(x: int) -> int:
    return x + 1


def promise_chain(n: int) -> fntree.Call:
    """`inc(inc(...inc(0)...))`, `n` calls nested statically."""
    call = inc(0)
    for _ in range(n - 1):
        call = inc(call)
    return call


@fntree.target
def returns_promise_chain(n: int) -> fntree.Call:
    """A body returning a promise chain `n` calls deep."""
    return promise_chain(n)


@fntree.target
def hop(n: int, count: int) -> Any:
    """`n` tail calls, each the next job of the chain."""
    if n == 0:
        return count
    return hop(n - 1, count + 1)


# -- calls a body made ------------------------------------------------------------------


@fntree.target
def part(i: int) -> int:
    return i


@fntree.target
def total(values: list[int]) -> int:
    return sum(values)


@fntree.target
def add(a: int, b: int) -> int:
    return a + b


@fntree.target
def forgets_return(n: int) -> None:
    """The mistake: the spawn is built and dropped."""
    parts = [part(i) for i in range(n)]
    fntree.children(*parts).then(total(parts))  # line:forgotten


@fntree.target
def formats_a_call(n: int) -> str:
    return f"result is {part(n)}"  # line:formatted


@fntree.target
def keeps_every_call(n: int) -> Any:
    """Calls listed, promised, nested in arguments, made in a helper, built into a value."""
    listed = [part(i) for i in range(n)]

    def helper(k: int) -> fntree.Call:
        return add(part(k), k)

    value = {"parts": listed, "pair": (helper(1), [add(add(part(2), 3), part(4))])}
    return fntree.children(*listed).then(echo(value))


@fntree.target
def echo(value: Any) -> Any:
    return value


@fntree.target
def root_returning_calls() -> Any:
    """A root whose value holds calls at several depths."""
    return {"a": part(1), "b": [part(2), add(part(3), add(part(4), 5))], "c": (inc(6),)}
