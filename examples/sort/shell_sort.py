"""jobTree's parallel merge sort with external tools: leaves run `sort`, merges `sort -m`.

The same tree as the file version of `sort.py`, but the work is done by shell
targets (`@fntree.shell`, docs/shell.md):

- `down` (a Python target) splits its byte range of the input at a line
  boundary into two `down` children until a range is at most `max_bytes`; a
  small range is a tail call of `sort_range`;
- `sort_range` runs `dd` to cut the range out and `LC_ALL=C sort` on it, with
  the job's cores (`--parallel={cpu}`) and memory (`-S {memory_mb}M`);
- `merge` runs `LC_ALL=C sort -m` on the two sorted files of a split.

Each shell target declares its output, so the file appears under its final
name only when the command succeeded: a job killed mid-write leaves nothing
behind, and its next run starts clean. Intermediate files live in the chain's
global temp dir; the top `down` writes straight to the output path. The
commands need GNU coreutils (`dd iflag=skip_bytes,count_bytes`, `sort --parallel`).

    python examples/sort/shell_sort.py --size 5M --max-bytes 256K
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import fntree

if __package__ in (None, ""):  # run as a script: import its sibling as a package module
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from examples.sort.sort import check, generate, parse_size, split_point


@fntree.shell(time="1m", memory="256M", outputs=["output_path"])
def sort_range(input_path: str, start: int, end: int, output_path: str) -> str:
    """Sort the lines of bytes [start, end) of the input into `output_path`."""
    return fntree.sh(
        "dd if={input_path} iflag=skip_bytes,count_bytes skip={start} count={count} "
        "status=none | LC_ALL=C sort --parallel={cpu} -S {memory_mb}M > {output_path}",
        input_path=input_path, start=start, count=end - start, output_path=output_path)


@fntree.shell(time="1m", memory="256M", outputs=["output_path"])
def merge(first: str, second: str, output_path: str) -> str:
    """Merge two sorted files into `output_path`."""
    return fntree.sh("LC_ALL=C sort -m -S {memory_mb}M {first} {second} > {output_path}",
                     first=first, second=second, output_path=output_path)


@fntree.target(time="10s", memory="100M")
def down(input_path: str, start: int, end: int, max_bytes: int,
         output_path: str) -> fntree.Spawn | fntree.Call:
    """Sort bytes [start, end) of the input into `output_path`, splitting if too large."""
    middle = split_point(input_path, start, end, max_bytes)
    if middle is None:
        return sort_range(input_path, start, end, output_path)
    scratch = fntree.context().global_temp_dir
    first, second = str(scratch / f"{start}-{middle}"), str(scratch / f"{middle}-{end}")
    return fntree.children(
        down(input_path, start, middle, max_bytes, first),
        down(input_path, middle, end, max_bytes, second),
    ).then(merge(first, second, output_path))


def sort_file(input_path: Path, output_path: Path, args: argparse.Namespace) -> None:
    """Sort `input_path` into `output_path` with fntree and the shell targets."""
    size = os.path.getsize(input_path)
    fntree.run(down(str(input_path), 0, size, args.max_bytes, str(output_path)), options=args)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="jobTree's merge sort with sort and sort -m.")
    parser.add_argument("--size", type=parse_size, default=parse_size("10M"),
                        help="bytes of random lines to generate and sort (default 10M)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated input")
    parser.add_argument("--max-bytes", dest="max_bytes", type=parse_size,
                        default=parse_size("1M"),
                        help="largest range a job sorts by itself (default 1M)")
    parser.add_argument("--input", type=Path, help="sort this file instead of a generated one")
    parser.add_argument("--output", type=Path, help="where to write the sorted lines")
    fntree.add_arguments(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fntree-shell-sort-") as scratch:
        input_path = args.input or generate(Path(scratch) / "input", args.size, args.seed)
        output_path = (args.output or Path(scratch) / "output").absolute()
        started = time.perf_counter()
        try:
            sort_file(input_path, output_path, args)
        except fntree.FntreeError as error:
            print(f"shell_sort: {error}", file=sys.stderr)
            return 1
        elapsed = time.perf_counter() - started
        lines, ok = check(input_path, output_path)
        size = input_path.stat().st_size
    print(f"sorted {lines:,} lines ({size:,} bytes) in {elapsed:.2f} s (shell version: sort "
          f"and sort -m, at most {args.max_bytes:,} bytes a job): "
          f"{'OK' if ok else 'MISMATCH: the output is not sorted() of the input'}")
    return 0 if ok else 1


if __name__ == "__main__":
    # Run this file's importable twin, so that workers load the targets by reference.
    from examples.sort import shell_sort  # noqa: PLW0406 (its importable twin, on purpose)

    sys.exit(shell_sort.main())
