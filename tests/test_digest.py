"""The staff digest against a known set of applications, drafts, events and users in SQLite.

Everything goes in through the Store, the same way the bot writes it; the figures come out
through the read-only reports connection. Periods are Asia/Almaty instants, half-open.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.app import LOCALES_DIR
from bot.i18n import I18n
from bot.render.digest import TOP, csv_file_name, digest_csv, render_digest, render_plain
from services.clock import ALMATY, FakeClock
from services.digest import CSV_COLUMNS, Digest, build_digest, submissions_csv
from services.digest_job import LAST_DIGEST_KEY, digest_since, send_digest
from services.reports import Count, NamedCount, SubmissionRow, mask_iin, open_reports
from services.store import Store
from services.validation import iin_check_digit

SINCE = datetime(2026, 9, 9, 9, 0, tzinfo=ALMATY)
UNTIL = datetime(2026, 9, 10, 9, 0, tzinfo=ALMATY)
SECOND = timedelta(seconds=1)

P1 = {"kk": "«Шұғыла» балалар орталығы", "ru": "Детский центр «Шугыла»"}
P2 = {"kk": "«Дарын» үйі", "ru": "Дом «Дарын»"}
P3 = {"kk": "«Жұлдыз» студиясы", "ru": "Студия «Жулдыз»"}
DOMBYRA = {"kk": "Домбыра", "ru": "Домбра"}
CHESS = {"kk": "Шахмат", "ru": "Шахматы"}
ROBOTICS = {"kk": "Робототехника", "ru": "Робототехника"}
CHILD_NAME = "Серікова Аружан Маратқызы"


def iin(year: int, month: int, day: int, serial: int) -> str:
    """A valid IIN of a child born in the 2000s."""
    for n in range(serial, serial + 50):
        first11 = f"{year % 100:02d}{month:02d}{day:02d}6{n:04d}"
        check = iin_check_digit(first11)
        if check is not None:
            return first11 + str(check)
    raise AssertionError("no IIN")


IIN_A2, IIN_A3, IIN_A4 = iin(2016, 3, 15, 101), iin(2018, 7, 1, 202), iin(2015, 1, 20, 303)


def summary(
    provider_id: str,
    provider: dict[str, str],
    group_id: str,
    group: dict[str, str],
    *,
    language: str,
    queue_type: str,
    year: int,
    child_iin: str,
) -> dict[str, Any]:
    """A summary with every field the digest reads (the review step's summary plus ids)."""
    return {
        "child": CHILD_NAME,
        "queue": {"kk": "Жалпы кезек, 7–10 жас", "ru": "Общая очередь, 7–10 лет"},
        "provider": provider,
        "group": group,
        "status": "submitted",
        "queue_type": queue_type,
        "provider_id": provider_id,
        "group_id": group_id,
        "group_language": language,
        "child_birth_year": year,
        "child_iin_masked": mask_iin(child_iin),
    }


# What `services.application.application_summary` stores today: names only, no codes or ids.
LEGACY = {
    "child": "Омаров Нұрсұлтан Ержанұлы",
    "queue": {"kk": "Жалпы кезек, 5–6 жас", "ru": "Общая очередь, 5–6 лет"},
    "provider": P3,
    "group": ROBOTICS,
    "status": "submitted",
}


async def add(store: Store, number: str, at: datetime, data: dict[str, Any], user: int) -> None:
    await store.add_application(
        application_id=f"app-{number}",
        user_id=user,
        chat_id=user,
        number=number,
        status="submitted",
        submitted_at=at,
        summary=data,
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(SINCE - timedelta(hours=2))


@pytest.fixture
async def db(tmp_path: Path, clock: FakeClock) -> AsyncIterator[tuple[Store, Path]]:
    """The known set: 7 applications (5 in the period), events, drafts and blocked users."""
    path = tmp_path / "kezek.sqlite3"
    store = await Store.open(path, clock)
    full_p1_dombyra = summary(
        "p1", P1, "g1", DOMBYRA, language="kk", queue_type="general", year=2016, child_iin=IIN_A2
    )
    # A1 a second too early, A5 exactly at the end: both belong to other periods.
    await add(store, "KZ-0001", SINCE - SECOND, full_p1_dombyra, 101)
    await add(store, "KZ-0002", SINCE, full_p1_dombyra, 102)
    a3 = summary(
        "p1", P1, "g2", CHESS, language="ru", queue_type="special", year=2018, child_iin=IIN_A3
    )
    a3["child_iin"] = IIN_A3  # an IIN in clear must still come out masked
    del a3["child_iin_masked"]
    # 02:30 in Almaty is still the 9th in UTC: the table must say 10.09.2026.
    await add(store, "KZ-0003", datetime(2026, 9, 10, 2, 30, tzinfo=ALMATY), a3, 103)
    a4 = summary(
        "p2", P2, "g3", DOMBYRA, language="kk", queue_type="general", year=2015, child_iin=IIN_A4
    )
    await add(store, "KZ-0004", UNTIL - SECOND, a4, 104)
    await add(store, "KZ-0005", UNTIL, a4, 105)
    await add(store, "KZ-0006", datetime(2026, 9, 9, 15, 0, tzinfo=ALMATY), full_p1_dombyra, 106)
    await add(store, "KZ-0007", datetime(2026, 9, 9, 12, 0, tzinfo=ALMATY), LEGACY, 107)

    # Events and blocks, placed in time by the clock: before, inside and at the end.
    await store.record_event("status_changed", status="registered", application_id="app-KZ-0001")
    await store.record_event("consent_denied", user_id=201)
    for user in (301, 302, 303):
        await store.set_locale(user, "kk")
    await store.mark_blocked(301)
    clock.set(SINCE + timedelta(hours=1))
    for status in ("registered", "registered", "voucher_issued", "rejected"):
        await store.record_event("status_changed", status=status, application_id="x")
    await store.record_event("consent_denied", user_id=202)
    await store.record_event("consent_denied", user_id=203)
    await store.record_event("consent_expired", user_id=204)
    await store.mark_blocked(302)
    clock.set(UNTIL - SECOND)
    await store.mark_blocked(303)
    clock.set(UNTIL)
    await store.record_event("status_changed", status="registered", application_id="y")
    await store.record_event("consent_expired", user_id=205)

    # Where parents rest now; a submitted draft and a draft without a step do not count.
    await store.update_draft(401, step="ApplicationForm:phone", phone="+77011112233")
    await store.update_draft(402, step="ApplicationForm:parent_consent")
    await store.update_draft(403, step="ApplicationForm:parent_consent")
    await store.update_draft(404, step="ApplicationForm:review")
    await store.update_draft(405, step="ApplicationForm:submitted")
    await store.update_draft(406, phone="+77011112244")
    try:
        yield store, path
    finally:
        await store.close()


@pytest.fixture(scope="module")
def i18n() -> I18n:
    return I18n.load(LOCALES_DIR)


async def digest_of(path: Path, since: datetime | None, until: datetime = UNTIL) -> Digest:
    async with open_reports(path) as reports:
        return await build_digest(
            reports, since=since, until=until, outbox_counts={"waiting": 2, "failed": 1}
        )


# --- the figures ------------------------------------------------------------------------------


async def test_figures_of_a_day(db: tuple[Store, Path]) -> None:
    _, path = db
    digest = await digest_of(path, SINCE)
    assert digest.submitted == 5
    assert digest.by_queue_type == (Count("general", 3), Count("", 1), Count("special", 1))
    assert digest.by_language == (Count("kk", 3), Count("", 1), Count("ru", 1))
    assert [(p.key, p.n, p.name("kk"), p.name("ru")) for p in digest.by_provider] == [
        ("p1", 3, P1["kk"], P1["ru"]),
        ("p2", 1, P2["kk"], P2["ru"]),
        (P3["ru"], 1, P3["kk"], P3["ru"]),  # a summary without ids is known by its name
    ]
    # Two «Домбыра» groups at two providers are two groups.
    groups = {(g.name("ru"), g.within("ru")): g.n for g in digest.by_group}
    assert groups == {
        ("Домбра", P1["ru"]): 2,
        ("Шахматы", P1["ru"]): 1,
        ("Домбра", P2["ru"]): 1,
        ("Робототехника", P3["ru"]): 1,
    }
    assert digest.status_changes == (
        Count("registered", 2),
        Count("rejected", 1),
        Count("voucher_issued", 1),
    )
    assert digest.status_changed == 4
    assert (digest.consents_denied, digest.consents_expired) == (2, 1)
    assert digest.blocked == 2
    assert digest.drafts_by_step == (
        Count("ApplicationForm:parent_consent", 2),
        Count("ApplicationForm:phone", 1),
        Count("ApplicationForm:review", 1),
    )
    assert digest.drafts == 4
    assert (digest.outbox_waiting, digest.outbox_failed) == (2, 1)


async def test_figures_since_the_start(db: tuple[Store, Path]) -> None:
    _, path = db
    digest = await digest_of(path, None)
    assert digest.since is None
    assert digest.submitted == 6  # all but KZ-0005, which is at the end instant
    assert dict(digest.by_queue_type) == {"general": 4, "special": 1, "": 1}
    assert dict(digest.status_changes) == {"registered": 3, "voucher_issued": 1, "rejected": 1}
    assert (digest.consents_denied, digest.consents_expired) == (3, 1)
    assert digest.blocked == 3


async def test_period_boundaries_are_almaty_instants(db: tuple[Store, Path]) -> None:
    _, path = db
    # The next day's period starts exactly where this one ended: KZ-0005 and the events at
    # 09:00 sharp belong to it, and nothing is counted in both.
    after = await digest_of(path, UNTIL, UNTIL + timedelta(days=1))
    assert after.submitted == 1
    assert dict(after.status_changes) == {"registered": 1}
    assert after.consents_expired == 1
    assert after.blocked == 0
    # The same instants written in UTC give the same figures.
    utc = await digest_of(path, SINCE.astimezone(UTC), UNTIL.astimezone(UTC))
    assert utc.submitted == 5
    # A period shorter than a second around the start holds only KZ-0002.
    edge = await digest_of(path, SINCE, SINCE + SECOND)
    assert edge.submitted == 1


async def test_an_empty_database_gives_zeros(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "empty.sqlite3", FakeClock())
    await store.close()
    async with open_reports(tmp_path / "empty.sqlite3") as reports:
        digest = await build_digest(reports, since=SINCE, until=UNTIL)
    assert digest.submitted == 0
    assert digest.by_provider == ()
    assert digest.drafts_by_step == ()
    assert (digest.outbox_waiting, digest.outbox_failed) == (None, None)


async def test_reports_never_create_a_database(tmp_path: Path) -> None:
    missing = tmp_path / "nothing-here.sqlite3"
    with pytest.raises(FileNotFoundError):
        async with open_reports(missing):
            pass
    assert not missing.exists()


# --- the table ----------------------------------------------------------------------------------


async def test_csv_has_masked_iins_and_no_names(db: tuple[Store, Path], i18n: I18n) -> None:
    _, path = db
    async with open_reports(path) as reports:
        rows = await reports.submissions(SINCE, UNTIL)
    data = digest_csv(rows, i18n.translator("ru"))
    assert data.startswith(b"\xef\xbb\xbf")  # Excel reads UTF-8 only with a BOM
    text = data.decode("utf-8-sig")
    table = list(csv.reader(io.StringIO(text), delimiter=";"))
    assert table[0] == [
        "Номер",
        "Подано (время Алматы)",
        "Статус",
        "Тип очереди",
        "Организация",
        "Группа",
        "Язык обучения",
        "Год рождения ребёнка",
        "ИИН ребёнка",
    ]
    assert table[1:] == [
        [
            "KZ-0002",
            "09.09.2026 09:00",
            "подано",
            "общая очередь",
            P1["ru"],
            "Домбра",
            "казахский",
            "2016",
            "••••••••" + IIN_A2[-4:],
        ],
        ["KZ-0007", "09.09.2026 12:00", "подано", "", P3["ru"], "Робототехника", "", "", ""],
        [
            "KZ-0006",
            "09.09.2026 15:00",
            "подано",
            "общая очередь",
            P1["ru"],
            "Домбра",
            "казахский",
            "2016",
            "••••••••" + IIN_A2[-4:],
        ],
        [
            "KZ-0003",
            "10.09.2026 02:30",
            "подано",
            "специальная очередь",
            P1["ru"],
            "Шахматы",
            "русский",
            "2018",
            "••••••••" + IIN_A3[-4:],
        ],
        [
            "KZ-0004",
            "10.09.2026 08:59",
            "подано",
            "общая очередь",
            P2["ru"],
            "Домбра",
            "казахский",
            "2015",
            "••••••••" + IIN_A4[-4:],
        ],
    ]
    for secret in (CHILD_NAME, "Серікова", LEGACY["child"], IIN_A2, IIN_A3, IIN_A4, "+7701"):
        assert secret not in text


async def test_csv_in_kazakh_uses_kazakh_names(db: tuple[Store, Path], i18n: I18n) -> None:
    _, path = db
    async with open_reports(path) as reports:
        rows = await reports.submissions(SINCE, UNTIL)
    table = list(
        csv.reader(
            io.StringIO(digest_csv(rows, i18n.translator("kk")).decode("utf-8-sig")),
            delimiter=";",
        )
    )
    assert table[0][0] == "Нөмірі"
    assert table[0][-1] == "Баланың ЖСН-і"
    assert table[1][2:7] == ["жіберілді", "жалпы кезек", P1["kk"], "Домбыра", "қазақ тілі"]


def test_csv_defuses_spreadsheet_formulas() -> None:
    row = SubmissionRow(
        number="KZ-1",
        submitted_at=SINCE,
        status="submitted",
        queue_type="general",
        provider_kk="=HYPERLINK(1)",
        provider_ru="=HYPERLINK(1)",
        group_kk="+1",
        group_ru="@x",
        language="ru",
        child_birth_year=2016,
        child_iin_masked=mask_iin("160315600101"),
    )
    table = list(csv.reader(io.StringIO(submissions_csv([row]).decode("utf-8-sig")), delimiter=";"))
    assert table[0] == list(CSV_COLUMNS)
    assert table[1] == [
        "KZ-1",
        "09.09.2026 09:00",
        "submitted",
        "general",
        "'=HYPERLINK(1)",
        "'@x",
        "ru",
        "2016",
        "••••••••0101",
    ]


def test_mask_iin() -> None:
    assert mask_iin("871008401427") == "••••••••1427"
    assert mask_iin("••••••••1427") == "••••••••1427"
    assert mask_iin(None) == ""
    assert mask_iin("14") == ""
    assert mask_iin("Аружан") == ""


# --- the message --------------------------------------------------------------------------------


async def test_the_day_in_russian(db: tuple[Store, Path], i18n: I18n) -> None:
    _, path = db
    text = render_digest(await digest_of(path, SINCE), i18n.translator("ru"))
    assert text == "\n".join(
        [
            "📊 <b>Сводка «Кезек»</b>",
            "09.09.2026 09:00 — 10.09.2026 09:00, время Алматы",
            "",
            "<b>Подано 5 заявлений</b>",
            "По типу очереди:",
            "• общая очередь — 3",
            "• не указано — 1",
            "• специальная очередь — 1",
            "По языку обучения:",
            "• казахский — 3",
            "• не указано — 1",
            "• русский — 1",
            "По организациям:",
            "• Детский центр «Шугыла» — 3",
            "• Дом «Дарын» — 1",
            "• Студия «Жулдыз» — 1",
            "По группам:",
            "• Домбра (Детский центр «Шугыла») — 2",
            "• Домбра (Дом «Дарын») — 1",
            "• Робототехника (Студия «Жулдыз») — 1",
            "• Шахматы (Детский центр «Шугыла») — 1",
            "",
            "<b>4 изменения статуса</b>",
            "• поставлено в очередь — 2",
            "• выдан ваучер — 1",
            "• отклонено — 1",
            "",
            "<b>Отправка в сервис ваучеров</b>",
            "• ждут отправки — 2",
            "• отправить не удалось — 1",
            "",
            "<b>Согласия через 1414</b>",
            "• родитель отказал — 2",
            "• истёк срок ответа — 1",
            "",
            "<b>Где останавливаются родители</b>: 4 незавершённых черновика",
            "• шаг 1/5, номер телефона — 1",
            "• шаг 2/5, согласие родителя через 1414 — 2",
            "• шаг 5/5, проверка и отправка заявления — 1",
            "",
            "🚫 2 родителя заблокировали бота.",
        ]
    )


async def test_the_day_in_kazakh(db: tuple[Store, Path], i18n: I18n) -> None:
    _, path = db
    text = render_digest(await digest_of(path, SINCE), i18n.translator("kk"), sandbox=True)
    lines = text.split("\n")
    assert lines[:4] == [
        "📊 <b>«Кезек» шолуы</b>",
        "09.09.2026 09:00 — 10.09.2026 09:00, Алматы уақыты",
        "",
        "<b>Берілген өтініштер: 5</b>",
    ]
    for expected in (
        "• жалпы кезек — 3",
        "• арнайы кезек — 1",
        "• көрсетілмеген — 1",
        "• қазақ тілі — 3",
        "• «Шұғыла» балалар орталығы — 3",
        "• Домбыра («Дарын» үйі) — 1",
        "<b>Мәртебе өзгерістері: 4</b>",
        "• кезекке қойылды — 2",
        "• жіберілуін күтуде — 2",
        "• ата-ана бас тартты — 2",
        "<b>Ата-аналар қай жерде тоқтайды</b>: аяқталмаған өтініш жобалары — 4",
        "• қадам 2/5, ата-ананың 1414 арқылы келісімі — 2",
        "🚫 Ботты бұғаттаған ата-аналар: 2",
    ):
        assert expected in lines, expected
    assert lines[-1] == "<i>🧪 Демо-режим: бұл нақты өтініш емес.</i>"


async def test_stats_title_and_plain_text(db: tuple[Store, Path], i18n: I18n) -> None:
    _, path = db
    digest = await digest_of(path, None)
    ru = render_plain(digest, i18n.translator("ru"))
    assert ru.startswith(
        "📈 «Кезек»: показатели с начала работы\nПо состоянию на 10.09.2026 09:00, время Алматы"
    )
    assert "<" not in ru.replace("«", "")
    assert "Подано 6 заявлений" in ru
    assert "🚫 3 родителя заблокировали бота." in ru
    assert csv_file_name(digest) == "kezek-2026-09-10.csv"


def _digest(**figures: Any) -> Digest:
    base: dict[str, Any] = {
        "since": SINCE,
        "until": UNTIL,
        "submitted": 0,
        "by_queue_type": (),
        "by_provider": (),
        "by_group": (),
        "by_language": (),
        "status_changes": (),
        "consents_denied": 0,
        "consents_expired": 0,
        "drafts_by_step": (),
        "blocked": 0,
    }
    return Digest(**{**base, **figures})


@pytest.mark.parametrize(
    ("n", "submitted", "blocked"),
    [
        (1, "Подано 1 заявление", "1 родитель заблокировал бота."),
        (3, "Подано 3 заявления", "3 родителя заблокировали бота."),
        (11, "Подано 11 заявлений", "11 родителей заблокировали бота."),
        (21, "Подано 21 заявление", "21 родитель заблокировал бота."),
        (22, "Подано 22 заявления", "22 родителя заблокировали бота."),
    ],
)
def test_russian_plurals(i18n: I18n, n: int, submitted: str, blocked: str) -> None:
    digest = _digest(submitted=n, blocked=n, by_queue_type=(Count("general", n),))
    text = render_plain(digest, i18n.translator("ru"))
    assert submitted in text
    assert blocked in text


def test_a_quiet_day_and_a_long_list(i18n: I18n) -> None:
    quiet = render_plain(_digest(), i18n.translator("ru"))
    assert "Новых заявлений не было." in quiet
    assert "Статусы заявлений не менялись." in quiet
    assert "незавершённых черновиков нет" in quiet
    assert "Никто не заблокировал бота." in quiet
    assert "Отправка в сервис ваучеров" not in quiet  # the outbox was not asked

    providers = tuple(
        NamedCount(f"p{i}", 40 - i, f"Ұйым <{i}>", f"Организация <{i}> & К°") for i in range(31)
    )
    busy = _digest(submitted=500, by_provider=providers)
    ru = render_digest(busy, i18n.translator("ru"))
    assert "• Организация &lt;0&gt; &amp; К° — 40" in ru  # names from outside are escaped
    assert f"• Организация &lt;{TOP}&gt;" not in ru
    assert "• …и ещё 21 организация" in ru
    assert len(ru) < 4096
    assert "• …тағы 21 қызмет беруші" in render_digest(busy, i18n.translator("kk"))


# --- sending: the period rule ---------------------------------------------------------------------


async def test_send_digest_marks_the_period_and_skips_failed_chats(
    db: tuple[Store, Path], clock: FakeClock
) -> None:
    store, path = db
    clock.set(UNTIL)
    assert await digest_since(store, UNTIL) == UNTIL - timedelta(hours=24)
    got: list[tuple[int, int, int]] = []

    async def deliver(chat_id: int, digest: Digest, rows: Any) -> None:
        if chat_id == -2:
            raise RuntimeError("chat not found")
        got.append((chat_id, digest.submitted, len(rows)))

    run = await send_digest(
        store, database_path=path, clock=clock, chat_ids=[-1, -2, 7, -1], deliver=deliver
    )
    assert got == [(-1, 5, 5), (7, 5, 5)]  # each chat once; the failing one does not stop others
    assert (run.delivered, run.failed) == ((-1, 7), (-2,))
    assert await store.get_meta(LAST_DIGEST_KEY) == UNTIL.isoformat()

    # The next day: from where this one ended, so KZ-0005 (at 09:00 sharp) comes now.
    clock.set(UNTIL + timedelta(days=1, seconds=40))
    again = await send_digest(store, database_path=path, clock=clock, chat_ids=[7], deliver=deliver)
    assert again.digest.since == UNTIL
    assert [r.number for r in again.rows] == ["KZ-0005"]


async def test_a_digest_nobody_got_is_repeated(db: tuple[Store, Path], clock: FakeClock) -> None:
    store, path = db
    clock.set(UNTIL)

    async def fail(chat_id: int, digest: Digest, rows: Any) -> None:
        raise RuntimeError("network down")

    run = await send_digest(store, database_path=path, clock=clock, chat_ids=[-1], deliver=fail)
    assert run.delivered == ()
    assert await store.get_meta(LAST_DIGEST_KEY) is None
    clock.advance(hours=1)
    assert await digest_since(store, clock.now()) == clock.now() - timedelta(hours=24)
