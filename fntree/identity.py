"""Code identity: a hash of what a target's function would do, the same in every process.

`code_hash(target)` digests the function's code object (bytecode, constants and
names; nested code objects recursively; not line numbers), its defaults, the
contents of its closure cells and the module-level globals its code reads. A
global or cell that is a function or a target contributes its own code hash
(recursively, cycles cut); a module contributes its name; any other value its
pickle (or, if it has none, its type and repr). Editing the target, a helper it
calls or a constant it reads changes the hash; moving it to other lines does not.
"""

from __future__ import annotations

import builtins
import hashlib
import pickle
import types
from typing import Any

_PERSON = b"fntree-code-1"
_NONE = object()


def code_hash(target: Any) -> bytes:
    """The code hash of a target (or a plain function): 16 bytes."""
    h = hashlib.blake2b(digest_size=16, person=_PERSON)
    _function(h, getattr(target, "fn", target), set())
    return h.digest()


def _function(h: Any, fn: Any, seen: set[int]) -> None:
    if id(fn) in seen:
        h.update(b"<cycle>")
        return
    seen.add(id(fn))
    fn = getattr(fn, "fn", fn)  # a target: its function
    code = getattr(fn, "__code__", None)
    if code is None:  # a builtin or a callable object
        _value(h, fn, seen)
        return
    _code(h, code)
    _value(h, fn.__defaults__, seen)
    _value(h, fn.__kwdefaults__, seen)
    for cell in fn.__closure__ or ():
        try:
            contents = cell.cell_contents
        except ValueError:  # an empty cell
            contents = None
        _value(h, contents, seen)
    namespace = fn.__globals__
    for name in _global_names(code):
        # A builtin may or may not be copied into the globals (dill copies it for a
        # function sent by value): look it up the same way in both cases.
        if name in namespace and namespace[name] is not getattr(builtins, name, _NONE):
            h.update(b"G" + name.encode())
            _value(h, namespace[name], seen)


def _code(h: Any, code: types.CodeType) -> None:
    h.update(b"C" + code.co_code)
    h.update(repr(code.co_names).encode())
    h.update(repr((code.co_argcount, code.co_kwonlyargcount, code.co_flags)).encode())
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _code(h, const)
        else:
            h.update(b"K" + repr(const).encode())


def _global_names(code: types.CodeType) -> list[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names.update(_global_names(const))
    return sorted(names)


def _value(h: Any, value: Any, seen: set[int]) -> None:
    if isinstance(value, types.ModuleType):
        h.update(b"M" + value.__name__.encode())
    elif isinstance(value, (types.FunctionType, types.MethodType)) or hasattr(value, "fn"):
        _function(h, getattr(value, "__func__", value), seen)
    elif isinstance(value, type):
        h.update(b"T" + f"{value.__module__}.{value.__qualname__}".encode())
    else:
        try:
            h.update(b"V" + pickle.dumps(value, 4))
        except Exception:
            h.update(b"R" + f"{type(value).__qualname__}:{value!r}".encode())
