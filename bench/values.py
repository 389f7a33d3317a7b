"""Values of every size: wall time, the leader's peak RSS and the bytes written.

For each size, one run: a job makes a value of that size, a second job takes it
as its argument and returns its length (so the value goes from one worker to
another, and the run's own value is small). Then the case of issue 13: a root
that calls a target four times, each with a distinct 200 MB argument, beside the
same bytes written (and fsynced) and read back once with plain file I/O. And
the case of values held for a follow-on: a fan-out of `--held` WIDTHxSIZE values
(1,000 of 60 KiB, inline each) that one follow-on takes, for the leader's peak RSS.

Each run is a fresh process that is the leader (it calls `fntree.run`), so the
leader's peak RSS is that process's own (VmHWM; the workers are other
processes). Bytes written by the leader and its workers together: all writes,
pipes included (`wchar` of /proc/self/io, which counts the workers once they are
reaped), and to disk (`ru_oublock` of the process and its children, in 512-byte
blocks).
`--tree DIR` (repeatable) runs fntree from the source tree DIR (on PYTHONPATH);
with several, the runs alternate between them, so that they share the machine's
load. Medians of `--repeat` runs.

    python bench/values.py --repeat 3
    python bench/values.py --sizes 1K,1M,256M --four 0 --tree /work/main --tree .
    python bench/values.py --sizes '' --four 0 --held 1000x60K --tree /work/main --tree .
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import fntree

UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
SIZES = "1K,16K,64K,256K,1M,16M,256M,1G"


@fntree.target
def make(size: int, seed: int) -> bytes:
    return bytes([seed % 256]) * size


@fntree.target
def consume(value: bytes) -> int:
    return len(value)


@fntree.target
def pipeline(size: int) -> fntree.Call:
    return consume(make(size, 7))


@fntree.target
def four(size: int) -> list[fntree.Call]:
    return [consume(bytes([k]) * size) for k in range(4)]


@fntree.target
def block(size: int, seed: int) -> bytes:
    return seed.to_bytes(8, "little") * (size // 8)


@fntree.target
def total(values: list[bytes]) -> int:
    return sum(map(len, values))


@fntree.target
def held(width: int, size: int) -> fntree.Spawn:
    """`width` children's values of `size` bytes, all taken by one follow-on."""
    blocks = [block(size, k) for k in range(width)]
    return fntree.children(*blocks).then(total(blocks))


def _peak_rss() -> int:
    """This process's peak RSS in bytes: VmHWM, its own memory since it started.

    (Not `ru_maxrss`, which also keeps the peak of the process it was before exec: the
    parent that forked it, whose pages it shared.)
    """
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) * 1024


def _written() -> int:
    with open("/proc/self/io") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("wchar:"))


def one_run(case: str, size: int, jobstore: Path) -> dict[str, float]:
    """Run `case` in this process (the leader); its figures."""
    width, size = divmod(size, 1 << 32) if case == "held" else (0, size)
    call = {"value": pipeline(size), "four": four(size), "held": held(width, size)}[case]
    started = time.perf_counter()
    value = fntree.run(call, jobstore=jobstore, max_cpus=2)
    wall = time.perf_counter() - started
    expected = {"value": size, "four": [size] * 4, "held": width * (size // 8 * 8)}[case]
    assert value == expected, value
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"wall": wall, "rss": _peak_rss(), "leader_written": _written(),
            "written": (own.ru_oublock + children.ru_oublock) * 512}


def plain_io(size: int, count: int, scratch: Path) -> float:
    """Seconds to write (and fsync) `count` files of `size` bytes, then read each back."""
    started = time.perf_counter()
    for k in range(count):
        with open(scratch / f"plain-{k}", "wb") as f:
            f.write(bytes([k]) * size)
            f.flush()
            os.fsync(f.fileno())
    for k in range(count):
        assert len((scratch / f"plain-{k}").read_bytes()) == size
    wall = time.perf_counter() - started
    for k in range(count):
        (scratch / f"plain-{k}").unlink()
    return wall


def measure(tree: str | None, case: str, size: int, scratch: Path) -> dict[str, float]:
    """One run in a fresh process, fntree taken from `tree` (None: as installed)."""
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (tree, env.get("PYTHONPATH"))))
    store = Path(tempfile.mkdtemp(dir=scratch)) / "jobstore"
    out = subprocess.run([sys.executable, __file__, "--one", case, str(size), str(store)],
                         env=env, capture_output=True, text=True, check=False)
    if out.returncode:
        raise SystemExit(f"the run failed:\n{out.stderr[-4000:]}")
    return dict(json.loads(out.stdout.splitlines()[-1]))


def parse_size(text: str) -> int:
    text = text.strip().upper()
    return int(text[:-1]) * UNITS[text[-1]] if text[-1] in UNITS else int(text)


def show(size: int) -> str:
    for unit in "GMK":
        if size >= UNITS[unit] and size % UNITS[unit] == 0:
            return f"{size // UNITS[unit]} {unit}iB"
    return f"{size} B"


def report(label: str, runs: list[dict[str, float]]) -> None:
    def med(key: str) -> float:
        return statistics.median(r[key] for r in runs)
    print(f"{label:<34} {med('wall'):8.2f} s  leader RSS {med('rss') / 2**20:7.0f} MiB  "
          f"wrote {med('leader_written') / 2**20:8.1f} MiB (to disk "
          f"{med('written') / 2**20:.1f})", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=SIZES, help=f"value sizes ({SIZES})")
    parser.add_argument("--four", default="200000000",
                        help="argument size of the four-call case (200000000; 0 skips it)")
    parser.add_argument("--held", default="1000x60K",
                        help="WIDTHxSIZE: a fan-out of WIDTH values of SIZE held for one "
                             "follow-on (1000x60K; 0 skips it)")
    parser.add_argument("--repeat", type=int, default=3, help="runs; medians are printed")
    parser.add_argument("--tree", action="append", help="run fntree from this source tree")
    parser.add_argument("--one", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        case, size, store = args.one
        print(json.dumps(one_run(case, int(size), Path(store))))
        return 0
    trees: list[str | None] = [str(Path(t).absolute()) for t in args.tree or []] or [None]
    cases = [("value", parse_size(s)) for s in args.sizes.split(",") if s]
    if parse_size(args.four):
        cases.append(("four", parse_size(args.four)))
    if args.held != "0":
        width, _, size = args.held.partition("x")
        cases.append(("held", (int(width) << 32) + parse_size(size)))
    print(f"median of {args.repeat}; trees: {', '.join(t or 'installed' for t in trees)}")
    with tempfile.TemporaryDirectory(prefix="fntree-bench-values-") as name:
        scratch = Path(name)
        for case, size in cases:
            runs: dict[str | None, list[dict[str, float]]] = {t: [] for t in trees}
            plain = []
            for _ in range(args.repeat):
                for tree in trees:
                    runs[tree].append(measure(tree, case, size, scratch))
                if case == "four":
                    plain.append(plain_io(size, 4, scratch))
            what = {"value": f"value {show(size)}", "four": f"4 calls x {size:,} B args",
                    "held": f"{size >> 32:,} values of {show(size & 0xFFFFFFFF)} held"}[case]
            for tree in trees:
                report(f"{what} [{Path(tree).name if tree else 'installed'}]", runs[tree])
            if plain:
                base = statistics.median(plain)
                print(f"{what}: plain write+fsync+read once {base:.2f} s; fntree / plain: "
                      + ", ".join(f"{statistics.median(r['wall'] for r in runs[t]) / base:.2f}"
                                  f" [{Path(t).name if t else 'installed'}]" for t in trees),
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
