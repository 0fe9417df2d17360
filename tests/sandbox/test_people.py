"""Made-up person data: deterministic, right for the sex, a certificate only for minors."""

from __future__ import annotations

import re
from datetime import date

from services.voucher.sandbox.people import make_person
from tests.sandbox.helpers import make_iin

TODAY = date(2026, 9, 10)
CERTIFICATE = re.compile(r"[0-9]{2}-[0-9]{3}-[0-9]{7}")


def _iins(born: date, male: bool, count: int = 60) -> list[str]:
    iins = []
    serial = 1
    while len(iins) < count:
        iin = make_iin(born, male=male, serial=serial)
        iins.append(iin)
        serial = int(iin[7:11]) + 1
    return iins


def test_same_iin_same_person() -> None:
    iin = make_iin(date(1990, 5, 17), male=True, serial=321)
    assert make_person(iin, TODAY) == make_person(iin, TODAY)


def test_male_forms() -> None:
    people = [make_person(iin, TODAY) for iin in _iins(date(1984, 2, 29), male=True)]
    for person in people:
        assert person.gender == "male" and person.birth_date == date(1984, 2, 29)
        assert person.last_name.endswith(("ов", "ев", "ин"))
        if person.middle_name is not None:
            assert person.middle_name.endswith(("ұлы", "ович"))
    middles = [p.middle_name for p in people]
    assert any(m and m.endswith("ұлы") for m in middles)
    assert any(m and m.endswith("ович") for m in middles)
    assert None in middles  # a few have no patronymic


def test_female_forms() -> None:
    people = [make_person(iin, TODAY) for iin in _iins(date(1991, 11, 3), male=False)]
    for person in people:
        assert person.gender == "female"
        assert person.last_name.endswith(("ова", "ева", "ина"))
        if person.middle_name is not None:
            assert person.middle_name.endswith(("қызы", "овна"))
    assert {p.first_name for p in people} & {"Айгерім", "Айгерим", "Аружан", "Дана", "Мадина"}


def test_spelling_follows_the_patronymic_style() -> None:
    for iin in _iins(date(1979, 7, 1), male=True):
        person = make_person(iin, TODAY)
        if person.middle_name and person.middle_name.endswith("ович"):
            assert not set("әғқңөұүһі") & set(person.first_name + person.last_name)


def test_certificate_only_under_18_on_the_clock_date() -> None:
    born = date(2008, 9, 11)  # turns 18 on 11 September 2026
    iin = make_iin(born, male=False, serial=77)
    child = make_person(iin, date(2026, 9, 10))
    assert child.birth_certificate is not None
    assert CERTIFICATE.fullmatch(child.birth_certificate.number)
    assert 3 <= (child.birth_certificate.issued_on - born).days <= 20
    assert make_person(iin, date(2026, 9, 11)).birth_certificate is None


def test_addresses() -> None:
    people = [make_person(iin, TODAY) for iin in _iins(date(2015, 1, 9), male=True)]
    for person in people:
        assert person.addresses.permanent is not None
        assert person.addresses.permanent.split(",")[0].endswith(" қ.")
        assert " ауданы" in person.addresses.permanent or " аудан" in person.addresses.permanent
    temporaries = [p.addresses.temporary for p in people]
    assert None in temporaries and any(temporaries)
