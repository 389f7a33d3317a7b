"""`fntree.json`: a job store's identity, written and read with a checksum of its fields.

It is JSON for people and other tools: `{"program": "fntree", "format", "store_id",
"lineage", "created", "root", "crc32"}`, where `crc32` is the crc32 of the other fields
serialized canonically (sorted keys, no spaces). A flipped bit either breaks the
JSON, changes a field (the crc no longer matches), changes the crc, or changes only
how a field is spelled, which leaves every value as it was (docs/jobstore.md).
"""

from __future__ import annotations

import json
import zlib
from typing import Any

from fntree.errors import JobStoreError
from fntree.runtime.durable import atomic_write
from fntree.runtime.paths import StorePaths

PROGRAM = "fntree"
# 3: the journal may hold DONE records kept as their worker's pickle or as flat tuples, and
# BEAR records (fntree/runtime/records.py). Format 2 stores read the same; a leader that
# opens one writes 3 into it before its first record, so an fntree that reads only 2 says
# "upgrade" instead of meeting records it does not know.
FORMAT = 3
OLDEST = 2  # the oldest format this fntree reads


def meta_bytes(meta: dict[str, Any]) -> bytes:
    """`fntree.json`: the identity fields and a crc32 of them, so that a flipped bit shows."""
    fields = {k: v for k, v in meta.items() if k != "crc32"}
    return json.dumps({**fields, "crc32": meta_crc(fields)}, indent=1).encode()


def meta_crc(fields: dict[str, Any]) -> int:
    """The crc32 of `fntree.json`'s fields, serialized canonically (sorted keys, no spaces)."""
    return zlib.crc32(json.dumps(fields, sort_keys=True, separators=(",", ":")).encode())


def read_meta(paths: StorePaths) -> dict[str, Any]:
    """The identity in `fntree.json`, checked: fntree's, of this format, and undamaged."""
    try:
        meta = json.loads(paths.meta.read_bytes())
    except (OSError, ValueError) as exc:
        raise JobStoreError(f"{paths.meta} is damaged ({exc}); the job store cannot be "
                            "used: restore the file from a backup") from exc
    damaged = JobStoreError(f"{paths.meta} is damaged (its fields do not match their "
                            "checksum); restore the file from a backup")
    if not isinstance(meta, dict):
        raise damaged
    fields = {k: v for k, v in meta.items() if k != "crc32"}
    if "crc32" in meta and meta["crc32"] != meta_crc(fields):
        raise damaged
    if fields.get("program") != PROGRAM:
        raise JobStoreError(f"{paths.root} belongs to another program, not fntree; "
                            "check the path")
    if "crc32" not in meta:
        if meta.get("format") == 1:
            raise JobStoreError(
                f"{paths.root} was written by an earlier fntree (store format 1, whose files "
                f"carry no checksums; this fntree reads formats {OLDEST} to {FORMAT}): "
                "continue or inspect that run with the fntree that started it")
        raise damaged
    if not isinstance(meta.get("format"), int) or meta["format"] > FORMAT:
        raise JobStoreError(
            f"{paths.root} was written by a newer fntree (store format "
            f"{meta.get('format')}, this fntree reads up to {FORMAT}); upgrade fntree")
    if meta["format"] < OLDEST:
        raise JobStoreError(
            f"{paths.root} was written by an earlier fntree (store format {meta['format']}; "
            f"this fntree reads formats {OLDEST} to {FORMAT}): continue or inspect that run "
            "with the fntree that started it")
    return fields


def upgraded(paths: StorePaths, meta: dict[str, Any]) -> dict[str, Any]:
    """`meta`, its store now marked as this fntree's format (written atomically, with its
    checksum); called by the leader, holding the store's lock, before it writes a record."""
    if meta.get("format") == FORMAT:
        return meta
    meta = dict(meta, format=FORMAT)
    atomic_write(paths.meta, meta_bytes(meta))
    return meta
