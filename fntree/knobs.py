"""Tuning knobs read from the environment (`FNTREE_*`), which tests and benchmarks set.

A knob's value that is not a number in its range is warned of, naming the variable
and the value used instead (its default), so that a run never ends in a traceback
over a knob; an empty or unset variable is the default, silently.
"""

from __future__ import annotations

import logging
import math
import os

log = logging.getLogger("fntree")


def env_number(name: str, default: float, *, whole: bool = False, zero: bool = False) -> float:
    """`$name` as a number above 0 (or at least 0 with `zero`; a whole one with `whole`),
    else `default`, with a warning when the variable holds something else."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text) if whole else float(text)
    except ValueError:
        value = math.nan
    if math.isfinite(value) and (value > 0 or (zero and value == 0)):
        return value
    kind = "whole number" if whole else "number"
    bound = "at least 0" if zero else "above 0"
    log.warning("%s=%r is not a %s %s; using %g instead (unset it, or give one such as %g)",
                name, text, kind, bound, default, default)
    return default
