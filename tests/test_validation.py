"""`services/validation.py`: IINs, phones, masking and ages.

The IIN tests compare the validator with a reference implementation written here from the
contract's wording of the rule (docs/voucher-api.yaml, "IIN"), so a slip in either shows up as
a disagreement on some generated IIN.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.validation import (
    IinError,
    InvalidIin,
    InvalidPhone,
    PhoneError,
    age_on,
    iin_check_digit,
    iin_error,
    is_ascii_digits,
    is_valid_iin,
    mask_tail,
    normalize_phone,
    parse_iin,
    phone_error,
)

# --- a reference implementation of the IIN rule, from its wording ------------------------------

CENTURY_START = {1: 1800, 2: 1800, 3: 1900, 4: 1900, 5: 2000, 6: 2000}
SECOND_PASS_WEIGHTS = (3, 4, 5, 6, 7, 8, 9, 10, 11, 1, 2)


def reference_check_digit(first11: str) -> int | None:
    """Σ dᵢ·i (i = 1..11) mod 11; when 10, Σ dᵢ·wᵢ mod 11; when 10 again, no valid IIN."""
    digits = [int(ch) for ch in first11]
    first = sum(d * i for i, d in enumerate(digits, start=1)) % 11
    if first != 10:
        return first
    second = sum(d * w for d, w in zip(digits, SECOND_PASS_WEIGHTS, strict=True)) % 11
    return None if second == 10 else second


def reference_reason(iin: str) -> IinError | None:
    """The reason for 12 ASCII digits; century before date, since the date needs the century."""
    assert re.fullmatch(r"[0-9]{12}", iin)
    century = CENTURY_START.get(int(iin[6]))
    if century is None:
        return IinError.CENTURY
    try:
        date(century + int(iin[:2]), int(iin[2:4]), int(iin[4:6]))
    except ValueError:
        return IinError.DATE
    if reference_check_digit(iin[:11]) != int(iin[11]):
        return IinError.CHECKSUM
    return None


def with_check_digit(first11: str) -> str:
    """A complete IIN, for building examples whose only fault is the one under test."""
    check = reference_check_digit(first11)
    assert check is not None, f"{first11} has no valid check digit; pick another serial"
    return first11 + str(check)


@st.composite
def iin_prefixes(draw: st.DrawFn) -> tuple[str, date, int]:
    """11 digits with a real birth date and a valid century digit, plus what they encode."""
    century_digit = draw(st.integers(1, 6))
    start = CENTURY_START[century_digit]
    born = draw(st.dates(min_value=date(start, 1, 1), max_value=date(start + 99, 12, 31)))
    serial = draw(st.text(alphabet="0123456789", min_size=4, max_size=4))
    # Formatted by hand: strftime("%y") is platform-dependent for years before 1900.
    prefix = f"{born.year % 100:02d}{born.month:02d}{born.day:02d}{century_digit}{serial}"
    return prefix, born, century_digit


@st.composite
def valid_iins(draw: st.DrawFn) -> str:
    prefix, _, _ = draw(iin_prefixes().filter(lambda p: iin_check_digit(p[0]) is not None))
    return prefix + str(iin_check_digit(prefix))


# --- IIN: known people -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("iin", "born", "gender"),
    [
        ("871008401427", date(1987, 10, 8), "female"),  # digit 7 = 4: 1900s, even
        ("760212350620", date(1976, 2, 12), "male"),  # digit 7 = 3: 1900s, odd
        ("800416300257", date(1980, 4, 16), "male"),
    ],
)
def test_known_valid_iins_decode(iin: str, born: date, gender: str) -> None:
    info = parse_iin(iin)
    assert (info.iin, info.birth_date, info.gender) == (iin, born, gender)
    assert iin_error(iin) is None
    assert is_valid_iin(iin)


@pytest.mark.parametrize(
    ("century_digit", "year", "gender"),
    [
        ("1", 1818, "male"),
        ("2", 1818, "female"),
        ("3", 1918, "male"),
        ("4", 1918, "female"),
        ("5", 2018, "male"),
        ("6", 2018, "female"),
    ],
)
def test_digit_seven_gives_century_and_sex(century_digit: str, year: int, gender: str) -> None:
    info = parse_iin(with_check_digit(f"180903{century_digit}0001"))
    assert info.birth_date == date(year, 9, 3)
    assert info.gender == gender


def test_an_iin_that_fails_both_checksum_passes_is_invalid() -> None:
    assert iin_check_digit("82121424009") is None
    assert iin_error("821214240092") is IinError.CHECKSUM
    # No 12th digit can rescue these 11: every completion is rejected on the checksum.
    assert {iin_error("82121424009" + d) for d in "0123456789"} == {IinError.CHECKSUM}


def test_the_second_pass_decides_when_the_first_gives_ten() -> None:
    # Found by search so that the second pass is exercised by a concrete, readable example.
    prefix = next(
        p
        for n in range(10_000)
        if (p := f"8710084{n:04d}")
        and sum(int(d) * i for i, d in enumerate(p, start=1)) % 11 == 10
        and reference_check_digit(p) is not None
    )
    check = reference_check_digit(prefix)
    assert check is not None
    assert iin_check_digit(prefix) == check
    assert is_valid_iin(f"{prefix}{check}")
    assert iin_error(f"{prefix}{(check + 1) % 10}") is IinError.CHECKSUM


def test_the_rule_cannot_see_a_change_of_the_eleventh_digit() -> None:
    # Weight 11 ≡ 0 (mod 11): when the first pass decides, digit 11 does not affect the check.
    # The validator must follow the rule, not "fix" it: all ten variants are valid IINs.
    assert all(is_valid_iin(f"8710084014{d}7") for d in "0123456789")


# --- IIN: each reason --------------------------------------------------------------------------


@pytest.mark.parametrize("iin", ["", "8", "87100840142", "8710084014270", "87100840142700"])
def test_wrong_length(iin: str) -> None:
    assert iin_error(iin) is IinError.LENGTH


@pytest.mark.parametrize(
    "iin",
    [
        "87100840142a",
        "８71008401427",  # one full-width digit: int() would accept it, the rule does not
        "８７１００８４０１４２７",
        "٨71008401427",  # Arabic-Indic eight
        "٨٧١٠٠٨٤٠١٤٢٧",
        "871008 01427",
        " 871008401427",  # 13 characters, but the stray space is the better message
        "+71008401427",
        "-87100840142",
    ],
)
def test_not_ascii_digits(iin: str) -> None:
    assert iin_error(iin) is IinError.NOT_DIGITS


@pytest.mark.parametrize(
    "first11",
    [
        "8702304" + "0142",  # 30 February
        "8713084" + "0142",  # month 13
        "8700084" + "0142",  # month 00
        "8710004" + "0142",  # day 00
        "8709314" + "0142",  # 31 September
        "8702294" + "0142",  # 29 February 1987: not a leap year
        "0002293" + "0001",  # 29 February 1900: the century digit makes it no leap year
    ],
)
def test_impossible_dates(first11: str) -> None:
    # A correct check digit, so the date is the only fault.
    assert iin_error(with_check_digit(first11)) is IinError.DATE


def test_29_february_2000_is_a_date() -> None:
    info = parse_iin(with_check_digit("0002295" + "0001"))
    assert info.birth_date == date(2000, 2, 29)


@pytest.mark.parametrize("digit", "0789")
def test_century_digit_outside_one_to_six(digit: str) -> None:
    assert iin_error(with_check_digit(f"871008{digit}0142")) is IinError.CENTURY


@pytest.mark.parametrize("iin", ["871008401428", "760212350621", "800416300250"])
def test_wrong_check_digit(iin: str) -> None:
    assert iin_error(iin) is IinError.CHECKSUM


def test_invalid_iin_carries_its_reason() -> None:
    with pytest.raises(InvalidIin) as caught:
        parse_iin("871008401428")
    assert caught.value.reason is IinError.CHECKSUM
    assert str(caught.value) == "checksum"
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0123456789", True), ("", False), ("１２３", False), ("١٢٣", False), ("12 3", False)],
)
def test_is_ascii_digits(text: str, expected: bool) -> None:
    assert is_ascii_digits(text) is expected


# --- IIN: properties ---------------------------------------------------------------------------


@given(iin_prefixes())
def test_appending_the_check_digit_gives_a_valid_iin(prefix_info: tuple[str, date, int]) -> None:
    prefix, born, century_digit = prefix_info
    check = iin_check_digit(prefix)
    assert check == reference_check_digit(prefix)
    if check is None:
        assert {iin_error(prefix + d) for d in "0123456789"} == {IinError.CHECKSUM}
        return
    info = parse_iin(prefix + str(check))
    assert info.birth_date == born
    assert info.gender == ("male" if century_digit % 2 else "female")


@given(valid_iins(), st.integers(0, 11), st.integers(1, 9))
def test_a_single_digit_change_is_judged_by_the_rule(iin: str, position: int, shift: int) -> None:
    changed_digit = str((int(iin[position]) + shift) % 10)
    changed = iin[:position] + changed_digit + iin[position + 1 :]
    assert changed != iin
    # Either the change is caught (with the reference's reason), or the rule itself accepts the
    # result as another IIN with a correct check digit.
    assert iin_error(changed) == reference_reason(changed)


@given(st.text(max_size=14))
def test_anything_valid_is_twelve_ascii_digits_following_the_rule(text: str) -> None:
    if is_valid_iin(text):
        assert re.fullmatch(r"[0-9]{12}", text)
        assert reference_reason(text) is None


# --- phones ------------------------------------------------------------------------------------

E164_KZ_MOBILE = re.compile(r"\+77[0-9]{9}")
SEPARATORS = (" ", "-", ".", "(", ")", "\u00a0")


@pytest.mark.parametrize(
    "raw",
    [
        "+7 701 234 56 78",
        "8 (701) 234-56-78",
        "87012345678",
        "77012345678",
        "7012345678",
        "+77012345678",
        "+7-701-234-56-78",
        "8.701.234.56.78",
        "+7 (701) 234-56-78",
        "(701) 234 56 78",
        "8\u00a0701\u00a0234\u00a056\u00a078",  # a no-break space, as pasted from a web page
        "  +7 701 234 56 78  ",
    ],
)
def test_accepted_phone_formats(raw: str) -> None:
    assert normalize_phone(raw) == "+77012345678"
    assert phone_error(raw) is None


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("+7 916 123 45 67", PhoneError.NOT_KAZAKHSTAN),  # Russian mobile
        ("89161234567", PhoneError.NOT_KAZAKHSTAN),
        ("8 (495) 123-45-67", PhoneError.NOT_KAZAKHSTAN),  # Moscow
        ("+998 90 123 45 67", PhoneError.NOT_KAZAKHSTAN),  # Uzbekistan
        ("+1 212 555 0100", PhoneError.NOT_KAZAKHSTAN),
        ("+44 7700 900123", PhoneError.NOT_KAZAKHSTAN),
        ("+7 701 234 56", PhoneError.TOO_SHORT),
        ("701 234 56", PhoneError.TOO_SHORT),
        ("+7", PhoneError.TOO_SHORT),
        ("8 701 234 567", PhoneError.TOO_SHORT),
        ("97012345678", PhoneError.NOT_KAZAKHSTAN),
        ("+", PhoneError.EMPTY),
        ("+7 701 234 56 789", PhoneError.TOO_LONG),
        ("8 701 234 56 789", PhoneError.TOO_LONG),
        ("+7 701 ABC 56 78", PhoneError.CHARACTERS),
        ("tel:+77012345678", PhoneError.CHARACTERS),
        ("+７７０１２３４５６７８", PhoneError.CHARACTERS),  # full-width digits
        ("８７０１２３４５６７８", PhoneError.CHARACTERS),
        ("+٧٧٠١٢٣٤٥٦٧٨", PhoneError.CHARACTERS),  # Arabic-Indic digits
        ("+7 701 234 56 78 доб. 1", PhoneError.CHARACTERS),
        ("", PhoneError.EMPTY),
        ("   ", PhoneError.EMPTY),
        (" - ( ) ", PhoneError.EMPTY),
    ],
)
def test_rejected_phones_name_their_reason(raw: str, reason: PhoneError) -> None:
    assert phone_error(raw) is reason
    with pytest.raises(InvalidPhone) as caught:
        normalize_phone(raw)
    assert caught.value.reason is reason


@st.composite
def formatted_phones(draw: st.DrawFn) -> tuple[str, str]:
    """(what a parent might type, the E.164 it means) for any number +77XXXXXXXXX."""
    nine = draw(st.text(alphabet="0123456789", min_size=9, max_size=9))
    prefix = draw(st.sampled_from(["+7", "8", "7", ""]))
    chars = list(prefix + "7" + nine)
    gaps = st.text(alphabet=SEPARATORS, max_size=2)
    typed = draw(gaps) + "".join(ch + draw(gaps) for ch in chars)
    return typed, "+77" + nine


@given(formatted_phones())
def test_any_formatting_normalises_back(case: tuple[str, str]) -> None:
    typed, e164 = case
    assert normalize_phone(typed) == e164


phone_like = st.one_of(
    formatted_phones().map(lambda case: case[0]),
    st.text(alphabet="0123456789+ -().\u00a0a８", max_size=18),
    st.text(max_size=18),
)


@given(phone_like)
def test_normalisation_is_idempotent_and_always_e164(raw: str) -> None:
    try:
        normalized = normalize_phone(raw)
    except InvalidPhone as exc:
        assert phone_error(raw) is exc.reason
        return
    assert E164_KZ_MOBILE.fullmatch(normalized)
    assert normalize_phone(normalized) == normalized


# --- masking -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "kwargs", "expected"),
    [
        ("871008401427", {}, "••••••••1427"),
        ("+77012345678", {}, "••••••••5678"),
        ("12345", {}, "•2345"),
        ("1234", {}, "••••"),  # nothing is shown when everything would be
        ("123", {}, "•••"),
        ("", {}, ""),
        ("871008401427", {"keep": 2, "mask": "*"}, "**********27"),
        ("871008401427", {"keep": 0}, "••••••••••••"),
    ],
)
def test_mask_tail(value: str, kwargs: dict[str, Any], expected: str) -> None:
    assert mask_tail(value, **kwargs) == expected


@given(st.text(max_size=30), st.integers(0, 8))
def test_mask_tail_keeps_length_and_shows_at_most_the_tail(value: str, keep: int) -> None:
    masked = mask_tail(value, keep=keep)
    hidden = len(value) - keep if len(value) > keep else len(value)
    assert masked[:hidden] == "•" * hidden
    assert masked[hidden:] == value[hidden:]
    assert len(masked) == len(value)


# --- ages --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("born", "on", "age"),
    [
        (date(2018, 9, 1), date(2026, 9, 1), 8),  # birthday on the day: counted
        (date(2018, 9, 1), date(2026, 8, 31), 7),
        (date(2018, 9, 2), date(2026, 9, 1), 7),  # one day short on 1 September
        (date(2020, 12, 31), date(2026, 9, 1), 5),
        (date(2026, 9, 1), date(2026, 9, 1), 0),
        (date(2016, 2, 29), date(2026, 2, 28), 9),  # a 29 February birthday in a common year
        (date(2016, 2, 29), date(2026, 3, 1), 10),  # comes on 1 March
        (date(2016, 2, 29), date(2028, 2, 28), 11),
        (date(2016, 2, 29), date(2028, 2, 29), 12),  # and on the day in a leap year
    ],
)
def test_age_on(born: date, on: date, age: int) -> None:
    assert age_on(born, on) == age


@given(st.dates(), st.dates())
def test_age_on_matches_counting_anniversaries(born: date, on: date) -> None:
    # Reference: the latest anniversary not after `on`; a 29 February one falls on 1 March.
    if on < born:
        born, on = on, born
    try:
        anniversary = born.replace(year=on.year)
    except ValueError:
        anniversary = date(on.year, 3, 1)
    assert age_on(born, on) == on.year - born.year - (on < anniversary)
