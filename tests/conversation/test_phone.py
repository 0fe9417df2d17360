"""Before step 1 and step 1/5: language, rules, contact, the ed24 code — and the commands that
work at every step (/cancel, /language, /help, Back, unexpected input)."""

from __future__ import annotations

import pytest
from aiogram.fsm.storage.base import StorageKey

from bot.app import App
from bot.delivery import TelegramDelivery
from bot.fsm.states import ApplicationForm
from bot.local_chat import LocalChat
from bot.local_session import LocalBotSession, Sent
from services.clock import FakeClock
from services.sender import Sender

S = ApplicationForm
PHONE = "+77012223344"


def shown(sent: list[Sent]) -> list[Sent]:
    return [s for s in sent if s.visible]


def text(sent: list[Sent]) -> str:
    return "\n".join(s.plain or "" for s in shown(sent))


def t(app: App, locale: str, msg_id: str, **args: object) -> str:
    return app.services.i18n.t(locale, msg_id, **args)


async def state_of(app: App, chat: LocalChat) -> str | None:
    key = StorageKey(bot_id=app.bot.id, chat_id=chat.chat_id, user_id=chat.user_id)
    return await app.storage.get_state(key)


async def at_phone(chat: LocalChat, app: App, locale: str = "kk") -> None:
    await chat.send("/start")
    await chat.press("Қазақша" if locale == "kk" else "Русский")
    for item in (1, 2, 3):
        await chat.press(t(app, locale, f"rules-item-{item}-short"))
    await chat.press(t(app, locale, "btn-join-queue"))
    assert await state_of(app, chat) == S.phone.state


async def at_code(chat: LocalChat, app: App, phone: str = PHONE) -> str:
    await at_phone(chat, app)
    await chat.share_contact(phone)
    assert await state_of(app, chat) == S.otp.state
    inbox = await app.services.voucher.sandbox_inbox(phone)
    return next(m.otp_code for m in reversed(inbox) if m.otp_code)


# --- before step 1 ------------------------------------------------------------------------


async def test_start_preselects_the_telegram_language(app: App, chat_ru: LocalChat) -> None:
    first = shown(await chat_ru.send("/start"))[-1]
    assert first.plain.startswith("Здравствуйте")
    assert first.button_texts == ["🇰🇿 Қазақша", "✅ 🇷🇺 Русский"]


async def test_join_works_only_when_every_rule_is_ticked(app: App, chat: LocalChat) -> None:
    await chat.send("/start")
    await chat.press("Қазақша")
    await chat.press(t(app, "kk", "rules-item-1-short"))
    refused = shown(await chat.press(t(app, "kk", "btn-join-queue")))
    assert refused[0].kind == "edit"
    assert t(app, "kk", "rules-tick-all") in refused[0].plain
    assert await state_of(app, chat) == S.rules.state
    # Unticking works too: the toggle is a real checkbox.
    untick = shown(await chat.press("✅ " + t(app, "kk", "rules-item-1-short")))
    assert "⬜ " + t(app, "kk", "rules-item-1-short") in untick[0].button_texts


# --- step 1: the phone --------------------------------------------------------------------


async def test_a_forwarded_contact_card_is_refused(app: App, chat: LocalChat) -> None:
    await at_phone(chat, app)
    reply = await chat.share_contact(PHONE, own=False)
    assert t(app, "kk", "phone-not-own-contact") in text(reply)
    assert await state_of(app, chat) == S.phone.state
    assert await app.services.voucher.sandbox_inbox(PHONE) == []


@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("+7 916 123 45 67", "not_kazakhstan"),
        ("+7 701 23", "too_short"),
        ("8 701 234 56 78 9", "too_long"),
        ("нөмірім жоқ", "characters"),
    ],
)
async def test_a_bad_typed_number_gets_its_reason(
    app: App, chat: LocalChat, typed: str, reason: str
) -> None:
    await at_phone(chat, app)
    reply = await chat.send(typed)
    assert t(app, "kk", f"phone-error-{reason}") in text(reply)
    assert await state_of(app, chat) == S.phone.state


async def test_a_typed_number_in_any_common_shape_is_accepted(app: App, chat: LocalChat) -> None:
    await at_phone(chat, app)
    reply = await chat.send("8 (701) 222-33-44")
    assert "+7 701 222 33 44" in text(reply)
    assert await state_of(app, chat) == S.otp.state


async def test_a_number_not_registered_in_ed24_explains_what_to_do(
    app: App, chat: LocalChat
) -> None:
    await at_phone(chat, app)
    reply = await chat.send("+7 701 555 00 00")
    assert t(app, "kk", "phone-not-registered", phone="+7 701 555 00 00") in text(reply)
    assert await state_of(app, chat) == S.phone.state


# --- step 1: the code ---------------------------------------------------------------------


async def test_the_right_code_opens_step_two(app: App, chat: LocalChat) -> None:
    code = await at_code(chat, app)
    reply = await chat.send(code)
    assert "Қадам 2/5" in text(reply)
    draft = await app.services.store.get_draft(chat.user_id)
    assert draft["phone"] == PHONE and draft["session"]


async def test_a_code_that_is_not_four_ascii_digits_is_not_sent(app: App, chat: LocalChat) -> None:
    await at_code(chat, app)
    for typed in ("12", "１２３４", "abcd"):
        reply = await chat.send(typed)
        assert t(app, "kk", "otp-format") in text(reply)
    # None of those counted against the service's five attempts.
    wrong = await chat.send("0000" if (await _code(app)) != "0000" else "1111")
    assert t(app, "kk", "otp-wrong", attempts=4) in text(wrong)


async def _code(app: App) -> str:
    inbox = await app.services.voucher.sandbox_inbox(PHONE)
    return next(m.otp_code for m in reversed(inbox) if m.otp_code)


async def test_wrong_codes_count_down_in_correct_russian_then_lock(
    app: App, chat_ru: LocalChat
) -> None:
    await at_phone(chat_ru, app, "ru")
    await chat_ru.share_contact(PHONE)
    code = await _code(app)
    wrong = "1111" if code != "1111" else "2222"
    replies = [text(await chat_ru.send(wrong)) for _ in range(5)]
    assert "Осталось 4 попытки" in replies[0]
    assert "Осталась 1 попытка" in replies[3]
    assert "код заблокирован" in replies[4]
    # Even the right code is refused once locked.
    assert "код заблокирован" in text(await chat_ru.send(code))
    assert await state_of(app, chat_ru) == S.otp.state


async def test_an_expired_code_asks_for_a_new_one_and_resend_waits_out_the_cooldown(
    app: App, chat: LocalChat, clock: FakeClock
) -> None:
    code = await at_code(chat, app)
    early = await chat.press(t(app, "kk", "btn-otp-resend"))
    assert "секундтан кейін" in text(early)  # the cooldown is shown, no new code asked
    assert len([m for m in await app.services.voucher.sandbox_inbox(PHONE) if m.otp_code]) == 1
    clock.advance(seconds=301)
    expired = await chat.send(code)
    assert "мерзімі өтті" in text(expired)
    await chat.press(t(app, "kk", "btn-otp-resend"))
    codes = [m.otp_code for m in await app.services.voucher.sandbox_inbox(PHONE) if m.otp_code]
    assert len(codes) == 2
    assert "Қадам 2/5" in text(await chat.send(codes[-1]))


async def test_change_number_goes_back_to_the_phone(app: App, chat: LocalChat) -> None:
    await at_code(chat, app)
    reply = await chat.press(t(app, "kk", "btn-otp-change-phone"))
    assert t(app, "kk", "phone-ask") in text(reply)
    assert await state_of(app, chat) == S.phone.state


async def test_the_service_down_keeps_the_phone_step_with_retry(app: App, chat: LocalChat) -> None:
    await at_phone(chat, app)
    await app.services.voucher.sandbox_set_faults(failure_rate=1.0)
    reply = shown(await chat.share_contact(PHONE))
    assert t(app, "kk", "error-service-unavailable") in reply[-1].plain
    assert t(app, "kk", "btn-retry") in reply[-1].button_texts
    assert await state_of(app, chat) == S.phone.state
    await app.services.voucher.sandbox_set_faults(failure_rate=0.0)
    again = await chat.press(t(app, "kk", "btn-retry"))
    assert t(app, "kk", "phone-ask") in text(again)


# --- commands that work at every step -----------------------------------------------------


async def test_language_switch_mid_step_keeps_the_answers(app: App, chat: LocalChat) -> None:
    await at_code(chat, app)
    await chat.send("/language")
    reply = await chat.press("Русский")
    assert "Шаг 1/5" in text(reply)
    assert "+7 701 222 33 44" in text(reply)
    assert await state_of(app, chat) == S.otp.state
    assert await app.services.store.get_locale(chat.user_id) == "ru"
    assert (await chat.send("/help")) and await state_of(app, chat) == S.otp.state


async def test_cancel_asks_first_then_clears_the_draft_and_keeps_the_language(
    app: App, chat_ru: LocalChat
) -> None:
    await at_phone(chat_ru, app, "ru")
    await chat_ru.send("+7 701 222 33 44")
    ask = shown(await chat_ru.send("/cancel"))[-1]
    assert ask.plain.startswith("Отменить заявление?")
    kept = await chat_ru.press("Нет, продолжить")
    assert "Шаг 1/5" in text(kept)
    await chat_ru.send("/cancel")
    done = await chat_ru.press("Да, отменить")
    assert t(app, "ru", "cancel-done") in text(done)
    assert await state_of(app, chat_ru) is None
    assert await app.services.store.get_draft(chat_ru.user_id) == {}
    assert await app.services.store.get_locale(chat_ru.user_id) == "ru"
    assert t(app, "ru", "cancel-nothing") in text(await chat_ru.send("/cancel"))


async def test_help_explains_the_current_step(app: App, chat: LocalChat) -> None:
    await at_code(chat, app)
    reply = await chat.send("/help")
    assert t(app, "kk", "help-otp") in text(reply)


async def test_unexpected_things_get_the_step_again(app: App, chat: LocalChat) -> None:
    await at_phone(chat, app)
    for reply in (await chat.send_sticker(), await chat.send_voice(), await chat.send("/foo")):
        assert t(app, "kk", "phone-ask") in text(reply)
    assert t(app, "kk", "unknown-command") in text(await chat.send("/foo"))
    assert await state_of(app, chat) == S.phone.state


async def test_back_from_the_phone_shows_the_rules(app: App, chat: LocalChat) -> None:
    await at_phone(chat, app)
    await chat.send("/help")
    reply = await chat.press(t(app, "kk", "btn-back"))
    assert await state_of(app, chat) == S.rules.state
    assert "Жүйе қағидалары" in text(reply)


async def test_html_typed_by_the_parent_is_never_echoed_raw(app: App, chat: LocalChat) -> None:
    await at_phone(chat, app)
    reply = await chat.send("<b>+7 701</b>")
    assert "<b>+7 701</b>" not in "".join(s.text or "" for s in shown(reply))
    assert t(app, "kk", "phone-error-characters") in text(reply)


async def test_start_after_unblocking_lets_pushes_reach_the_chat_again(
    app: App, chat: LocalChat, clock: FakeClock
) -> None:
    outbox = app.services.outbox
    session = app.bot.session
    assert outbox is not None and isinstance(session, LocalBotSession)

    async def tick(seconds: float) -> None:
        clock.advance(seconds=seconds)

    def sender() -> Sender:
        return Sender(
            outbox,
            TelegramDelivery(app.bot),
            clock,
            sleep=tick,
            on_blocked=app.services.store.mark_blocked,
        )

    await app.services.store.set_locale(chat.user_id, "kk")
    session.block(chat.chat_id)  # the parent blocked the bot
    await outbox.enqueue(chat_id=chat.chat_id, text="бірінші", kind="test", dedup_key="a")
    await sender().drain()
    assert await outbox.is_blocked(chat.chat_id)
    assert await app.services.store.is_blocked(chat.user_id)

    session.unblock(chat.chat_id)
    await chat.send("/start")  # Telegram's "Restart" button
    assert not await app.services.store.is_blocked(chat.user_id)
    assert not await outbox.is_blocked(chat.chat_id)
    await outbox.enqueue(chat_id=chat.chat_id, text="екінші", kind="test", dedup_key="b")
    await sender().drain()
    assert "екінші" in [s.plain for s in session.sent(chat.chat_id)]
