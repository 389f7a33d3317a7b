"""Targets that fail in chosen ways, for tests/test_failing.py (importable by workers)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import fntree


class FlakyServer(Exception):
    """A user's own exception class, which the leader never loads."""


@fntree.target
def count_words(i: int) -> int:
    """Fails the same way for every third i: a KeyError, not worth a retry by default."""
    fntree.context().log(f"counting {i}")
    if i % 3 == 0:
        return {}["x"]  # type: ignore[no-any-return]
    return i


@fntree.target
def words(n: int) -> fntree.Spawn:
    return fntree.children(*[count_words(i) for i in range(n)])


@fntree.target
def default_key_error() -> None:
    raise KeyError("x")


@fntree.target
def default_runtime_error() -> None:
    raise RuntimeError("maybe next time")


@fntree.target(retry_on=(OSError,))
def only_os_value_error() -> None:
    raise ValueError("bad")


@fntree.target(retry_on=(OSError,))
def only_os_missing_file() -> None:
    raise FileNotFoundError("gone")  # an OSError subclass: retried


@fntree.target(no_retry=(FlakyServer,))
def no_retry_own_class() -> None:
    raise FlakyServer("down")


@fntree.target(retry_on=(KeyError,))
def retry_on_key_error() -> None:
    raise KeyError("x")


@fntree.target(isolate=True)
def isolated_zero_division() -> float:
    return 1 / 0


@fntree.target
def kinds() -> fntree.Spawn:
    return fntree.children(default_key_error(), default_runtime_error(), only_os_value_error(),
                           only_os_missing_file(), no_retry_own_class(), retry_on_key_error(),
                           isolated_zero_division())


@fntree.target
def bad(flag: str) -> str:
    """Fails at once until `flag` exists."""
    if not os.path.exists(flag):
        raise FileNotFoundError(f"no flag at {flag}")
    return "fixed"


@fntree.target
def stage(k: int, n: int, trail: str) -> object:
    """Appends `k` to `trail`, then spawns stage k + 1 (a child the leader issues) up to n."""
    time.sleep(0.5)
    with open(trail, "a") as f:
        f.write(f"{k}\n")
    if k + 1 < n:
        return fntree.children(stage(k + 1, n, trail))
    return k


@fntree.target
def stages(flag: str, n: int, trail: str) -> fntree.Spawn:
    return fntree.children(bad(flag), stage(0, n, trail))


@fntree.target
def chatty(n: int) -> int:
    for i in range(n):
        fntree.context().log(f"note {i} of chatty")
    return n


@fntree.target
def slow(started: str, flag: str) -> str:
    """Says it started, then waits for `flag`."""
    Path(started).write_text("started")
    while not os.path.exists(flag):
        time.sleep(0.1)
    return "done"
