"""Batch systems: where tasks run. `base` is the protocol (docs/batch-systems.md).

The registry is the `fntree.batch_systems` entry-point group: each entry point
names a factory `(setup: WorkerSetup, options: dict) -> BatchSystem`. fntree's
own batch systems are registered there exactly as a third party's are (see
pyproject.toml), so nothing here names one. The registry (importlib.metadata) is
read at the first lookup, not at import: a worker imports this package's
protocol, never the registry. Several names pointing at the same
object are one batch system: the first is its name, the others its aliases.

Before a batch system starts on a job store, every other registered batch
system that left state in the store (a non-empty file under
`<store>/batch/<its name>/`) is started and closed, which cancels the jobs an
earlier leader left there: a restart on another batch system never runs a job
that an earlier leader's job is still running.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from fntree._imports import standard_library_first
from fntree.batch.base import BatchSystem, Factory, WorkerSetup
from fntree.batch.defaults import with_defaults
from fntree.errors import FntreeError

if TYPE_CHECKING:
    from importlib import metadata

GROUP = "fntree.batch_systems"


class BatchSystemLookupError(FntreeError, LookupError):
    """A batch system that is not registered, or whose plug-in fails to load."""


class LeftoverJobsError(FntreeError, RuntimeError):
    """Jobs an earlier leader left on another batch system cannot be checked or cancelled."""


def _entry_points() -> dict[str, metadata.EntryPoint]:
    with standard_library_first():  # here, not at import: a worker never needs it (50 ms)
        from importlib import metadata
    found: dict[str, metadata.EntryPoint] = {}
    for entry in metadata.entry_points(group=GROUP):
        found.setdefault(entry.name, entry)
    return found


def names() -> tuple[str, ...]:
    """Every registered name, aliases included, sorted."""
    return tuple(sorted(_entry_points()))


def describe() -> str:
    """The registered batch systems for a message: "gridengine (alias sge), local, slurm"."""
    groups: dict[str, list[str]] = {}
    for name, entry in _entry_points().items():
        groups.setdefault(entry.value, []).append(name)
    parts = [members[0] + (f" (alias {', '.join(members[1:])})" if members[1:] else "")
             for members in groups.values()]
    return ", ".join(sorted(parts))


def check_name(name: str) -> None:
    """BatchSystemLookupError, listing what is registered, unless `name` is registered."""
    if name not in _entry_points():
        raise BatchSystemLookupError(
            f"unknown batch system {name!r}; choose one of: {describe()}. A batch system "
            f"from a plug-in is registered in the {GROUP!r} entry-point group of its "
            "package: install that package into this Python environment")


def load(name: str) -> Factory:
    """The factory registered as `name`; BatchSystemLookupError naming its plug-in if it fails."""
    check_name(name)
    entry = _entry_points()[name]
    dist = getattr(entry, "dist", None)
    where = (f"distribution {dist.name} {dist.version}" if dist is not None
             else "an unknown distribution")
    try:
        factory = entry.load()
    except Exception as exc:
        raise BatchSystemLookupError(
            f"batch system {name!r} ({entry.value}, from {where}) fails to load: "
            f"{type(exc).__name__}: {exc}; reinstall or fix that package, or choose "
            f"another --batch-system") from exc
    if not callable(factory):
        raise BatchSystemLookupError(f"batch system {name!r} ({entry.value}, from {where}) is not "
                               "a factory (setup, options) -> BatchSystem; fix its entry point")
    return factory


def make(name: str, setup: WorkerSetup, options: dict[str, Any]) -> BatchSystem:
    """The batch system called `name`, ready to take tasks; it reads what it needs of `options`.

    `options` holds the run's resolved options (see fntree.api.DEFAULTS).
    """
    factory = load(name)
    _cancel_leftovers(_entry_points()[name].value, setup, options)
    return with_defaults(factory(setup, options), options)  # the run's default resources


def _cancel_leftovers(chosen: str, setup: WorkerSetup, options: dict[str, Any]) -> None:
    """Start and close every other batch system that left state in this store (see above)."""
    base = setup.store_root / "batch"
    entries = _entry_points()
    for directory in sorted(base.iterdir()) if base.is_dir() else []:
        entry = entries.get(directory.name)
        if entry is None or entry.value == chosen or not _holds_state(directory):
            continue
        try:
            load(directory.name)(setup, options).close()  # which cancels them, and waits
        except FntreeError as exc:
            raise LeftoverJobsError(
                f"an earlier leader of job store {setup.store_root} ran its jobs on "
                f"{directory.name}, and whether they still run cannot be checked ({exc}); "
                f"cancel them, or restart with --batch-system {directory.name}") from exc


def _holds_state(directory: Path) -> bool:
    return any(p.is_file() and p.stat().st_size for p in directory.rglob("*"))
