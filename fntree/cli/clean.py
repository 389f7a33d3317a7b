"""`fntree clean DIR`: remove a job store, never one a leader is running on."""

from __future__ import annotations

import argparse
import shutil
from typing import Any

from rich.console import Console

from fntree.runtime.paths import StorePaths
from fntree.runtime.store import JobStore


def add_parser(sub: Any) -> None:
    parser = sub.add_parser("clean", help="remove a job store (not while a leader runs on it)")
    parser.add_argument("jobstore", metavar="DIR")
    parser.set_defaults(command=run)


def run(args: argparse.Namespace, console: Console) -> int:
    store = JobStore.open(args.jobstore)  # refuses what is not an fntree job store
    store.lock()  # refuses while a leader is alive, and keeps one from starting meanwhile
    try:
        shutil.rmtree(StorePaths.local_base(store.store_id), ignore_errors=True)
        shutil.rmtree(store.paths.root)
    finally:
        store.unlock()
    console.print(f"removed the job store {store.paths.root}", markup=False)
    return 0
