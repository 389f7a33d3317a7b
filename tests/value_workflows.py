"""Targets with values longer than the inline limit, for tests/test_values.py (workers import
them: tests/ is on the recorded path)."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import fntree


def blob(size: int, seed: int) -> bytes:
    """`size` bytes that differ with `seed` (not all one byte: checks see an exact copy)."""
    unit = hashlib.sha256(seed.to_bytes(8, "little")).digest()
    return (unit * (size // 32 + 1))[:size]


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@fntree.target
def make(size: int, seed: int) -> bytes:
    return blob(size, seed)


@fntree.target
def consume(value: bytes) -> str:
    return digest(value)


@fntree.target
def echo(value: bytes) -> bytes:
    """Its (large) argument, returned as its (large) value."""
    return value


@fntree.target
def pipeline(size: int) -> fntree.Call:
    """A value made by one job and taken as the argument of another; the run's value is small."""
    return consume(make(size, 7))


@fntree.target
def twins(size: int) -> fntree.Spawn:
    """Two jobs returning the same value: the store holds it once."""
    return fntree.children(make(size, 3), make(size, 3))


@fntree.target
def marked(size: int, marker: str) -> bytes:
    """A value made after this worker's pid is written to `marker` (first attempt only), for a
    test to kill it while it writes the value."""
    if not os.path.exists(marker):
        Path(marker + ".tmp").write_text(str(os.getpid()))
        os.replace(marker + ".tmp", marker)
    return blob(size, 11)


@fntree.target
def kill_target(size: int, marker: str) -> fntree.Call:
    return consume(marked(size, marker))


@fntree.target(cache=True)
def pure_make(size: int, seed: int) -> bytes:
    return blob(size, seed)


@fntree.target(cache=True)
def pure_pair(size: int) -> fntree.Spawn:
    """A pure target whose value is its children's (large) values: the leader caches them."""
    return fntree.children(pure_make(size, 21), pure_make(size, 22))


@fntree.target
def slow_small(i: int) -> int:
    time.sleep(0.01)
    return i


@fntree.target
def relay(size: int) -> fntree.Call:
    """A long value made by one job, passed to another that returns it as the run's value."""
    return echo(make(size, 4))


@fntree.target
def gated_block(size: int, seed: int, gate: str = "") -> bytes:
    """A value of `size` bytes; with a `gate`, made only once that file exists."""
    while gate and not os.path.exists(gate):
        time.sleep(0.05)
    return blob(size, seed)


@fntree.target
def digest_all(values: list[bytes]) -> str:
    return digest(b"".join(values))


@fntree.target
def held(width: int, size: int, gate: str) -> fntree.Spawn:
    """`width` children's values of `size` bytes and one more made once `gate` exists, all
    taken by one follow-on (the leader holds the first ones meanwhile)."""
    blocks = [gated_block(size, k) for k in range(width)] + [gated_block(size, width, gate)]
    return fntree.children(*blocks).then(digest_all(blocks))


def held_digest(width: int, size: int) -> str:
    """The value of `held(width, size, gate)`."""
    return digest(b"".join(blob(size, k) for k in range(width + 1)))
