"""Sort: examples/sort's file version on fntree, the same algorithm serially, and `sort`.

On one generated input of --size bytes it times
1. the fntree run (`setup` → `down`/`up` → `cleanup`, from `fntree.run` to its value);
2. the same split/sort/merge functions called serially in this process, no fntree;
3. `LC_ALL=C sort` (GNU sort uses its own threads);
and checks the three outputs are the same bytes.

    python bench/sort.py --size 100M
"""

from __future__ import annotations

import argparse
import filecmp
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import fntree
from examples.sort import sort as example


def down_serially(path: str, start: int, end: int, max_bytes: int, output_path: str,
                  scratch: Path) -> None:
    """What `down` and its descendants do, as calls in this process."""
    middle = example.split_point(path, start, end, max_bytes)
    if middle is None:
        example.sort_range(path, start, end, output_path)
        return
    first, second = str(scratch / f"{start}-{middle}"), str(scratch / f"{middle}-{end}")
    down_serially(path, start, middle, max_bytes, first, scratch)
    down_serially(path, middle, end, max_bytes, second, scratch)
    example.merge_files(first, second, output_path)
    os.remove(first)
    os.remove(second)


def timed(action: Callable[..., None], *args: object) -> float:
    started = time.perf_counter()
    action(*args)
    return time.perf_counter() - started


def run_fntree(input_path: Path, output_path: Path, max_bytes: int) -> None:
    fntree.run(example.setup(str(input_path), str(output_path), max_bytes))


def run_serial(input_path: Path, output_path: Path, max_bytes: int, scratch: Path) -> None:
    size = input_path.stat().st_size
    down_serially(str(input_path), 0, size, max_bytes, str(output_path), scratch)


def run_gnu_sort(input_path: Path, output_path: Path) -> None:
    subprocess.run(["sort", "-o", str(output_path), str(input_path)], check=True,
                   env={**os.environ, "LC_ALL": "C"})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=example.parse_size, default=example.parse_size("100M"),
                        help="bytes of random lines to sort (default 100M)")
    parser.add_argument("--max-bytes", dest="max_bytes", type=example.parse_size,
                        default=example.parse_size("1M"),
                        help="largest range one job sorts (default 1M)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated input")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fntree-bench-") as name:
        scratch = Path(name)
        (scratch / "serial").mkdir()
        source = example.generate(scratch / "input", args.size, args.seed)
        outputs = [scratch / "out.fntree", scratch / "out.serial", scratch / "out.sort"]
        times = [timed(run_fntree, source, outputs[0], args.max_bytes),
                 timed(run_serial, source, outputs[1], args.max_bytes, scratch / "serial"),
                 timed(run_gnu_sort, source, outputs[2])]
        same = all(filecmp.cmp(outputs[0], out, shallow=False) for out in outputs[1:])
    print(f"sort {args.size:,} bytes, at most {args.max_bytes:,} bytes a job, "
          f"{os.cpu_count()} cpus")
    for label, seconds in zip(("fntree", "serial", "LC_ALL=C sort"), times, strict=True):
        print(f"{label:>14}: {seconds:7.2f} s")
    print("outputs identical" if same else "OUTPUTS DIFFER")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
