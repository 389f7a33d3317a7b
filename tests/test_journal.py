"""Tests of fntree.runtime.journal (frames, group commit, torn tails) and durable writes."""

from __future__ import annotations

import os
import pickle
import stat
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

import fntree
from fntree.runtime.check import ERROR, check
from fntree.runtime.durable import (
    HEADER,
    atomic_write,
    frame_header,
    fsync_dir,
    make_private_dir,
    parse_header,
)
from fntree.runtime.journal import MAGIC, DamagedJournal, Journal, encode, read_records
from fntree.runtime.records import (
    O_SPAWN,
    O_VALUE,
    R_DONE,
    R_DONE_FLAT,
    R_DONE_PICKLED,
    R_EPOCH,
    R_ISSUE,
    Res,
    Spec,
    flat_outcome,
)

TESTS = str(Path(__file__).parent)

RECORDS = [
    (R_EPOCH, 1, 4242, "host"),
    (R_ISSUE, 2**63 + 5, 1),
    (R_DONE, 7, (O_VALUE, b"\x00value" * 50), {b"key": b"fn"}, (0.0, 1.5, 1.0, 2048)),
    ("unicode \u00e9\u4e2d", None, [1.5, {"a": (1, 2)}]),
]


def write_journal(path, records):
    """A closed journal at `path` holding `records`, one commit each; returns its frames."""
    journal = Journal.open(path)
    for record in records:
        journal.append(record)
        journal.commit()
    journal.close()
    return [encode([r]) for r in records]


# -- frames --------------------------------------------------------------------------


def test_a_frame_is_a_self_checking_header_then_the_pickle():
    """A frame is magic, u64 length, crc32 of the payload, crc32 of those fields, then pickle."""
    frame = encode([RECORDS[2]])
    magic, length, crc, check = struct.unpack_from("<4sQII", frame)
    payload = frame[20:]
    assert magic == MAGIC
    assert length == len(payload)
    assert crc == zlib.crc32(payload)
    assert check == zlib.crc32(frame[:16])
    assert pickle.loads(payload) == [RECORDS[2]]


def test_a_length_above_4_gib_is_read_from_the_header(tmp_path):
    """A frame header holds a u64 length: a 5 GiB frame cut short is a torn tail, not damage."""
    path = tmp_path / "1.log"
    write_journal(path, RECORDS[:1])
    good = path.stat().st_size
    fields = struct.pack("<4sQI", MAGIC, 5 << 30, 12345)
    with path.open("ab") as f:
        f.write(fields + struct.pack("<I", zlib.crc32(fields)) + b"\x80\x05" * 1000)
    assert parse_header(path.read_bytes(), good, MAGIC) == (5 << 30, 12345)
    assert read_records(path) == (RECORDS[:1], good, True)


def test_frames_round_trip(tmp_path):
    """Records written as frames read back equal, in order, with no torn tail."""
    path = tmp_path / "1.log"
    path.write_bytes(b"".join(encode([r]) for r in RECORDS))
    records, good, torn = read_records(path)
    assert records == RECORDS
    assert good == path.stat().st_size
    assert not torn


def test_an_empty_journal_has_no_records(tmp_path):
    """An empty file reads as no records and no torn tail."""
    path = tmp_path / "1.log"
    path.write_bytes(b"")
    assert read_records(path) == ([], 0, False)


# -- appending and committing --------------------------------------------------------


def test_append_only_buffers_until_commit(tmp_path):
    """Appended records reach the file only at commit."""
    path = tmp_path / "1.log"
    journal = Journal.open(path)
    journal.append(RECORDS[0])
    journal.append(RECORDS[1])
    assert journal.pending == 2
    assert read_records(path) == ([], 0, False)
    journal.commit()
    assert journal.pending == 0
    assert read_records(path)[0] == RECORDS[:2]
    assert journal.size == path.stat().st_size
    journal.close()


def test_commit_makes_appended_records_readable(tmp_path):
    """Records from several commits read back in the order they were appended."""
    path = tmp_path / "1.log"
    journal = Journal.open(path)
    for record in RECORDS:
        journal.append(record)
        journal.commit()
    journal.close()
    assert read_records(path) == (RECORDS, path.stat().st_size, False)


def test_a_commit_with_nothing_buffered_writes_nothing(tmp_path):
    """commit with an empty buffer leaves the file as it was."""
    path = tmp_path / "1.log"
    journal = Journal.open(path)
    journal.commit()
    assert path.read_bytes() == b""
    assert journal.size == 0
    journal.close()


def test_a_reopened_journal_appends_after_its_records(tmp_path):
    """Opening an existing journal positions it at the end: old and new records both read."""
    path = tmp_path / "1.log"
    write_journal(path, RECORDS[:2])
    journal = Journal.open(path)
    assert journal.size == path.stat().st_size
    journal.append(RECORDS[2])
    journal.commit()
    journal.close()
    assert read_records(path)[0] == RECORDS[:3]


def test_a_new_journal_is_private(tmp_path):
    """A journal file is created readable and writable by its owner only."""
    path = tmp_path / "1.log"
    Journal.open(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_close_twice_is_harmless(tmp_path):
    """Closing a journal a second time does nothing."""
    journal = Journal.open(tmp_path / "1.log")
    journal.close()
    journal.close()


# -- torn tails ----------------------------------------------------------------------


def _cut_points():
    frame = encode([RECORDS[-1]])
    return range(1, len(frame))


@pytest.mark.parametrize("kept", _cut_points())
def test_a_truncated_last_frame_is_a_torn_tail(tmp_path, kept):
    """A file cut anywhere inside its last frame reads as the good prefix and torn=True."""
    path = tmp_path / "1.log"
    frames = write_journal(path, RECORDS)
    good_size = sum(map(len, frames[:-1]))
    path.write_bytes(path.read_bytes()[: good_size + kept])
    assert read_records(path) == (RECORDS[:-1], good_size, True)


@pytest.mark.parametrize("position", range(len(encode([RECORDS[-1]]))))
def test_a_flipped_bit_in_a_complete_last_frame_is_damage(tmp_path, position):
    """A bit flipped anywhere in a complete last frame is damage, never cut as a torn tail."""
    path = tmp_path / "1.log"
    frames = write_journal(path, RECORDS)
    good_size = sum(map(len, frames[:-1]))
    data = bytearray(path.read_bytes())
    data[good_size + position] ^= 1 << (position % 8)
    path.write_bytes(bytes(data))
    with pytest.raises(DamagedJournal) as info:
        read_records(path)
    assert info.value.offset == good_size
    assert info.value.path == path


def test_a_zero_filled_tail_is_a_torn_tail(tmp_path):
    """Zeros after the last good frame (a power cut's unwritten blocks) are a torn tail."""
    path = tmp_path / "1.log"
    write_journal(path, RECORDS)
    size = path.stat().st_size
    with path.open("ab") as f:
        f.write(b"\x00" * 64)
    assert read_records(path) == (RECORDS, size, True)


def test_a_last_frame_whose_payload_ends_in_zeros_is_a_torn_tail(tmp_path):
    """A complete last frame whose payload ends in zero bytes (never a pickle's end) is torn."""
    path = tmp_path / "1.log"
    frames = write_journal(path, RECORDS)
    good_size = sum(map(len, frames[:-1]))
    data = bytearray(path.read_bytes())
    data[-10:] = bytes(10)
    path.write_bytes(bytes(data))
    assert read_records(path) == (RECORDS[:-1], good_size, True)


def test_a_partial_header_that_starts_unlike_a_frame_is_damage(tmp_path):
    """A few bytes after the last frame that are neither a magic prefix nor zeros are damage."""
    path = tmp_path / "1.log"
    write_journal(path, RECORDS[:1])
    size = path.stat().st_size
    with path.open("ab") as f:
        f.write(b"XY")
    with pytest.raises(DamagedJournal) as info:
        read_records(path)
    assert info.value.offset == size


@pytest.mark.parametrize("kept", range(1, len(MAGIC) + 1))
def test_a_partial_magic_is_a_torn_tail(tmp_path, kept):
    """A file ending in the first bytes of a frame's magic is a torn tail."""
    path = tmp_path / "1.log"
    write_journal(path, RECORDS[:1])
    size = path.stat().st_size
    with path.open("ab") as f:
        f.write(MAGIC[:kept])
    assert read_records(path) == (RECORDS[:1], size, True)


def test_a_checked_frame_that_does_not_load_is_damage(tmp_path):
    """A frame whose checksums match but whose payload is no pickle is damage, not a tail."""
    path = tmp_path / "1.log"
    write_journal(path, RECORDS[:1])
    payload = b"not a pickle"
    with path.open("ab") as f:
        f.write(frame_header(MAGIC, payload) + payload)
    with pytest.raises(DamagedJournal, match="do not load"):
        read_records(path)


def test_good_frames_after_a_damaged_one_are_damage_not_a_torn_tail(tmp_path):
    """A damaged frame followed by good ones cannot come from a crash: reading raises."""
    path = tmp_path / "1.log"
    frames = [encode([r]) for r in RECORDS]
    damaged = bytearray(frames[1])
    damaged[-1] ^= 0x01
    path.write_bytes(frames[0] + bytes(damaged) + frames[2] + frames[3])
    with pytest.raises(DamagedJournal) as info:
        read_records(path)
    assert info.value.offset == len(frames[0])


def test_a_large_torn_value_is_read_in_one_pass(tmp_path):
    """A 64 MiB value cut mid-write, holding frames of its own, reads as a torn tail at once."""
    path = tmp_path / "1.log"
    write_journal(path, RECORDS[:1])
    good = path.stat().st_size
    inner = b"".join(encode([("inner", i)]) for i in range(1000))
    value = (inner + os.urandom(1 << 16)) * ((64 << 20) // (len(inner) + (1 << 16)))
    journal = Journal.open(path)
    journal.append((R_DONE, 7, (O_VALUE, value), {}, (0.0, 1.0, 1.0, 0)))
    journal.commit()
    journal.close()
    os.truncate(path, good + (path.stat().st_size - good) // 2)
    assert read_records(path) == (RECORDS[:1], good, True)


def test_one_commit_is_one_frame(tmp_path):
    """All the records of a commit share one frame: a commit is all there or not at all."""
    path = tmp_path / "1.log"
    journal = Journal.open(path)
    for record in RECORDS:
        journal.append(record)
    journal.commit()
    journal.close()
    assert path.read_bytes() == encode(RECORDS)
    path.write_bytes(path.read_bytes()[:-1])
    assert read_records(path) == ([], 0, True)


def test_open_at_the_good_size_cuts_a_torn_tail(tmp_path):
    """Journal.open(path, good_size) truncates the torn tail so later appends read back."""
    path = tmp_path / "1.log"
    write_journal(path, RECORDS)
    path.write_bytes(path.read_bytes()[:-3])
    records, good, torn = read_records(path)
    assert torn
    journal = Journal.open(path, good)
    assert journal.size == good
    assert path.stat().st_size == good
    journal.append(("after", "recovery"))
    journal.commit()
    journal.close()
    assert read_records(path) == ([*records, ("after", "recovery")], path.stat().st_size, False)


def test_appending_without_cutting_makes_the_journal_unreadable(tmp_path):
    """Why recovery cuts: records appended after a torn frame would make it look damaged."""
    path = tmp_path / "1.log"
    write_journal(path, RECORDS)
    path.write_bytes(path.read_bytes()[:-3])
    write_journal(path, [("lost",)])
    with pytest.raises(DamagedJournal):
        read_records(path)


# -- durable writes ------------------------------------------------------------------


def test_atomic_write_creates_a_private_file(tmp_path):
    """atomic_write creates a missing file with the data, readable by its owner only."""
    path = tmp_path / "fntree.json"
    atomic_write(path, b'{"program": "fntree"}')
    assert path.read_bytes() == b'{"program": "fntree"}'
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_atomic_write_replaces_a_file_and_leaves_no_temp_file(tmp_path):
    """atomic_write replaces the old content and leaves only the target file in the dir."""
    path = tmp_path / "snapshot.1"
    path.write_bytes(b"old content that is longer than the new one")
    atomic_write(path, b"new")
    assert path.read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["snapshot.1"]


def test_atomic_write_of_large_data(tmp_path):
    """atomic_write writes all of a multi-megabyte payload."""
    path = tmp_path / "big"
    data = os.urandom(3 * 2**20 + 17)
    atomic_write(path, data)
    assert path.read_bytes() == data


def test_a_failed_atomic_write_leaves_the_old_file(tmp_path):
    """When writing fails, the file keeps its old content."""
    path = tmp_path / "config.pkl"
    path.write_bytes(b"old")
    with pytest.raises(TypeError):
        atomic_write(path, "not bytes")  # type: ignore[arg-type]
    assert path.read_bytes() == b"old"


def test_fsync_dir_and_make_private_dir(tmp_path):
    """make_private_dir creates missing parents with mode 0700; fsync_dir accepts a dir."""
    path = tmp_path / "a" / "b"
    make_private_dir(path)
    make_private_dir(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o700
    fsync_dir(path)


# -- outcomes kept as their workers pickled them ------------------------------------

SPAWN = (O_SPAWN, (Spec(11, "leaf", b"k", b"args", Res(None, None, 1.0, None)),), None)
PICKLED = (R_DONE_PICKLED, 7, pickle.dumps(SPAWN, pickle.HIGHEST_PROTOCOL), {b"key": b"fn"})


def test_a_pickled_outcome_reads_back_as_the_done_it_stands_for(tmp_path):
    """A DONE_PICKLED record reads back as the DONE record with its outcome loaded."""
    path = tmp_path / "1.log"
    write_journal(path, [RECORDS[0], PICKLED, (*PICKLED, True)])
    records, _, torn = read_records(path)
    assert records == [RECORDS[0], (R_DONE, 7, SPAWN, {b"key": b"fn"}),
                       (R_DONE, 7, SPAWN, {b"key": b"fn"}, True)]
    assert not torn


@pytest.mark.parametrize("kept", range(1, len(encode([PICKLED])), 7))
def test_a_torn_frame_of_pickled_outcomes_is_cut(tmp_path, kept):
    """A frame holding a pickled outcome cut short is a torn tail that opening cuts away."""
    path = tmp_path / "1.log"
    frames = write_journal(path, [RECORDS[0], PICKLED])
    path.write_bytes(path.read_bytes()[:len(frames[0]) + kept])
    assert read_records(path) == ([RECORDS[0]], len(frames[0]), True)
    Journal.open(path, len(frames[0])).close()
    assert path.stat().st_size == len(frames[0])


def test_a_flipped_bit_in_a_pickled_outcome_is_named(tmp_path):
    """A bit flipped inside a pickled outcome's bytes is damage at its frame, never cut."""
    path = tmp_path / "1.log"
    frames = write_journal(path, [RECORDS[0], PICKLED])
    data = bytearray(path.read_bytes())
    inside = data.rindex(b"args")  # the child spec's arguments, in the pickled outcome
    data[inside] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(DamagedJournal) as info:
        read_records(path)
    assert info.value.offset == len(frames[0])


def test_a_pickled_outcome_that_does_not_load_is_damage(tmp_path):
    """A frame that checks but whose pickled outcome does not load is damage, named as such."""
    path = tmp_path / "1.log"
    frames = write_journal(path, [RECORDS[0], (R_DONE_PICKLED, 7, b"not a pickle", {})])
    with pytest.raises(DamagedJournal, match="outcome in it does not load") as info:
        read_records(path)
    assert info.value.offset == len(frames[0])


def test_a_flat_outcome_reads_back_as_the_done_it_stands_for(tmp_path):
    """A DONE_FLAT record (specs as plain tuples, deps kept) reads back as its DONE record."""
    res = Res(None, None, 1.0, None)
    dep = Spec(21, "dep", b"k", b"d", res)
    spawn = (O_SPAWN, (Spec(11, "leaf", b"k", b"a", res), Spec(12, "leaf", b"k", b"b", res)),
             Spec(13, "add", b"k", b"c", res, (0, 1, 2), (dep,)))
    alone = (O_SPAWN, (), Spec(14, "hop", b"k", b"e", res))
    path = tmp_path / "1.log"
    write_journal(path, [(R_DONE_FLAT, 7, flat_outcome(spawn), {}),
                         (R_DONE_FLAT, 8, flat_outcome(alone), {}, True),
                         (R_DONE_FLAT, 9, flat_outcome((O_SPAWN, spawn[1], None)), {})])
    records, _, _ = read_records(path)
    assert records == [(R_DONE, 7, spawn, {}), (R_DONE, 8, alone, {}, True),
                       (R_DONE, 9, (O_SPAWN, spawn[1], None), {})]
    assert all(type(s) is Spec for s in (*records[0][2][1], records[0][2][2]))


def test_a_flat_outcome_with_a_misshapen_spec_is_damage(tmp_path):
    """A frame that checks but whose flat outcome holds a spec of the wrong fields is damage."""
    path = tmp_path / "1.log"
    frames = write_journal(path, [RECORDS[0], (R_DONE_FLAT, 7, (O_SPAWN, ((1, 2),), None), {})])
    with pytest.raises(DamagedJournal, match="outcome in it does not load") as info:
        read_records(path)
    assert info.value.offset == len(frames[0])


def test_a_run_killed_after_journaling_pickled_outcomes_checks_and_restarts(tmp_path):
    """A leader killed after a commit that holds the root's spawn of 20 children (pickled
    apart by its worker: worker.PICKLE_APART) as a DONE_PICKLED record, and a middle's
    spawn of 4 as a DONE_FLAT record, leaves a store that `fntree check` finds sound and
    that restarts to the exact value."""
    # Which commit holds the root's result depends on how fast its worker answers.
    for commit in (2, 3, 4, 6, 8, 12):
        store = tmp_path / f"jobstore-{commit}"
        code = ("import fntree, workflows as wf; "
                f"fntree.run(wf.wide(20, 4), jobstore={str(store)!r})")
        env = {**os.environ, "PYTHONPATH": TESTS, "FNTREE_CRASH_AT": f"leader.commit:{commit}"}
        subprocess.run([sys.executable, "-c", code], env=env, timeout=300,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        kinds = [record[0] for segment in sorted((store / "journal").glob("*.log"))
                 for record in _raw_records(segment)]
        if R_DONE_PICKLED in kinds and R_DONE_FLAT in kinds:
            break
    assert R_DONE_PICKLED in kinds and R_DONE_FLAT in kinds
    assert not [f for f in check(store) if f.level == ERROR]
    assert fntree.restart(store) == 20 * sum(range(4))


def _raw_records(path):
    """The records of a segment as written, pickled outcomes not loaded."""
    data, offset, records = path.read_bytes(), 0, []
    while offset < len(data):
        length, _ = parse_header(data, offset, MAGIC)
        start = offset + HEADER.size
        records.extend(pickle.loads(data[start:start + length]))
        offset = start + length
    return records
