"""Invisible characters and other scripts' digits (services/hostile_text.py)."""

from __future__ import annotations

import pytest

from services.hostile_text import for_display, has_foreign_digits, strip_invisible


@pytest.mark.parametrize(
    ("typed", "kept"),
    [
        ("8710\u200b0840\u200c1427", "871008401427"),  # zero-width space and non-joiner
        ("\u202e871008401427\u202c", "871008401427"),  # RTL override … pop
        ("\ufeff+7 701 234 56 78\u200e", "+7 701 234 56 78"),  # BOM, LRM
        ("\u2067٠٤٢٧\u2069", "٠٤٢٧"),  # isolates go, the digits stay (and are refused later)
        ("plain ascii", "plain ascii"),
    ],
)
def test_invisible_characters_are_dropped(typed: str, kept: str) -> None:
    assert strip_invisible(typed) == kept


@pytest.mark.parametrize(
    ("typed", "foreign"),
    [
        ("８７１００８４０１４２７", True),  # full-width
        ("٠٤٢٧", True),  # Arabic-Indic
        ("۰۴۲۷", True),  # Persian
        ("04२7", True),  # one Devanagari digit among ASCII ones
        ("0427", False),
        ("код ²", False),  # a superscript is not a decimal digit
        ("", False),
    ],
)
def test_other_scripts_digits_are_recognised(typed: str, foreign: bool) -> None:
    assert has_foreign_digits(typed) is foreign


def test_text_quoted_back_has_no_controls_and_a_bounded_length() -> None:
    hostile = "\u202eabc\x00\x1b[31m \n\t<b>жоқ</b>" + "я" * 500
    shown = for_display(hostile, 100)
    assert len(shown) == 100
    assert shown.startswith("abc[31m <b>жоқ</b>")  # HTML stays text: the caller escapes it
    assert not any(ch in shown for ch in "\u202e\x00\x1b\n\t")
