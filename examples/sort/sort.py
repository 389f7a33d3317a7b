"""jobTree's parallel merge sort, written as fntree targets.

The file version follows jobTree's `scriptTreeTest_Sort.py` step for step:

- `setup` names a file for the sorted result in its chain's global temp dir,
  runs `down` on the whole input as its child and `cleanup` as its follow-on;
- `down` sorts a byte range of the input into its output file when the range
  is at most `max_bytes` (or is one line); a larger range is split at a line
  boundary into two `down` children, each writing into this chain's global
  temp dir, and an `up` follow-on merges their two files into the output;
- `up` merges two sorted files, streaming (heapq.merge over their lines);
- `cleanup` copies the sorted file to the output path.

Atomicity, as the seed asks: no job deletes or alters its inputs, and each can
run again from them any number of times (a file it writes is written whole
again). The intermediate files of a chain live in its global temp dir, which
fntree removes once the chain's closer (its `up`) has completed.

The functional version sorts values: `msort(lines)` returns
`merge(msort(a), msort(b))`, so each half is a child job whose value (a list of
lines) fills its place in `merge`'s arguments.

Lines are bytes ending in a newline, compared as bytes: the order of
`LC_ALL=C sort`. The work itself is in plain functions (`split_point`,
`sort_range`, `merge_files`) that `bench/sort.py` also runs without fntree.
"""

from __future__ import annotations

import argparse
import heapq
import io
import os
import random
import shutil
import string
import sys
import tempfile
import time
from pathlib import Path

import fntree
from fntree.progress import LiveProgress, RunView
from fntree.resources import parse_memory

BLOCK = 1 << 20          # bytes generated, or searched for a newline, at a time
MAX_LINE = 80            # longest generated line, in characters before the newline
_LETTERS = bytes(ord((string.ascii_letters + string.digits)[i % 62]) for i in range(256))


# -- the work: plain functions ---------------------------------------------------------

def split_point(path: str, start: int, end: int, max_bytes: int) -> int | None:
    """Where to split bytes [start, end) of `path`: the start of a line near the middle.

    None when the range is at most `max_bytes` or holds a single line.
    """
    if end - start <= max(max_bytes, 1):
        return None
    middle = (start + end) // 2
    with open(path, "rb") as f:
        f.seek(middle - 1)
        f.readline()
        point = f.tell()
        if point < end:
            return point
        return _last_line_start(f, start, middle)


def _last_line_start(f: io.BufferedReader, start: int, stop: int) -> int | None:
    """The start of the last line that begins in (start, stop] of `f`, or None."""
    position = stop
    while position > start:
        size = min(BLOCK, position - start)
        f.seek(position - size)
        found = f.read(size).rfind(b"\n")
        if found >= 0:
            return position - size + found + 1
        position -= size
    return None


def read_lines(path: str | os.PathLike[str], start: int = 0, end: int | None = None
               ) -> list[bytes]:
    """The lines of bytes [start, end) of `path`, each ending in a newline."""
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read() if end is None else f.read(end - start)
    lines = io.BytesIO(data).readlines()
    if lines and not lines[-1].endswith(b"\n"):
        lines[-1] += b"\n"
    return lines


def sort_range(path: str, start: int, end: int, output_path: str) -> None:
    """Sort the lines of bytes [start, end) of `path` into `output_path`."""
    lines = read_lines(path, start, end)
    lines.sort()
    with open(output_path, "wb") as out:
        out.writelines(lines)


def merge_files(first: str, second: str, output_path: str) -> None:
    """Merge two sorted files into `output_path`, a line at a time."""
    with (open(first, "rb", buffering=BLOCK) as a, open(second, "rb", buffering=BLOCK) as b,
          open(output_path, "wb", buffering=BLOCK) as out):
        out.writelines(heapq.merge(a, b))


def copy_file(source: str, destination: str) -> None:
    """Copy `source` to `destination`, which appears whole or not at all."""
    partial = f"{destination}.part"
    shutil.copyfile(source, partial)
    os.replace(partial, destination)


# -- the file version: jobTree's targets -----------------------------------------------

@fntree.target(time="10s", memory="100M")
def setup(input_path: str, output_path: str, max_bytes: int) -> fntree.Spawn:
    """Sort `input_path` into `output_path`, in ranges of at most `max_bytes`."""
    sorted_path = str(fntree.context().global_temp_dir / "sorted")
    size = os.path.getsize(input_path)
    whole = down(input_path, 0, size, max_bytes, sorted_path)
    return fntree.children(whole).then(cleanup(sorted_path, output_path))


@fntree.target(time="1m", memory="1G")
def down(input_path: str, start: int, end: int, max_bytes: int,
         output_path: str) -> fntree.Spawn | None:
    """Sort bytes [start, end) of the input into `output_path`, splitting if too large."""
    middle = split_point(input_path, start, end, max_bytes)
    if middle is None:
        sort_range(input_path, start, end, output_path)
        return None
    scratch = fntree.context().global_temp_dir
    first, second = str(scratch / f"{start}-{middle}"), str(scratch / f"{middle}-{end}")
    return fntree.children(
        down(input_path, start, middle, max_bytes, first),
        down(input_path, middle, end, max_bytes, second),
    ).then(up(first, second, output_path))


@fntree.target(time="1m", memory="100M")
def up(first: str, second: str, output_path: str) -> None:
    """Merge the sorted files of a `down`'s two children into its output."""
    merge_files(first, second, output_path)


@fntree.target(time="1m", memory="100M")
def cleanup(sorted_path: str, output_path: str) -> str:
    """Copy the sorted file out of the global temp dir, to `output_path`."""
    copy_file(sorted_path, output_path)
    return output_path


# -- the functional version: values, not files -----------------------------------------

@fntree.target(time="10s", memory="1G")
def msort(lines: list[bytes], max_bytes: int) -> list[bytes] | fntree.Call:
    """`lines` sorted: directly when small, else as the merge of two sorted halves."""
    if len(lines) < 2 or sum(map(len, lines)) <= max_bytes:
        return sorted(lines)
    half = len(lines) // 2
    return merge(msort(lines[:half], max_bytes), msort(lines[half:], max_bytes))


@fntree.target(time="10s", memory="1G")
def merge(first: list[bytes], second: list[bytes]) -> list[bytes]:
    """Two sorted lists merged into one."""
    return list(heapq.merge(first, second))


# -- the command -----------------------------------------------------------------------

def parse_size(text: str) -> int:
    """Bytes from "5M", "100K", "1G" or "1234": fntree's memory units (K, M, G are powers of
    1024, as Slurm reads them; KB, MB, GB powers of 1000)."""
    try:
        size = parse_memory(text, what="size")
    except fntree.ResourceError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    assert size is not None
    return size


def random_lines(rng: random.Random, size: int) -> bytes:
    """`size` bytes of lines of up to MAX_LINE random letters and digits."""
    text = bytearray(rng.randbytes(size).translate(_LETTERS))
    end = -1
    while end < size - 1:
        end = min(end + rng.randint(2, MAX_LINE + 1), size - 1)
        text[end] = ord("\n")
    return bytes(text)


def generate(path: Path, size: int, seed: int) -> Path:
    """Write `size` bytes of random lines to `path`; the same seed gives the same file."""
    rng = random.Random(seed)
    with open(path, "wb") as f:
        for offset in range(0, size, BLOCK):
            f.write(random_lines(rng, min(BLOCK, size - offset)))
    return path


def display(args: argparse.Namespace) -> list[RunView]:
    """The live progress display on a terminal, as `fntree run` shows it; none otherwise."""
    if args.no_progress or not sys.stderr.isatty():
        return []
    return [LiveProgress()]


def sort_file(input_path: Path, output_path: Path, args: argparse.Namespace) -> None:
    """Sort with fntree: the file version, or the functional one with --functional."""
    if not args.functional:
        fntree.run(setup(str(input_path), str(output_path), args.max_bytes), options=args,
                   observers=display(args))
        return
    lines = fntree.run(msort(read_lines(input_path), args.max_bytes), options=args,
                       observers=display(args))
    with open(output_path, "wb") as out:
        out.writelines(lines)


def check(input_path: Path, output_path: Path) -> tuple[int, bool]:
    """The number of input lines, and whether the output is exactly `sorted()` of them."""
    lines = read_lines(input_path)
    return len(lines), output_path.read_bytes() == b"".join(sorted(lines))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="jobTree's parallel merge sort, on fntree.")
    parser.add_argument("--size", type=parse_size, default=parse_size("10M"),
                        help="bytes of random lines to generate and sort (default 10M)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated input")
    parser.add_argument("--max-bytes", dest="max_bytes", type=parse_size,
                        default=parse_size("1M"),
                        help="largest range a job sorts by itself (default 1M)")
    parser.add_argument("--functional", action="store_true",
                        help="sort lists of lines as values (msort/merge) instead of files")
    parser.add_argument("--input", type=Path, help="sort this file instead of a generated one")
    parser.add_argument("--output", type=Path, help="where to write the sorted lines")
    parser.add_argument("--no-progress", action="store_true",
                        help="no live progress display (there is none when stderr is not a "
                             "terminal)")
    fntree.add_arguments(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fntree-sort-") as scratch:
        input_path = args.input or generate(Path(scratch) / "input", args.size, args.seed)
        output_path = args.output or Path(scratch) / "output"
        started = time.perf_counter()
        try:
            sort_file(input_path, output_path, args)
        except fntree.FntreeError as error:
            print(f"sort: {error}", file=sys.stderr)
            return 1
        elapsed = time.perf_counter() - started
        lines, ok = check(input_path, output_path)
        size = input_path.stat().st_size
    version = "functional" if args.functional else "file"
    print(f"sorted {lines:,} lines ({size:,} bytes) in {elapsed:.2f} s "
          f"({version} version, at most {args.max_bytes:,} bytes a job): "
          f"{'OK' if ok else 'MISMATCH: the output is not sorted() of the input'}")
    return 0 if ok else 1


if __name__ == "__main__":
    # Run this file's importable twin, `examples.sort.sort`, so that workers load the
    # targets by reference. (Run as __main__ they would travel by value, which also works.)
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from examples.sort import sort  # noqa: PLW0406 (its importable twin, on purpose)

    sys.exit(sort.main())
