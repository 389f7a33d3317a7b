"""`fntree config`: each run option's value for a new run here, and where it comes from."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.console import Console

from fntree import api
from fntree.config import config_files, profile_of, settings


def add_parser(sub: Any) -> None:
    """Declare `config`."""
    parser = sub.add_parser(
        "config", help="show the options a new run would use, and where each comes from",
        description="Each option of a new run from this directory: its value and its source "
        "(command line > environment > profile > config file > built-in default). Give the "
        "same options as to `fntree run` to see what they change.")
    from fntree.cli.running import options_without_jobstore

    options_without_jobstore(parser)
    parser.add_argument("--json", action="store_true",
                        help="one JSON object: option -> {value, source}")
    parser.set_defaults(command=_config)


def _config(args: argparse.Namespace, console: Console) -> int:
    api._resolve({}, args, None)  # a value no run would accept is refused here too (exit 2)
    found = settings(api.DEFAULTS, {}, args)
    if args.json:
        print(json.dumps({name.replace("_", "-"): {"value": s.value, "source": s.source}
                          for name, s in found.items()}, indent=2, default=str))
        return 0
    files = [str(path) for path, _ in config_files(Path.cwd())]
    print(f"config files: {', '.join(files) or 'none found upward from here'}")
    chosen = profile_of(args)
    print(f"profile: {chosen[0]} (chosen by {chosen[1]})" if chosen else "profile: none")
    width = max(len(name) for name in found) + 2
    for name, s in found.items():
        value = "-" if s.value is None else str(s.value)
        print(f"{name.replace('_', '-'):<{width}}{value:<24} {s.source}")
    return 0
