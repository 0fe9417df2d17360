"""Abuse through the real bot: the bot's own OTP limits, hostile text, the last-resort errors
handler. The flood limit has its own module (it needs its own settings)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiogram.fsm.storage.base import StorageKey
from aiogram.types import Update

from bot.app import App
from bot.fsm.states import ApplicationForm
from bot.local_chat import LocalChat
from bot.local_session import Sent
from services.clock import FakeClock
from tests.conversation.seed import PARENT_IIN, child_iin, seed_identity, set_state
from tests.conversation.seed import PHONE as PHONE_SEEDED

S = ApplicationForm
PHONE = "+77012223344"
PRETTY = "+7 701 222 33 44"


def visible(sent: list[Sent]) -> list[Sent]:
    return [s for s in sent if s.visible]


def said(sent: list[Sent]) -> str:
    return "\n".join(s.plain or "" for s in visible(sent))


def raw(sent: list[Sent]) -> str:
    return "\n".join(s.text or "" for s in visible(sent))


def t(app: App, msg_id: str, locale: str = "kk", **args: object) -> str:
    return app.services.i18n.t(locale, msg_id, **args)


async def state_of(app: App, chat: LocalChat) -> str | None:
    key = StorageKey(bot_id=app.bot.id, chat_id=chat.chat_id, user_id=chat.user_id)
    return await app.storage.get_state(key)


class Calls:
    """Counts the calls of one VoucherClient method (the sandbox still answers them)."""

    def __init__(self, app: App, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        original: Callable[..., Awaitable[Any]] = getattr(app.services.voucher, name)

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return await original(*args, **kwargs)

        monkeypatch.setattr(app.services.voucher, name, counted)


async def at_phone(app: App, chat: LocalChat, locale: str = "kk") -> None:
    await chat.send("/start")
    await chat.press("Қазақша" if locale == "kk" else "Русский")
    for item in (1, 2, 3):
        await chat.press(t(app, f"rules-item-{item}-short", locale))
    await chat.press(t(app, "btn-join-queue", locale))
    assert await state_of(app, chat) == S.phone.state


async def latest_code(app: App, phone: str = PHONE) -> str:
    inbox = await app.services.voucher.sandbox_inbox(phone)
    return next(m.otp_code for m in reversed(inbox) if m.otp_code)


async def at_code(app: App, chat: LocalChat, locale: str = "kk") -> str:
    await at_phone(app, chat, locale)
    await chat.send(PRETTY)
    assert await state_of(app, chat) == S.otp.state
    return await latest_code(app)


def wrong_for(code: str) -> str:
    return "1111" if code != "1111" else "2222"


# --- the bot's own OTP limits -----------------------------------------------------------------


async def test_after_five_wrong_codes_the_bot_stops_calling_the_service(
    app: App, chat: LocalChat, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = await at_code(app, chat)
    verify = Calls(app, "verify_otp", monkeypatch)
    request = Calls(app, "request_otp", monkeypatch)
    replies = [said(await chat.send(wrong_for(code))) for _ in range(5)]
    assert t(app, "otp-wrong", attempts=1) in replies[3]
    assert t(app, "otp-locked", time="10:05") in replies[4]  # 10:00 + 5 min lockout
    # The right code now, or anything else: refused here, the service is not asked again.
    assert t(app, "otp-locked", time="10:05") in said(await chat.send(code))
    assert verify.count == 5
    clock.advance(seconds=61)  # past the service's own 60 s between codes
    locked = said(await chat.press(t(app, "btn-otp-resend")))
    assert t(app, "abuse-otp-locked", time="10:05") in locked
    assert request.count == 0
    clock.advance(minutes=4)  # 10:05:01: the lockout is over
    await chat.press(t(app, "btn-otp-resend"))
    assert request.count == 1
    assert "Қадам 2/5" in said(await chat.send(await latest_code(app)))
    assert await state_of(app, chat) == S.parent_iin.state


async def test_a_locked_phone_is_locked_for_every_telegram_account(
    app: App, chat: LocalChat, chat_ru: LocalChat, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = await at_code(app, chat)
    for _ in range(5):
        await chat.send(wrong_for(code))
    await at_phone(app, chat_ru, "ru")
    request = Calls(app, "request_otp", monkeypatch)
    reply = said(await chat_ru.send(PRETTY))
    assert t(app, "abuse-otp-locked", "ru", time="10:05") in reply
    assert request.count == 0
    assert await state_of(app, chat_ru) == S.phone.state


async def test_changing_the_number_back_does_not_skip_the_cooldown(
    app: App, chat: LocalChat, monkeypatch: pytest.MonkeyPatch
) -> None:
    await at_code(app, chat)
    await chat.press(t(app, "btn-otp-change-phone"))
    request = Calls(app, "request_otp", monkeypatch)
    reply = said(await chat.send(PRETTY))
    assert t(app, "otp-wait", seconds=60, time="10:01") in reply
    assert request.count == 0  # the bot's own cooldown, not the service's 429
    assert await state_of(app, chat) == S.phone.state


# --- hostile text -----------------------------------------------------------------------------


@pytest.mark.parametrize("typed", ["０４２７", "٠٤٢٧", "۰۴۲۷"])
async def test_other_scripts_digits_in_the_code_are_answered_plainly(
    app: App, chat: LocalChat, monkeypatch: pytest.MonkeyPatch, typed: str
) -> None:
    await at_code(app, chat)
    verify = Calls(app, "verify_otp", monkeypatch)
    reply = visible(await chat.send(typed))
    assert t(app, "otp-format") in (reply[0].plain or "")  # "4 digits (0–9), e.g. 0427"
    assert typed not in raw(reply)
    assert verify.count == 0


async def test_invisible_marks_in_a_copied_code_are_dropped(app: App, chat: LocalChat) -> None:
    code = await at_code(app, chat)
    pasted = "\u2066" + code[:2] + "\u200b" + code[2:] + "\u2069"
    assert "Қадам 2/5" in said(await chat.send(pasted))
    assert await state_of(app, chat) == S.parent_iin.state


async def test_other_scripts_digits_in_the_phone_are_answered_plainly(
    app: App, chat_ru: LocalChat, monkeypatch: pytest.MonkeyPatch
) -> None:
    await at_phone(app, chat_ru, "ru")
    request = Calls(app, "request_otp", monkeypatch)
    reply = said(await chat_ru.send("+٧ ٧٠١ ٢٢٢ ٣٣ ٤٤"))
    assert t(app, "abuse-foreign-digits", "ru") in reply
    assert request.count == 0


async def test_an_iin_pasted_with_direction_marks_is_accepted(app: App, chat: LocalChat) -> None:
    await seed_identity(app, chat)
    await set_state(app, chat, S.child_iin.state)
    iin = child_iin(18, 5, 20)
    pasted = "\u202a" + iin[:4] + "\u200b" + iin[4:] + "\u202c\u200e"
    await chat.send(pasted)
    assert await state_of(app, chat) == S.child_consent.state  # a 1414 SMS for this IIN
    inbox = await app.services.voucher.sandbox_inbox(PHONE_SEEDED)
    assert sum(1 for m in inbox if m.consent_id) == 3  # parent, seeded child, this child


async def test_a_message_longer_than_telegram_allows_is_refused_before_any_handler(
    app: App, chat: LocalChat, monkeypatch: pytest.MonkeyPatch
) -> None:
    await at_phone(app, chat)
    request = Calls(app, "request_otp", monkeypatch)
    reply = visible(await chat.send("+7 701 222 33 44 " + "<b>" * 2000))
    assert t(app, "abuse-too-long", n=6017) in (reply[0].plain or "")
    assert t(app, "phone-ask") in (reply[-1].plain or "")
    assert "<b><b>" not in raw(reply)
    assert request.count == 0
    assert await state_of(app, chat) == S.phone.state


async def test_a_caption_longer_than_telegram_allows_is_refused(
    app: App, chat_ru: LocalChat
) -> None:
    await at_phone(app, chat_ru, "ru")
    ref = chat_ru.session.register_file(b"%PDF-1.4 x", ext=".pdf")
    message = {
        "message_id": chat_ru.session.next_message_id(chat_ru.chat_id),
        "date": chat_ru.session.now(),
        "chat": chat_ru.chat,
        "from": chat_ru.user,
        "document": {**ref, "file_name": "a.pdf", "mime_type": "application/pdf"},
        "caption": "ы" * 5000,
    }
    update = Update.model_validate(
        {"update_id": chat_ru.session.next_update_id(), "message": message},
        context={"bot": chat_ru.bot},
    )
    reply = visible(await chat_ru.feed(update))
    assert t(app, "abuse-too-long", "ru", n=5000) in (reply[0].plain or "")


async def provider_search(app: App, chat: LocalChat, typed: str) -> list[Sent]:
    await seed_identity(app, chat)
    await app.services.store.update_draft(
        chat.user_id, queue_type="general", state_order_type="1", has_benefit=False
    )
    await set_state(app, chat, S.provider.state)
    return visible(await chat.send(typed))


async def test_html_in_a_search_is_shown_as_text(app: App, chat: LocalChat) -> None:
    reply = await provider_search(app, chat, "<b>Балапан</b> & <script>x</script>")
    assert "&lt;b&gt;Балапан&lt;/b&gt; &amp; &lt;script&gt;" in raw(reply)
    assert "<b>Балапан</b> & <script>x</script>" in said(reply)  # what the parent reads
    assert "<script>" not in raw(reply)


async def test_direction_overrides_in_a_search_never_reach_the_reply(
    app: App, chat: LocalChat
) -> None:
    reply = await provider_search(app, chat, "\u202eнапалаБ\u200b\u2067")
    assert "напалаБ" in said(reply)
    assert not any(ch in raw(reply) for ch in "\u202e\u200b\u2067")


# --- the last-resort errors handler -----------------------------------------------------------


async def test_a_failing_handler_gets_an_apology_and_a_log_without_personal_data(
    app: App,
    chat_ru: LocalChat,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await at_phone(app, chat_ru, "ru")

    async def broken(phone: str) -> Any:
        raise RuntimeError(f"bug while sending to {phone}, parent {PARENT_IIN}")

    monkeypatch.setattr(app.services.voucher, "request_otp", broken)
    with caplog.at_level(logging.INFO):
        reply = visible(await chat_ru.send(PRETTY))
    assert [s.plain for s in reply][-1].startswith(t(app, "error-unexpected", "ru"))
    assert await state_of(app, chat_ru) == S.phone.state
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "RuntimeError" in logged and "phone.py" in logged
    for secret in (PHONE, PHONE[-7:], PARENT_IIN, PARENT_IIN[-6:]):
        assert secret not in logged
    # The bot goes on: the next update is handled as usual.
    assert t(app, "help-phone", "ru") in said(await chat_ru.send("/help"))
