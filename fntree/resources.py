"""What a target asks of the batch system: `Resources`, one validated frozen record.

`time` is the expected run time in seconds, `memory` bytes, `cpu` cores and
`retries` how many times a failed attempt is tried again, and `slurm_args` more
`sbatch` options for this target's jobs on the slurm batch system. `None` means
"not said": the batch system's default, or for `retries` the run's `retry_count`.

Memory units follow the clusters' convention: K, M, G and T are binary (powers of
1024), as Slurm reads `--mem=100M` and Grid Engine `h_vmem=100M`; so are KiB, MiB,
GiB and TiB. KB, MB, GB and TB are decimal (powers of 1000), as SI has them. A bare
number is bytes. `format_memory` prints binary amounts ("1.5 GiB") and
`format_memory_option` an amount as a `memory=` value ("1536M").
"""

from __future__ import annotations

import math
import re
import shlex
from typing import Any

import attrs

from fntree.errors import ResourceError

_TIME_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_MEMORY_UNITS = {
    "": 1, "b": 1,
    "k": 1024, "kib": 1024, "kb": 1000,
    "m": 1024**2, "mib": 1024**2, "mb": 1000**2,
    "g": 1024**3, "gib": 1024**3, "gb": 1000**3,
    "t": 1024**4, "tib": 1024**4, "tb": 1000**4,
}
_NUMBER_UNIT = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([a-zA-Z]*)\s*$")
TIME_FORMS = 'seconds (int or float) or a string such as "90s", "10m", "2h", "1d"'
MEMORY_FORMS = ('bytes (int) or a string such as "512M", "2G", "1.5GiB" (K, M, G, T are '
                'powers of 1024, as on Slurm; KB, MB, GB, TB powers of 1000)')


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def parse_time(value: Any, *, what: str = "time") -> float | None:
    """Seconds from `value`, or None; a bad value raises ResourceError."""
    if value is None:
        return None
    if _is_number(value):
        seconds = float(value)
    elif isinstance(value, str) and (m := _NUMBER_UNIT.match(value)):
        unit = m.group(2).lower() or "s"
        if unit not in _TIME_UNITS:
            raise ResourceError(f"{what}={value!r} has an unknown unit {m.group(2)!r}; "
                                f"give {TIME_FORMS}")
        seconds = float(m.group(1)) * _TIME_UNITS[unit]
    else:
        raise ResourceError(f"{what}={value!r} is not a duration; give {TIME_FORMS}")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ResourceError(f"{what}={value!r} must be a positive duration; give {TIME_FORMS}")
    return seconds


def parse_memory(value: Any, *, what: str = "memory") -> int | None:
    """Bytes from `value`, or None; a bad value raises ResourceError."""
    if value is None:
        return None
    if _is_number(value):
        if isinstance(value, float) and math.isfinite(value) and not value.is_integer():
            raise ResourceError(f"{what}={value!r} is a fraction of a byte; give {MEMORY_FORMS}")
        amount = float(value)
    elif isinstance(value, str) and (m := _NUMBER_UNIT.match(value)):
        unit = m.group(2).lower()
        if unit not in _MEMORY_UNITS:
            raise ResourceError(f"{what}={value!r} has an unknown unit {m.group(2)!r}; "
                                f"give {MEMORY_FORMS}")
        amount = float(m.group(1)) * _MEMORY_UNITS[unit]
    else:
        raise ResourceError(f"{what}={value!r} is not an amount of memory; give {MEMORY_FORMS}")
    if not math.isfinite(amount) or round(amount) < 1:
        raise ResourceError(f"{what}={value!r} must be a positive amount (at least one "
                            f"byte); give {MEMORY_FORMS}")
    return round(amount)


def parse_cpu(value: Any, *, what: str = "cpu") -> float:
    """Cores from `value`; a bad value raises ResourceError."""
    if not _is_number(value) or not math.isfinite(value) or value <= 0:
        raise ResourceError(f"{what}={value!r} must be a positive number of cores, "
                            "such as 1, 4 or 0.5")
    return float(value)


def parse_retries(value: Any, *, what: str = "retries") -> int | None:
    """A retry count from `value`, or None; a bad value raises ResourceError."""
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ResourceError(f"{what}={value!r} must be a whole number of retries, 0 or more")
    return value


def parse_slurm_args(value: Any, *, what: str = "slurm_args") -> str | None:
    """Extra sbatch options as one string, or None; anything else raises ResourceError."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        value = shlex.join(value)
    if not isinstance(value, str):
        raise ResourceError(f"{what}={value!r} must be a string of sbatch options, such as "
                            '"--qos=long --gres=gpu:1", or a list of them')
    try:
        shlex.split(value)
    except ValueError as exc:
        raise ResourceError(f"{what}={value!r} cannot be split into options ({exc}); check "
                            "its quotes") from None
    return value or None


@attrs.frozen
class Resources:
    """A validated request: build it with `Resources.parse`, change it with `evolve`."""

    time: float | None = None
    memory: int | None = None
    cpu: float = 1.0
    retries: int | None = None
    slurm_args: str | None = None

    @classmethod
    def parse(cls, time: Any = None, memory: Any = None, cpu: Any = 1,
              retries: Any = None, slurm_args: Any = None) -> Resources:
        return cls(parse_time(time), parse_memory(memory), parse_cpu(cpu),
                   parse_retries(retries), parse_slurm_args(slurm_args))

    def evolve(self, **changes: Any) -> Resources:
        """A copy with `changes` parsed and applied; unknown names raise ResourceError."""
        parsers: dict[str, Any] = {"time": parse_time, "memory": parse_memory,
                                   "cpu": parse_cpu, "retries": parse_retries,
                                   "slurm_args": parse_slurm_args}
        unknown = sorted(set(changes) - set(parsers))
        if unknown:
            raise ResourceError(f"unknown resource {unknown[0]!r}; "
                                f"the resources are {', '.join(parsers)}")
        parsed: dict[str, Any] = {k: parsers[k](v) for k, v in changes.items()}
        return attrs.evolve(self, **parsed)


def format_memory(amount: int | None) -> str:
    """`amount` bytes for people: "1.5 GiB"."""
    if amount is None:
        return "unspecified"
    value = float(amount)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def format_memory_option(amount: int) -> str:
    """`amount` bytes as a `memory=` value in whole binary units: "512M", "3G", "1536M"."""
    for unit, size in (("T", 1024**4), ("G", 1024**3), ("M", 1024**2), ("K", 1024)):
        if amount >= size and amount % size == 0:
            return f'"{amount // size}{unit}"'
    if amount >= 1024**2:
        return f'"{-(-amount // 1024**2)}M"'
    return f'"{-(-amount // 1024)}K"'
