"""Validation of what a parent types: IIN (Kazakhstan individual identification number), phone.

Pure functions, no I/O: the sandbox and the bot both use them, so the bot can tell the parent
exactly what is wrong before any call to the voucher service.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Literal

ASCII_DIGITS = frozenset("0123456789")
_WEIGHTS_1 = tuple(range(1, 12))
_WEIGHTS_2 = (3, 4, 5, 6, 7, 8, 9, 10, 11, 1, 2)
_CENTURY = {1: 1800, 2: 1800, 3: 1900, 4: 1900, 5: 2000, 6: 2000}


class IinError(StrEnum):
    """Why an IIN is rejected; each reason gets its own message in the bot."""

    LENGTH = "length"
    NOT_DIGITS = "not_digits"
    DATE = "date"
    CENTURY = "century"
    CHECKSUM = "checksum"


class InvalidIin(ValueError):
    def __init__(self, reason: IinError) -> None:
        super().__init__(reason.value)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class IinInfo:
    iin: str
    birth_date: date
    gender: Literal["male", "female"]


def is_ascii_digits(text: str) -> bool:
    """True for a non-empty string of 0-9 only; full-width and other Unicode digits are not."""
    return bool(text) and all(ch in ASCII_DIGITS for ch in text)


def iin_check_digit(first11: str) -> int | None:
    """The 12th digit for these 11 digits, or None when both weight passes give 10."""
    digits = [ord(ch) - 48 for ch in first11]
    check = sum(d * w for d, w in zip(digits, _WEIGHTS_1, strict=True)) % 11
    if check == 10:
        check = sum(d * w for d, w in zip(digits, _WEIGHTS_2, strict=True)) % 11
    return None if check == 10 else check


def parse_iin(iin: str) -> IinInfo:
    """Validate an IIN and decode birth date and sex; raise InvalidIin with the first reason."""
    if not all(ch in ASCII_DIGITS for ch in iin) or not iin:
        raise InvalidIin(IinError.NOT_DIGITS if iin else IinError.LENGTH)
    if len(iin) != 12:
        raise InvalidIin(IinError.LENGTH)
    century_digit = int(iin[6])
    if century_digit not in _CENTURY:
        raise InvalidIin(IinError.CENTURY)
    try:
        born = date(_CENTURY[century_digit] + int(iin[0:2]), int(iin[2:4]), int(iin[4:6]))
    except ValueError:
        raise InvalidIin(IinError.DATE) from None
    if iin_check_digit(iin[:11]) != int(iin[11]):
        raise InvalidIin(IinError.CHECKSUM)
    return IinInfo(iin=iin, birth_date=born, gender="male" if century_digit % 2 else "female")


def iin_error(iin: str) -> IinError | None:
    """The reason this IIN is invalid, or None when it is valid."""
    try:
        parse_iin(iin)
    except InvalidIin as exc:
        return exc.reason
    return None


def is_valid_iin(iin: str) -> bool:
    return iin_error(iin) is None


def age_on(birth_date: date, day: date) -> int:
    """Age in whole years on `day`."""
    years = day.year - birth_date.year
    return years - ((day.month, day.day) < (birth_date.month, birth_date.day))


# --- phones -------------------------------------------------------------------------------

E164_KZ = re.compile(r"^\+7\d{10}$")
_SEPARATORS = str.maketrans("", "", " \t-()\u00a0.")


class PhoneError(StrEnum):
    EMPTY = "empty"
    CHARACTERS = "characters"  # letters or other symbols
    TOO_SHORT = "too_short"
    TOO_LONG = "too_long"
    NOT_KAZAKHSTAN = "not_kazakhstan"  # e.g. a Russian +7 9xx number, or another country


class InvalidPhone(ValueError):
    def __init__(self, reason: PhoneError) -> None:
        super().__init__(reason.value)
        self.reason = reason


def normalize_phone(raw: str) -> str:
    """Return a Kazakhstan mobile number as E.164 (`+77XXXXXXXXX`) or raise InvalidPhone.

    Accepts `+7 7xx …`, `8 7xx …`, `7 7xx …` and a bare `7xx …`, with spaces, dashes,
    dots and brackets anywhere.
    """
    compact = raw.strip().translate(_SEPARATORS)
    if not compact:
        raise InvalidPhone(PhoneError.EMPTY)
    plus = compact.startswith("+")
    digits = compact[1:] if plus else compact
    if not digits:
        raise InvalidPhone(PhoneError.EMPTY)
    if not is_ascii_digits(digits):
        raise InvalidPhone(PhoneError.CHARACTERS)
    if plus:
        if not digits.startswith("7"):
            raise InvalidPhone(PhoneError.NOT_KAZAKHSTAN)
        national = digits[1:]
    elif digits[0] == "8":
        national = digits[1:]  # the trunk prefix: no Kazakhstan number starts with 8
    elif digits[0] == "7" and len(digits) > 10:
        national = digits[1:]
    elif digits[0] == "7":
        national = digits
    else:
        raise InvalidPhone(PhoneError.TOO_SHORT if len(digits) < 10 else PhoneError.NOT_KAZAKHSTAN)
    if len(national) < 10:
        raise InvalidPhone(PhoneError.TOO_SHORT)
    if len(national) > 10:
        raise InvalidPhone(PhoneError.TOO_LONG)
    if national[0] != "7":
        raise InvalidPhone(PhoneError.NOT_KAZAKHSTAN)
    return "+7" + national


def phone_error(raw: str) -> PhoneError | None:
    try:
        normalize_phone(raw)
    except InvalidPhone as exc:
        return exc.reason
    return None


# --- masking for logs and for what the parent sees ---------------------------------------


def mask_tail(value: str, keep: int = 4, mask: str = "•") -> str:
    """`871008401427` → `••••••••1427`: the shape a portal shows, safe for a log line."""
    if len(value) <= keep:
        return mask * len(value)
    return mask * (len(value) - keep) + value[len(value) - keep :]
