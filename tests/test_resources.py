"""Tests of fntree.resources: parsing time, memory, cpu and retries into `Resources`."""

from __future__ import annotations

import attrs
import pytest

import fntree
from fntree.resources import (
    MEMORY_FORMS,
    TIME_FORMS,
    Resources,
    format_memory,
    format_memory_option,
    parse_cpu,
    parse_memory,
    parse_retries,
    parse_time,
)

NAN = float("nan")
INF = float("inf")


# -- time ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("90s", 90.0),
        ("10m", 600.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("1.5h", 5400.0),
        ("0.5m", 30.0),
        ("2H", 7200.0),
        ("  3 m ", 180.0),
        ("1e2s", 100.0),
        ("45", 45.0),
        (30, 30.0),
        (2.5, 2.5),
    ],
)
def test_parse_time_accepts_every_documented_form(value, seconds):
    """parse_time turns seconds and "90s"/"10m"/"2h"/"1d" strings into seconds as a float."""
    result = parse_time(value)
    assert result == seconds
    assert isinstance(result, float)


def test_parse_time_of_none_means_not_said():
    """parse_time(None) is None: the batch system's default applies."""
    assert parse_time(None) is None


@pytest.mark.parametrize(
    "value", [0, 0.0, -1, -0.5, "0s", "0", "-5s", True, False, NAN, INF, "abc", "", "5x",
              "10 minutes", "1h30m", [60], b"60s"],
)
def test_parse_time_rejects_bad_values(value):
    """A zero, negative, boolean, non-finite, unit-less garbage or unknown-unit time raises."""
    with pytest.raises(fntree.ResourceError) as info:
        parse_time(value)
    message = str(info.value)
    assert message.startswith(f"time={value!r}")
    assert TIME_FORMS in message


def test_parse_time_names_the_unknown_unit():
    """An unknown unit is named in the message, as written."""
    with pytest.raises(fntree.ResourceError, match=r"unknown unit 'w'"):
        parse_time("3w")


def test_parse_time_names_the_parameter_given_by_what():
    """The `what=` name (such as a command-line option) is the one the message names."""
    with pytest.raises(fntree.ResourceError, match=r"^--max-time='soon'"):
        parse_time("soon", what="--max-time")


# -- memory --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "amount"),
    [
        ("512M", 512 * 1024**2),
        ("2G", 2 * 1024**3),
        ("1.5GiB", 1536 * 1024**2),
        ("1 kib", 1024),
        ("1KiB", 1024),
        ("3MiB", 3 * 1024**2),
        ("1TiB", 1024**4),
        ("2T", 2 * 1024**4),
        ("1kb", 1000),
        ("1k", 1024),
        ("100M", 100 * 1024**2),
        ("4mb", 4 * 1000**2),
        ("7b", 7),
        ("100", 100),
        ("1e3", 1000),
        (" 2 GB ", 2 * 1000**3),
        (4096, 4096),
        (2048.0, 2048),
    ],
)
def test_parse_memory_accepts_every_documented_form(value, amount):
    """parse_memory turns bytes and "512M"/"2G"/"1.5GiB"/"1 kib" strings into whole bytes."""
    result = parse_memory(value)
    assert result == amount
    assert isinstance(result, int)


def test_parse_memory_of_none_means_not_said():
    """parse_memory(None) is None: the batch system's default applies."""
    assert parse_memory(None) is None


@pytest.mark.parametrize(
    "value", [0, 0.0, -1, -1024, "0", "0G", "-2G", True, False, NAN, INF, "abc", "", "5x",
              "2 gigabytes", "G", [1], b"1G"],
)
def test_parse_memory_rejects_bad_values(value):
    """A zero, negative, boolean, non-finite, garbage or unknown-unit memory raises."""
    with pytest.raises(fntree.ResourceError) as info:
        parse_memory(value)
    message = str(info.value)
    assert message.startswith(f"memory={value!r}")
    assert MEMORY_FORMS in message


def test_parse_memory_rejects_a_fraction_of_a_byte():
    """A float that is not a whole number of bytes raises, saying so."""
    with pytest.raises(fntree.ResourceError, match="fraction of a byte"):
        parse_memory(1.5)


def test_parse_memory_names_the_unknown_unit():
    """An unknown unit is named in the message, as written."""
    with pytest.raises(fntree.ResourceError, match=r"unknown unit 'XB'"):
        parse_memory("3XB")


@pytest.mark.parametrize("value", ["0.5", "0.4b", "0.0001k"])
def test_parse_memory_rejects_a_string_that_amounts_to_zero_bytes(value):
    """A memory string that amounts to less than one byte raises, as zero does."""
    with pytest.raises(fntree.ResourceError):
        parse_memory(value)


def test_parse_memory_of_a_decimal_string_is_the_nearest_byte():
    """"8.2GB" is 8.2 * 10**9 bytes exactly, not one byte less from float truncation."""
    assert parse_memory("8.2GB") == 8_200_000_000
    assert parse_memory("0.1G") == round(0.1 * 1024**3)


def test_memory_units_read_as_slurm_and_grid_engine_read_them():
    """K/M/G/T are powers of 1024, as in `sbatch --mem=100M`; KB/MB/GB/TB powers of 1000."""
    assert parse_memory("100M") == 100 * 2**20 == parse_memory("100MiB")
    assert parse_memory("100MB") == 100 * 10**6
    assert format_memory(parse_memory("100M")) == "100.0 MiB"
    for amount in ("512M", "3G", "1536M", "64K", "2T"):
        assert format_memory_option(parse_memory(amount)) == f'"{amount}"'
    assert format_memory_option(parse_memory("1G") + 1) == '"1025M"'  # rounded up, never down


# -- cpu -----------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "cores"), [(1, 1.0), (4, 4.0), (0.5, 0.5), (2.0, 2.0)])
def test_parse_cpu_accepts_positive_numbers(value, cores):
    """parse_cpu turns a positive int or float into cores as a float."""
    result = parse_cpu(value)
    assert result == cores
    assert isinstance(result, float)


@pytest.mark.parametrize("value", [0, -1, -0.5, True, False, NAN, INF, "2", None, "abc"])
def test_parse_cpu_rejects_bad_values(value):
    """A zero, negative, boolean, non-finite or non-number cpu raises, naming the forms."""
    with pytest.raises(fntree.ResourceError) as info:
        parse_cpu(value)
    message = str(info.value)
    assert message.startswith(f"cpu={value!r}")
    assert "positive number of cores" in message
    assert "1, 4 or 0.5" in message


# -- retries -------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, 1, 5])
def test_parse_retries_accepts_whole_numbers(value):
    """parse_retries keeps a whole number of retries, zero included."""
    assert parse_retries(value) == value


def test_parse_retries_of_none_means_the_runs_default():
    """parse_retries(None) is None: the run's retry_count applies."""
    assert parse_retries(None) is None


@pytest.mark.parametrize("value", [-1, 1.5, 2.0, True, "3", NAN])
def test_parse_retries_rejects_bad_values(value):
    """A negative, fractional, float, boolean or string retry count raises."""
    with pytest.raises(fntree.ResourceError) as info:
        parse_retries(value)
    message = str(info.value)
    assert message.startswith(f"retries={value!r}")
    assert "whole number of retries, 0 or more" in message


# -- errors --------------------------------------------------------------------------


def test_resource_error_is_a_value_error_and_a_fntree_error():
    """ResourceError can be caught as ValueError and as FntreeError."""
    assert issubclass(fntree.ResourceError, ValueError)
    assert issubclass(fntree.ResourceError, fntree.FntreeError)
    with pytest.raises(ValueError):
        parse_time("never")


# -- Resources -----------------------------------------------------------------------


def test_resources_parse_defaults_to_nothing_said_and_one_core():
    """Resources.parse() says nothing of time, memory or retries and asks for one core."""
    assert Resources.parse() == Resources(time=None, memory=None, cpu=1.0, retries=None)


def test_resources_parse_parses_every_field():
    """Resources.parse converts each field with its parser."""
    resources = Resources.parse("2h", "1.5GiB", 2, 3)
    assert resources == Resources(time=7200.0, memory=1536 * 1024**2, cpu=2.0, retries=3)


@pytest.mark.parametrize(
    ("field", "value"), [("time", "-1s"), ("memory", "lots"), ("cpu", 0), ("retries", -1)],
)
def test_resources_parse_rejects_a_bad_field(field, value):
    """Resources.parse raises ResourceError naming the bad field."""
    with pytest.raises(fntree.ResourceError, match=f"^{field}="):
        Resources.parse(**{field: value})


def test_resources_are_frozen():
    """A Resources cannot be changed in place."""
    resources = Resources.parse("1h")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        resources.time = 5.0  # type: ignore[misc]


def test_resources_are_hashable_and_compare_by_value():
    """Two Resources built from equal requests are equal and hash alike."""
    assert Resources.parse("60s", "1G") == Resources.parse(60, 1024**3)
    assert hash(Resources.parse("60s", "1G")) == hash(Resources.parse(60, 1024**3))


def test_resources_evolve_parses_changes_and_keeps_the_original():
    """evolve returns a copy with parsed changes; the original is unchanged."""
    original = Resources.parse("1h", "1G")
    changed = original.evolve(memory="2G", cpu=4, retries=0)
    assert changed == Resources(time=3600.0, memory=2 * 1024**3, cpu=4.0, retries=0)
    assert original == Resources(time=3600.0, memory=1024**3, cpu=1.0, retries=None)


def test_resources_evolve_can_unset_time_and_memory():
    """evolve(time=None, memory=None) returns to the batch system's defaults."""
    changed = Resources.parse("1h", "1G").evolve(time=None, memory=None)
    assert changed.time is None
    assert changed.memory is None


def test_resources_evolve_rejects_a_bad_value():
    """evolve raises ResourceError for a bad value, like parse."""
    with pytest.raises(fntree.ResourceError, match=r"^time='-3m'"):
        Resources.parse().evolve(time="-3m")


def test_resources_evolve_rejects_an_unknown_name():
    """evolve raises ResourceError naming the unknown resource and listing the real ones."""
    with pytest.raises(fntree.ResourceError) as info:
        Resources.parse().evolve(gpu=1)
    message = str(info.value)
    assert "'gpu'" in message
    assert "time, memory, cpu, retries" in message


# -- format_memory -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        (None, "unspecified"),
        (512, "512 B"),
        (1536, "1.5 KiB"),
        (1536 * 1024**2, "1.5 GiB"),
        (3 * 1024**4, "3.0 TiB"),
        (5000 * 1024**4, "5000.0 TiB"),
    ],
)
def test_format_memory_is_for_people(amount, text):
    """format_memory prints bytes in the largest binary unit below 1024, TiB at most."""
    assert format_memory(amount) == text
