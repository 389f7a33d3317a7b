"""A shell job's declared outputs: staged under temporary names, renamed into place on success.

`Outputs.stage` gives each declared output (a parameter's argument, or a literal
path; relative paths are taken from the working directory) a temporary path in
the job's local temp dir: `<local temp dir>/outputs/<i>` plus the final name's
suffixes when they are plain (`.bam`, `.tar.gz`), so a tool that reads the
format from the name still sees it, and no character of the final name reaches
the command through the temporary one. The body sees the temporary path in the
parameter's place, as a `str` or a `Path` as it was given.

`commit`, after the command succeeded, checks that every output was written,
then moves each into place: fsync of the file, `os.replace` onto the final
name, fsync of its directory. When the temp dir is on another file system the
file is first copied next to its final name (`.<name>.fntree-<pid>-<random>`, removed if
the copy fails) and renamed from there. An output made again over an earlier
run's directory (or over a file of another kind) first renames that one aside
(`.<name>.fntree-old-<pid>-<random>`), then removes it. So a final name only ever
holds a whole file or directory, or nothing. A job killed between two renames
leaves the first output whole and the second absent; it runs again and writes both.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
from pathlib import Path
from typing import Any

from fntree.errors import FntreeError
from fntree.runtime.durable import fsync_dir

_PLAIN_SUFFIX = re.compile(r"^(\.[A-Za-z0-9_-]{1,16}){1,3}$")


class OutputError(FntreeError, ValueError):
    """A declared output that has no path, or that the command did not write."""


class Outputs:
    """The declared outputs of one run of a shell job: final and temporary paths."""

    def __init__(self, finals: list[Path], temps: list[Path], labels: list[str]) -> None:
        self.finals = finals
        self.temps = temps
        self.labels = labels

    @classmethod
    def stage(cls, declared: tuple[str, ...], bound: dict[str, Any],
              staging: Path | None) -> Outputs:
        """Final and temporary paths; `bound` (the arguments by name) gets the temporary ones."""
        finals, temps, labels = [], [], []
        for i, entry in enumerate(declared):
            given = bound.get(entry, entry)
            if not isinstance(given, (str, os.PathLike)) or not os.fspath(given):
                raise OutputError(f"output {entry!r} is bound to {given!r}, not a path; pass "
                                  "the path where the command's output should go")
            final = Path(os.path.abspath(os.fspath(given)))
            suffix = "".join(final.suffixes)
            assert staging is not None
            temp = staging / f"{i}{suffix if _PLAIN_SUFFIX.match(suffix) else ''}"
            if entry in bound:
                bound[entry] = temp if isinstance(given, Path) else str(temp)
                labels.append(f"{entry}={final}")
            else:
                labels.append(str(final))
            finals.append(final)
            temps.append(temp)
        if staging is not None and declared:
            staging.mkdir(mode=0o700, exist_ok=True)
        return cls(finals, temps, labels)

    def missing(self) -> list[str]:
        """The labels of outputs the command did not write."""
        return [label for label, temp in zip(self.labels, self.temps, strict=True)
                if not temp.exists()]

    def commit(self) -> None:
        """Move every output into place (they must all exist: see `missing`)."""
        for temp, final in zip(self.temps, self.finals, strict=True):
            _fsync(temp)
            final.parent.mkdir(parents=True, exist_ok=True)
            try:
                _replace(temp, final)
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
                _copy_then_rename(temp, final)
            fsync_dir(final.parent)

    def discard(self) -> None:
        """Remove what the command wrote (after a failure)."""
        for temp in self.temps:
            with contextlib.suppress(OSError):
                if temp.is_dir() and not temp.is_symlink():
                    shutil.rmtree(temp)
                else:
                    temp.unlink()

    def value(self) -> Any:
        """The job's value: the final path, a tuple of them, or None."""
        if not self.finals:
            return None
        return self.finals[0] if len(self.finals) == 1 else tuple(self.finals)


def _replace(temp: Path, final: Path) -> None:
    """`os.replace(temp, final)`, also where a rename cannot replace what `final` holds (a
    directory output made again over the earlier run's directory, or a file over a directory):
    the earlier one is renamed aside first, then removed. A crash between the renames leaves
    `final` absent (the job runs again) and the earlier one under a hidden name beside it."""
    try:
        os.replace(temp, final)
        return
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.EISDIR, errno.ENOTDIR):
            raise
    aside = final.parent / f".{final.name}.fntree-old-{os.getpid()}-{os.urandom(4).hex()}"
    os.rename(final, aside)
    os.replace(temp, final)
    if aside.is_dir() and not aside.is_symlink():
        shutil.rmtree(aside, ignore_errors=True)
    else:
        aside.unlink(missing_ok=True)


def _copy_then_rename(temp: Path, final: Path) -> None:
    partial = final.parent / f".{final.name}.fntree-{os.getpid()}-{os.urandom(4).hex()}"
    try:
        if temp.is_dir():
            shutil.copytree(temp, partial, symlinks=True)
        else:
            shutil.copy2(temp, partial)
            _fsync(partial)
        _replace(partial, final)
    except BaseException:
        with contextlib.suppress(OSError):
            if partial.is_dir():
                shutil.rmtree(partial)
            else:
                partial.unlink()
        raise


def _fsync(path: Path) -> None:
    if path.is_dir():
        fsync_dir(path)
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
