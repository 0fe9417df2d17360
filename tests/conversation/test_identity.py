"""Step 2/5, parent and child, through the real Dispatcher, the sandbox over loopback and SQLite.

Every parent gets to `parent_iin` the way a real one does (language, rules, own contact, the
code from the ed24 app inbox); consents are answered through the sandbox as the parent's phone
would answer the 1414 SMS.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiogram.fsm.state import State
from aiogram.fsm.storage.base import StorageKey

from bot.app import App, open_app
from bot.config import Settings
from bot.fsm.states import ApplicationForm as S
from bot.keyboards.identity import ConsentAction, PersonAction, consent_ref
from bot.local_chat import LocalChat
from bot.local_session import LocalBotSession, Sent
from services.clock import FakeClock
from services.validation import iin_check_digit
from services.voucher.models import PreviewRequest
from services.voucher.sandbox import SandboxConfig
from services.voucher.sandbox.people import make_person
from tests.conversation.seed import PARENT_IIN, child_iin

HEADER = {"kk": "Қадам 2/5 — Ата-ана мен бала", "ru": "Шаг 2/5 — Родитель и ребёнок"}
ASK_PARENT = {"kk": "Өзіңіздің ЖСН-іңізді жазыңыз", "ru": "Напишите свой ИИН"}
ASK_CHILD = {"kk": "балаңыздың ЖСН-ін жазыңыз", "ru": "напишите ИИН ребёнка"}
SMS_COMING = {"kk": "1414 нөмірінен", "ru": "С номера 1414"}
PARENT_CARD = {"kk": "Деректеріңізді тексеріңіз", "ru": "Проверьте свои данные"}
CHILD_CARD = {"kk": "Баланың деректерін тексеріңіз", "ru": "Проверьте данные ребёнка"}
BUTTONS = {
    "kk": {
        "check": "📥 Деректерді сұрау",
        "nosms": "❓ SMS келмеді ме?",
        "again": "🔁 SMS-ті қайта сұрау",
        "back": "◀️ Артқа",
        "retry": "🔄 Қайталау",
        "ok": "✅ Дұрыс",
        "not_me": "🙅 Бұл мен емес, ЖСН-ді қайта енгізу",
        "reenter": "✏️ ЖСН-ді қайта енгізу",
    },
    "ru": {
        "check": "📥 Запросить данные",
        "nosms": "❓ Не пришло SMS?",
        "again": "🔁 Запросить SMS заново",
        "back": "◀️ Назад",
        "retry": "🔄 Повторить",
        "ok": "✅ Верно",
        "not_me": "🙅 Это не я, ввести ИИН заново",
        "reenter": "✏️ Ввести ИИН заново",
    },
}
LANGUAGE_BUTTON = {"kk": "Қазақша", "ru": "Русский"}
PARENT_MASKED = "••••••••1427"
PRETTY_PHONE = "+7 701 234 56 78"


def make_iin(born: date, male: bool, serial: int = 1) -> str:
    """A valid IIN for this birth date and sex."""
    century = {19: 3, 20: 5}[born.year // 100] + (0 if male else 1)
    for number in range(serial, serial + 100):
        first11 = f"{born:%y%m%d}{century}{number:04d}"
        check = iin_check_digit(first11)
        if check is not None:
            return first11 + str(check)
    raise AssertionError("no serial gives a check digit")


UNKNOWN_IIN = make_iin(date(1990, 4, 12), male=True, serial=7000)


@pytest.fixture
def sandbox_config(tmp_path: Path) -> SandboxConfig:
    """The sandbox of this module also knows of one IIN that the state database does not."""
    return SandboxConfig(
        token="sandbox-token", db_path=tmp_path / "sandbox.sqlite3", unknown_iins={UNKNOWN_IIN}
    )


# --- helpers ----------------------------------------------------------------------------------


def key_of(app: App, chat: LocalChat) -> StorageKey:
    return StorageKey(bot_id=app.bot.id, chat_id=chat.chat_id, user_id=chat.user_id)


async def state_of(app: App, chat: LocalChat) -> str | None:
    return await app.storage.get_state(key_of(app, chat))


async def draft_of(app: App, chat: LocalChat) -> dict[str, Any]:
    return await app.services.store.get_draft(chat.user_id)


async def sms_1414(app: App, chat: LocalChat) -> list[str]:
    """Consent ids of every 1414 SMS the parent's phone received, oldest first."""
    inbox = await app.services.voucher.sandbox_inbox(chat.phone)
    return [m.consent_id for m in inbox if m.channel == "sms_1414" and m.consent_id]


def visible(sent: list[Sent]) -> list[Sent]:
    return [s for s in sent if s.visible]


def texts(sent: list[Sent]) -> str:
    return "\n".join(s.plain or "" for s in visible(sent))


def with_header(sent: Sent, locale: str) -> bool:
    return (sent.plain or "").startswith(HEADER[locale])


async def to_parent_iin(app: App, chat: LocalChat, locale: str = "kk") -> list[Sent]:
    """Language, rules, own contact, the code from the ed24 app: the parent is at `parent_iin`."""
    await chat.send("/start")
    await chat.press(LANGUAGE_BUTTON[locale])
    for rule in range(3):
        await chat.press(rule)  # the three ⬜ rules, top to bottom
    await chat.press(3)  # join the queue
    assert await state_of(app, chat) == S.phone.state
    await chat.share_contact(chat.phone)
    inbox = await app.services.voucher.sandbox_inbox(chat.phone)
    code = next(m.otp_code for m in reversed(inbox) if m.otp_code)
    sent = await chat.send(code)
    assert await state_of(app, chat) == S.parent_iin.state
    assert ASK_PARENT[locale] in sent[-1].plain
    assert with_header(sent[-1], locale)
    return sent


async def to_parent_consent(app: App, chat: LocalChat, locale: str = "kk") -> str:
    """At `parent_consent` for the parent's IIN; returns the consent id 1414 asked about."""
    await to_parent_iin(app, chat, locale)
    await chat.send(PARENT_IIN)
    assert await state_of(app, chat) == S.parent_consent.state
    return (await sms_1414(app, chat))[-1]


async def to_parent_confirm(app: App, chat: LocalChat, locale: str = "kk") -> Sent:
    """Consent answered yes, the watcher fetched the data: the parent's card."""
    consent_id = await to_parent_consent(app, chat, locale)
    await app.services.voucher.sandbox_answer_consent(consent_id, "yes")
    card = await chat.wait_for(PARENT_CARD[locale])
    assert await state_of(app, chat) == S.parent_confirm.state
    return card


async def to_child_iin(app: App, chat: LocalChat, locale: str = "kk") -> None:
    await to_parent_confirm(app, chat, locale)
    sent = await chat.press(BUTTONS[locale]["ok"])
    assert await state_of(app, chat) == S.child_iin.state
    assert ASK_CHILD[locale] in sent[-1].plain


def watcher_task(user_id: int) -> asyncio.Task[Any]:
    """The running watcher task of this user, found by its name."""
    tasks = [t for t in asyncio.all_tasks() if t.get_name() == f"consent-watch-{user_id}"]
    assert len(tasks) == 1, tasks
    return tasks[0]


async def until(condition: Callable[[], bool], rounds: int = 500) -> None:
    """Let other tasks run until `condition()` holds (a bounded loop, not a timed wait)."""
    for _ in range(rounds):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


async def finish_the_rest(app: App, chat: LocalChat) -> dict[str, Any]:
    """Steps 3 and 4 answered as their own steps save them: the draft the review shows."""
    voucher = app.services.voucher
    draft = await draft_of(app, chat)
    born = date.fromisoformat(draft["child"]["birth_date"])
    age = 2026 - born.year - ((9, 1) < (born.month, born.day))  # on 1 September 2026
    page = await voucher.list_providers(per_page=100)
    for provider in page.items:
        groups = [
            g for g in await voucher.list_groups(provider.id) if g.age_min <= age <= g.age_max
        ]
        if groups:
            break
    else:
        raise AssertionError("no group for the child")
    order = (await voucher.list_state_order_types())[0].code
    preview = await voucher.preview_queue(
        draft["session"],
        PreviewRequest(
            child_iin=draft["child"]["iin"],
            queue_type="general",
            state_order_type=order,
            group_id=groups[0].id,
        ),
    )
    return await app.services.store.update_draft(
        chat.user_id,
        queue_type="general",
        state_order_type=order,
        has_benefit=False,
        documents={},
        provider=provider.model_dump(mode="json"),
        group=groups[0].model_dump(mode="json"),
        preview=preview.model_dump(mode="json"),
        notification={"channel": "telegram", "language": "kk"},
        editing=True,
    )


def child_with_temporary(address: bool, born: date = date(2016, 3, 15)) -> str:
    """A child IIN whose made-up state data has (or lacks) a temporary address."""
    for serial in range(1, 4000, 7):
        iin = make_iin(born, male=True, serial=serial)
        person = make_person(iin, date(2026, 9, 10))
        if (person.addresses.temporary is not None) is address and person.middle_name:
            return iin
    raise AssertionError("no such child")


# --- the parent's IIN -------------------------------------------------------------------------

IIN_ERRORS = {
    # typed, the words of the answer in kk and ru
    "87100840142": ("12 цифрдан тұрады, ал сіз 11 цифр", "а вы ввели 11 цифр"),
    "8710084014271": ("сіз 13 цифр", "вы ввели 13 цифр"),
    "8710O8401427": ("тек 0–9 цифрлары", "только цифры 0–9"),
    "８７１００８４０１４２７": ("тек 0–9 цифрлары", "только цифры 0–9"),
    "８７１００８４０１４２７"[:6] + "401427": ("тек 0–9 цифрлары", "только цифры 0–9"),
    "871308401427": ("туған күн (ЖЖААКК)", "дата рождения (ГГММДД)"),
    "871008001427": ("7-цифры", "7-я цифра ИИН"),
    "871008701427": ("7-цифры", "7-я цифра ИИН"),
    "871008401428": ("бақылау цифры", "контрольная цифра"),
}


@pytest.mark.parametrize("locale", ["kk", "ru"])
async def test_each_iin_mistake_has_its_own_message_and_no_call_is_made(
    app: App, chat: LocalChat, chat_ru: LocalChat, locale: str
) -> None:
    person = chat if locale == "kk" else chat_ru
    await to_parent_iin(app, person, locale)
    for typed, words in IIN_ERRORS.items():
        sent = visible(await person.send(typed))
        assert len(sent) == 1, typed
        assert words[0 if locale == "kk" else 1] in sent[0].plain, (typed, sent[0].plain)
        assert with_header(sent[0], locale)
        assert sent[0].button_texts == [BUTTONS[locale]["back"]]
        assert await state_of(app, person) == S.parent_iin.state
    assert await sms_1414(app, person) == []  # nothing reached the voucher service


async def test_spaces_typed_in_the_iin_are_ignored(app: App, chat: LocalChat) -> None:
    await to_parent_iin(app, chat)
    sent = visible(await chat.send(" 8710 0840 1427 "))
    assert await state_of(app, chat) == S.parent_consent.state
    assert PARENT_MASKED in sent[-1].plain
    assert len(await sms_1414(app, chat)) == 1


async def test_a_sticker_at_the_iin_step_asks_again(app: App, chat: LocalChat) -> None:
    await to_parent_iin(app, chat)
    sent = visible(await chat.send_sticker())
    assert "12 цифр етіп жазыңыз" in sent[0].plain
    assert ASK_PARENT["kk"] in sent[-1].plain
    assert await state_of(app, chat) == S.parent_iin.state


# --- the consent ------------------------------------------------------------------------------


@pytest.mark.parametrize("locale", ["kk", "ru"])
async def test_the_consent_message_says_an_sms_is_coming_and_offers_its_buttons(
    app: App, chat: LocalChat, chat_ru: LocalChat, locale: str
) -> None:
    person = chat if locale == "kk" else chat_ru
    await to_parent_iin(app, person, locale)
    sent = visible(await person.send(PARENT_IIN))
    message = sent[-1]
    assert with_header(message, locale)
    assert SMS_COMING[locale] in message.plain
    assert ("«Иә»" if locale == "kk" else "«Да»") in message.plain
    assert PRETTY_PHONE in message.plain and PARENT_MASKED in message.plain
    assert PARENT_IIN not in message.plain
    buttons = BUTTONS[locale]
    assert message.button_texts == [buttons["check"], buttons["nosms"], buttons["back"]]
    # What the sandbox received: one consent for this IIN, pending, on the parent's phone.
    consent_ids = await sms_1414(app, person)
    assert len(consent_ids) == 1
    session = (await draft_of(app, person))["session"]
    consent = await app.services.voucher.get_consent(session, consent_ids[0])
    assert (consent.iin, consent.status) == (PARENT_IIN, "pending")


async def test_request_data_before_and_after_the_answer(app: App, chat: LocalChat) -> None:
    consent_id = await to_parent_consent(app, chat)
    # As after a restart: no background task, the button alone does the work.
    app.services.background.cancel(chat.user_id)
    sent = visible(await chat.press(BUTTONS["kk"]["check"]))
    assert "Рұқсат әлі келген жоқ" in sent[-1].plain
    assert BUTTONS["kk"]["check"] in sent[-1].button_texts
    assert await state_of(app, chat) == S.parent_consent.state

    await app.services.voucher.sandbox_answer_consent(consent_id, "yes")
    sent = visible(await chat.press(BUTTONS["kk"]["check"]))
    assert "Рұқсат алынды ✅" in texts(sent)
    card = sent[-1]
    session = (await draft_of(app, chat))["session"]
    expected = await app.services.voucher.get_person(session, consent_id)
    assert with_header(card, "kk") and PARENT_CARD["kk"] in card.plain
    assert f"Тегі: {expected.last_name}" in card.plain
    assert f"Аты: {expected.first_name}" in card.plain
    assert f"Әкесінің аты: {expected.middle_name or 'көрсетілмеген'}" in card.plain
    assert "Туған күні: 08.10.1987" in card.plain
    assert "Жынысы: әйел" in card.plain
    assert card.button_texts == [BUTTONS["kk"]["ok"], BUTTONS["kk"]["not_me"]]
    assert await state_of(app, chat) == S.parent_confirm.state
    draft = await draft_of(app, chat)
    assert draft["parent"] == expected.model_dump(mode="json")
    assert draft["parent_consent_id"] == consent_id
    assert draft["parent_consent_session"] == draft["session"]


@contextmanager
def drafts_refused_at(settings: Settings, state: State) -> Iterator[None]:
    """Every write of a draft that records `state` as its step fails, as a full disk would."""
    with sqlite3.connect(settings.database_path) as db:
        db.execute(
            "CREATE TRIGGER refuse_step BEFORE UPDATE ON drafts"
            f" WHEN NEW.step = '{state.state}' BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
    try:
        yield
    finally:
        with sqlite3.connect(settings.database_path) as db:
            db.execute("DROP TRIGGER refuse_step")


async def test_consent_received_is_said_only_once_the_card_step_is_saved(
    app: App, chat: LocalChat, settings: Settings
) -> None:
    """The person's data and the move to the card are one commit, before "Consent received"."""
    consent_id = await to_parent_consent(app, chat)
    app.services.background.cancel(chat.user_id)  # the button alone does the work
    await app.services.voucher.sandbox_answer_consent(consent_id, "yes")
    with drafts_refused_at(settings, S.parent_confirm):
        sent = visible(await chat.press(BUTTONS["kk"]["check"]))
    assert "Рұқсат алынды" not in texts(sent)  # the old order said it, then failed
    assert "Кешіріңіз, бірдеңе дұрыс болмады" in sent[-1].plain
    assert await state_of(app, chat) == S.parent_consent.state
    assert (await app.storage.get_data(key_of(app, chat)))["consent_id"] == consent_id
    assert "parent" not in await draft_of(app, chat)

    sent = visible(await chat.press(BUTTONS["kk"]["check"]))
    assert "Рұқсат алынды ✅" in texts(sent)
    assert PARENT_CARD["kk"] in sent[-1].plain
    assert await state_of(app, chat) == S.parent_confirm.state


async def test_a_consent_asked_for_is_remembered_with_its_step_or_not_at_all(
    app: App, chat: LocalChat, settings: Settings
) -> None:
    """The consent's id and the move to the consent step are one commit."""
    await to_parent_iin(app, chat)
    with drafts_refused_at(settings, S.parent_consent):
        sent = visible(await chat.send(PARENT_IIN))
    assert "Кешіріңіз, бірдеңе дұрыс болмады" in sent[-1].plain
    assert await state_of(app, chat) == S.parent_iin.state
    # The old order kept the consent in the FSM data of a step that did not move.
    assert "consent_id" not in await app.storage.get_data(key_of(app, chat))

    sent = visible(await chat.send(PARENT_IIN))
    assert SMS_COMING["kk"] in texts(sent)
    assert await state_of(app, chat) == S.parent_consent.state
    data = await app.storage.get_data(key_of(app, chat))
    assert data["consent_id"] == (await sms_1414(app, chat))[-1]


async def test_the_watcher_moves_on_as_soon_as_consent_is_granted(
    app: App, chat: LocalChat
) -> None:
    consent_id = await to_parent_consent(app, chat)
    task = watcher_task(chat.user_id)
    await app.services.voucher.sandbox_answer_consent(consent_id, "yes")
    granted = await chat.wait_for("Рұқсат алынды ✅")
    card = await chat.wait_for(PARENT_CARD["kk"])
    assert granted.message_id < card.message_id
    assert with_header(card, "kk") and "Туған күні: 08.10.1987" in card.plain
    assert await state_of(app, chat) == S.parent_confirm.state
    assert (await draft_of(app, chat))["parent_consent_id"] == consent_id
    await until(task.done)
    assert not task.cancelled()  # it ended by itself, having done its work
    assert chat.user_id not in app.services.background.watched


async def test_a_refusal_is_explained_and_asking_again_sends_a_new_sms(
    app: App, chat: LocalChat
) -> None:
    first = await to_parent_consent(app, chat)
    await app.services.voucher.sandbox_answer_consent(first, "no")
    refused = await chat.wait_for("рұқсат бермедіңіз")
    assert with_header(refused, "kk")
    assert refused.button_texts == [BUTTONS["kk"]["again"], BUTTONS["kk"]["back"]]
    assert await state_of(app, chat) == S.parent_consent.state
    # /help re-asks the step: it repeats the refusal, it does not send another SMS.
    sent = visible(await chat.send("/help"))
    assert "рұқсат бермедіңіз" in sent[-1].plain
    assert await sms_1414(app, chat) == [first]
    # Staff count the refusal once, however often the parent looks at it.
    now = app.services.clock.now()
    events = await app.services.store.count_events(now - timedelta(days=1), now + timedelta(days=1))
    assert events == {"consent_denied": 1}

    sent = visible(await chat.press(BUTTONS["kk"]["again"]))
    consent_ids = await sms_1414(app, chat)
    assert len(consent_ids) == 2 and consent_ids[0] == first
    assert SMS_COMING["kk"] in sent[-1].plain
    await app.services.voucher.sandbox_answer_consent(consent_ids[1], "yes")
    await chat.wait_for(PARENT_CARD["kk"])
    assert (await draft_of(app, chat))["parent_consent_id"] == consent_ids[1]


async def test_an_expired_sms_is_said_and_can_be_asked_again(
    app: App, chat: LocalChat, clock: FakeClock
) -> None:
    first = await to_parent_consent(app, chat)
    clock.advance(601)  # the 1414 SMS is valid for 600 s
    expired = await chat.wait_for("мерзімі өтіп кетті")
    assert with_header(expired, "kk")
    assert expired.button_texts == [BUTTONS["kk"]["again"], BUTTONS["kk"]["back"]]
    session = (await draft_of(app, chat))["session"]
    assert (await app.services.voucher.get_consent(session, first)).status == "expired"

    await chat.press(BUTTONS["kk"]["again"])
    consent_ids = await sms_1414(app, chat)
    assert len(consent_ids) == 2
    await app.services.voucher.sandbox_answer_consent(consent_ids[1], "yes")
    await chat.wait_for(PARENT_CARD["kk"])
    assert await state_of(app, chat) == S.parent_confirm.state


async def test_no_sms_explains_and_a_new_sms_waits_a_minute(
    app: App, chat_ru: LocalChat, clock: FakeClock
) -> None:
    chat = chat_ru
    await to_parent_consent(app, chat, "ru")
    sent = visible(await chat.press(BUTTONS["ru"]["nosms"]))
    help_text = sent[-1].plain
    assert with_header(sent[-1], "ru")
    for words in ("привязанный к eGov", "роуминге", PRETTY_PHONE, "подождите минуту"):
        assert words in help_text
    buttons = BUTTONS["ru"]
    assert sent[-1].button_texts == [buttons["check"], buttons["again"], buttons["back"]]

    sent = visible(await chat.press(buttons["again"]))
    assert "Новое SMS можно запросить с 10:01" in sent[-1].plain
    assert len(await sms_1414(app, chat)) == 1
    clock.advance(61)
    sent = visible(await chat.press(buttons["again"]))
    assert SMS_COMING["ru"] in sent[-1].plain
    assert len(await sms_1414(app, chat)) == 2


async def test_help_repeats_the_stored_consent_without_a_new_sms(app: App, chat: LocalChat) -> None:
    first = await to_parent_consent(app, chat)
    sent = visible(await chat.send("/help"))
    assert "1414-тен келген SMS-ке «Иә»" in sent[0].plain
    assert SMS_COMING["kk"] in sent[-1].plain
    assert await sms_1414(app, chat) == [first]
    assert app.services.background.is_watching(chat.user_id, first)


async def test_typing_yes_in_the_chat_points_at_the_sms(app: App, chat: LocalChat) -> None:
    first = await to_parent_consent(app, chat)
    sent = visible(await chat.send("Иә"))
    assert "SMS-ке жауап ретінде жіберіңіз" in sent[0].plain
    assert SMS_COMING["kk"] in sent[-1].plain
    assert await sms_1414(app, chat) == [first]
    assert await state_of(app, chat) == S.parent_consent.state


async def test_a_forged_or_stale_button_changes_nothing(app: App, chat: LocalChat) -> None:
    first = await to_parent_consent(app, chat)
    message_id = chat.last().message_id
    assert message_id is not None
    forged = ConsentAction(action="again", ref=consent_ref("cns_someone_else")).pack()
    sent = visible(await chat.press_data(forged, message_id=message_id))
    assert "Бұл батырма ескірген" in sent[0].plain
    assert await sms_1414(app, chat) == [first]  # no SMS for a forged button
    sent = visible(await chat.press_data("consent:nonsense", message_id=message_id))
    assert "Бұл батырма ескірген" in sent[0].plain
    assert await state_of(app, chat) == S.parent_consent.state

    # A card's button pressed after the parent moved on to the child.
    await app.services.voucher.sandbox_answer_consent(first, "yes")
    card = await chat.wait_for(PARENT_CARD["kk"])
    await chat.press(BUTTONS["kk"]["ok"])
    assert card.message_id is not None
    stale = PersonAction(action="reenter").pack()
    sent = visible(await chat.press_data(stale, message_id=card.message_id))
    assert "Бұл батырма ескірген" in sent[0].plain
    assert await state_of(app, chat) == S.child_iin.state


async def test_the_service_down_on_post_consents_keeps_the_step_with_retry(
    app: App, chat: LocalChat
) -> None:
    await to_parent_iin(app, chat)
    await app.services.voucher.sandbox_set_faults(failure_rate=1.0)
    sent = visible(await chat.send(PARENT_IIN))
    assert "Ваучер қызметі қазір жауап бермей тұр" in sent[-1].plain
    assert sent[-1].button_texts == [BUTTONS["kk"]["retry"], BUTTONS["kk"]["back"]]
    assert await state_of(app, chat) == S.parent_iin.state
    assert await sms_1414(app, chat) == []
    await app.services.voucher.sandbox_set_faults(failure_rate=0.0)
    sent = visible(await chat.press(BUTTONS["kk"]["retry"]))
    assert ASK_PARENT["kk"] in sent[-1].plain  # the same step, asked again
    assert await state_of(app, chat) == S.parent_iin.state
    await chat.send(PARENT_IIN)
    assert await state_of(app, chat) == S.parent_consent.state


async def test_a_person_unknown_to_the_state_database(app: App, chat_ru: LocalChat) -> None:
    await to_parent_iin(app, chat_ru, "ru")
    sent = visible(await chat_ru.send(UNKNOWN_IIN))
    assert "нет человека с этим ИИН" in sent[-1].plain
    assert with_header(sent[-1], "ru")
    assert await state_of(app, chat_ru) == S.parent_iin.state
    assert await sms_1414(app, chat_ru) == []


# --- the parent's card ------------------------------------------------------------------------


async def test_not_me_goes_back_and_the_same_iin_needs_no_new_sms(
    app: App, chat: LocalChat
) -> None:
    await to_parent_confirm(app, chat)
    sent = visible(await chat.press(BUTTONS["kk"]["not_me"]))
    assert ASK_PARENT["kk"] in sent[-1].plain
    assert await state_of(app, chat) == S.parent_iin.state
    # The same IIN within the same session: its consent stands, the card comes straight back.
    sent = visible(await chat.send(PARENT_IIN))
    assert PARENT_CARD["kk"] in sent[-1].plain
    assert len(await sms_1414(app, chat)) == 1
    assert await state_of(app, chat) == S.parent_confirm.state


# --- the child --------------------------------------------------------------------------------


async def test_back_from_the_child_iin_shows_the_parent_card(app: App, chat: LocalChat) -> None:
    await to_child_iin(app, chat)
    sent = visible(await chat.press(BUTTONS["kk"]["back"]))
    assert PARENT_CARD["kk"] in sent[-1].plain
    assert await state_of(app, chat) == S.parent_confirm.state


async def test_child_iins_that_cannot_be_a_childs(
    app: App, chat: LocalChat, clock: FakeClock
) -> None:
    # 20:30 UTC on 9 September is already 10 September in Almaty: ages count from there.
    clock.set(datetime(2026, 9, 9, 20, 30, tzinfo=UTC))
    await to_child_iin(app, chat)
    cases = {
        PARENT_IIN: "Бұл — сіздің өз ЖСН-іңіз",
        child_iin(year=26, month=9, day=11): "11.09.2026, ол күн әлі келген жоқ",
        # 18 today in Almaty (still 17 by the UTC date): no longer a child.
        child_iin(year=8, month=9, day=10): "10.09.2008 туған, оған 18 жас толған",
        child_iin(year=1, month=2, day=3): "03.02.2001 туған, оған 18 жас толған",
    }
    for typed, words in cases.items():
        sent = visible(await chat.send(typed))
        assert len(sent) == 1 and words in sent[0].plain, (typed, sent[0].plain)
        assert with_header(sent[0], "kk")
        assert await state_of(app, chat) == S.child_iin.state
    assert len(await sms_1414(app, chat)) == 1  # only the parent's
    # One day short of 18 is still a child.
    await chat.send(child_iin(year=8, month=9, day=11))
    assert await state_of(app, chat) == S.child_consent.state


async def test_the_child_card_masks_the_certificate_and_shows_addresses(
    app: App, chat: LocalChat
) -> None:
    await to_child_iin(app, chat)
    iin = child_with_temporary(address=False)
    sent = visible(await chat.send(iin))
    assert "балаңыздың ЖСН-і" in sent[-1].plain and "бөлек SMS" in sent[-1].plain
    consent_ids = await sms_1414(app, chat)
    assert len(consent_ids) == 2  # a separate SMS for the child's IIN
    await app.services.voucher.sandbox_answer_consent(consent_ids[1], "yes")
    card = await chat.wait_for(CHILD_CARD["kk"])
    assert with_header(card, "kk")
    session = (await draft_of(app, chat))["session"]
    child = await app.services.voucher.get_person(session, consent_ids[1])
    assert child.birth_certificate is not None
    first, second, last = child.birth_certificate.number.split("-")
    assert f"Туу туралы куәліктің нөмірі: {first}-{second}-***{last}" in card.plain
    assert child.birth_certificate.number not in card.plain
    issued = child.birth_certificate.issued_on.strftime("%d.%m.%Y")
    assert f"Куәліктің берілген күні: {issued}" in card.plain
    assert f"Тұрақты тіркелген мекенжайы: {child.addresses.permanent}" in card.plain
    assert "Уақытша тіркелген мекенжайы: көрсетілмеген" in card.plain
    assert "Туған күні: 15.03.2016" in card.plain and "Жынысы: ер" in card.plain
    assert card.button_texts == [BUTTONS["kk"]["ok"], BUTTONS["kk"]["reenter"]]

    # Re-enter: another child, this one with a temporary address too.
    await chat.press(BUTTONS["kk"]["reenter"])
    assert await state_of(app, chat) == S.child_iin.state
    other = child_with_temporary(address=True, born=date(2019, 6, 2))
    await chat.send(other)
    consent_ids = await sms_1414(app, chat)
    await app.services.voucher.sandbox_answer_consent(consent_ids[-1], "yes")
    card = await chat.wait_for(CHILD_CARD["kk"])
    other_child = await app.services.voucher.get_person(session, consent_ids[-1])
    assert f"Уақытша тіркелген мекенжайы: {other_child.addresses.temporary}" in card.plain
    assert "Туған күні: 02.06.2019" in card.plain


async def test_the_whole_step_ends_at_queue_type_with_both_persons(
    app: App, chat_ru: LocalChat
) -> None:
    chat = chat_ru
    await to_child_iin(app, chat, "ru")
    iin = child_iin(year=17, month=5, day=20, century_sex=6)
    await chat.send(iin)
    consent_id = (await sms_1414(app, chat))[-1]
    await app.services.voucher.sandbox_answer_consent(consent_id, "yes")
    card = await chat.wait_for(CHILD_CARD["ru"])
    assert "Пол: женский" in card.plain and "Дата рождения: 20.05.2017" in card.plain
    assert re.search(r"Номер свидетельства о рождении: \d\d-\d{3}-\*\*\*\d{7}", card.plain)
    await chat.press(BUTTONS["ru"]["ok"])
    assert await state_of(app, chat) == S.queue_type.state
    draft = await draft_of(app, chat)
    assert draft["parent"]["iin"] == PARENT_IIN
    assert draft["child"]["iin"] == iin
    assert draft["child_consent_id"] == consent_id
    assert draft["parent_consent_session"] == draft["child_consent_session"] == draft["session"]
    assert draft["parent_consent_id"] != consent_id


async def test_editing_the_child_keeps_the_same_child_and_returns_to_review(
    app: App, chat: LocalChat
) -> None:
    await to_child_iin(app, chat)
    iin = child_iin()
    await chat.send(iin)
    await app.services.voucher.sandbox_answer_consent((await sms_1414(app, chat))[-1], "yes")
    await chat.wait_for(CHILD_CARD["kk"])
    await chat.press(BUTTONS["kk"]["ok"])
    before = await finish_the_rest(app, chat)
    # What the review's *Edit child* does: mark the draft as editing, go to the child's IIN.
    await app.storage.set_state(key_of(app, chat), S.child_iin.state)
    sent = visible(await chat.send(iin))
    assert CHILD_CARD["kk"] in sent[-1].plain  # same IIN, same session: no new SMS
    assert len(await sms_1414(app, chat)) == 2
    sent = visible(await chat.press(BUTTONS["kk"]["ok"]))
    assert await state_of(app, chat) == S.review.state
    assert sent[-1].plain.startswith("Қадам 5/5")
    after = await draft_of(app, chat)
    assert after["group"] == before["group"] and after["preview"] == before["preview"]


async def test_editing_to_another_child_drops_the_group_and_goes_to_queue_type(
    app: App, chat: LocalChat
) -> None:
    await to_child_iin(app, chat)
    await chat.send(child_iin())
    await app.services.voucher.sandbox_answer_consent((await sms_1414(app, chat))[-1], "yes")
    await chat.wait_for(CHILD_CARD["kk"])
    await chat.press(BUTTONS["kk"]["ok"])
    await finish_the_rest(app, chat)
    await app.storage.set_state(key_of(app, chat), S.child_iin.state)
    other = child_iin(year=18, month=1, day=2)
    await chat.send(other)
    await app.services.voucher.sandbox_answer_consent((await sms_1414(app, chat))[-1], "yes")
    await chat.wait_for(CHILD_CARD["kk"])
    await chat.press(BUTTONS["kk"]["ok"])
    assert await state_of(app, chat) == S.queue_type.state
    draft = await draft_of(app, chat)
    assert draft["child"]["iin"] == other
    assert "group" not in draft and "preview" not in draft
    assert draft["provider"]  # the provider may still fit; only the group depends on age


async def test_editing_the_parent_returns_to_review_when_the_child_holds(
    app: App, chat: LocalChat
) -> None:
    await to_child_iin(app, chat)
    await chat.send(child_iin())
    await app.services.voucher.sandbox_answer_consent((await sms_1414(app, chat))[-1], "yes")
    await chat.wait_for(CHILD_CARD["kk"])
    await chat.press(BUTTONS["kk"]["ok"])
    await finish_the_rest(app, chat)
    await app.storage.set_state(key_of(app, chat), S.parent_iin.state)
    sent = visible(await chat.send(PARENT_IIN))
    assert PARENT_CARD["kk"] in sent[-1].plain
    await chat.press(BUTTONS["kk"]["ok"])
    assert await state_of(app, chat) == S.review.state
    assert len(await sms_1414(app, chat)) == 2  # no new SMS for either


# --- the watcher's life -----------------------------------------------------------------------


async def test_the_watcher_stops_on_cancel(app: App, chat: LocalChat) -> None:
    consent_id = await to_parent_consent(app, chat)
    task = watcher_task(chat.user_id)
    assert chat.user_id in app.services.background.watched
    await chat.send("/cancel")
    sent = visible(await chat.press("Иә, тоқтату"))
    assert "Өтініш жобасы өшірілді" in sent[-1].plain
    await until(task.done)
    assert task.cancelled()
    assert chat.user_id not in app.services.background.watched
    seen = len(chat.history())
    await app.services.voucher.sandbox_answer_consent(consent_id, "yes")
    # Nothing is left that could answer the grant.
    assert [t for t in asyncio.all_tasks() if t.get_name().startswith("consent-watch-")] == []
    assert len(chat.history()) == seen
    assert await state_of(app, chat) is None


async def test_back_from_the_consent_stops_the_watcher(app: App, chat: LocalChat) -> None:
    await to_parent_consent(app, chat)
    task = watcher_task(chat.user_id)
    sent = visible(await chat.press(BUTTONS["kk"]["back"]))
    assert ASK_PARENT["kk"] in sent[-1].plain
    await until(task.done)
    assert chat.user_id not in app.services.background.watched


@pytest.fixture
async def second_run(
    settings: Settings, clock: FakeClock, sandbox_config: SandboxConfig
) -> AsyncIterator[Any]:
    """Opens the bot a second time on the same files: a restart of the process."""
    opened: list[Any] = []

    async def start() -> App:
        manager = open_app(
            settings, clock=clock, session=LocalBotSession(), sandbox_config=sandbox_config
        )
        opened.append(manager)
        return await manager.__aenter__()

    yield start
    for manager in reversed(opened):
        await manager.__aexit__(None, None, None)


async def test_after_a_restart_the_parent_continues_the_consent(
    app: App, chat: LocalChat, second_run: Any
) -> None:
    consent_id = await to_parent_consent(app, chat)
    await app.services.background.stop()  # the old process is gone
    restarted: App = await second_run()
    again = LocalChat(restarted.dp, restarted.bot, user_id=chat.user_id, language_code="kk")
    sent = visible(await again.send("/start"))
    assert SMS_COMING["kk"] in sent[-1].plain  # the stored consent, shown again
    assert len(await sms_1414(restarted, again)) == 1  # …without a new SMS
    assert restarted.services.background.is_watching(again.user_id, consent_id)
    restarted.services.background.cancel(again.user_id)
    await restarted.services.voucher.sandbox_answer_consent(consent_id, "yes")
    sent = visible(await again.press(BUTTONS["kk"]["check"]))
    assert PARENT_CARD["kk"] in sent[-1].plain
    assert await state_of(restarted, again) == S.parent_confirm.state
