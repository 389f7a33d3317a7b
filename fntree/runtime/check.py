"""`check(path)`: verify a job store's integrity and say what is wrong in plain words.

It reads the store without changing it (a leader may be running) and reports
`Finding`s. Errors mean the store is damaged or inconsistent; notes are what a
crash legitimately leaves behind and the next leader repairs (a torn journal
tail, a global temp dir whose chain closed, an unfinished compaction).

What it checks: the identity file (its checksum) and permissions; the event
log's parts (each inflates to its end, none is missing, each header links to
the part before it: `fntree.runtime.eventparts.chain_problems`), starting
after the rollup of the parts folded away, which must match its checksum; the config
(its checksum); the newest snapshot (its checksum); that every journal frame
checks, a torn frame appearing only at the very end, and that the records
replay (all through `JobStore.replay`, which rereads when a compaction changes
the files under it, so a check beside a running leader sees a consistent
store); and the state's invariants — every reference resolves (parents,
jobs by id, functions), the pending counts equal the live children, the ready
and running sets agree with the chains' statuses — and that no file lies outside
the layout. Values stored out of line (fntree/runtime/objects.py): every object
the live state refers to must be present and match its name (an error naming
the remedy otherwise); the others, and temp files a crash mid-write left, are
orphans, noted as collectable by the next leader.
"""

from __future__ import annotations

import os
import stat
from collections import Counter
from pathlib import Path
from typing import NamedTuple

from fntree.errors import JobStoreError
from fntree.runtime.eventparts import (
    archive_lines,
    chain_problems,
    kept_parts,
    log_is_archived,
    part_number,
)
from fntree.runtime.eventrollup import load as load_rollup
from fntree.runtime.objects import DamagedObject, ObjectStore, live_digests, orphans
from fntree.runtime.paths import EVENT_PART
from fntree.runtime.records import ObjectRef, job_hex
from fntree.runtime.state import FAILED, READY, RUNNING, WAITING, RunState
from fntree.runtime.store import JobStore

ERROR, NOTE = "error", "note"
_TOP_LEVEL = {"fntree.json", "config.pkl", "leader.lock", "journal", "logs", "tmp", "events.log",
              "events.log.gz", "batch", "objects", "events.rollup.json"}


class Finding(NamedTuple):
    level: str
    text: str


def check(path: str | os.PathLike[str]) -> list[Finding]:
    """Everything wrong with the job store at `path` (empty when it is sound)."""
    try:
        store = JobStore.open(path)
        store.config()
    except JobStoreError as exc:
        return [Finding(ERROR, str(exc))]
    findings = _layout(store)
    findings.extend(_event_parts(store))
    state = _replay(store, findings)
    if state is not None:
        findings.extend(_invariants(state))
        findings.extend(_orphans(store, state))
        findings.extend(_objects(store, state))
    return findings


def _layout(store: JobStore) -> list[Finding]:
    found = []
    for entry in sorted(os.listdir(store.paths.root)):
        if entry not in _TOP_LEVEL and not entry.startswith(".") \
                and not EVENT_PART.fullmatch(entry):
            found.append(Finding(ERROR, f"unexpected file {entry!r} in the job store"))
    events = store.paths.event_log()
    if os.path.lexists(events) and not stat.S_ISREG(os.lstat(events).st_mode):
        found.append(Finding(ERROR, "events.log is not a regular file, so the run's events "
                                    "cannot be read or written; remove it (the next leader "
                                    "starts a new one)"))
    lock = store.paths.lock
    if os.path.lexists(lock) and not stat.S_ISREG(os.lstat(lock).st_mode):
        found.append(Finding(ERROR, "leader.lock is not a file, so no leader can start; "
                                    "remove it (no leader runs while it is not a file)"))
    return found


def _event_parts(store: JobStore) -> list[Finding]:
    """The event log's rollup (it reads and matches its checksum), then its kept parts: each
    whole (it inflates to its end), in sequence from the rollup's last folded part, this
    store's; parts already folded are a note (a leader killed before removing them)."""
    paths = store.paths
    cut: list[str] = []
    rollup = load_rollup(paths, cut)
    found = [Finding(ERROR, text) for text in cut]
    found.extend(Finding(ERROR, text) for text in chain_problems(paths))
    last = 0 if rollup is None else rollup.last_part
    folded = [p.name for p in paths.event_parts() if part_number(p) <= last]
    if rollup is not None and rollup.legacy and paths.event_archive().exists():
        folded.append(paths.event_archive().name)
    if folded:
        found.append(Finding(NOTE, f"{', '.join(folded[:10])} already folded into "
                                   f"{paths.event_rollup().name} (a leader killed before "
                                   "removing them); readers skip them, the next leader "
                                   "removes them, and removing them by hand is safe"))
    for part in kept_parts(paths, last):
        cut = []
        for _ in archive_lines(part, cut):
            pass
        found.extend(Finding(ERROR, text) for text in cut)
    return found


def _replay(store: JobStore, findings: list[Finding]) -> RunState | None:
    try:
        replay = store.replay(repair=False)
    except JobStoreError as exc:
        findings.append(Finding(ERROR, str(exc)))
        return None
    for entry in sorted(_entries(store.paths.journal_dir)):
        stem, _, ext = entry.partition(".")
        number = ext if stem == "snapshot" else stem
        if not number.isdigit() or (stem != "snapshot" and ext != "log"):
            findings.append(Finding(NOTE, f"journal/{entry} is a leftover temporary file; "
                                          "the next leader removes it"))
        elif int(number) < replay.base:
            findings.append(Finding(NOTE, f"journal/{entry} predates the newest snapshot "
                                          "(an unfinished compaction); the next leader "
                                          "removes it"))
    if replay.torn:
        findings.append(Finding(NOTE, f"journal/{replay.segment}.log ends in a torn record "
                                      f"({replay.torn} bytes after byte {replay.good}: a "
                                      "crash mid-write); the next leader cuts it"))
    return replay.state


def _entries(directory: Path) -> list[str]:
    try:
        return os.listdir(directory)
    except FileNotFoundError:
        return []


def _invariants(state: RunState) -> list[Finding]:
    found: list[Finding] = []

    def error(text: str) -> None:
        found.append(Finding(ERROR, text))

    if state.finished and state.chains:
        error(f"the run is finished but {len(state.chains)} chain(s) are still open")
    if not state.finished and not state.chains:
        error("the run is not finished but no chain is open")
    live_children = Counter(c.parent for c in state.chains.values() if c.parent is not None)
    ready = {cid for queue in state.ready.values() for cid in queue}
    roots = 0
    for cid, chain in state.chains.items():
        name = job_hex(cid)
        if chain.parent is None:
            roots += 1
        elif chain.parent not in state.chains:
            error(f"chain {name} refers to a parent chain {job_hex(chain.parent)} that "
                  "does not exist")
        elif chain.index >= len(state.chains[chain.parent].values):
            error(f"chain {name} has a position outside its parent's children")
        litter = state.unborn.get(cid)
        unborn = 0 if litter is None else litter.count()
        if chain.pending != live_children[cid] + unborn:
            error(f"chain {name} waits for {chain.pending} children but "
                  f"{live_children[cid]} are open and {unborn} unborn")
        if chain.job is not None:
            if state.by_job.get(chain.job.job_id) != cid:
                error(f"job {job_hex(chain.job.job_id)} of chain {name} is not indexed")
            if chain.job.fn_key not in state.fns:
                error(f"job {job_hex(chain.job.job_id)} ({chain.job.name}) names a function "
                      "the store does not hold")
        expected = {READY: cid in ready, RUNNING: cid in state.running,
                    FAILED: cid in state.failed, WAITING: chain.pending > 0}
        if not expected.get(chain.status, False):
            error(f"chain {name} is {chain.status} but the state's sets disagree")
        if cid in ready and chain.status != READY:
            error(f"chain {name} is queued as ready but is {chain.status}")
    if roots > 1:
        error(f"{roots} chains claim to be the root")
    for cid in state.unborn:
        if cid not in state.chains:
            error(f"unborn children belong to chain {job_hex(cid)}, which is not open")
    for job_id, cid in state.by_job.items():
        holder = state.chains.get(cid)
        if holder is None or holder.job is None or holder.job.job_id != job_id:
            error(f"job {job_hex(job_id)} is indexed to chain {job_hex(cid)}, which does not "
                  "hold it")
    return found


def _orphans(store: JobStore, state: RunState) -> list[Finding]:
    found = []
    gtd_root = store.paths.global_tmp
    if gtd_root.is_dir():
        for entry in sorted(os.listdir(gtd_root)):
            try:
                live = int(entry, 16) in state.chains
            except ValueError:
                live = False
            if not live:
                found.append(Finding(NOTE, f"global temp dir tmp/g/{entry} belongs to no open "
                                           "chain (a crash before its removal); the next "
                                           "leader removes it"))
    temps = store.paths.event_part_temps()
    found.extend(Finding(NOTE, f"{p.name} is a part of the event log left half-written by a "
                               "leader killed while archiving; readers ignore it, the next "
                               "leader removes it, and removing it by hand is safe")
                 for p in temps)
    leftovers = [p for p in Path(store.paths.root).glob(".*.tmp") if p not in temps]
    found.extend(Finding(NOTE, f"{p.name} is a leftover temporary file") for p in leftovers)
    if log_is_archived(store.paths):
        found.append(Finding(NOTE, "events.log is already archived whole in the newest part "
                                   "(a leader killed before removing it); readers skip it, "
                                   "the next leader removes it, and removing it by hand is "
                                   "safe"))
    return found


def _objects(store: JobStore, state: RunState) -> list[Finding]:
    """Live objects missing or damaged (errors); orphans (notes: collectable)."""
    objects = ObjectStore(store.paths.objects)
    live = live_digests(state)
    if os.path.lexists(objects.directory) and not os.path.isdir(objects.directory):
        return [Finding(ERROR, "objects, where values over 64 KiB are kept, is not a "
                               "directory; restore it from a backup of the job store, or "
                               "start the run again in a new job store")]
    found = []
    for digest in sorted(live):
        try:
            objects.get(ObjectRef(digest, os.lstat(objects.path(ObjectRef(digest, 0))).st_size))
        except (DamagedObject, OSError):
            found.append(Finding(ERROR, f"objects/{digest.hex()}, a value a live job needs, is "
                                        "missing or damaged (its bytes do not match its name); "
                                        "restore it from a backup of the job store, or start "
                                        "the run again in a new job store"))
    for name in orphans(objects, live_digests(state, kept=True)):
        what = "a temporary file left by a crash mid-write" if name.startswith(".") else \
            "a value no live job refers to"
        found.append(Finding(NOTE, f"objects/{name} is {what}; collectable: the next leader "
                                   "removes it"))
    return found
