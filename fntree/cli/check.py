"""`fntree check DIR`: verify a job store's integrity, in plain words."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console

from fntree.runtime.check import ERROR, check


def add_parser(sub: Any) -> None:
    parser = sub.add_parser("check", help="verify a job store's integrity")
    parser.add_argument("jobstore", metavar="DIR")
    parser.set_defaults(command=run)


def run(args: argparse.Namespace, console: Console) -> int:
    findings = check(args.jobstore)
    out = Console(highlight=False, soft_wrap=True)
    errors = [f for f in findings if f.level == ERROR]
    for finding in findings:
        style = "red" if finding.level == ERROR else "yellow"
        out.print(f"[{style}]{finding.level}:[/] {finding.text}")
    if errors:
        out.print(f"[red]{args.jobstore}: {len(errors)} error(s)[/]")
        return 1
    out.print(f"[green]{args.jobstore}: sound[/]"
              + (f" ({len(findings)} note(s))" if findings else ""))
    return 0
