"""Background checks of 1414 consents: the parent answers the SMS and the bot moves on by itself.

One asyncio task per user polls `GET /consents/{id}` every `consent_poll_seconds`. When a poll
finds the service unavailable (or our own connection pool full, which the client reports the
same way) the task waits twice as long before the next one, up to `MAX_BACKOFF` times the
interval: with 2,000 parents waiting on an SMS these polls are most of the requests, and
keeping their pace would only deepen the queue. The first answer brings the pace back. When the
answer is final it takes the user's event-isolation lock (so it never interleaves with an update
of the same user), checks that the parent still waits on exactly this consent, and then does
what the *Request data* button does (`bot.handlers.identity.check_consent`). Tasks live only in
this process: after a restart the consent prompt starts a new one, and the button works alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from functools import partial

from aiogram import Bot
from aiogram.fsm.context import FSMContext
from aiogram.fsm.storage.base import BaseEventIsolation, BaseStorage, StorageKey

from bot.view import Services, StepView
from services.voucher.errors import ServiceUnavailable, VoucherError

log = logging.getLogger("kezek.bot.watchers")

# How long past the consent's expiry a still-pending answer is polled: the service, not our
# clock, says when a consent expired, and the two clocks may differ a little.
EXPIRY_GRACE = timedelta(seconds=60)
# The longest wait between polls while the service is unavailable, in poll intervals.
MAX_BACKOFF = 4

Sleep = Callable[[float], Awaitable[None]]


class ConsentWatcher:
    """Polls each parent's pending consent in the background; one task per user."""

    def __init__(
        self,
        services: Services,
        storage: BaseStorage,
        isolation: BaseEventIsolation,
        *,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._services = services
        self._storage = storage
        self._isolation = isolation
        self._sleep = sleep
        self._tasks: dict[int, tuple[str, asyncio.Task[None]]] = {}

    @property
    def watched(self) -> frozenset[int]:
        """The users whose consent is being polled right now."""
        return frozenset(uid for uid, (_, task) in self._tasks.items() if not task.done())

    def is_watching(self, user_id: int, consent_id: str | None = None) -> bool:
        """True while a task polls this user's consent (this very one, when given)."""
        entry = self._tasks.get(user_id)
        if entry is None or entry[1].done():
            return False
        return consent_id is None or entry[0] == consent_id

    def watch(self, bot: Bot, chat_id: int, user_id: int, who: str, consent_id: str) -> None:
        """Start polling `consent_id` for this user, replacing any earlier task of theirs."""
        self.cancel(user_id)
        task = asyncio.create_task(
            self._run(bot, chat_id, user_id, who, consent_id), name=f"consent-watch-{user_id}"
        )
        self._tasks[user_id] = (consent_id, task)
        task.add_done_callback(partial(self._forget, user_id))

    def cancel(self, user_id: int) -> None:
        """Stop polling for this user (/cancel, Back, a settled consent)."""
        entry = self._tasks.pop(user_id, None)
        # A task settling its own consent ends by returning; cancelling itself would cut off
        # the message it is sending.
        if entry is not None and entry[1] is not asyncio.current_task():
            entry[1].cancel()

    async def stop(self) -> None:
        """Cancel every task and wait for them to end (shutdown)."""
        tasks = [task for _, task in self._tasks.values()]
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _forget(self, user_id: int, task: asyncio.Task[None]) -> None:
        entry = self._tasks.get(user_id)
        if entry is not None and entry[1] is task:
            del self._tasks[user_id]

    async def _run(self, bot: Bot, chat_id: int, user_id: int, who: str, consent_id: str) -> None:
        key = StorageKey(bot_id=bot.id, chat_id=chat_id, user_id=user_id)
        try:
            await self._poll(bot, key, who, consent_id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a background task has nobody to raise to: log it
            log.error(
                "consent watcher of user %s stopped on %s",
                user_id,
                type(exc).__name__,
                exc_info=not isinstance(exc, VoucherError),
            )

    async def _poll(self, bot: Bot, key: StorageKey, who: str, consent_id: str) -> None:
        # Imported here: the handlers package imports every step, and this module is imported
        # by bot.app before the routers are built.
        from bot.handlers.identity import awaiting_consent, check_consent

        services = self._services
        voucher = services.voucher
        interval = services.settings.consent_poll_seconds
        while True:
            # A real wait between polls, not a synchronisation: the service is asked at most
            # once per interval whatever happens.
            await self._sleep(interval)
            view = await self._view(bot, key)
            if not await awaiting_consent(view, consent_id):
                return  # the parent moved on (or answered through the button)
            session = (await view.draft()).get("session")
            if not session:
                return
            try:
                consent = await voucher.get_consent(session, consent_id)
            except ServiceUnavailable as exc:
                interval = _backed_off(interval, services.settings.consent_poll_seconds, exc)
                log.warning(
                    "consent check unavailable for user %s; next poll in %.0f s",
                    key.user_id,
                    interval,
                )
                continue
            except VoucherError as exc:
                # Session ended, consent unknown…: the button explains it when pressed.
                log.warning("consent check of user %s refused: %s", key.user_id, exc.code)
                return
            interval = services.settings.consent_poll_seconds
            if consent.status == "pending":
                if self._past_expiry(await view.state.get_data()):
                    log.info("consent of user %s still pending after expiry", key.user_id)
                    return
                continue
            async with self._isolation.lock(key):
                # Re-read under the lock: an update may have moved the parent on meanwhile.
                view = await self._view(bot, key)
                if await awaiting_consent(view, consent_id):
                    await check_consent(view)
            log.info("consent of user %s settled in the background: %s", key.user_id, who)
            return

    async def _view(self, bot: Bot, key: StorageKey) -> StepView:
        """A StepView for a message the bot sends on its own, in the parent's language."""
        services = self._services
        locale = await services.store.get_locale(key.user_id) or services.i18n.default
        return StepView(
            bot=bot,
            chat_id=key.chat_id,
            user_id=key.user_id,
            tr=services.i18n.translator(locale),
            state=FSMContext(self._storage, key),
            services=services,
        )

    def _past_expiry(self, data: dict[str, object]) -> bool:
        expires_at = data.get("consent_expires_at")
        if not isinstance(expires_at, str):
            return False
        deadline = datetime.fromisoformat(expires_at) + EXPIRY_GRACE
        return self._services.clock.now() > deadline


def _backed_off(interval: float, base: float, exc: ServiceUnavailable) -> float:
    """The next wait after an unavailable poll: doubled (at least Retry-After), up to the cap."""
    longer = max(interval * 2, exc.retry_after or 0.0)
    return min(longer, base * MAX_BACKOFF)
