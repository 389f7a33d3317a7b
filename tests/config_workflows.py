"""Targets for tests/test_config.py, importable by workers."""

from __future__ import annotations

import fntree


@fntree.target
def undeclared() -> tuple[float | None, int | None]:
    """The time and memory a target that declares neither is given."""
    return (fntree.context().time, fntree.context().memory)
