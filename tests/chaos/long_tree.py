"""The long tree: WIDTH branches of LEAVES leaves, values of several sizes across the inline limit.

`long_tree(seed, width, leaves)` spawns `width` branches, each of `leaves` leaves
and a follow-on folding their values; the root's follow-on folds the branches'.
A leaf's value is seeded bytes whose size is drawn from `SIZES` (most short;
some just under and just over the 64 KiB limit at which a value is stored out of
line, and some well over it), and every tenth branch takes a long argument
(`BALLAST` bytes, stored out of line by the worker that spawns it). The root may
take one too (`pad`, a string of `BALLAST` characters on the command line): the
leader stores it out of line itself, as it creates the store. A fold sums
64-bit digests of its values, so a leaf counted twice, lost, or with a byte
changed changes the run's value; `expected` computes it in plain Python.
"""

from __future__ import annotations

import hashlib
import random

import fntree

# bytes of a leaf's value (pickled: a few more), and how often each is drawn
SIZES = ((100, 0.994), (4_000, 0.001), (65_000, 0.001), (65_400, 0.001), (65_600, 0.001),
         (70_000, 0.001), (250_000, 0.001))
BALLAST = 70_000


def leaf_size(seed: int, branch: int, i: int) -> int:
    draw = random.Random(hash((seed, branch, i)) & (2**63 - 1)).random()
    for size, share in SIZES:
        if draw < share:
            return size
        draw -= share
    return SIZES[0][0]


def leaf_value(seed: int, branch: int, i: int) -> bytes:
    unit = hashlib.sha256(f"{seed}/{branch}/{i}".encode()).digest()
    size = leaf_size(seed, branch, i)
    return (unit * (size // 32 + 1))[:size]


def digest64(value: object) -> int:
    data = value if isinstance(value, bytes) else str(value).encode()
    return int.from_bytes(hashlib.sha256(data).digest()[:8], "little")


def ballast(seed: int, branch: int) -> bytes:
    return bytes([branch % 251]) * BALLAST if branch % 10 == 0 else b""


@fntree.target
def leaf(seed: int, branch: int, i: int) -> bytes:
    return leaf_value(seed, branch, i)


@fntree.target
def fold(values: list[object], extra: int = 0) -> int:
    return (sum(digest64(v) for v in values) + extra) % 2**64


@fntree.target
def branch(seed: int, index: int, leaves: int, weight: bytes) -> fntree.Call:
    return fold([leaf(seed, index, i) for i in range(leaves)], len(weight))


@fntree.target
def long_tree(seed: int, width: int, leaves: int, pad: str = "") -> fntree.Call:
    return fold([branch(seed, b, leaves, ballast(seed, b)) for b in range(width)], len(pad))


def expected(seed: int, width: int, leaves: int, pad: str = "") -> int:
    """The value of `long_tree(seed, width, leaves, pad)`, in plain Python."""
    folds = []
    for b in range(width):
        total = sum(digest64(leaf_value(seed, b, i)) for i in range(leaves))
        folds.append((total + len(ballast(seed, b))) % 2**64)
    return (sum(digest64(v) for v in folds) + len(pad)) % 2**64


def jobs(width: int, leaves: int) -> int:
    """How many jobs the tree runs: the root, its follow-on, and each branch's."""
    return 2 + width * (leaves + 2)
