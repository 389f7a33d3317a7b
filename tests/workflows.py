"""Targets the end-to-end tests run; importable by workers (tests/ is on the recorded path)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import fntree


@fntree.target
def leaf(i: int) -> int:
    return i


@fntree.target
def total(values: list[int]) -> int:
    return sum(values)


@fntree.target
def fan(n: int) -> fntree.Spawn:
    leaves = [leaf(i) for i in range(n)]
    return fntree.children(*leaves).then(total(leaves))


@fntree.target
def collect(n: int) -> fntree.Spawn:
    return fntree.children(*[leaf(i) for i in range(n)])


@fntree.target
def msort(xs: list[int]) -> object:
    if len(xs) <= 2:
        return sorted(xs)
    half = len(xs) // 2
    return merge(msort(xs[:half]), msort(xs[half:]))


@fntree.target
def merge(a: list[int], b: list[int]) -> list[int]:
    return sorted(a + b)


@fntree.target
def countdown(n: int, seen: tuple[str, ...] = ()) -> object:
    seen = (*seen, fntree.context().job_id)
    if n == 0:
        return seen
    return countdown(n - 1, seen)


@fntree.target
def pair(a: int, b: int) -> list[int]:
    return [a, b]


@fntree.target
def nested(n: int) -> object:
    """Promises nested two deep, and a value holding calls."""
    return pair(total([leaf(n), leaf(n + 1)]), total(collect(3)))


@fntree.target
def calls_in_value() -> object:
    return {"a": leaf(1), "b": [leaf(2), leaf(3)]}


# -- temp dirs -------------------------------------------------------------------------
@fntree.target
def gtd_founder() -> fntree.Spawn:
    """Writes into its chain's global temp dir; a child sees its own; the follow-on sees ours."""
    ctx = fntree.context()
    (ctx.global_temp_dir / "founder.txt").write_text("from the founder")
    child = gtd_child()
    return fntree.children(child).then(gtd_follow(str(ctx.global_temp_dir), child))


@fntree.target
def gtd_child() -> dict[str, object]:
    ctx = fntree.context()
    return {"gtd": str(ctx.global_temp_dir),
            "sees_founder": (ctx.global_temp_dir / "founder.txt").exists()}


@fntree.target
def gtd_follow(founder_gtd: str, child: dict[str, object]) -> tuple[object, object]:
    ctx = fntree.context()
    return child, {"same": str(ctx.global_temp_dir) == founder_gtd,
            "content": (ctx.global_temp_dir / "founder.txt").read_text(),
            "local": str(ctx.local_temp_dir), "local_exists": ctx.local_temp_dir.is_dir()}


@fntree.target
def local_then_fail(marker: str) -> str:
    ctx = fntree.context()
    (ctx.local_temp_dir / "scratch").write_text("x")
    Path(marker).write_text(str(ctx.local_temp_dir))
    raise RuntimeError("fails after writing its local temp dir")


# -- ordering ----------------------------------------------------------------------------
@fntree.target
def mark(directory: str, name: str, delay: float) -> str:
    time.sleep(delay)
    (Path(directory) / name).write_text(str(time.time()))
    return name


@fntree.target
def deep_mark(directory: str, name: str) -> fntree.Spawn:
    """A child with children of its own: the follow-on must wait for these too."""
    return fntree.children(mark(directory, name + "-grandchild", 0.3))


@fntree.target
def ordered(directory: str) -> fntree.Spawn:
    kids = [mark(directory, "a", 0.2), mark(directory, "b", 0.0), deep_mark(directory, "c")]
    return fntree.children(*kids).then(check_marks(directory))


@fntree.target
def check_marks(directory: str) -> list[str]:
    return sorted(os.listdir(directory))


# -- failures and retries ----------------------------------------------------------------
@fntree.target
def flaky() -> int:
    """Fails on its first attempt only."""
    attempt = fntree.context().attempt
    if attempt == 1:
        raise RuntimeError("first attempt fails")
    return attempt


@fntree.target
def needs_file(path: str) -> str:
    if not os.path.exists(path):
        print(f"waiting for {path}")
        raise FileNotFoundError(f"{path} is missing")
    return Path(path).read_text()


@fntree.target
def some_need_file(path: str) -> fntree.Spawn:
    return fntree.children(leaf(1), needs_file(path), leaf(2))


@fntree.target
def killed_once() -> int:
    """SIGKILLs its own worker on the first attempt."""
    ctx = fntree.context()
    if ctx.attempt == 1:
        print("about to be killed", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    return ctx.attempt


@fntree.target(memory="100M")
def hungry() -> int | None:
    """Runs out of memory on its first attempt; the retry gets more."""
    ctx = fntree.context()
    if ctx.attempt == 1:
        raise MemoryError("pretend the allocation failed")
    return ctx.memory


@fntree.target(cpu=64)
def greedy() -> int:
    return 1


@fntree.target
def environment(name: str) -> str | None:
    return os.environ.get(name)


@fntree.target
def talk(text: str) -> str:
    fntree.context().log(text)
    print("stdout line from talk")
    return text


# -- crash tests ---------------------------------------------------------------------------
@fntree.target
def slow_leaf(i: int, delay: float, record: str) -> int:
    with open(record, "a") as f:
        f.write(f"{fntree.context().job_id}\n")
    time.sleep(delay)
    return i


@fntree.target
def slow_fan(n: int, delay: float, record: str) -> fntree.Spawn:
    leaves = [slow_leaf(i, delay, record) for i in range(n)]
    return fntree.children(*leaves).then(total(leaves))


@fntree.target
def slow_tree(depth: int, width: int, delay: float, record: str) -> object:
    if depth == 0:
        return slow_leaf(1, delay, record)
    kids = [slow_tree(depth - 1, width, delay, record) for _ in range(width)]
    return total(kids)


@fntree.target
def two_follow_ons() -> fntree.Spawn:
    return fntree.children(leaf(1)).then(leaf(2)).then(leaf(3))


@fntree.target
def returns_generator() -> object:
    return (i for i in range(3))


@fntree.target(memory="64T")
def enormous() -> int:
    return 1


@fntree.target
def address_space(seconds: float) -> int:
    """The worker's address space (VmSize, KiB) after its own threads have run a while."""
    time.sleep(seconds)
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmSize:"))


@fntree.target
def wide(width: int, leaves: int) -> fntree.Call:
    """`width` fans of `leaves` leaves each, and the total of their totals."""
    return total([fan(leaves) for _ in range(width)])
