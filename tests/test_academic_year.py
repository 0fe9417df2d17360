"""services/academic_year.py: Y–(Y+1) from 1 June; age counted on 1 September of Y."""

from __future__ import annotations

from datetime import date

import pytest

from services.academic_year import (
    academic_year_label,
    academic_year_start,
    age_on_september_first,
    september_first,
)


@pytest.mark.parametrize(
    ("today", "start"),
    [
        (date(2026, 5, 31), 2025),  # the last day before the switch
        (date(2026, 6, 1), 2026),  # from 1 June on: the coming academic year
        (date(2026, 9, 10), 2026),
        (date(2026, 12, 31), 2026),
        (date(2027, 1, 1), 2026),
    ],
)
def test_the_year_switches_on_first_of_june(today: date, start: int) -> None:
    assert academic_year_start(today) == start
    assert september_first(today) == date(start, 9, 1)
    assert academic_year_label(today) == f"{start}-{start + 1}"


@pytest.mark.parametrize(
    ("birth", "today", "age"),
    [
        (date(2016, 3, 15), date(2026, 9, 10), 10),
        (date(2016, 9, 1), date(2026, 9, 10), 10),  # the birthday itself counts
        (date(2016, 9, 2), date(2026, 9, 10), 9),  # a day later: still 9 on 1 September
        (date(2016, 9, 2), date(2026, 5, 31), 8),  # before June: 1 September 2025
        (date(2020, 2, 29), date(2026, 7, 1), 6),  # leap-day birthdays
    ],
)
def test_age_on_first_of_september(birth: date, today: date, age: int) -> None:
    assert age_on_september_first(birth, today) == age
