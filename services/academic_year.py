"""The contract's academic-year rule, as pure functions.

The academic year is Y–(Y+1), where Y is the current year from 1 June on and the previous year
before; a group's age range is compared with the child's age in whole years on 1 September of Y.
"""

from __future__ import annotations

from datetime import date

from services.validation import age_on


def academic_year_start(today: date) -> int:
    """Y of the academic year Y–(Y+1) that `today` belongs to for queueing."""
    return today.year if (today.month, today.day) >= (6, 1) else today.year - 1


def september_first(today: date) -> date:
    """1 September of the academic year: the day the child's age is counted on."""
    return date(academic_year_start(today), 9, 1)


def age_on_september_first(birth_date: date, today: date) -> int:
    """The child's age in whole years on 1 September of the academic year."""
    return age_on(birth_date, september_first(today))


def academic_year_label(today: date) -> str:
    """`2026-2027`, the form the voucher service uses."""
    start = academic_year_start(today)
    return f"{start}-{start + 1}"
