"""The chaos workload: a seeded random tree whose correct value is known in advance.

Every node draws its shape from `random.Random(seed)`: depth 2-6, 1-9 children,
and how it combines them — through promises (`return combine(kids)`), through an
explicit follow-on, or through a file its founder writes in the chain's global
temp dir for its follow-on to read. Leaves sleep a little and return a large
seeded number, so a leaf counted twice (or lost) changes the sum; one leaf in
eight also leaves a `setsid` daemon behind, which must not outlive its job.
`expected(seed)` computes the same tree's value in plain Python.

`cached_node` is the same tree with its pure parts declared so (`cache=True`):
its leaves are calls of `leaf`, and `combine` sums; a second run through the
same cache takes them from it, while the nodes (which write files for their
follow-ons) run again.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from typing import Any

import fntree

LEAF_SLEEP = 0.01
DAEMON = "import time; time.sleep(600)"


def _shape(seed: int, depth: int) -> tuple[str, list[int], int]:
    """(how to combine, the children's seeds, this node's own value)."""
    rng = random.Random(seed)
    own = rng.randrange(1, 10**9)
    if depth == 0 or (depth < 6 and rng.random() < 0.45):
        return "leaf", [], own
    kids = [rng.randrange(2**62) for _ in range(rng.randint(1, 9))]
    return rng.choice(["promise", "follow", "gtd"]), kids, own


def expected(seed: int, depth: int) -> int:
    mode, kids, own = _shape(seed, depth)
    if mode == "leaf":
        return own
    total = sum(expected(k, depth - 1) for k in kids)
    return total + own if mode == "gtd" else total


def size(seed: int, depth: int) -> int:
    """How many jobs the tree runs (nodes plus their follow-ons)."""
    mode, kids, _ = _shape(seed, depth)
    return 1 if mode == "leaf" else 2 + sum(size(k, depth - 1) for k in kids)


@fntree.target
def node(seed: int, depth: int) -> object:
    mode, kids, own = _shape(seed, depth)
    if mode == "leaf":
        return _leaf(own)
    return _spawn(own, mode, [node(k, depth - 1) for k in kids])


@fntree.target
def cached_node(seed: int, depth: int) -> object:
    mode, kids, own = _shape(seed, depth)
    if mode == "leaf":
        return _leaf(own)
    calls = [leaf(k, depth - 1) if _shape(k, depth - 1)[0] == "leaf"
             else cached_node(k, depth - 1) for k in kids]
    return _spawn(own, mode, calls)


@fntree.target(cache=True)
def leaf(seed: int, depth: int) -> int:
    return _leaf(_shape(seed, depth)[2])


def _leaf(own: int) -> int:
    if own % 8 == 0:  # its worker must kill it when the job ends
        subprocess.Popen(["setsid", sys.executable, "-c", DAEMON, "fntree-chaos-daemon",
                          os.environ.get("FNTREE_RUN", "")])
    time.sleep(LEAF_SLEEP)
    return own


def _spawn(own: int, mode: str, calls: list[Any]) -> object:
    if mode == "promise":
        return combine(calls)
    if mode == "follow":
        return fntree.children(*calls).then(combine(calls))
    note = fntree.context().global_temp_dir / "own"
    note.write_text(str(own))
    return fntree.children(*calls).then(combine_with_note(str(note), calls))


@fntree.target(cache=True)
def combine(values: list[int]) -> int:
    return sum(values)


@fntree.target
def combine_with_note(note: str, values: list[int]) -> int:
    with open(note) as f:
        return sum(values) + int(f.read())
