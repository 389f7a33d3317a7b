"""Targets the tests of the timeline and of peak memory run: hogs in and out of the worker,
and many jobs too short to draw apart."""

from __future__ import annotations

import subprocess
import sys
import time

import fntree

HOLD = ("import sys, time; b = bytearray(int(sys.argv[1]) << 20); "
        "b[::4096] = b'x' * len(b[::4096]); time.sleep(float(sys.argv[2]))")


@fntree.target(memory="512M", time="1m")
def hog(mib: int) -> int:
    """Holds `mib` MiB in the worker process itself for a moment."""
    block = bytearray(mib << 20)
    block[::4096] = b"x" * len(block[::4096])
    time.sleep(0.05)
    return len(block) >> 20


@fntree.target(memory="1G")
def child_hog(mib: int, seconds: float) -> int:
    """Starts a process that holds `mib` MiB for `seconds`."""
    subprocess.run([sys.executable, "-c", HOLD, str(mib), str(seconds)], check=True)
    return mib


@fntree.target
def idle() -> int:
    """Does almost nothing."""
    return 0


@fntree.target
def blip(i: int) -> int:
    return i


@fntree.target
def sized(hog_mib: int, child_mib: int, blips: int) -> fntree.Spawn:
    """A hog, a child hog, an idle job and `blips` jobs far shorter than a pixel."""
    parts = [hog(hog_mib), child_hog(child_mib, 0.6), idle(), *[blip(i) for i in range(blips)]]
    return fntree.children(*parts)


@fntree.target
def slow(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@fntree.target
def wave(n: int, seconds: float) -> fntree.Spawn:
    """`n` jobs of `seconds` each, then many short ones."""
    return fntree.children(*[slow(seconds) for _ in range(n)], *[blip(i) for i in range(40)])
