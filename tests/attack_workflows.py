"""Targets for the tests/test_attack_*.py files (workers import them: tests/ is on the path)."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import value_workflows as vw

import fntree


def _mark(marker: str) -> None:
    Path(marker + ".tmp").write_text(str(os.getpid()))
    os.replace(marker + ".tmp", marker)


@fntree.target
def held(value: bytes, marker: str) -> str:
    """The digest of `value`, once `marker + ".go"` exists; `marker` names this worker's pid
    while it waits."""
    _mark(marker)
    while not os.path.exists(marker + ".go"):
        time.sleep(0.05)
    return hashlib.sha256(value).hexdigest()


@fntree.target
def made_then_held(size: int, marker: str) -> fntree.Call:
    """A long value made by one job and read by another that waits: it stays live meanwhile."""
    return held(vw.make(size, 13), marker)


@fntree.shell(outputs=["out"], retries=0)
def dir_output(out: Path, text: str) -> str:
    """A directory as its output, holding one file with `text`."""
    return fntree.sh("mkdir {out} && echo {text} > {out}/a", out=out, text=text)


@fntree.shell(outputs=["out"], retries=0)
def file_output(out: Path, text: str) -> str:
    return fntree.sh("echo {text} > {out}", out=out, text=text)


@fntree.target
def digests(values: list[bytes]) -> str:
    """One digest of the long values it is given, in order."""
    return hashlib.sha256(b"".join(hashlib.sha256(v).digest() for v in values)).hexdigest()


@fntree.target
def fan(n: int, size: int) -> fntree.Call:
    """`n` jobs making long values, then one job reading them all."""
    return digests([vw.make(size, seed) for seed in range(n)])


def fan_expected(n: int, size: int) -> str:
    return hashlib.sha256(b"".join(hashlib.sha256(vw.blob(size, seed)).digest()
                                   for seed in range(n))).hexdigest()


@fntree.shell(retries=0)
def forgot_return(x: int) -> str:
    """A newcomer's mistake: the command is built, never returned."""
    fntree.sh("echo {x}", x=x)  # type: ignore[return-value]


@fntree.shell(retries=0)
def returns_number(x: int) -> str:
    return 42  # type: ignore[return-value]


@fntree.shell(retries=0)
def returns_blank(x: int) -> str:
    return "  "


@fntree.target
def say_when(i: int, go: str) -> int:
    """Log `said <i>` once the file `go` exists (at once if `go` is empty)."""
    while go and not os.path.exists(go):
        time.sleep(0.05)
    fntree.context().log(f"said {i:04d}")
    time.sleep(0.05)  # spread over several of the leader's writes of its event log
    return i


@fntree.target
def sum_of(values: list[int]) -> int:
    return sum(values)


@fntree.target
def say_all(n: int, go: str) -> fntree.Spawn:
    """`n` jobs that each log one message once `go` exists (at once if `go` is empty); then
    their sum."""
    kids = [say_when(i, go) for i in range(n)]
    return fntree.children(*kids).then(sum_of(kids))


@fntree.target
def nap(i: int) -> int:
    """`i`, after a short nap, or a long one for every 50th (so a run has jobs in flight)."""
    time.sleep(0.01 if i % 50 else 600)
    return i


@fntree.target
def naps(n: int) -> fntree.Spawn:
    kids = [nap(i) for i in range(n)]
    return fntree.children(*kids).then(sum_of(kids))
