"""The environment's tuning knobs: a bad value is named in a warning, never a traceback."""

from __future__ import annotations

import logging

import pytest

from fntree.knobs import env_number


@pytest.mark.parametrize("text", ["abc", "-3", "0", "nan", "inf", "1.5"])
def test_a_bad_whole_number_is_warned_of_and_the_default_used(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, text: str) -> None:
    """A value that is not a whole number above 0 gives the default and a warning naming it."""
    monkeypatch.setenv("FNTREE_TEST_KNOB", text)
    with caplog.at_level(logging.WARNING, logger="fntree"):
        assert env_number("FNTREE_TEST_KNOB", 7, whole=True) == 7
    assert "FNTREE_TEST_KNOB" in caplog.text and repr(text) in caplog.text


def test_good_values_empty_and_zero(monkeypatch: pytest.MonkeyPatch,
                                    caplog: pytest.LogCaptureFixture) -> None:
    """A number in range is taken; unset or empty is the default, silently; 0 only if allowed."""
    with caplog.at_level(logging.WARNING, logger="fntree"):
        monkeypatch.setenv("FNTREE_TEST_KNOB", " 2.5 ")
        assert env_number("FNTREE_TEST_KNOB", 1.0) == 2.5
        monkeypatch.setenv("FNTREE_TEST_KNOB", "")
        assert env_number("FNTREE_TEST_KNOB", 1.0) == 1.0
        monkeypatch.delenv("FNTREE_TEST_KNOB")
        assert env_number("FNTREE_TEST_KNOB", 1.0) == 1.0
        monkeypatch.setenv("FNTREE_TEST_KNOB", "0")
        assert env_number("FNTREE_TEST_KNOB", 1.0, zero=True) == 0
    assert caplog.text == ""
