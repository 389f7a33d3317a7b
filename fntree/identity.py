"""Code identity: what a target is (module, qualname, code hash), computed once per run.

`code_hash(target)` is a 16-byte blake2b digest of what decides a target's
behaviour, and of nothing else:

- its function's code: bytecode, names, argument counts and flags, constants
  (nested code objects hashed the same way, recursively), defaults and
  keyword defaults. Line numbers, the line table, the file name and a
  docstring constant are left out, so moving a function or editing its
  docstring does not change it;
- what its code reads through globals and closures: a target or a function
  of the user's own code by its code hash (recursively; a cycle is closed by
  the name of the function already being hashed), a class of the user's own
  code by its methods' hashes, a module by its name, a function, class or
  builtin of an installed library (the standard library, site-packages) by
  its qualified name, any other value by its pickled bytes (sets by their
  sorted element digests, so that string hashing does not change them
  between processes; large buffers such as arrays hashed in place);
- what the target declares beyond its resources that changes what it makes
  (`declared`: a shell target's outputs, capture and tool version).

The hash is deterministic across processes and machines for the same source
and the same values. It is memoized per run, never per process: `new_run()`
(called by `fntree.run` and `fntree.restart`) starts a new memo, so a
notebook's edited global or helper is seen by the next run. A digest that
depended on a cycle is not memoized, so a function's hash never depends on
which target reached it first.

`identity(target)` is the (module, qualname, code hash, origin) a job store
records for each function key (`TARGETS` records, docs/jobstore.md); `origin`
tells apart the `__main__` of a script (its absolute path) from a notebook's
(`NOTEBOOK`), and is "" for an importable module. The keys a process made
are remembered (`remember`) so the worker can describe the functions it
introduces (`identities`).
"""

from __future__ import annotations

import builtins
import functools
import hashlib
import logging
import os
import pickle
import sys
import types
from typing import Any, NamedTuple

from fntree import dsl

log = logging.getLogger("fntree")

DIGEST_SIZE = 16
NOTEBOOK = "<notebook>"
# Fixed, so the bytes hashed do not change with the default protocol; 5 hands large
# buffers (arrays) over out of band, hashed where they are, never copied.
_PROTOCOL = 5


class Identity(NamedTuple):
    """What a job store records of a target: where it is defined and its code hash."""

    module: str
    qualname: str
    code_hash: bytes
    origin: str = ""

    def where(self) -> str:
        """How people see where the target is defined."""
        if self.module == "__main__":
            place = "a notebook" if self.origin == NOTEBOOK else f"script {self.origin}"
            return f"__main__.{self.qualname} ({place})"
        return f"{self.module}.{self.qualname}"


class _Memo:
    """One run's hashes and the keys it made."""

    def __init__(self, generation: int) -> None:
        self.generation = generation
        self.hashes: dict[int, bytes] = {}
        self.values: dict[int, bytes] = {}
        self.keep: list[Any] = []  # the objects whose ids key the memo stay alive
        self.library: dict[str, bool] = {}


_memo = _Memo(-1)
_targets_by_key: dict[bytes, Any] = {}


def new_run() -> None:
    """Start a new run: every target is pickled and hashed again, once, when first used."""
    dsl.new_run()
    _targets_by_key.clear()


def _current() -> _Memo:
    global _memo
    if _memo.generation != dsl.run_generation():
        _memo = _Memo(dsl.run_generation())
    return _memo


def code_hash(target: Any) -> bytes:
    """The code hash of a target (or a plain function), memoized for this run."""
    fn = target.fn if isinstance(target, dsl.Target) else target
    hasher = _Hasher(_current())
    if not isinstance(fn, types.FunctionType):  # a partial, a callable object: its pickle
        return hasher.value(fn)
    digest = hasher.function(fn)[0]
    declared = getattr(target, "declared", None)
    if declared is None:
        return digest
    return hashlib.blake2b(digest + hasher.value(declared), digest_size=DIGEST_SIZE).digest()


def origin_of(fn: Any) -> str:
    """Where a `__main__` function is: its script's absolute path, or NOTEBOOK.

    "" for a function of any other module. Read from the code object, so that a
    worker that loaded the function by value says what the defining process would.
    """
    if getattr(fn, "__module__", None) != "__main__":
        return ""
    filename = fn.__code__.co_filename
    if filename.startswith("<") or os.path.basename(os.path.dirname(filename)).startswith(
            "ipykernel_"):
        return NOTEBOOK
    return os.path.abspath(filename)


def main_origin() -> str:
    """Where this process's `__main__` is: a script's absolute path, NOTEBOOK, or ""."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if "ipykernel" in sys.modules and (path is None or not str(path).endswith(".py")):
        return NOTEBOOK
    return os.path.abspath(path) if path else ""


def identity(target: dsl.Target) -> Identity:
    """(module, qualname, code hash, origin) of a target, for this run."""
    base = target.base()
    module = base.fn.__module__ or "__main__"
    return Identity(module, base.__qualname__, code_hash(base), origin_of(base.fn))


def remember(key: bytes, target: dsl.Target) -> None:
    """Note that `key` is the pickled function of `target` (see `identities`)."""
    _targets_by_key[key] = target


def identities(keys: Any) -> dict[bytes, Identity]:
    """The identities of those of `keys` that this process made, by key."""
    found = {}
    for key in keys:
        target = _targets_by_key.get(key)
        if target is None:
            continue
        try:
            found[key] = identity(target)
        except Exception as exc:  # a function hashing cannot read: not compared at restarts
            log.debug("no code hash for target %s (%s: %s)", target.name,
                      type(exc).__name__, exc)
    return found


def describe(keys: Any) -> dict[bytes, tuple[str, str, bytes, str]]:
    """`identities` as plain tuples, as the job store records them (the worker's hook)."""
    return {key: tuple(found) for key, found in identities(keys).items()}  # type: ignore[misc]


class _Hasher:
    """One traversal: the functions on its stack close cycles by name."""

    def __init__(self, memo: _Memo) -> None:
        self.memo = memo
        self.stack: dict[int, str] = {}

    def function(self, fn: Any) -> tuple[bytes, bool]:
        """(digest, whether it used a cycle's placeholder) of a Python function."""
        key = id(fn)
        done = self.memo.hashes.get(key)
        if done is not None:
            return done, False
        if key in self.stack:
            return b"cycle:" + self.stack[key].encode(), True
        self.stack[key] = f"{fn.__module__}.{fn.__qualname__}"
        try:
            h = hashlib.blake2b(digest_size=DIGEST_SIZE)
            cyclic = self._code(h, fn.__code__, fn.__doc__)
            for name, value in (("defaults", fn.__defaults__),
                                ("kwdefaults", fn.__kwdefaults__)):
                h.update(name.encode() + self.value(value))
            for cell in fn.__closure__ or ():
                try:
                    digest, c = self.reference(cell.cell_contents)
                except ValueError:  # an empty cell
                    digest, c = b"empty", False
                h.update(b"cell" + digest)
                cyclic |= c
            for name in sorted(_global_names(fn.__code__)):
                found, c = self._global(fn, name)
                if found is not None:
                    h.update(name.encode() + b"=" + found)
                    cyclic |= c
        finally:
            del self.stack[key]
        digest = h.digest()
        if not cyclic:
            self.memo.hashes[key] = digest
            self.memo.keep.append(fn)
        return digest, cyclic

    def _code(self, h: Any, code: types.CodeType, doc: Any) -> bool:
        h.update(code.co_code)
        h.update(repr((code.co_argcount, code.co_posonlyargcount, code.co_kwonlyargcount,
                       code.co_flags, code.co_names, code.co_varnames, code.co_freevars,
                       code.co_cellvars)).encode())
        consts = code.co_consts
        if doc is not None and consts and consts[0] is doc:
            consts = consts[1:]
        cyclic = False
        for const in consts:
            if isinstance(const, types.CodeType):
                h.update(b"code")
                cyclic |= self._code(h, const, None)
            else:
                h.update(_const_repr(const).encode())
        return cyclic

    def _global(self, fn: Any, name: str) -> tuple[bytes | None, bool]:
        namespace = fn.__globals__
        if name in namespace:
            value = namespace[name]
            if getattr(builtins, name, None) is value and value is not None:
                # a builtin that dill copied into the globals of a function it sent by value
                return b"builtin:" + name.encode(), False
            return self.reference(value)
        table = namespace.get("__builtins__", builtins)
        if name in (table if isinstance(table, dict) else vars(table)):
            return b"builtin:" + name.encode(), False
        return None, False

    def reference(self, value: Any) -> tuple[bytes, bool]:
        """The digest of a value a function reads through a global or a closure."""
        if isinstance(value, dsl.Target):
            return self.function(value.fn)
        if isinstance(value, types.ModuleType):
            return b"module:" + value.__name__.encode(), False
        if isinstance(value, (types.FunctionType, types.BuiltinFunctionType, type)):
            module = getattr(value, "__module__", None) or ""
            qualname = getattr(value, "__qualname__", "")
            if module == "builtins":  # as a builtin read by name (dill copies them to globals)
                return b"builtin:" + qualname.encode(), False
            if isinstance(value, types.FunctionType) and not self._library(module):
                return self.function(value)
            if not isinstance(value, type) or self._library(module):
                return f"ref:{module}.{qualname}".encode(), False
            return self._class(value)
        return self.value(value), False

    def _class(self, cls: type) -> tuple[bytes, bool]:
        h = hashlib.blake2b(f"class:{cls.__module__}.{cls.__qualname__}".encode(),
                            digest_size=DIGEST_SIZE)
        cyclic = False
        for name, attribute in sorted(vars(cls).items()):
            if name in ("__dict__", "__weakref__", "__doc__", "__module__", "__qualname__"):
                continue
            member = getattr(attribute, "__func__", attribute)
            if isinstance(member, types.FunctionType):
                digest, c = self.function(member)
                cyclic |= c
            else:
                digest = self.value(member)
            h.update(name.encode() + b"=" + digest)
        return h.digest(), cyclic

    def value(self, value: Any) -> bytes:
        """The digest of a value: its pickled bytes (sets order-free); memoized by identity."""
        if value is None or isinstance(value, (bool, int, float, str, bytes)):
            return hashlib.blake2b(repr(value).encode(), digest_size=DIGEST_SIZE).digest()
        key = id(value)
        done = self.memo.values.get(key)
        if done is not None:
            return done
        if isinstance(value, (set, frozenset)):
            data = b"set" + b"".join(sorted(self.value(v) for v in value))
        elif isinstance(value, (list, tuple)) and len(value) < 10_000:
            data = type(value).__name__.encode() + b"".join(self.value(v) for v in value)
        elif type(value) is dict and len(value) < 10_000:
            data = b"dict" + b"".join(self.value(k) + self.value(v) for k, v in value.items())
        else:
            data = _pickled_digest(value)
        digest = hashlib.blake2b(data, digest_size=DIGEST_SIZE).digest()
        self.memo.values[key] = digest
        self.memo.keep.append(value)
        return digest

    def _library(self, module: str) -> bool:
        """Whether `module` is installed code (hashed by name) rather than the user's own."""
        known = self.memo.library.get(module)
        if known is None:
            known = self.memo.library[module] = _is_library(module)
        return known


def _const_repr(const: Any) -> str:
    """A constant as text; a frozenset's items sorted (their order follows string hashing)."""
    if isinstance(const, frozenset):
        return "frozenset" + repr(sorted(_const_repr(c) for c in const))
    if isinstance(const, tuple):
        return "tuple(" + ",".join(_const_repr(c) for c in const) + ")"
    return f"{type(const).__name__}:{const!r}"


def _global_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return names


@functools.cache
def _library_dirs() -> tuple[str, ...]:
    import sysconfig  # only when a run hashes a function of another module

    paths = sysconfig.get_paths()
    return tuple({paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")})


def _is_library(module: str) -> bool:
    if module in ("", "__main__"):
        return False
    if module in sys.builtin_module_names or module.partition(".")[0] in ("fntree", "builtins"):
        return True
    found = sys.modules.get(module)
    path = getattr(found, "__file__", None)
    if path is None:
        return found is not None and not hasattr(found, "__path__")
    return str(path).startswith(_library_dirs())


def _pickled_digest(value: Any) -> bytes:
    """The digest of a value's pickle; its out-of-band buffers are hashed in place."""
    h = hashlib.blake2b(digest_size=DIGEST_SIZE)
    buffers: list[pickle.PickleBuffer] = []
    try:
        h.update(pickle.dumps(value, _PROTOCOL, buffer_callback=buffers.append))
        for buffer in buffers:
            h.update(buffer.raw())
        return h.digest()
    except Exception:
        pass
    from fntree.runtime import codec

    try:
        data = codec.dumps(value)[0]
    except Exception:
        data = f"unpicklable:{type(value).__module__}.{type(value).__qualname__}".encode()
    return hashlib.blake2b(data, digest_size=DIGEST_SIZE).digest()
