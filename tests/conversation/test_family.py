"""Several children: after a submission, *Apply for another child* reuses what is still valid."""

from __future__ import annotations

from datetime import timedelta

from aiogram.fsm.storage.base import StorageKey

from bot.app import App
from bot.fsm.states import ApplicationForm
from bot.local_chat import LocalChat
from services.clock import FakeClock
from tests.conversation.journey import CHILD_IIN, PHONE, Journey
from tests.conversation.seed import PARENT_IIN, child_iin

SECOND_CHILD = child_iin(14, 7, 2, 6)  # a girl born 02.07.2014


async def _consents_sent(app: App) -> int:
    return sum(1 for m in await app.services.voucher.sandbox_inbox(PHONE) if m.consent_id)


async def test_a_second_child_reuses_the_phone_and_the_parent(app: App) -> None:
    chat = LocalChat(app.dp, app.bot, user_id=5005, language_code="kk")
    journey = Journey(app, chat, "kk")
    await journey.run()
    codes_before = sum(1 for m in await app.services.voucher.sandbox_inbox(PHONE) if m.otp_code)
    assert await _consents_sent(app) == 2  # parent and first child

    step = await journey.press(journey.tr("btn-another-child"))
    assert journey.tr("review-another-child") in step[0].plain
    assert "Қадам 2/5" in step[-1].plain  # straight to the child's IIN: no new code, no parent
    draft = await app.services.store.get_draft(chat.user_id)
    assert draft["parent"]["iin"] == PARENT_IIN and "child" not in draft
    assert "application" not in draft and "idempotency_key" not in draft

    await journey._consent(SECOND_CHILD)
    await journey.run(("choice", "notifications", "submit"))

    applications = await app.services.voucher.sandbox_list_applications()
    assert [a.body["child"]["iin"] for a in applications] == [CHILD_IIN, SECOND_CHILD]
    assert {a.body["parent"]["iin"] for a in applications} == {PARENT_IIN}
    assert len({a.number for a in applications}) == 2
    # Only the new child needed a 1414 SMS, and the phone was not asked again.
    assert await _consents_sent(app) == 3
    assert (
        sum(1 for m in await app.services.voucher.sandbox_inbox(PHONE) if m.otp_code)
        == codes_before
    )
    # /status shows the family.
    listing = "\n".join(s.plain or "" for s in await journey.send("/status"))
    for application in applications:
        assert application.number in listing


async def test_after_the_session_ends_the_phone_is_confirmed_again(
    app: App, clock: FakeClock
) -> None:
    chat = LocalChat(app.dp, app.bot, user_id=5006, language_code="ru")
    journey = Journey(app, chat, "ru")
    await journey.run()
    clock.advance(timedelta(hours=2).total_seconds())
    await journey.press(journey.tr("btn-another-child"))
    draft = await app.services.store.get_draft(chat.user_id)
    assert "session" not in draft and draft["phone"] == PHONE
    key = StorageKey(bot_id=app.bot.id, chat_id=chat.chat_id, user_id=chat.user_id)
    state = await app.storage.get_state(key)
    assert state == ApplicationForm.phone.state
