"""`fntree clean DIR`: remove a job store, never one a leader is running on.

Safety: DIR must be the store itself, not a symbolic link to one (the link's
target is named instead). Opening the store checks that it is its owner's
alone and gives a copy (`cp -a`) its own identity first, so cleaning a copy
removes the copy's machine-local temp dirs, never the original's. That temp
base is removed only once verified to be ours and private.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path
from typing import Any

from rich.console import Console

from fntree.errors import JobStoreError, UnsafePathError
from fntree.runtime.paths import StorePaths
from fntree.runtime.store import JobStore


def add_parser(sub: Any) -> None:
    parser = sub.add_parser("clean", help="remove a job store (not while a leader runs on it)")
    parser.add_argument("jobstore", metavar="DIR")
    parser.set_defaults(command=run)


def run(args: argparse.Namespace, console: Console) -> int:
    refuse_symlink(args.jobstore)
    store = JobStore.open(args.jobstore)  # refuses what is not an fntree job store
    store.lock()  # refuses while a leader is alive, and keeps one from starting meanwhile
    try:
        _remove_local_base(store.store_id, console)
        shutil.rmtree(store.paths.root)
    finally:
        store.unlock()
    console.print(f"removed the job store {store.paths.root}", markup=False)
    return 0


def _remove_local_base(store_id: str, console: Console) -> None:
    """Remove this machine's temp dirs of the store, if the base is verifiably ours."""
    base = StorePaths.local_base(store_id)
    if not os.path.lexists(base.parent):
        return
    try:
        base = StorePaths.make_local_base(store_id)
    except UnsafePathError as exc:
        console.print(f"fntree: left the temp dirs alone: {exc}", markup=False)
        return
    shutil.rmtree(Path(base), ignore_errors=True)
def refuse_symlink(given: str) -> None:
    """A symbolic link is not removed as if it were the store it points to."""
    path = Path(given)
    if path.is_symlink():
        raise JobStoreError(
            f"{given} is a symbolic link (to {os.readlink(path)}), not a job store; fntree "
            f"clean removes a job store only by its own path: run `fntree clean "
            f"{path.resolve()}` to remove the store it points to, or `rm {given}` to remove "
            "only the link")
