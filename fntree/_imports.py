"""fntree's own imports are not taken over by a user's file named like a module it needs.

Python puts a script's folder first on the import path (and the worker's
PYTHONPATH carries it too), so a script named `random.py` or `json.py`, or one
beside it, is imported in place of the standard library's module by any module
that imports that name: tempfile imports random, and fntree imports tempfile.
The script then runs half-way inside fntree's own import, and dies on an
attribute of a module not yet made.

While fntree imports itself (`standard_library_first`), the standard library's
folders go first on the import path, so its modules are the real ones, and stay
so (they are cached in sys.modules) for the rest of the process; the few that
fntree imports later are imported then too. What `import fntree` leaves for
first use (the leader's side, fntree/__init__.py), a worker's own imports
(fntree/_worker.py) and the CLI's subcommands are imported under it as well.
A file named like a dependency (`rich.py`, `dill.py`, `attrs.py`) cannot be
helped that way: `shadowed` names it, for a message saying what to rename.
"""

from __future__ import annotations

import os  # os and sys only, here: both are imported before any script runs
import sys
from types import TracebackType

# fntree's dependencies and theirs, by the top-level names they import as.
DEPENDENCIES = ("attr", "attrs", "dill", "rich", "pygments", "markdown_it", "mdurl")
# Standard-library modules fntree imports only inside functions, imported up front.
LATER = ("ctypes", "sysconfig")


def _standard_library() -> list[str]:
    """The standard library's folders: where `os` came from, and its extension modules'."""
    home = os.path.dirname(os.__file__)
    return [home, *(p for p in sys.path if p.startswith(home) and p != home)]


class standard_library_first:  # lower case: read as `with standard_library_first():`
    """While fntree imports itself: the standard library before any folder of the user's.

    Not a contextlib.contextmanager: contextlib would be imported before the guard is up.
    """

    def __enter__(self) -> None:
        self.first = _standard_library()
        sys.path[:0] = self.first

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if kind is None:
                for name in LATER:
                    __import__(name)
        finally:
            for entry in self.first:
                if entry in sys.path:
                    sys.path.remove(entry)


def shadowed(error: BaseException) -> list[tuple[str, str]]:
    """(module, file) for each module fntree needs that `error`'s traceback shows was run
    from a user's file (a module that failed is no longer in sys.modules: its frames are)."""
    import traceback  # only once the standard library is in place

    home = os.path.dirname(os.__file__)
    wanted = {*sys.stdlib_module_names, *DEPENDENCIES}
    files = [frame.f_code.co_filename for frame, _ in traceback.walk_tb(error.__traceback__)]
    files += [getattr(sys.modules.get(name), "__file__", None) or "" for name in DEPENDENCIES]
    found = []
    for where in dict.fromkeys(files):
        path = os.path.abspath(where)
        name = os.path.splitext(os.path.basename(path))[0]
        if name == "__init__":
            name = os.path.basename(os.path.dirname(path))
        if (name in wanted and not path.startswith(home + os.sep)
                and "site-packages" not in path and "dist-packages" not in path):
            found.append((name, where))
    return found


def explain(error: BaseException) -> ImportError | None:
    """The ImportError to raise when importing fntree failed because a file shadowed a module."""
    files = shadowed(error)
    if not files:
        return None
    name, where = files[0]
    stem = os.path.splitext(os.path.basename(where))[0]
    return ImportError(
        f"fntree cannot be imported: the file {where} is named like the module `{name}` that "
        f"fntree needs, and Python imported it in that module's place ({type(error).__name__}: "
        f"{error}); rename it (e.g. to {stem}_pipeline.py) and remove any {stem}.pyc or "
        "__pycache__ beside it", name=name, path=where)
