"""The `fntree` command. Each subcommand is one module of this package with two
functions: `add_parser(subparsers)` declares it (setting `command` to the function
that carries it out) and that function, `(args, console) -> exit status`.

Exit status: 0 on success, 1 when jobs failed or the run is not complete (the
summary ends with the exact restart command), 2 for a usage or job store error,
130 when interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from rich.console import Console

from fntree.errors import FntreeError, WorkflowFailed

# The modules of the subcommands, in the order `fntree --help` lists them.
COMMANDS = ("running", "status", "check", "stats", "logs", "debug_job", "kill", "clean",
            "cache")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    console = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        return int(args.command(args, console))
    except WorkflowFailed as exc:
        from fntree.cli.running import report_failure

        report_failure(console, exc)
        return 1
    except FntreeError as exc:
        console.print(f"[bold red]fntree: error:[/] {exc}", markup=True)
        return 2
    except KeyboardInterrupt:
        store = getattr(args, "jobstore", None) or "DIR"
        console.print(f"[yellow]fntree: interrupted; workers stopped. Continue with "
                      f"`fntree restart {store}`[/]")
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fntree",
                                     description="Run, watch and debug fntree workflows.")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"fntree.cli.{name}")
        module.add_parser(sub)
    return parser


if __name__ == "__main__":
    sys.exit(main())
