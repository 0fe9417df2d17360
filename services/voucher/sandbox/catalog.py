"""The sandbox's catalogue: providers and their groups, queue types, state order types, age bands.

Built on demand from fixed tables; the groups each provider offers are picked by a generator
seeded with the provider's id, so every start yields the same catalogue.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from services.voucher.models import Group, Localized, Provider, QueueRef, QueueType, StateOrderType

QUEUE_TYPES: tuple[QueueType, ...] = (
    QueueType(
        code="general",
        title=Localized(kk="Жалпы кезек", ru="Общая очередь"),
        description=Localized(
            kk="Барлық балаларға арналған жалпы дамыту кезегі.",
            ru="Общеразвивающая очередь для всех детей.",
        ),
    ),
    QueueType(
        code="special",
        title=Localized(kk="Арнайы кезек", ru="Специальная очередь"),
        description=Localized(
            kk="Ерекше білім беру қажеттіліктері бар балаларға; мүгедектік туралы құжат қажет.",
            ru="Для детей с особыми образовательными потребностями; нужна справка об инвалидности.",
        ),
    ),
)

STATE_ORDER_TYPES: tuple[StateOrderType, ...] = (
    StateOrderType(
        code="full",
        title=Localized(
            kk="Толық мемлекеттік тапсырыс (тегін)",
            ru="Полный государственный заказ (бесплатно)",
        ),
    ),
    StateOrderType(
        code="partial",
        title=Localized(
            kk="Ішінара мемлекеттік тапсырыс (ата-ана қосымша төлейді)",
            ru="Частичный государственный заказ (с доплатой родителей)",
        ),
    ),
)


@dataclass(frozen=True, slots=True)
class Activity:
    kk: str
    ru: str
    age_min: int
    age_max: int


ACTIVITIES: dict[str, Activity] = {
    "dombyra": Activity("Домбыра", "Домбра", 6, 17),
    "kobyz": Activity("Қобыз", "Кобыз", 7, 17),
    "piano": Activity("Фортепиано", "Фортепиано", 6, 17),
    "vocal": Activity("Вокал", "Вокал", 5, 17),
    "chess": Activity("Шахмат", "Шахматы", 5, 17),
    "togyz": Activity("Тоғызқұмалақ", "Тогызкумалак", 7, 17),
    "boxing": Activity("Бокс", "Бокс", 8, 17),
    "karate": Activity("Каратэ", "Карате", 6, 17),
    "wrestling": Activity("Қазақ күресі", "Казахская борьба", 8, 17),
    "football": Activity("Футбол", "Футбол", 5, 16),
    "swimming": Activity("Жүзу", "Плавание", 4, 17),
    "robotics": Activity("Робототехника", "Робототехника", 7, 16),
    "programming": Activity("Бағдарламалау", "Программирование", 9, 17),
    "english": Activity("Ағылшын тілі", "Английский язык", 5, 15),
    "drawing": Activity("Сурет салу", "Рисование", 4, 15),
    "ceramics": Activity("Керамика", "Керамика", 6, 15),
    "dance": Activity("Би", "Танцы", 4, 16),
}

# What each kind of provider teaches.
KINDS: dict[str, tuple[str, ...]] = {
    "creativity": ("dombyra", "kobyz", "drawing", "dance", "chess", "english", "vocal", "ceramics"),
    "palace": tuple(ACTIVITIES),
    "sport": ("boxing", "karate", "wrestling", "football", "swimming"),
    "music": ("dombyra", "kobyz", "piano", "vocal"),
    "art": ("drawing", "ceramics"),
    "tech": ("robotics", "programming", "chess"),
    "chess": ("chess", "togyz"),
    "dance": ("dance", "vocal"),
    "language": ("english", "drawing", "chess"),
    "football": ("football", "swimming"),
    "centre": ("drawing", "dance", "english", "chess", "vocal", "robotics"),
    "martial": ("boxing", "karate", "wrestling"),
}

# (kind, name in Kazakh, name in Russian, address)
PROVIDERS: tuple[tuple[str, str, str, str], ...] = (
    ("creativity", "№1 балалар шығармашылығы үйі", "Дом детского творчества №1",
     "Алматы қ., Алмалы ауданы, Қазыбек би көшесі, 117"),
    ("palace", "«Жас дарын» оқушылар сарайы", "Дворец школьников «Жас дарын»",
     "Алматы қ., Медеу ауданы, Абай даңғылы, 10"),
    ("sport", "№3 балалар мен жасөспірімдер спорт мектебі",
     "Детско-юношеская спортивная школа №3", "Алматы қ., Әуезов ауданы, Жандосов көшесі, 98"),
    ("music", "№5 балалар музыка мектебі", "Детская музыкальная школа №5",
     "Алматы қ., Бостандық ауданы, Тимирязев көшесі, 42"),
    ("tech", "«RoboLab» робототехника клубы", "Клуб робототехники «RoboLab»",
     "Алматы қ., Бостандық ауданы, Әл-Фараби даңғылы, 77/8"),
    ("chess", "«Ақ тура» шахмат клубы", "Шахматный клуб «Ак тура»",
     "Алматы қ., Алмалы ауданы, Байзақов көшесі, 125"),
    ("art", "№2 балалар көркемсурет мектебі", "Детская художественная школа №2",
     "Алматы қ., Жетісу ауданы, Райымбек даңғылы, 210"),
    ("dance", "«Жұлдыз» би студиясы", "Студия танца «Жулдыз»",
     "Алматы қ., Алмалы ауданы, Төле би көшесі, 155"),
    ("creativity", "№4 балалар шығармашылығы үйі", "Дом детского творчества №4",
     "Алматы қ., Наурызбай ауданы, Шұғыла шағынауданы, 340"),
    ("sport", "«Алатау» спорт кешені", "Спортивный комплекс «Алатау»",
     "Алматы қ., Медеу ауданы, Достық даңғылы, 180"),
    ("tech", "«Алтын сақа» жас техниктер станциясы", "Станция юных техников «Алтын сака»",
     "Алматы қ., Түрксіб ауданы, Сейфуллин даңғылы, 88"),
    ("language", "«Bilim» тіл орталығы", "Языковой центр «Bilim»",
     "Алматы қ., Бостандық ауданы, Сәтбаев көшесі, 30А"),
    ("tech", "«Kids Code» бағдарламалау мектебі", "Школа программирования «Kids Code»",
     "Алматы қ., Алмалы ауданы, Абылай хан даңғылы, 92"),
    ("football", "«Тұлпар» футбол академиясы", "Футбольная академия «Тулпар»",
     "Алматы қ., Әуезов ауданы, Саин көшесі, 20"),
    ("music", "№9 балалар музыка мектебі", "Детская музыкальная школа №9",
     "Алматы қ., Әуезов ауданы, Момышұлы көшесі, 15"),
    ("sport", "№7 балалар мен жасөспірімдер спорт мектебі",
     "Детско-юношеская спортивная школа №7", "Алматы қ., Жетісу ауданы, Бөкейханов көшесі, 62"),
    ("creativity", "№6 балалар шығармашылығы үйі", "Дом детского творчества №6",
     "Алматы қ., Түрксіб ауданы, Майлин көшесі, 27"),
    ("centre", "«Ақбота» балалар орталығы", "Детский центр «Акбота»",
     "Алматы қ., Медеу ауданы, Жібек жолы даңғылы, 50"),
    ("martial", "«Сұңқар» жекпе-жек клубы", "Клуб единоборств «Сункар»",
     "Алматы қ., Бостандық ауданы, Розыбакиев көшесі, 247"),
    ("creativity", "№5 балалар шығармашылығы үйі", "Дом детского творчества №5",
     "Алматы қ., Алатау ауданы, Саина көшесі, 102"),
    ("palace", "«Шабыт» оқушылар сарайы", "Дворец школьников «Шабыт»",
     "Астана қ., Есіл ауданы, Тұран даңғылы, 37"),
    ("creativity", "№2 балалар шығармашылығы үйі", "Дом детского творчества №2",
     "Астана қ., Сарыарқа ауданы, Сейфуллин көшесі, 31"),
    ("sport", "№1 балалар мен жасөспірімдер спорт мектебі",
     "Детско-юношеская спортивная школа №1", "Астана қ., Алматы ауданы, Тәуелсіздік даңғылы, 21"),
    ("music", "№3 балалар музыка мектебі", "Детская музыкальная школа №3",
     "Астана қ., Сарыарқа ауданы, Кенесары көшесі, 46"),
    ("tech", "«Robo Kids» робототехника орталығы", "Центр робототехники «Robo Kids»",
     "Астана қ., Есіл ауданы, Мәңгілік Ел даңғылы, 55"),
    ("chess", "«Ұлы дала» зияткерлік ойындар клубы", "Клуб интеллектуальных игр «Улы дала»",
     "Астана қ., Байқоңыр ауданы, Жеңіс даңғылы, 9"),
    ("art", "№1 балалар көркемсурет мектебі", "Детская художественная школа №1",
     "Астана қ., Алматы ауданы, Абылай хан даңғылы, 5"),
    ("dance", "«Айгөлек» хореография студиясы", "Хореографическая студия «Айголек»",
     "Астана қ., Сарыарқа ауданы, Бейбітшілік көшесі, 14"),
    ("sport", "«Нұр» спорт кешені", "Спортивный комплекс «Нур»",
     "Астана қ., Есіл ауданы, Қабанбай батыр даңғылы, 45"),
    ("tech", "№1 жас техниктер станциясы", "Станция юных техников №1",
     "Астана қ., Байқоңыр ауданы, Бараев көшесі, 16"),
    ("language", "«Oxford Kids» ағылшын тілі орталығы", "Центр английского языка «Oxford Kids»",
     "Астана қ., Есіл ауданы, Сығанақ көшесі, 18"),
    ("tech", "«IT Bala» бағдарламалау мектебі", "Школа программирования «IT Bala»",
     "Астана қ., Есіл ауданы, Ұлы Дала даңғылы, 11"),
    ("football", "«Астана жастары» футбол мектебі", "Футбольная школа «Астана жастары»",
     "Астана қ., Алматы ауданы, Рақымжан Қошқарбаев даңғылы, 30"),
    ("centre", "«Балапан» балаларды дамыту орталығы", "Центр развития детей «Балапан»",
     "Астана қ., Нұра ауданы, Тұран даңғылы, 60"),
)  # fmt: skip


def _groups_of(number: int, kind: str) -> tuple[Group, ...]:
    """2–6 groups of distinct activities, the same on every start."""
    rng = random.Random(f"kezek-sandbox-provider-{number}")
    pool = KINDS[kind]
    count = rng.randint(2, min(6, len(pool)))
    groups = []
    for index, code in enumerate(rng.sample(pool, count), start=1):
        activity = ACTIVITIES[code]
        age_min = activity.age_min + rng.randint(0, 2)
        age_max = max(age_min + 2, activity.age_max - rng.randint(0, 3))
        groups.append(
            Group(
                id=f"grp-{number:03d}-{index}",
                name=Localized(kk=activity.kk, ru=activity.ru),
                language="kk" if rng.random() < 0.6 else "ru",
                age_min=age_min,
                age_max=min(age_max, 18),
                seats_free=0 if rng.random() < 0.2 else rng.randint(1, 25),
            )
        )
    return tuple(groups)


@dataclass(frozen=True)
class Catalog:
    """Providers in a stable order (by id) and their groups."""

    providers: tuple[Provider, ...]
    groups: Mapping[str, tuple[Group, ...]]  # provider id → its groups
    group_owner: Mapping[str, str]  # group id → provider id

    @classmethod
    @functools.cache  # built on first use, then shared: it is immutable and always the same
    def build(cls) -> Catalog:
        """The fixed catalogue of the sandbox."""
        providers: list[Provider] = []
        groups: dict[str, tuple[Group, ...]] = {}
        for number, (kind, name_kk, name_ru, address) in enumerate(PROVIDERS, start=1):
            provider = Provider(
                id=f"prv-{number:03d}", name=Localized(kk=name_kk, ru=name_ru), address=address
            )
            providers.append(provider)
            groups[provider.id] = _groups_of(number, kind)
        owner = {group.id: pid for pid, items in groups.items() for group in items}
        return cls(
            providers=tuple(sorted(providers, key=lambda p: p.id)),
            groups=MappingProxyType(groups),
            group_owner=MappingProxyType(owner),
        )

    def search(self, q: str) -> list[Provider]:
        """Providers whose name contains `q` (trimmed, any case) in either language."""
        needle = q.strip().casefold()
        if not needle:
            return list(self.providers)
        return [
            p
            for p in self.providers
            if needle in p.name.kk.casefold() or needle in p.name.ru.casefold()
        ]

    def group(self, group_id: str) -> Group | None:
        owner = self.group_owner.get(group_id)
        if owner is None:
            return None
        return next(g for g in self.groups[owner] if g.id == group_id)


def age_band(age: int, bands: Sequence[tuple[int, int]]) -> tuple[int, int] | None:
    """The configured band holding this age, or None."""
    return next(((low, high) for low, high in bands if low <= age <= high), None)


def _ru_years(n: int) -> str:
    """Russian plural after a number: 1 год, 2–4 года, 5–20 лет, 21 год …"""
    if n % 10 == 1 and n % 100 != 11:
        return "год"
    if n % 10 in (2, 3, 4) and n % 100 not in (12, 13, 14):
        return "года"
    return "лет"


def queue_ref(queue_type: str, band: tuple[int, int]) -> QueueRef:
    """`general-7-10`, titled «Жалпы кезек, 7–10 жас» / «Общая очередь, 7–10 лет»."""
    low, high = band
    title = next(q.title for q in QUEUE_TYPES if q.code == queue_type)
    return QueueRef(
        code=f"{queue_type}-{low}-{high}",
        title=Localized(
            kk=f"{title.kk}, {low}–{high} жас", ru=f"{title.ru}, {low}–{high} {_ru_years(high)}"
        ),
    )
