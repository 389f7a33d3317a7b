"""`fntree cache DIR`: what a cache across runs holds, and pruning it by last use.

`--stats` (the default) prints the entries, their bytes, the oldest and newest
last use, and entries and bytes per target; `--json` prints the same as one
object (`format` 1: format, cache, entries, bytes, oldest_use, newest_use,
targets {name: {entries, bytes}}). `--prune --older-than 30d` removes the
entries not used (written or hit) in that long; runs may go on meanwhile: an
entry pruned under a run is a miss, and is written again.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from rich.console import Console
from rich.table import Table

from fntree.errors import FntreeError
from fntree.resources import format_memory, parse_time
from fntree.runtime.cache import Cache, prune, stats

FORMAT = 1


def add_parser(sub: Any) -> None:
    parser = sub.add_parser("cache", help="what a cache across runs holds; prune it")
    parser.add_argument("cache", metavar="DIR")
    parser.add_argument("--stats", action="store_true",
                        help="entries, bytes, oldest and newest use, per target (the default)")
    parser.add_argument("--prune", action="store_true",
                        help="remove the entries not used in --older-than")
    parser.add_argument("--older-than", dest="older_than", metavar="AGE",
                        help='with --prune: an age such as "30d", "12h" or seconds')
    parser.add_argument("--json", action="store_true", help="print a machine-readable object")
    parser.set_defaults(command=run)


def run(args: argparse.Namespace, console: Console) -> int:
    if args.prune != (args.older_than is not None):
        raise FntreeError("--prune and --older-than go together: `fntree cache DIR --prune "
                          "--older-than 30d`")
    age = parse_time(args.older_than, what="--older-than") if args.prune else None
    cache = Cache.open(args.cache, create=False)
    out = Console(highlight=False, soft_wrap=True)
    if age is not None:
        removed, freed = prune(cache, age)
        if not args.json:
            out.print(f"removed {removed:,} entries ({format_memory(freed)}) not used in "
                      f"{args.older_than}", markup=False)
        if not args.stats:
            if args.json:
                print(json.dumps({"format": FORMAT, "cache": str(cache.root),
                                  "removed": removed, "bytes_freed": freed}))
            return 0
    figures = stats(cache)
    if args.json:
        print(json.dumps({"format": FORMAT, **figures}, indent=1))
        return 0
    _print(out, figures)
    return 0


def _print(out: Console, figures: dict[str, Any]) -> None:
    out.print(f"cache      {figures['cache']}", markup=False)
    out.print(f"entries    {figures['entries']:,}, {format_memory(figures['bytes'])}",
              markup=False)
    if not figures["entries"]:
        return
    out.print(f"last used  oldest {_when(figures['oldest_use'])}, newest "
              f"{_when(figures['newest_use'])}", markup=False)
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("target", "entries", "bytes"):
        table.add_column(column, justify="left" if column == "target" else "right")
    ranked = sorted(figures["targets"].items(), key=lambda item: -item[1]["bytes"])
    for name, counts in ranked:
        table.add_row(name, f"{counts['entries']:,}", format_memory(counts["bytes"]))
    out.print(table)


def _when(t: float) -> str:
    ago = max(0.0, time.time() - t)
    stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(t))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if ago >= size:
            return f"{stamp} ({ago / size:.0f}{unit} ago)"
    return f"{stamp} ({ago:.0f}s ago)"
