"""The consent watcher's pace (bot/watchers.py): it backs off while the service is unavailable.

The watcher's waits go through a sleep the test steps by hand: each wait is recorded and held
until the test lets it end, so the sequence of intervals is exact and nothing waits for real.
"""

from __future__ import annotations

import asyncio

import pytest
from aiogram.fsm.storage.base import StorageKey

from bot.app import App
from bot.config import Settings
from bot.fsm.states import ApplicationForm as S
from bot.local_chat import LocalChat
from bot.watchers import MAX_BACKOFF, ConsentWatcher
from tests.conversation.seed import child_iin, seed_identity, set_state

POLL = 60.0  # the app's own watcher never polls within a test at this pace
CHILD = child_iin(18, 5, 20)


class SteppedSleep:
    """Stands in for asyncio.sleep: records each wait and holds it until `step()`."""

    def __init__(self) -> None:
        self._waits: asyncio.Queue[float] = asyncio.Queue()
        self._go = asyncio.Semaphore(0)

    async def __call__(self, delay: float) -> None:
        self._waits.put_nowait(delay)
        await self._go.acquire()

    async def wait_started(self) -> float:
        """The length of the wait the watcher has just begun."""
        return await asyncio.wait_for(self._waits.get(), 5)

    def step(self) -> None:
        """End the current wait: the watcher polls once."""
        self._go.release()


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"consent_poll_seconds": POLL})


async def waiting_on_the_childs_consent(app: App, chat: LocalChat) -> str:
    """A parent at `child_consent` with a pending consent; the id of that consent."""
    await seed_identity(app, chat)
    await set_state(app, chat, S.child_iin.state)
    await chat.send(CHILD)
    key = StorageKey(bot_id=app.bot.id, chat_id=chat.chat_id, user_id=chat.user_id)
    assert await app.storage.get_state(key) == S.child_consent.state
    consent_id = (await app.storage.get_data(key))["consent_id"]
    assert isinstance(consent_id, str)
    return consent_id


async def test_polls_back_off_while_unavailable_and_resume_their_pace(
    app: App, chat: LocalChat, retry_delays: list[float]
) -> None:
    consent_id = await waiting_on_the_childs_consent(app, chat)
    app.services.background.cancel(chat.user_id)  # this test's watcher polls instead
    stepped = SteppedSleep()
    watcher = ConsentWatcher(app.services, app.storage, app.dp.fsm.events_isolation, sleep=stepped)
    voucher = app.services.voucher
    before = asyncio.all_tasks()
    watcher.watch(app.bot, chat.chat_id, chat.user_id, "child", consent_id)
    [task] = asyncio.all_tasks() - before
    assert await stepped.wait_started() == POLL

    await voucher.sandbox_set_faults(failure_rate=1.0, retry_after=1)
    waits = []
    for _ in range(4):
        stepped.step()  # a poll that fails (after the client's own retries)
        waits.append(await stepped.wait_started())
    assert waits == [2 * POLL, 4 * POLL, 4 * POLL, 4 * POLL]
    assert MAX_BACKOFF == 4
    assert len(retry_delays) == 4 * 3  # each poll is still one call the client retried

    await voucher.sandbox_set_faults(failure_rate=0.0)
    stepped.step()  # answered: still pending, so the normal pace again
    assert await stepped.wait_started() == POLL
    assert watcher.is_watching(chat.user_id, consent_id)

    await voucher.sandbox_answer_consent(consent_id, "yes")
    stepped.step()
    await asyncio.wait_for(task, 5)  # it ends by itself, having moved the parent on
    assert not task.cancelled()
    await chat.wait_for(app.services.i18n.t("kk", "consent-granted"))
    key = StorageKey(bot_id=app.bot.id, chat_id=chat.chat_id, user_id=chat.user_id)
    assert await app.storage.get_state(key) == S.child_confirm.state


async def test_a_long_retry_after_is_waited_out_within_the_cap(app: App, chat: LocalChat) -> None:
    consent_id = await waiting_on_the_childs_consent(app, chat)
    app.services.background.cancel(chat.user_id)
    stepped = SteppedSleep()
    watcher = ConsentWatcher(app.services, app.storage, app.dp.fsm.events_isolation, sleep=stepped)
    watcher.watch(app.bot, chat.chat_id, chat.user_id, "child", consent_id)
    assert await stepped.wait_started() == POLL

    # Retry-After 150 s: more than twice the interval, less than the cap.
    await app.services.voucher.sandbox_set_faults(failure_rate=1.0, retry_after=150)
    stepped.step()
    assert await stepped.wait_started() == 150
    # Retry-After 3,600 s: the cap still holds (the parent may press *Request data* anyway).
    await app.services.voucher.sandbox_set_faults(retry_after=3600)
    stepped.step()
    assert await stepped.wait_started() == MAX_BACKOFF * POLL
    await watcher.stop()
    assert not watcher.is_watching(chat.user_id)
