"""Staff commands through the real Dispatcher: /digest and /stats in staff chats, refused to others.

The applications are put into the Store directly (the review step's tests cover how they get
there); what is tested here is who may ask, in which language the answer comes, and the table.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from aiogram.methods import SetMyCommands
from aiogram.types import BotCommandScopeChat

from bot.app import App
from bot.config import Settings
from bot.delivery import TelegramDelivery
from bot.handlers import staff
from bot.local_chat import LocalChat
from bot.local_session import LocalBotSession, Sent
from services.clock import ALMATY, FakeClock
from services.digest_job import LAST_DIGEST_KEY
from services.reports import mask_iin
from services.sender import Sender

STAFF_GROUP = -1001234500
STAFF_USER = 3003
NOW = datetime(2026, 9, 10, 10, 0, tzinfo=ALMATY)  # the conftest FakeClock's start
CHILD_IIN = "160315500019"
P1 = {"kk": "«Шұғыла» балалар орталығы", "ru": "Детский центр «Шугыла»"}
DOMBYRA = {"kk": "Домбыра", "ru": "Домбра"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,
        voucher_api_url="sandbox",
        database_path=tmp_path / "kezek.sqlite3",
        consent_poll_seconds=0.02,
        staff_chat_ids=f"{STAFF_GROUP},{STAFF_USER}",
    )


@pytest.fixture
async def staff_app(app: App, clock: FakeClock) -> App:
    """The app with a known set of applications, drafts, events and users."""
    store = app.services.store
    summary = {
        "child": "Серікова Аружан Маратқызы",
        "queue": {"kk": "Жалпы кезек, 7–10 жас", "ru": "Общая очередь, 7–10 лет"},
        "provider": P1,
        "group": DOMBYRA,
        "status": "submitted",
        "queue_type": "general",
        "provider_id": "p1",
        "group_id": "g1",
        "group_language": "kk",
        "child_birth_year": 2016,
        "child_iin_masked": mask_iin(CHILD_IIN),
    }
    # Two applications in the last 24 h, one two days ago (only /stats counts it).
    for number, ago in (("KZ-0001", timedelta(days=2)), ("KZ-0002", timedelta(hours=3))):
        await store.add_application(
            application_id=f"app-{number}",
            user_id=1001,
            chat_id=1001,
            number=number,
            status="submitted",
            submitted_at=NOW - ago,
            summary=summary,
        )
    await store.add_application(
        application_id="app-KZ-0003",
        user_id=2002,
        chat_id=2002,
        number="KZ-0003",
        status="submitted",
        submitted_at=NOW - timedelta(minutes=5),
        summary={**summary, "queue_type": "special", "group_language": "ru"},
    )
    clock.set(NOW - timedelta(hours=1))  # events are stamped with the clock's now
    await store.record_event("consent_denied", user_id=1001)
    clock.set(NOW)
    await store.update_draft(5005, step="ApplicationForm:parent_consent")
    return app


def staff_group(app: App) -> LocalChat:
    return LocalChat(
        app.dp,
        app.bot,
        user_id=4004,
        chat_id=STAFF_GROUP,
        chat_type="supergroup",
        language_code="ru",  # Telegram's setting does not decide: DEFAULT_LOCALE (kk) does
        first_name="Гүлнар",
    )


def table(sent: Sent) -> list[list[str]]:
    assert sent.kind == "document"
    assert sent.content is not None and sent.content.startswith(b"\xef\xbb\xbf")
    return list(csv.reader(io.StringIO(sent.content.decode("utf-8-sig")), delimiter=";"))


async def test_staff_group_gets_the_digest_in_the_default_language(staff_app: App) -> None:
    group = staff_group(staff_app)
    sent = await group.send("/digest")
    messages = [s for s in sent if s.visible]
    assert [s.kind for s in messages] == ["message", "document"]
    text = messages[0].plain or ""
    assert text.startswith("📊 «Кезек» шолуы\n09.09.2026 10:00 — 10.09.2026 10:00, Алматы уақыты")
    assert "Берілген өтініштер: 2" in text
    assert "• жалпы кезек — 1" in text
    assert "• арнайы кезек — 1" in text
    assert "• ата-ана бас тартты — 1" in text
    assert "• қадам 2/5, ата-ананың 1414 арқылы келісімі — 1" in text
    assert "🧪 Демо-режим" in text  # against the sandbox, every chat is told so
    document = messages[1]
    assert document.file_name == "kezek-2026-09-10.csv"
    assert document.plain == (
        "📎 Кезеңдегі өтініштер кестесі. ЖСН жасырылған, аты-жөні мен телефон нөмірлері жоқ."
    )
    rows = table(document)
    assert rows[0][0] == "Нөмірі"
    assert [r[0] for r in rows[1:]] == ["KZ-0002", "KZ-0003"]
    assert rows[1][1] == "10.09.2026 07:00"
    assert rows[1][-1] == "••••••••0019"
    assert "Серікова" not in document.content.decode("utf-8-sig")  # type: ignore[union-attr]
    assert CHILD_IIN not in document.content.decode("utf-8-sig")  # type: ignore[union-attr]


async def test_staff_user_who_chose_russian_gets_russian(staff_app: App) -> None:
    await staff_app.services.store.set_locale(STAFF_USER, "ru")
    private = LocalChat(staff_app.dp, staff_app.bot, user_id=STAFF_USER, language_code="kk")
    sent = [s for s in await private.send("/digest") if s.visible]
    assert [s.kind for s in sent] == ["message", "document"]
    text = sent[0].plain or ""
    assert text.startswith("📊 Сводка «Кезек»\n09.09.2026 10:00 — 10.09.2026 10:00, время Алматы")
    assert "Подано 2 заявления" in text
    assert "• общая очередь — 1" in text
    assert "• шаг 2/5, согласие родителя через 1414 — 1" in text
    rows = table(sent[1])
    assert rows[0][:3] == ["Номер", "Подано (время Алматы)", "Статус"]
    assert rows[2][2:7] == ["подано", "специальная очередь", P1["ru"], "Домбра", "русский"]


async def test_stats_counts_since_the_start(staff_app: App) -> None:
    group = staff_group(staff_app)
    sent = [s for s in await group.send("/stats@kezek_bot") if s.visible]
    assert [s.kind for s in sent] == ["message", "document"]
    text = sent[0].plain or ""
    assert text.startswith("📈 «Кезек»: жұмыс басталғаннан бергі көрсеткіштер\n")
    assert "10.09.2026 10:00 жағдайы бойынша" in text
    assert "Берілген өтініштер: 3" in text
    assert [r[0] for r in table(sent[1])[1:]] == ["KZ-0001", "KZ-0002", "KZ-0003"]
    # Asking does not move the daily digest's period.
    assert await staff_app.services.store.get_meta(LAST_DIGEST_KEY) is None


async def test_digest_covers_the_time_since_the_last_sent_one(
    staff_app: App, clock: FakeClock
) -> None:
    await staff_app.services.store.set_meta(LAST_DIGEST_KEY, (NOW - timedelta(hours=1)).isoformat())
    sent = [s for s in await staff_group(staff_app).send("/digest") if s.visible]
    assert "10.09.2026 09:00 — 10.09.2026 10:00" in (sent[0].plain or "")
    assert "Берілген өтініштер: 1" in (sent[0].plain or "")
    assert [r[0] for r in table(sent[1])[1:]] == ["KZ-0003"]


@pytest.mark.parametrize("command", ["/digest", "/stats"])
async def test_a_parent_gets_the_unknown_command_answer(
    staff_app: App, chat: LocalChat, chat_ru: LocalChat, command: str
) -> None:
    for parent, unknown in ((chat, "Мұндай команданы білмеймін."), (chat_ru, None)):
        sent = [s for s in await parent.send(command) if s.visible]
        # Exactly what any unknown command gets: the same words, then the language question.
        other = [s for s in await parent.send("/nosuchcommand") if s.visible]
        assert [s.plain for s in sent] == [s.plain for s in other]
        assert all(s.kind == "message" for s in sent)
        assert "шолу" not in (sent[0].plain or "") and "Сводка" not in (sent[0].plain or "")
        if unknown is not None:
            assert (sent[0].plain or "").startswith(unknown)
    assert (chat_ru.history()[0].plain or "").startswith("Я не знаю такой команды.")


async def test_a_staff_user_in_a_parents_group_is_refused(staff_app: App) -> None:
    other_group = LocalChat(
        staff_app.dp,
        staff_app.bot,
        user_id=STAFF_USER,
        chat_id=-100777,
        chat_type="supergroup",
        language_code="kk",
    )
    sent = [s for s in await other_group.send("/digest") if s.visible]
    assert (sent[0].plain or "").startswith("Мұндай команданы білмеймін.")
    assert not any(s.kind == "document" for s in other_group.history())


async def test_staff_commands_are_set_per_staff_chat_only(staff_app: App) -> None:
    session = staff_app.bot.session
    assert isinstance(session, LocalBotSession)
    await staff.set_staff_commands(
        staff_app.bot, staff_app.services.settings, staff_app.services.i18n
    )
    calls = [m for m in session.requests if isinstance(m, SetMyCommands)]
    assert {(c.scope.chat_id, c.language_code) for c in calls} == {  # type: ignore[union-attr]
        (chat_id, code) for chat_id in (STAFF_GROUP, STAFF_USER) for code in ("kk", "ru", None)
    }
    assert all(isinstance(c.scope, BotCommandScopeChat) for c in calls)
    by_language = {c.language_code: c.commands for c in calls if c.scope.chat_id == STAFF_GROUP}  # type: ignore[union-attr]
    assert [(b.command, b.description) for b in by_language["ru"]] == [
        ("digest", "Сводка с прошлой рассылки"),
        ("stats", "Показатели с начала работы"),
    ]
    assert [b.command for b in by_language[None]] == ["digest", "stats"]
    assert by_language[None] == by_language["kk"]  # DEFAULT_LOCALE for other app languages


async def drain_outbox(app: App, clock: FakeClock) -> None:
    """Deliver what the outbox holds through the real sender, on the fake clock."""

    async def tick(seconds: float) -> None:
        clock.advance(seconds=seconds)

    await Sender(app.services.outbox, TelegramDelivery(app.bot), clock, sleep=tick).drain()


async def test_daily_digest_goes_to_every_staff_chat_once(staff_app: App, clock: FakeClock) -> None:
    await staff_app.services.store.set_locale(STAFF_USER, "ru")
    session = staff_app.bot.session
    assert isinstance(session, LocalBotSession)
    run = await staff.send_daily_digest(staff_app.services)
    assert run is not None and run.delivered == (STAFF_GROUP, STAFF_USER)
    # The digest goes through the outbox; a second enqueue of the same period is stored once.
    assert await staff.send_daily_digest(staff_app.services) is not None
    await drain_outbox(staff_app, clock)
    group = [s for s in session.sent(STAFF_GROUP) if s.visible]
    private = [s for s in session.sent(STAFF_USER) if s.visible]
    assert [s.kind for s in group] == ["message", "document"]
    assert (group[0].plain or "").startswith("📊 «Кезек» шолуы")
    assert (private[0].plain or "").startswith("📊 Сводка «Кезек»")
    assert await staff_app.services.store.get_meta(LAST_DIGEST_KEY) == NOW.isoformat()

    # A day later with nothing new: a digest, but no empty table.
    clock.advance(hours=24)
    again = await staff.send_daily_digest(staff_app.services)
    assert again is not None and again.digest.submitted == 0
    await drain_outbox(staff_app, clock)
    latest = [s for s in session.sent(STAFF_GROUP) if s.visible][2:]
    assert [s.kind for s in latest] == ["message"]
    assert "Жаңа өтініш берілген жоқ." in (latest[0].plain or "")


async def test_shell_digest_prints_plain_text_and_sends_only_when_asked(
    staff_app: App, clock: FakeClock
) -> None:
    out = io.StringIO()
    settings = staff_app.services.settings
    code = await staff.digest_cli(settings, send=False, out=out, clock=clock)
    assert code == 0
    printed = out.getvalue()
    assert printed.startswith("📊 «Кезек» шолуы\n")
    assert "Берілген өтініштер: 2" in printed and "<b>" not in printed
    session = staff_app.bot.session
    assert isinstance(session, LocalBotSession)
    assert session.sent(STAFF_GROUP) == []
    assert await staff_app.services.store.get_meta(LAST_DIGEST_KEY) is None

    out, err = io.StringIO(), io.StringIO()
    code = await staff.digest_cli(
        settings, send=True, out=out, err=err, clock=clock, bot=staff_app.bot
    )
    assert code == 0
    assert out.getvalue() == printed  # the same figures, now also sent
    assert err.getvalue() == "Kezek: digest sent to 2 chat(s), failed: 0.\n"
    assert [s.kind for s in session.sent(STAFF_GROUP) if s.visible] == ["message", "document"]
    assert await staff_app.services.store.get_meta(LAST_DIGEST_KEY) == NOW.isoformat()


async def test_shell_digest_explains_what_is_missing(staff_app: App, tmp_path: Path) -> None:
    settings = staff_app.services.settings
    out, err = io.StringIO(), io.StringIO()
    missing = settings.model_copy(update={"database_path": tmp_path / "nope.sqlite3"})
    assert await staff.digest_cli(missing, send=False, out=out, err=err) == 1
    assert "no database at" in err.getvalue()
    assert not (tmp_path / "nope.sqlite3").exists()
    nobody = settings.model_copy(update={"staff_chat_ids": []})
    assert await staff.digest_cli(nobody, send=True, out=out, err=err) == 1
    assert "STAFF_CHAT_IDS is empty" in err.getvalue()
    assert out.getvalue() == ""
