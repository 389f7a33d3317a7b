"""`fntree run SCRIPT.py:FUNC --help`: a target's parameters, from its signature and docstring.

The usage line, the docstring's summary, then one line per parameter: how it is
given, its type, its default (or "required") and the description the docstring
gives it (Google `Args:`, NumPy `Parameters`, or Sphinx `:param name:` style),
then fntree's own options.
"""

from __future__ import annotations

import inspect
import re
import textwrap

from fntree.cli.arguments import EMPTY, Parameter
from fntree.dsl import Target

_SECTION = re.compile(r"^\s*(Args|Arguments|Parameters|Params|Keyword Args|Returns|Raises|"
                      r"Yields|Examples?|Notes?)\s*:?\s*$")
_GOOGLE = re.compile(r"^\s*\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_NUMPY = re.compile(r"^\s*(\w+)\s+:(\s.*)?$")
_SPHINX = re.compile(r"^\s*:param\s+(?:[^:]*\s)?(\w+)\s*:\s*(.*)$")


def target_help(entry: str, target: Target, params: list[Parameter], fntree_help: str) -> str:
    """The whole help text of `fntree run ENTRY --help`."""
    doc = inspect.getdoc(target.fn) or ""
    described = describe_parameters(doc)
    lines = [f"usage: fntree run {entry} {_usage(params)} [fntree options]", ""]
    summary = _summary(doc)
    if summary:
        lines += [summary, ""]
    if params:
        lines.append(f"arguments of {target.name} (positional ones in this order, or any "
                     "as --name VALUE):")
        lines += [_line(p, described.get(p.name, "")) for p in params]
        lines += ["", textwrap.fill(
            "Lists are comma-separated (1,2,3) or the option repeated (--n 1 --n 2); a bool "
            "is --name / --no-name; an Optional parameter left out keeps its default.",
            width=100), ""]
    else:
        lines += [f"{target.name} takes no arguments.", ""]
    return "\n".join(lines) + fntree_help


def _usage(params: list[Parameter]) -> str:
    parts = []
    for p in params:
        if p.variadic:
            parts.append(f"[{p.name.upper()}...]")
        elif p.kind.flag and not p.positional:
            parts.append(f"[{p.option}/--no-{p.option[2:]}]")
        elif p.positional:
            word = p.name.upper()
            parts.append(word if p.required else f"[{word}]")
        else:
            value = f"{p.option} {p.name.upper()}"
            parts.append(value if p.required else f"[{value}]")
    return " ".join(parts)


def _line(p: Parameter, description: str) -> str:
    if p.variadic:
        how = f"{p.name.upper()}..."
    elif p.kind.flag:
        how = f"{p.option}/--no-{p.option[2:]}" + (f" or {p.name.upper()}" if p.positional
                                                   else "")
    else:
        how = (f"{p.name.upper()} or " if p.positional else "") + \
            (f"{p.option} {p.name.upper()}" if p.keyword else "")
        how = how.removesuffix(" or ")
    kind = f"not convertible: {p.kind.problem}" if p.kind.problem else p.kind.name
    default = "required" if p.required else ("" if p.variadic else
                                             f"default {_shown(p.default)}")
    facts = ", ".join(x for x in (kind, default) if x)
    text = f"  {how:<28} {facts}" + (f"  {description}" if description else "")
    return textwrap.fill(text, width=100, subsequent_indent=" " * 31)


def _shown(value: object) -> str:
    return getattr(value, "name", None) or repr(value) if value is not EMPTY else ""


def _summary(doc: str) -> str:
    """The docstring up to its first section (Args:, Parameters, :param ...)."""
    kept = []
    for line in doc.splitlines():
        if _SECTION.match(line) or _SPHINX.match(line):
            break
        kept.append(line)
    return "\n".join(kept).strip()


def describe_parameters(doc: str) -> dict[str, str]:
    """Each parameter's description in `doc`, in the Google, NumPy or Sphinx style."""
    found: dict[str, str] = {}
    lines = doc.splitlines()
    for line in lines:
        m = _SPHINX.match(line)
        if m:
            found[m.group(1)] = m.group(2).strip()
    section = None
    name_indent = None
    current = None
    for line in lines:
        header = _SECTION.match(line)
        if header:
            section, name_indent, current = header.group(1), None, None
            continue
        if section not in ("Args", "Arguments", "Parameters", "Params", "Keyword Args") \
                or not line.strip() or set(line.strip()) == {"-"}:
            continue
        indent = len(line) - len(line.lstrip())
        if name_indent is None or indent <= name_indent:
            numpy = _NUMPY.match(line)
            google = None if numpy else _GOOGLE.match(line)
            if numpy or google:
                name_indent = indent
                current = (numpy or google).group(1)  # type: ignore[union-attr]
                found[current] = google.group(2).strip() if google else ""
                continue
        if current is not None and indent > (name_indent or 0):
            found[current] = (found[current] + " " + line.strip()).strip()
    return found
