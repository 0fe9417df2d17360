"""After submission, through the real app: pushes in kk and ru, the webhook, /status, reminders.

Applications are submitted through the client (as the review step does) and recorded with
`store.add_application`; status changes are made in the sandbox, as the staff would; the bot's
part is then run by calling the job functions (`desk.poll`, `desk.remind`) once. What the
parent gets is read from the real outbox table, or delivered through the real Sender into the
local Telegram session when a button has to be pressed.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import aiosqlite
import httpx
import pytest
from aiogram.fsm.storage.base import StorageKey
from aiogram.types import InlineKeyboardMarkup

from bot.app import App
from bot.demo_tools import run_status_set
from bot.fsm.states import ApplicationForm
from bot.handlers import status as status_handlers
from bot.keyboards.status import StatusRefresh, application_ref
from bot.local_chat import LocalChat
from bot.local_session import Sent
from bot.pushes import StatusDesk, create_status_desk
from bot.webhook import EventsServer, sign, start_events_server
from services.clock import ALMATY, FakeClock
from services.outbox import Outbox, OutboxMessage
from services.sender import Delivered, DeliveryResult, Sender
from services.status import child_first_name
from services.store import StoredApplication
from services.voucher.models import StatusChange
from tests.conversation.seed import set_state
from tests.test_status import Family, child_iin, open_family

SECRET = "kezek-test-webhook-secret"
KAZAKH = set("әғқңөұүһіӘҒҚҢӨҰҮҺІ")


# --- fixtures and helpers -------------------------------------------------------------------------


@pytest.fixture
async def outbox(app: App, clock: FakeClock) -> AsyncIterator[Outbox]:
    opened = await Outbox.open(app.services.settings.database_path, clock)
    yield opened
    await opened.close()


@pytest.fixture
def desk(app: App, outbox: Outbox) -> StatusDesk:
    """The desk of this app, also where /status finds it (`status_desk` in the dispatcher)."""
    desk = create_status_desk(app.services, outbox)
    app.dp["status_desk"] = desk
    if not any(r.name == "status" for r in app.dp.sub_routers):
        # Until bot/handlers/__init__.py lists it: put the status router first, where the
        # commands router would be, so that /status is not taken for an unknown command.
        router = status_handlers.create_router()
        app.dp.include_router(router)
        app.dp.sub_routers.insert(0, app.dp.sub_routers.pop())
    return desk


@pytest.fixture
async def family(app: App) -> Family:
    return await open_family(app.services.voucher, app.services.store, user_id=1001)


@dataclass
class Row:
    chat_id: int
    kind: str
    text: str
    markup: dict[str, Any] | None
    dedup_key: str


async def outbox_rows(app: App) -> list[Row]:
    """Every row of the outbox table, oldest first."""
    async with (
        aiosqlite.connect(app.services.settings.database_path) as db,
        db.execute("SELECT chat_id, kind, text, markup, dedup_key FROM outbox ORDER BY id") as cur,
    ):
        rows = await cur.fetchall()
    return [Row(r[0], r[1], r[2], json.loads(r[3]) if r[3] else None, r[4]) for r in rows]


async def change(app: App, clock: FakeClock, app_id: str, status: str, **fields: object) -> None:
    clock.advance(minutes=1)
    await app.services.voucher.sandbox_set_status(
        app_id, StatusChange.model_validate({"status": status, **fields})
    )


async def new_rows(app: App, before: int) -> list[Row]:
    return (await outbox_rows(app))[before:]


async def deliver_all(app: App, outbox: Outbox, clock: FakeClock) -> int:
    """Run the real Sender until the outbox is empty, delivering into the local session."""

    async def deliver(message: OutboxMessage) -> DeliveryResult:
        markup = InlineKeyboardMarkup.model_validate(message.markup) if message.markup else None
        sent = await app.bot.send_message(message.chat_id, message.text, reply_markup=markup)
        return Delivered(sent.message_id)

    async def virtual_sleep(seconds: float) -> None:
        clock.advance(seconds=seconds)

    return await Sender(outbox, deliver, clock, sleep=virtual_sleep).drain()


def visible(sent: list[Sent]) -> list[Sent]:
    return [s for s in sent if s.visible]


def said(sent: Sent) -> str:
    """What a message says, without the sandbox banner every message of a sandbox run ends with."""
    text = sent.plain or ""
    assert "🧪" in text, "a run against the sandbox says so in every message"
    return text.rsplit("\n\n🧪", 1)[0]


# --- every status change, in both languages -----------------------------------------------

EXPECTED = {
    "kk": {
        "title": "№ {number} өтініш",
        "registered": "Кезектегі орны: <b>120</b>",
        "queue": "«Жалпы кезек» кезегінде",
        "moved": "бұрын 120 еді, енді <b>95</b>",
        "issued": "<b>14.09.2026 18:00</b> дейін (Алматы уақыты) растаңыз",
        "used": "Ваучер пайдаланылды",
        "rejected": "Себебі: Анықтама &lt;ескі&gt;",
        "cancelled": "Өтініш тоқтатылды",
        "expired": "ваучердің күші жойылды",
        "banner": "Демо-режим",
    },
    "ru": {
        "title": "Заявление № {number}",
        "registered": "Место в очереди: <b>120</b>",
        "queue": "в очереди «Общая очередь»",
        "moved": "было 120, теперь <b>95</b>",
        "issued": "до <b>14.09.2026 18:00</b> (время Алматы)",
        "used": "Ваучер использован",
        "rejected": "Причина: Справка &lt;старая&gt;",
        "cancelled": "Заявление отменено",
        "expired": "ваучер аннулирован",
        "banner": "Демо-режим",
    },
}


@pytest.mark.parametrize("locale", ["kk", "ru"])
async def test_every_status_change_reaches_the_parent_in_their_language(
    app: App, desk: StatusDesk, family: Family, clock: FakeClock, locale: str
) -> None:
    await app.services.store.set_locale(family.user_id, locale)
    expect = EXPECTED[locale]
    main = await family.submit(child_iin(3))
    await desk.poll()
    assert await outbox_rows(app) == []  # creation: the parent has the confirmation already

    async def pushed(**_: object) -> Row:
        before = len(await outbox_rows(app))
        await desk.poll()
        [row] = await new_rows(app, before)
        assert row.chat_id == family.user_id and row.kind == "status"
        assert row.dedup_key.startswith("status:")
        assert expect["banner"] in row.text  # a sandbox run says so in every message
        words = row.text.split("\n", 1)[1]  # the title holds the child's (Kazakh) name
        if locale == "ru":
            assert not KAZAKH & set(words)
        else:
            assert KAZAKH & set(words)
        return row

    def names(row: Row, app_: StoredApplication) -> None:
        assert expect["title"].format(number=app_.number) in row.text
        assert child_first_name(app_.summary) in row.text

    await change(app, clock, main.id, "registered", queue_position=120)
    row = await pushed()
    names(row, main)
    assert expect["registered"] in row.text and expect["queue"] in row.text

    await change(app, clock, main.id, "registered", queue_position=95)
    row = await pushed()
    names(row, main)
    assert expect["moved"] in row.text

    await change(app, clock, main.id, "voucher_issued", deadline="2026-09-14T18:00:00+05:00")
    row = await pushed()
    names(row, main)
    assert expect["issued"] in row.text

    await change(app, clock, main.id, "voucher_used")
    row = await pushed()
    assert expect["used"] in row.text

    rejected = await family.submit(child_iin(4))
    reason = {"kk": "Анықтама <ескі>", "ru": "Справка <старая>"}  # escaped, not markup
    await change(app, clock, rejected.id, "rejected", reason=reason)
    row = await pushed()
    names(row, rejected)
    assert expect["rejected"] in row.text

    cancelled = await family.submit(child_iin(5))
    await change(app, clock, cancelled.id, "cancelled")
    assert expect["cancelled"] in (await pushed()).text

    expired = await family.submit(child_iin(6))
    await change(app, clock, expired.id, "voucher_issued")
    await pushed()
    await change(app, clock, expired.id, "voucher_expired")
    assert expect["expired"] in (await pushed()).text


async def test_the_pushes_are_real_telegram_messages(
    app: App, desk: StatusDesk, family: Family, outbox: Outbox, chat: LocalChat, clock: FakeClock
) -> None:
    main = await family.submit(child_iin(3))
    await change(app, clock, main.id, "registered", queue_position=12)
    await desk.poll()
    assert await deliver_all(app, outbox, clock) == 1
    message = chat.last()
    assert message.parse_mode == "HTML"
    assert f"№ {main.number} өтініш" in (message.plain or "")
    assert "Кезектегі орны: 12" in (message.plain or "")


# --- the webhook ---------------------------------------------------------------------------------


@pytest.fixture
async def events(desk: StatusDesk) -> AsyncIterator[EventsServer]:
    server = await start_events_server("127.0.0.1", 0, secret=SECRET, on_item=desk.accept)
    yield server
    await server.stop()


async def post(server: EventsServer, body: bytes, signature: str | None) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-Signature"] = signature
    async with httpx.AsyncClient(base_url=server.url) as client:
        return await client.post("/voucher/events", content=body, headers=headers)


async def test_a_change_by_webhook_and_by_polling_is_pushed_once(
    app: App, desk: StatusDesk, family: Family, events: EventsServer, clock: FakeClock
) -> None:
    main = await family.submit(child_iin(3))
    await desk.poll()
    await change(app, clock, main.id, "registered", queue_position=44)
    item = (await app.services.voucher.list_changes()).items[-1]
    body = item.model_dump_json().encode()

    response = await post(events, body, sign(SECRET, body))
    assert response.status_code == 204
    rows = await outbox_rows(app)
    assert [r.dedup_key for r in rows] == [f"status:{item.id}:{item.cursor}"]
    stored = await app.services.store.get_application(main.id)
    assert stored is not None and stored.queue_position == 44

    await desk.poll()  # the same change from the feed
    assert (await post(events, body, sign(SECRET, body))).status_code == 204  # a service retry
    assert len(await outbox_rows(app)) == 1

    # And the other way round: first the feed, then the webhook.
    await change(app, clock, main.id, "registered", queue_position=40)
    await desk.poll()
    item = (await app.services.voucher.list_changes()).items[-1]
    body = item.model_dump_json().encode()
    assert (await post(events, body, sign(SECRET, body))).status_code == 204
    assert [r.dedup_key.rsplit(":", 1)[-1] for r in await outbox_rows(app)][-1] == item.cursor
    assert len(await outbox_rows(app)) == 2


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "",
        "sha256=" + "0" * 64,
        "sha1=abc",
        "sha256=zz",
        "signed",
    ],
)
async def test_a_bad_or_missing_signature_is_refused_and_nothing_stored(
    app: App,
    desk: StatusDesk,
    family: Family,
    events: EventsServer,
    clock: FakeClock,
    signature: str | None,
) -> None:
    main = await family.submit(child_iin(3))
    await change(app, clock, main.id, "registered", queue_position=9)
    item = (await app.services.voucher.list_changes()).items[-1]
    body = item.model_dump_json().encode()
    response = await post(events, body, signature)
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"
    assert await outbox_rows(app) == []
    stored = await app.services.store.get_application(main.id)
    assert stored is not None and stored.status == "submitted"
    # Signed with another secret, or a body changed after signing: refused as well.
    assert (await post(events, body, sign("another-secret", body))).status_code == 401
    assert (await post(events, body + b" ", sign(SECRET, body))).status_code == 401
    assert await outbox_rows(app) == []


async def test_a_signed_body_that_is_not_a_change_item(events: EventsServer, app: App) -> None:
    for body, status in [
        (b"not json", 400),
        (b'{"id": "x"}', 422),
        (b"[1, 2]", 422),
        (
            b'{"id":"a","number":"1","status":"teleported","queue_position":null,'
            b'"status_reason":null,"deadline":null,"changed_at":"2026-09-10T10:00:00+05:00",'
            b'"cursor":"c"}',
            422,
        ),
    ]:
        response = await post(events, body, sign(SECRET, body))
        assert response.status_code == status, body
    assert await outbox_rows(app) == []


async def test_a_signed_change_of_an_application_not_ours_is_ignored_safely(
    app: App, desk: StatusDesk, family: Family, events: EventsServer, clock: FakeClock
) -> None:
    theirs = await family.submit(child_iin(3), record=False)
    await change(app, clock, theirs.id, "registered", queue_position=1)
    item = (await app.services.voucher.list_changes()).items[-1]
    body = item.model_dump_json().encode()
    assert (await post(events, body, sign(SECRET, body))).status_code == 204
    await desk.poll()
    assert await outbox_rows(app) == []
    assert await app.services.store.get_application(theirs.id) is None


async def test_health_and_a_server_without_a_secret(desk: StatusDesk) -> None:
    server = await start_events_server("127.0.0.1", 0, secret=None, on_item=desk.accept)
    try:
        async with httpx.AsyncClient(base_url=server.url) as client:
            assert (await client.get("/healthz")).status_code == 200
            body = b"{}"
            response = await client.post(
                "/voucher/events", content=body, headers={"X-Signature": sign("", body)}
            )
            assert response.status_code in (404, 405)  # no route: unsigned pushes never land
    finally:
        await server.stop()


# --- /status ---------------------------------------------------------------------------------


async def test_status_lists_this_familys_applications_with_a_refresh_button(
    app: App, desk: StatusDesk, family: Family, chat: LocalChat, clock: FakeClock
) -> None:
    first = await family.submit(child_iin(3))
    second = await family.submit(child_iin(4))
    stranger = await family.submit(child_iin(5), user_id=7007)
    await change(app, clock, first.id, "registered", queue_position=31)
    await change(app, clock, second.id, "voucher_issued", deadline="2026-09-14T18:00:00+05:00")
    await desk.poll()

    reply = visible(await chat.send("/status"))
    assert said(reply[0]) == "Сізде 2 өтініш бар:"
    cards = reply[1:]
    assert len(cards) == 2
    texts = [c.plain or "" for c in cards]
    assert f"№ {first.number} өтініш" in texts[0]
    assert first.summary["child"] in texts[0]
    assert "Мәртебесі: кезекте" in texts[0] and "Кезектегі орны: 31" in texts[0]
    assert "Топ: " in texts[0] and "Кезек: Жалпы кезек" in texts[0]
    assert f"№ {second.number} өтініш" in texts[1]
    assert "Мәртебесі: ваучер берілді" in texts[1]
    assert "14.09.2026 18:00" in texts[1]
    assert all(stranger.number not in t for t in texts)
    assert [c.button_texts for c in cards] == [["🔄 Жаңарту"], ["🔄 Жаңарту"]]
    assert not any("Қадам" in t for t in texts)  # no step header on a card

    # The service moved the first one; the bot has not polled yet: refresh asks directly.
    await change(app, clock, first.id, "registered", queue_position=29)
    edited = visible(await chat.press("🔄 Жаңарту", message_id=cards[0].message_id))
    assert edited[-1].kind == "edit" and edited[-1].message_id == cards[0].message_id
    assert "Кезектегі орны: 29" in (edited[-1].plain or "")
    assert "Тексерілген уақыты:" in (edited[-1].plain or "")
    stored = await app.services.store.get_application(first.id)
    assert stored is not None and stored.queue_position == 29


async def test_a_refresh_button_for_someone_elses_application_is_outdated(
    app: App, desk: StatusDesk, family: Family, chat: LocalChat, chat_ru: LocalChat
) -> None:
    mine = await family.submit(child_iin(3))
    theirs = await family.submit(child_iin(4), user_id=chat_ru.user_id)
    cards = visible(await chat.send("/status"))
    forged = StatusRefresh(ref=application_ref(theirs.id)).pack()
    reply = visible(await chat.press_data(forged, message_id=cards[-1].message_id))
    assert [said(s) for s in reply] == ["Бұл батырма ескірген, ол енді ештеңені өзгертпейді."]
    garbage = StatusRefresh(ref="0000000000000000").pack()
    reply = visible(await chat.press_data(garbage, message_id=cards[-1].message_id))
    assert "ескірген" in (reply[0].plain or "")
    assert mine.number in (cards[-1].plain or "")


async def test_status_in_russian_with_no_applications_and_mid_draft(
    app: App, desk: StatusDesk, chat_ru: LocalChat
) -> None:
    await app.services.store.set_locale(chat_ru.user_id, "ru")
    reply = visible(await chat_ru.send("/status"))
    assert [said(s) for s in reply] == [
        "У вас пока нет отправленных заявлений. Чтобы подать заявление, нажмите /start."
    ]
    # In the middle of the form /status answers, then asks the current step again.
    await app.services.store.update_draft(chat_ru.user_id, step=ApplicationForm.phone.state)
    await set_state(app, chat_ru, ApplicationForm.phone.state)
    reply = visible(await chat_ru.send("/status"))
    assert reply[0].plain is not None and reply[0].plain.startswith("У вас пока нет")
    assert reply[-1].plain is not None and reply[-1].plain.startswith("Шаг 1/5")


async def test_status_failure_keeps_the_card(
    app: App, desk: StatusDesk, family: Family, chat: LocalChat, monkeypatch: pytest.MonkeyPatch
) -> None:
    await family.submit(child_iin(3))
    cards = visible(await chat.send("/status"))

    async def no_wait(delay: float) -> None:  # the client's retry backoff, not waited for
        return None

    monkeypatch.setattr(app.services.voucher, "_sleep", no_wait)
    await app.services.voucher.sandbox_set_faults(failure_rate=1.0)
    reply = visible(await chat.press("🔄 Жаңарту", message_id=cards[-1].message_id))
    await app.services.voucher.sandbox_set_faults(failure_rate=0.0)
    assert [s.kind for s in reply] == ["message"]
    assert "ваучер қызметі қазір жауап бермей тұр" in (reply[0].plain or "")


# --- reminders ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("locale", "at_48", "at_24"),
    [
        ("kk", "екі тәуліктен аз уақыт қалды", "соңғы тәулік қалды"),
        ("ru", "меньше двух суток", "последние сутки"),
    ],
    ids=["kk", "ru"],
)
async def test_deadline_reminders_fire_once_each(
    app: App,
    desk: StatusDesk,
    family: Family,
    clock: FakeClock,
    locale: str,
    at_48: str,
    at_24: str,
) -> None:
    await app.services.store.set_locale(family.user_id, locale)
    main = await family.submit(child_iin(3))
    await change(app, clock, main.id, "voucher_issued")  # the sandbox gives now + 72 h
    deadline = (clock.now() + timedelta(hours=72)).astimezone(ALMATY).strftime("%d.%m.%Y %H:%M")
    await desk.poll()
    base = len(await outbox_rows(app))
    texts: list[str] = []
    for _ in range(3 * 24 * 4):  # every 15 minutes for three days, past the deadline
        clock.advance(minutes=15)
        await desk.remind()
    rows = await new_rows(app, base)
    texts = [r.text for r in rows]
    assert [r.kind for r in rows] == ["deadline_reminder", "deadline_reminder"]
    assert at_48 in texts[0] and at_24 in texts[1]
    assert all(deadline in t and main.number in t for t in texts)


async def test_an_idle_draft_gets_a_reminder_whose_button_resumes_it(
    app: App, desk: StatusDesk, outbox: Outbox, chat: LocalChat, clock: FakeClock
) -> None:
    await app.services.store.set_locale(chat.user_id, "kk")
    await app.services.store.update_draft(
        chat.user_id, step=ApplicationForm.phone.state, rules_accepted=True
    )
    await set_state(app, chat, ApplicationForm.phone.state)

    clock.advance(hours=23)
    await desk.remind()
    assert await outbox_rows(app) == []
    clock.advance(hours=1, minutes=1)
    await desk.remind()
    [row] = await outbox_rows(app)
    assert row.kind == "draft_reminder" and row.chat_id == chat.user_id

    await deliver_all(app, outbox, clock)
    reminder = chat.last()
    assert "1/5" in (reminder.plain or "") and "Байланыс деректері" in (reminder.plain or "")
    assert reminder.button_texts == ["▶️ Өтінішті жалғастыру"]
    reply = visible(await chat.press("▶️ Өтінішті жалғастыру"))
    assert said(reply[0]) == "Тоқтаған жеріңізден жалғастырамыз."
    assert reply[-1].plain is not None and reply[-1].plain.startswith("Қадам 1/5")


async def test_no_draft_reminder_after_cancel_and_an_old_button_is_harmless(
    app: App, desk: StatusDesk, outbox: Outbox, chat: LocalChat, clock: FakeClock
) -> None:
    await app.services.store.set_locale(chat.user_id, "kk")
    await app.services.store.update_draft(
        chat.user_id, step=ApplicationForm.phone.state, rules_accepted=True
    )
    await set_state(app, chat, ApplicationForm.phone.state)
    clock.advance(hours=25)
    await desk.remind()
    await deliver_all(app, outbox, clock)
    reminder = chat.last()
    assert reminder.button_texts == ["▶️ Өтінішті жалғастыру"]

    await chat.send("/cancel")
    await chat.press("Иә, тоқтату")
    for _ in range(3):
        clock.advance(hours=25)
        await desk.remind()
    assert len(await outbox_rows(app)) == 1
    reply = visible(await chat.press("▶️ Өтінішті жалғастыру", message_id=reminder.message_id))
    assert [said(s) for s in reply] == [
        "Бұл өтініш жіберіліп қойған немесе тоқтатылған. Жаңа өтініш беру үшін /start басыңыз."
    ]
    assert await app.storage.get_state(_key(app, chat)) is None


def _key(app: App, chat: LocalChat) -> StorageKey:
    return StorageKey(bot_id=app.bot.id, chat_id=chat.chat_id, user_id=chat.user_id)


# --- the demo's staff command ------------------------------------------------------------------


async def test_the_demo_command_moves_an_application_and_pushes_at_once(
    app: App, desk: StatusDesk, family: Family, clock: FakeClock
) -> None:
    main = await family.submit(child_iin(3))
    voucher = app.services.voucher
    said = await run_status_set(voucher, f"{main.number} registered 15", poll=desk.poll)
    assert said == f"status_set: № {main.number}: registered, position 15"
    [row] = await outbox_rows(app)
    assert "Кезектегі орны: <b>15</b>" in row.text

    said = await run_status_set(
        voucher, f"{main.id} voucher_issued 20.09.2026 12:00", poll=desk.poll
    )
    assert said.endswith("deadline 20.09.2026 12:00")
    said = await run_status_set(voucher, f"{main.number} rejected Қате | Ошибка", poll=desk.poll)
    stored = await app.services.store.get_application(main.id)
    assert stored is not None and stored.status_reason == {"kk": "Қате", "ru": "Ошибка"}
    assert len(await outbox_rows(app)) == 3

    for bad in (
        "",
        f"{main.number}",
        f"{main.number} flying",
        "99999999 cancelled",
        f"{main.number} registered zero",
        f"{main.number} cancelled now",
    ):
        assert (await run_status_set(voucher, bad, poll=desk.poll)).startswith("status_set: ")
    assert len(await outbox_rows(app)) == 3
