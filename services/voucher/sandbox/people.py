"""Made-up but plausible state data of a person, always the same for the same IIN.

Birth date and sex come from the IIN itself; everything else is drawn from a generator seeded
with a hash of the IIN. A Kazakh-style patronymic (-ұлы/-қызы) goes with the Kazakh spelling
of every name, a Russian-style one (-ович/-овна) with the Russian spelling, as in real
documents.
"""

from __future__ import annotations

import hashlib
import random
from datetime import date, timedelta

from services.validation import age_on, parse_iin
from services.voucher.models import Addresses, BirthCertificate, Person

# (Kazakh spelling, Russian spelling)
Spelling = tuple[str, str]

MALE_FIRST_NAMES: tuple[Spelling, ...] = (
    ("Ерлан", "Ерлан"),
    ("Нұрсұлтан", "Нурсултан"),
    ("Алихан", "Алихан"),
    ("Әлішер", "Алишер"),
    ("Арман", "Арман"),
    ("Данияр", "Данияр"),
    ("Ерасыл", "Ерасыл"),
    ("Бауыржан", "Бауыржан"),
    ("Асқар", "Аскар"),
    ("Темірлан", "Темирлан"),
    ("Айдос", "Айдос"),
    ("Нұрлан", "Нурлан"),
    ("Дәурен", "Даурен"),
    ("Ержан", "Ержан"),
    ("Санжар", "Санжар"),
    ("Мирас", "Мирас"),
    ("Ислам", "Ислам"),
    ("Медет", "Медет"),
    ("Рустем", "Рустем"),
    ("Ақжол", "Акжол"),
)

FEMALE_FIRST_NAMES: tuple[Spelling, ...] = (
    ("Айгерім", "Айгерим"),
    ("Аружан", "Аружан"),
    ("Әсем", "Асем"),
    ("Дана", "Дана"),
    ("Жансая", "Жансая"),
    ("Ақбота", "Акбота"),
    ("Айым", "Айым"),
    ("Томирис", "Томирис"),
    ("Назерке", "Назерке"),
    ("Мадина", "Мадина"),
    ("Інкәр", "Инкар"),
    ("Сабина", "Сабина"),
    ("Гүлназ", "Гульназ"),
    ("Динара", "Динара"),
    ("Аяулым", "Аяулым"),
    ("Айша", "Айша"),
    ("Балнұр", "Балнур"),
    ("Камила", "Камила"),
    ("Зарина", "Зарина"),
    ("Алуа", "Алуа"),
)

# Male forms; every one ends in -ов, -ев or -ин, so the female form adds "а".
SURNAMES: tuple[Spelling, ...] = (
    ("Ахметов", "Ахметов"),
    ("Сәрсенбаев", "Сарсенбаев"),
    ("Жұмабаев", "Жумабаев"),
    ("Нұрғалиев", "Нургалиев"),
    ("Қасымов", "Касымов"),
    ("Омаров", "Омаров"),
    ("Серікбаев", "Серикбаев"),
    ("Бекетов", "Бекетов"),
    ("Әбдірахманов", "Абдрахманов"),
    ("Мұсин", "Мусин"),
    ("Есенов", "Есенов"),
    ("Сұлтанов", "Султанов"),
    ("Исин", "Исин"),
    ("Байжанов", "Байжанов"),
    ("Ермеков", "Ермеков"),
    ("Қуанышев", "Куанышев"),
    ("Смағұлов", "Смагулов"),
    ("Тәжин", "Тажин"),
    ("Оспанов", "Оспанов"),
    ("Мұхаметжанов", "Мухаметжанов"),
    ("Дәулетов", "Даулетов"),
    ("Әлиев", "Алиев"),
    ("Құдайбергенов", "Кудайбергенов"),
    ("Кенжебаев", "Кенжебаев"),
    ("Шәкенов", "Шакенов"),
    ("Жақсылықов", "Жаксылыков"),
)

# Fathers' names, all ending in a hard consonant: "-ұлы/-қызы" or "-ович/-овна" attach as is.
FATHER_NAMES: tuple[Spelling, ...] = (
    ("Нұрлан", "Нурлан"),
    ("Ерлан", "Ерлан"),
    ("Болат", "Болат"),
    ("Серік", "Серик"),
    ("Асқар", "Аскар"),
    ("Қайрат", "Кайрат"),
    ("Марат", "Марат"),
    ("Бауыржан", "Бауыржан"),
    ("Дәурен", "Даурен"),
    ("Ержан", "Ержан"),
    ("Талғат", "Талгат"),
    ("Мұрат", "Мурат"),
    ("Арман", "Арман"),
    ("Ғалым", "Галым"),
    ("Жанат", "Жанат"),
    ("Қанат", "Канат"),
)

# city → (districts, streets); the Kazakh address style throughout.
CITIES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "Алматы қ.": (
        (
            "Бостандық ауданы",
            "Әуезов ауданы",
            "Алмалы ауданы",
            "Медеу ауданы",
            "Жетісу ауданы",
            "Түрксіб ауданы",
            "Наурызбай ауданы",
            "Алатау ауданы",
        ),
        (
            "Абай даңғылы",
            "Әл-Фараби даңғылы",
            "Төле би көшесі",
            "Сәтбаев көшесі",
            "Жандосов көшесі",
            "Розыбакиев көшесі",
            "Райымбек даңғылы",
            "Гагарин даңғылы",
            "Момышұлы көшесі",
        ),
    ),
    "Астана қ.": (
        ("Есіл ауданы", "Алматы ауданы", "Сарыарқа ауданы", "Байқоңыр ауданы", "Нұра ауданы"),
        (
            "Қабанбай батыр даңғылы",
            "Мәңгілік Ел даңғылы",
            "Тұран даңғылы",
            "Кенесары көшесі",
            "Сығанақ көшесі",
            "Республика даңғылы",
            "Бейбітшілік көшесі",
        ),
    ),
    "Шымкент қ.": (
        ("Әл-Фараби ауданы", "Абай ауданы", "Еңбекші ауданы", "Қаратау ауданы"),
        ("Тәуке хан даңғылы", "Байтұрсынов көшесі", "Республика даңғылы", "Жібек жолы көшесі"),
    ),
    "Қарағанды қ.": (
        ("Қазыбек би атындағы аудан", "Әлихан Бөкейхан ауданы"),
        ("Бұқар жырау даңғылы", "Ерубаев көшесі", "Гоголь көшесі", "Нұркен Әбдіров даңғылы"),
    ),
}

ADULT_AGE = 18


def _generator(iin: str) -> random.Random:
    """The same stream of choices for the same IIN, on every machine and every run."""
    digest = hashlib.sha256(f"kezek-sandbox-person:{iin}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _address(rng: random.Random) -> str:
    city = rng.choice(sorted(CITIES))
    districts, streets = CITIES[city]
    address = f"{city}, {rng.choice(districts)}, {rng.choice(streets)}, {rng.randint(1, 180)}"
    if rng.random() < 0.8:  # most families live in flats, some in their own houses
        address += f", {rng.randint(1, 240)} пәт."
    return address


def _certificate(rng: random.Random, born: date) -> BirthCertificate:
    number = f"{rng.randint(10, 99)}-{rng.randint(100, 999)}-{rng.randint(0, 9_999_999):07d}"
    return BirthCertificate(number=number, issued_on=born + timedelta(days=rng.randint(3, 20)))


def make_person(iin: str, today: date) -> Person:
    """The person behind a valid IIN, as the state databases would return them on `today`."""
    info = parse_iin(iin)
    rng = _generator(iin)
    male = info.gender == "male"
    kazakh_style = rng.random() < 0.5
    spelling = 0 if kazakh_style else 1
    first = rng.choice(MALE_FIRST_NAMES if male else FEMALE_FIRST_NAMES)[spelling]
    surname = rng.choice(SURNAMES)[spelling] + ("" if male else "а")
    father = rng.choice(FATHER_NAMES)[spelling]
    if kazakh_style:
        middle: str | None = father + ("ұлы" if male else "қызы")
    else:
        middle = father + ("ович" if male else "овна")
    if rng.random() < 0.08:  # a few records carry no patronymic at all
        middle = None
    permanent = _address(rng)
    temporary = _address(rng) if rng.random() < 0.3 else None
    is_child = age_on(info.birth_date, today) < ADULT_AGE
    return Person(
        iin=iin,
        last_name=surname,
        first_name=first,
        middle_name=middle,
        birth_date=info.birth_date,
        gender=info.gender,
        birth_certificate=_certificate(rng, info.birth_date) if is_child else None,
        addresses=Addresses(permanent=permanent, temporary=temporary),
    )
