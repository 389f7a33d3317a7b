"""Targets the tests of the display, status, stats, logs, debug-job, clean and kill run."""

from __future__ import annotations

import os
import time
from pathlib import Path

import fntree


@fntree.target
def work(i: int, delay: float) -> int:
    fntree.context().log(f"working on {i}")
    time.sleep(delay)
    return i * i


@fntree.target
def add_up(values: list[int]) -> int:
    return sum(values)


@fntree.target
def spread(n: int, delay: float = 0.0) -> fntree.Spawn:
    """`n` children that log a message each, then a follow-on summing their values."""
    parts = [work(i, delay) for i in range(n)]
    return fntree.children(*parts).then(add_up(parts))


@fntree.target
def number(x: int) -> int:
    return x


@fntree.target(retry_on=(ValueError,))  # its failure is worth a retry: the flag may come
def picky(value: int, flag: str) -> str:
    """Fails unless `flag` exists; reads its chain's global temp dir, the environment, a promise."""
    ctx = fntree.context()
    (ctx.local_temp_dir / "scratch.txt").write_text("scratch")
    seen = (ctx.global_temp_dir / "note.txt").read_text()
    print(f"picky got value={value} note={seen!r} UX_COLOUR={os.environ.get('UX_COLOUR')}")
    if not os.path.exists(flag):
        raise ValueError(f"no flag at {flag}; value was {value}")
    (ctx.global_temp_dir / "picky-ran.txt").write_text("yes")
    return f"{seen}:{value}:{os.environ.get('UX_COLOUR')}"


@fntree.target
def founder(flag: str) -> fntree.Spawn:
    """Writes a note into its chain's global temp dir; its follow-on `picky` reads it."""
    ctx = fntree.context()
    (ctx.global_temp_dir / "note.txt").write_text("from the founder")
    given = number(41)
    return fntree.children(spread(3)).then(picky(given, flag))


@fntree.target
def chatty(lines: int, fail: bool) -> int:
    """Prints `lines` numbered lines, then fails if asked."""
    for k in range(lines):
        print(f"line {k:06d} of chatty output")
    if fail:
        raise RuntimeError(f"chatty failed after {lines} lines")
    return lines


@fntree.target
def sleeper(seconds: float, record: str) -> float:
    Path(record).write_text(str(os.getpid()))
    time.sleep(seconds)
    return seconds


@fntree.target
def sleepy_fan(n: int, seconds: float, record: str) -> fntree.Spawn:
    return fntree.children(*[sleeper(seconds, f"{record}.{i}") for i in range(n)])


@fntree.target
def fails() -> int:
    raise RuntimeError("this child always fails")


@fntree.target
def some_fail() -> fntree.Spawn:
    """A follow-on waiting for a child that fails: it stays waiting."""
    kids = [number(1), fails()]
    return fntree.children(*kids).then(add_up(kids))


# -- helpers of the tests -------------------------------------------------------------------
def cli(*args: str, capsys: object) -> tuple[int, str, str]:
    """Run `fntree ARGS` in this process: (exit status, stdout, stderr)."""
    from fntree.cli import main

    code = main(list(args))
    out, err = capsys.readouterr()  # type: ignore[attr-defined]
    return code, out, err


def failed_run(store: Path, flag: Path) -> fntree.WorkflowFailed:
    """A run whose `picky` job fails twice for want of `flag`; UX_COLOUR=teal is recorded."""
    saved = os.environ.get("UX_COLOUR")
    os.environ["UX_COLOUR"] = "teal"
    try:
        fntree.run(founder(str(flag)), jobstore=store, retry_count=1)
    except fntree.WorkflowFailed as exc:
        return exc
    finally:
        if saved is None:
            del os.environ["UX_COLOUR"]
        else:
            os.environ["UX_COLOUR"] = saved
    raise AssertionError("the run should have failed")


def tree_digest(root: Path) -> dict[str, tuple[int, float, bytes]]:
    """Every file under `root`: its size, mtime and content."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime, p.read_bytes())
            for p in sorted(root.rglob("*")) if p.is_file()}
