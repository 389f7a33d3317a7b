"""A target's command-line arguments, converted by its annotations.

`fntree run SCRIPT.py:FUNC ARG... [--name VALUE]...` gives FUNC its arguments as
text; `parameters(target)` reads the function's signature once into `Parameter`
records (name, `Kind`, default, how it may be given) and `bind(target, params,
tokens)` turns the tokens into the `(args, kwargs)` of one call, or raises an
`ArgumentsError` saying what is wrong and what to do. Nothing here touches a job
store: `fntree run` binds first, so a bad argument never makes one (exit 2).

How a value is given:
- by position, in the order of the signature (positional parameters), or as
  `--name VALUE` / `--name=VALUE` (any parameter that is not positional-only;
  `snake_case` names are also spelt `--snake-case`); `--` ends the options;
- a `bool` as `--name` / `--no-name`, or by position as yes/no, true/false, 1/0,
  on/off;
- a `list[X]` or `tuple[X, ...]` comma-separated (`1,2,3`), and as an option also
  repeated (`--n 1 --n 2,3` is `[1, 2, 3]`); an empty text is the empty list;
  `tuple[X, Y]` takes exactly its items, comma-separated;
- `Optional[X]` and `X | None` as X: leave the argument out to keep the default;
- `Literal[...]` one of its values, an `Enum` one of its members' names (or
  values); `int`, `float`, `str`, `Path` (any `PurePath`) by their constructor;
- unannotated, `str`, `Any` and `object` parameters take the text itself.

Any other annotation (`dict`, a union of several types, a class of your own) is
refused with the parameter's name when a value is needed for it.
"""

from __future__ import annotations

import enum
import inspect
import types
import typing
from collections.abc import Callable, Sequence
from pathlib import PurePath
from typing import Any

import attrs

from fntree.dsl import Target
from fntree.errors import FntreeError

TRUE_WORDS = ("1", "true", "yes", "y", "on")
FALSE_WORDS = ("0", "false", "no", "n", "off")
EMPTY = inspect.Parameter.empty


class ArgumentsError(FntreeError, ValueError):
    """The command-line arguments of a target are missing, extra, or cannot be converted."""


@attrs.frozen
class Kind:
    """How the text of one argument becomes its value.

    `name` is what `--help` shows; `convert` raises ValueError for a bad text;
    `flag` marks a bool (given as `--name` / `--no-name`); `many` a list or tuple
    whose repeated options add up; `problem`, when set, says why the annotation
    cannot be converted (`convert` is then never called).
    """

    name: str
    convert: Callable[[str], Any]
    flag: bool = False
    many: bool = False
    problem: str | None = None


@attrs.frozen
class Parameter:
    """One parameter of a target, as the command line sees it."""

    name: str
    kind: Kind
    default: Any  # EMPTY when required
    positional: bool  # may be given by position
    keyword: bool  # may be given as --name
    variadic: bool = False  # *args: takes the positions left over

    @property
    def option(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def required(self) -> bool:
        return self.default is EMPTY and not self.variadic


def _boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in TRUE_WORDS:
        return True
    if lowered in FALSE_WORDS:
        return False
    raise ValueError(f"say one of {', '.join(TRUE_WORDS + FALSE_WORDS)}")


def _number(kind: type) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return kind(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a{'n' if kind is int else ''} "
                             f"{kind.__name__}") from None
    return convert


def _literal(choices: tuple[Any, ...]) -> Kind:
    by_text = {str(c.value if isinstance(c, enum.Enum) else c): c for c in choices}

    def convert(text: str) -> Any:
        if text not in by_text:
            raise ValueError(f"choose one of {', '.join(by_text)}")
        return by_text[text]
    return Kind("{" + ",".join(by_text) + "}", convert)


def _enumeration(cls: type[enum.Enum]) -> Kind:
    members = list(cls)

    def convert(text: str) -> Any:
        for match in (lambda m: m.name == text, lambda m: str(m.value) == text,
                      lambda m: m.name.lower() == text.lower()):
            found = [m for m in members if match(m)]
            if len(found) == 1:
                return found[0]
        raise ValueError(f"choose one of {', '.join(m.name for m in members)}")
    return Kind("{" + ",".join(m.name for m in members) + "}", convert)


def _items(text: str) -> list[str]:
    return [] if text == "" else text.split(",")


def _sequence(origin: Any, args: tuple[Any, ...]) -> Kind:
    fixed = origin is tuple and args and args[-1] is not Ellipsis and args != ((),)
    items = [kind_of(a) for a in (args if fixed else args[:1] or (str,))]
    bad = next((k for k in items if k.problem or k.many), None)
    if bad is not None:
        return _unsupported(f"{_label(origin, args)} (its items must be plain values)")
    if fixed:
        def convert_fixed(text: str) -> Any:
            parts = _items(text)
            if len(parts) != len(items):
                raise ValueError(f"give {len(items)} comma-separated items, not {len(parts)}")
            return tuple(k.convert(p) for k, p in zip(items, parts, strict=True))
        return Kind(",".join(k.name for k in items), convert_fixed)
    item = items[0]
    make = tuple if origin is tuple else list

    def convert(text: str) -> Any:
        return make(item.convert(p) for p in _items(text))
    return Kind(f"{item.name},...", convert, many=True)


def _unsupported(what: str) -> Kind:
    return Kind(what, str, problem=what)


def _label(annotation: Any, args: tuple[Any, ...] = ()) -> str:
    name = getattr(annotation, "__name__", None) or str(annotation)
    return f"{name}[{', '.join(_label(a) for a in args)}]" if args else name


def kind_of(annotation: Any) -> Kind:
    """The conversion of one annotation (a `Kind` with `problem` set if there is none)."""
    if annotation in (EMPTY, str, Any, object):
        return Kind("str", str)
    if annotation is bool:
        return Kind("bool", _boolean, flag=True)
    if annotation in (int, float):
        return Kind(annotation.__name__, _number(annotation))
    if isinstance(annotation, type) and issubclass(annotation, PurePath):
        return Kind("path", annotation)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return _enumeration(annotation)
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return _literal(args)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1 and len(rest) < len(args):
            return kind_of(rest[0])
        return _unsupported(" | ".join(_label(a) for a in args))
    if annotation in (list, tuple) or origin in (list, tuple, Sequence):
        return _sequence(origin or annotation, args)
    return _unsupported(_label(annotation, args))


def parameters(target: Target) -> list[Parameter]:
    """The command-line view of `target`'s signature; unresolvable annotations refused."""
    try:
        hints = typing.get_type_hints(target.fn)
    except Exception as exc:
        raise ArgumentsError(f"the annotations of {target.name} cannot be read ({exc}); "
                             "fix them so that `fntree run` can convert its arguments") from None
    found = []
    for p in inspect.signature(target.fn).parameters.values():
        if p.kind is p.VAR_KEYWORD:
            continue
        found.append(Parameter(
            p.name, kind_of(hints.get(p.name, EMPTY)), p.default,
            positional=p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL),
            keyword=p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY),
            variadic=p.kind is p.VAR_POSITIONAL))
    return found


@attrs.define
class _Given:
    """The texts given so far, by parameter name, and how each was given."""

    texts: dict[str, list[str]] = attrs.Factory(dict)
    how: dict[str, str] = attrs.Factory(dict)

    def add(self, p: Parameter, text: str, how: str, fail: Callable[[str], Exception]) -> None:
        if p.name in self.texts and not (p.kind.many and how.startswith("--")
                                         and self.how[p.name].startswith("--")):
            raise fail(f"{p.name} was given twice ({self.how[p.name]} and {how}); give it once")
        self.texts.setdefault(p.name, []).append(text)
        self.how[p.name] = how


def bind(target: Target, params: list[Parameter], tokens: list[str],
         entry: str) -> tuple[list[Any], dict[str, Any]]:
    """The arguments of one call of `target` from `tokens`, or an ArgumentsError."""
    def fail(what: str) -> ArgumentsError:
        return ArgumentsError(f"{what}; see `fntree run {entry} --help`")

    given = _Given()
    spare = _take_options(params, tokens, given, fail)
    slots = [p for p in params if p.positional and not p.variadic]
    variadic = next((p for p in params if p.variadic), None)
    for p, text in zip(slots, spare, strict=False):
        given.add(p, text, f"position {slots.index(p) + 1}", fail)
    extra = spare[len(slots):]
    if extra and variadic is None:
        raise fail(f"{target.name} takes {len(slots)} positional argument(s), but "
                   f"{len(spare)} were given (the extra: {' '.join(extra)}); quote an "
                   "argument that holds spaces, and give a list comma-separated")
    missing = [p.name for p in params if p.required and p.name not in given.texts]
    if missing:
        raise ArgumentsError(
            f"{target.name} needs a value for {', '.join(missing)}; give its arguments after "
            f"SCRIPT.py:FUNC, in order, or as --name VALUE (see `fntree run {entry} --help`)")
    values = {p.name: _convert(target, p, given.texts[p.name], fail)
              for p in params if p.name in given.texts}
    extras = [_convert(target, variadic, [t], fail) for t in extra] if variadic else []
    return _call_arguments(params, values, extras)


def _take_options(params: list[Parameter], tokens: list[str], given: _Given,
                  fail: Callable[[str], ArgumentsError]) -> list[str]:
    """Record the `--name` options among `tokens`; the positional tokens, in order."""
    by_option = {p.option: p for p in params if p.keyword}
    by_option.update({"--" + p.name: p for p in params if p.keyword})
    spare: list[str] = []
    rest = list(tokens)
    while rest:
        token = rest.pop(0)
        if token == "--":
            return spare + rest
        if not token.startswith("-") or _is_number(token) or token == "-":
            spare.append(token)
            continue
        option, has_value, value = token.partition("=")
        p = by_option.get(option)
        negated = by_option.get("--" + option[5:]) if option.startswith("--no-") else None
        if p is None and negated is not None and negated.kind.flag and not has_value:
            given.add(negated, "false", option, fail)
            continue
        if p is None:
            known = " ".join(sorted({q.option for q in by_option.values()})) or "none"
            raise fail(f"{option} is not an option of this target (its options: {known})")
        if not has_value and p.kind.flag:
            value = "true"
        elif not has_value:
            if not rest:
                raise fail(f"{option} needs a value ({p.kind.name})")
            value = rest.pop(0)
        given.add(p, value, option, fail)
    return spare


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _convert(target: Target, p: Parameter, texts: list[str],
             fail: Callable[[str], ArgumentsError]) -> Any:
    if p.kind.problem:
        raise ArgumentsError(
            f"parameter {p.name} of {target.name} is annotated {p.kind.problem}, which "
            "`fntree run` cannot make from text; annotate it with a type it converts "
            "(int, float, str, bool, Path, Optional[X], list[X], tuple[X, ...], Literal, "
            "an Enum) or call the target from Python")
    try:
        converted = [p.kind.convert(t) for t in texts]
    except ValueError as exc:
        bad = texts[0] if len(texts) == 1 else ",".join(texts)
        if p.kind.name.startswith("{"):
            raise fail(f"argument {p.name} of {target.name} cannot be {bad!r}: {exc}") from None
        raise fail(f"argument {p.name} of {target.name} must be of type {p.kind.name}, not "
                   f"{bad!r} ({exc})") from None
    if p.kind.many:
        return type(converted[0])(x for part in converted for x in part)
    return converted[-1]


def _call_arguments(params: list[Parameter], values: dict[str, Any],
                    extras: list[Any]) -> tuple[list[Any], dict[str, Any]]:
    """Positional parameters by position up to the last one given (defaults between),
    or through all of them when *args has values; the others by keyword."""
    slots = [p for p in params if p.positional and not p.variadic]
    given = [i for i, p in enumerate(slots) if p.name in values]
    last = len(slots) - 1 if extras or any(not p.keyword for p in slots) else \
        (given[-1] if given else -1)
    args = [values.get(p.name, p.default) for p in slots[:last + 1]]
    if any(a is EMPTY for a in args):  # only when positional-only ones are left out
        last = next(i for i, a in enumerate(args) if a is EMPTY) - 1
        args = args[:last + 1]
    placed = {p.name for p in slots[:last + 1]}
    kwargs = {k: v for k, v in values.items() if k not in placed}
    return [*args, *extras], kwargs
