"""A restart mid-conversation: close everything, build a new app on the same files, go on.

The parent continues at the same step with every earlier answer; the application that reaches
the sandbox is complete and single.
"""

from __future__ import annotations

from contextlib import AsyncExitStack

import pytest

from bot.app import App, open_app
from bot.config import Settings
from bot.fsm.states import ApplicationForm
from bot.local_chat import LocalChat
from bot.local_session import LocalBotSession
from services.clock import FakeClock
from services.voucher.sandbox import SandboxConfig
from tests.conversation.journey import CHILD_IIN, PHONE, STAGES, Journey
from tests.conversation.seed import PARENT_IIN

USER = 4004


async def _open(
    stack: AsyncExitStack, settings: Settings, clock: FakeClock, sandbox: SandboxConfig
) -> tuple[App, LocalChat]:
    app = await stack.enter_async_context(
        open_app(settings, clock=clock, session=LocalBotSession(), sandbox_config=sandbox)
    )
    return app, LocalChat(app.dp, app.bot, user_id=USER, language_code="ru")


async def _state(app: App, chat: LocalChat) -> str | None:
    from aiogram.fsm.storage.base import StorageKey

    key = StorageKey(bot_id=app.bot.id, chat_id=chat.chat_id, user_id=chat.user_id)
    return await app.storage.get_state(key)


EXPECTED_STATE = {
    "start": ApplicationForm.phone.state,
    "phone": ApplicationForm.parent_iin.state,
    "parent": ApplicationForm.child_iin.state,
    "child": ApplicationForm.queue_type.state,
    "choice": ApplicationForm.notify_channel.state,
    "notifications": ApplicationForm.review.state,
}


@pytest.mark.parametrize("after", list(EXPECTED_STATE))
async def test_restart_between_steps(
    settings: Settings, clock: FakeClock, sandbox_config: SandboxConfig, after: str
) -> None:
    split = STAGES.index(after) + 1
    async with AsyncExitStack() as first:
        app, chat = await _open(first, settings, clock, sandbox_config)
        journey = Journey(app, chat, "ru")
        await journey.run(STAGES[:split])
        draft_before = await app.services.store.get_draft(USER)

    async with AsyncExitStack() as second:
        app, chat = await _open(second, settings, clock, sandbox_config)
        assert await _state(app, chat) == EXPECTED_STATE[after]
        assert await app.services.store.get_draft(USER) == draft_before
        assert await app.services.store.get_locale(USER) == "ru"
        journey.rebind(app, chat)
        resumed = await journey.send("/start")
        # The same step is asked again, in the parent's language, not the welcome.
        assert journey.tr("resume-draft") in resumed[0].plain
        await journey.run(STAGES[split:])

        applications = await app.services.voucher.sandbox_list_applications()
        assert len(applications) == 1
        body = applications[0].body
        assert body["parent"] == {"iin": PARENT_IIN, "phone": PHONE}
        assert body["child"] == {"iin": CHILD_IIN}
        assert applications[0].number in journey.seen[-1].plain


async def test_restart_while_waiting_for_the_1414_answer(
    settings: Settings, clock: FakeClock, sandbox_config: SandboxConfig
) -> None:
    async with AsyncExitStack() as first:
        app, chat = await _open(first, settings, clock, sandbox_config)
        journey = Journey(app, chat, "ru")
        await journey.run(("start", "phone"))
        await journey.send(PARENT_IIN)  # the SMS is on its way; the bot stops here

    async with AsyncExitStack() as second:
        app, chat = await _open(second, settings, clock, sandbox_config)
        assert await _state(app, chat) == ApplicationForm.parent_consent.state
        journey.rebind(app, chat)
        voucher = app.services.voucher
        inbox = await voucher.sandbox_inbox(PHONE)
        consent_id = next(m.consent_id for m in reversed(inbox) if m.consent_id)
        await voucher.sandbox_answer_consent(consent_id, "yes")
        resumed = await journey.send("/start")
        assert any(journey.tr("btn-consent-check") in s.button_texts for s in resumed)
        shown = await journey.press(journey.tr("btn-consent-check"))
        assert any(journey.tr("btn-person-correct") in s.button_texts for s in shown)
        # Only one 1414 SMS was sent for the parent: the restart did not ask again.
        assert sum(1 for m in await voucher.sandbox_inbox(PHONE) if m.consent_id) == 1
        await journey.press(journey.tr("btn-person-correct"))
        await journey.run(STAGES[STAGES.index("child") :])
        assert len(await voucher.sandbox_list_applications()) == 1
