"""Middlewares against floods and oversized input, cheap enough for every update.

FloodLimit (update, outer; after the dedup):
  each user has a token bucket of 20 updates refilled at 20 per 10 s
  update with a token ──▶ handled
  update without one ──▶ dropped quietly; the first such update of a 10 s window gets one
                         polite "too fast" message (no callback answers, no other sends: a
                         flood must not spend the bot's Telegram sending budget either)
TooLongInput (message, outer; after the locale middleware):
  text or caption over 4096 characters (no Telegram app sends one) ──▶ "too long", the current
  question again; no handler sees it

Memory: one small bucket per active user; buckets that have refilled are dropped whenever the
table grows past `max_users`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.exceptions import TelegramAPIError
from aiogram.types import Message, TelegramObject, User

from bot.fsm.states import ApplicationForm
from bot.view import Services, StepView
from services.hostile_text import MAX_MESSAGE

log = logging.getLogger("kezek.abuse")

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]
_NO_STEP = (None, ApplicationForm.submitted.state)


class _Bucket:
    __slots__ = ("seen", "tokens", "warned")

    def __init__(self, tokens: float, seen: float) -> None:
        self.tokens = tokens
        self.seen = seen
        self.warned = -math.inf


class FloodLimit(BaseMiddleware):
    """Per-user token bucket; the clock is the services' (a FakeClock in tests)."""

    def __init__(
        self,
        services: Services,
        *,
        burst: int = 20,
        per_seconds: float = 10.0,
        max_users: int = 50_000,
    ) -> None:
        self._services = services
        self._burst = float(burst)
        self._rate = burst / per_seconds
        self._window = per_seconds
        self._max_users = max_users
        self._buckets: dict[int, _Bucket] = {}

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        """Handle the update if the user has a token left; otherwise drop it."""
        user: User | None = data.get("event_from_user")
        if user is None:
            return await handler(event, data)
        now = self._services.clock.now().timestamp()
        bucket = self._buckets.get(user.id)
        if bucket is None:
            if len(self._buckets) >= self._max_users:
                self._sweep(now)
            bucket = self._buckets[user.id] = _Bucket(self._burst, now)
        else:
            bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.seen) * self._rate)
            bucket.seen = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return await handler(event, data)
        if now - bucket.warned >= self._window:
            bucket.warned = now
            log.warning("flood limit: updates of user %s dropped for a while", user.id)
            wait = math.ceil((1.0 - bucket.tokens) / self._rate)
            await self._say(data, "abuse-too-fast", seconds=max(1, wait))
        return None

    def _sweep(self, now: float) -> None:
        """Forget users whose bucket is full again: they are no different from new ones."""
        full = [
            uid
            for uid, b in self._buckets.items()
            if b.tokens + (now - b.seen) * self._rate >= self._burst
        ]
        for uid in full:
            del self._buckets[uid]

    async def _say(self, data: dict[str, Any], msg_id: str, **args: Any) -> None:
        view = await _view(self._services, data)
        if view is None:
            return
        try:
            await view.send(view.tr(msg_id, **args), header=False)
        except TelegramAPIError as exc:
            log.warning("flood notice not delivered: %s", type(exc).__name__)


class TooLongInput(BaseMiddleware):
    """Refuse a text or caption longer than Telegram allows, before any handler reads it."""

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        """Answer "too long" and ask the current question again; or pass the message on."""
        if not isinstance(event, Message):
            return await handler(event, data)
        text = event.text or event.caption or ""
        if len(text) <= MAX_MESSAGE:
            return await handler(event, data)
        view = await _view(data["services"], data)
        if view is None:
            return None
        await view.send(view.tr("abuse-too-long", n=len(text)), header=False)
        if await view.current() not in _NO_STEP:
            await view.ask()
        return None


async def _view(services: Services, data: dict[str, Any]) -> StepView | None:
    """A StepView for an answer given before the handlers (the parent's language)."""
    chat, user, state = data.get("event_chat"), data.get("event_from_user"), data.get("state")
    if chat is None or user is None or state is None:
        return None
    tr = data.get("tr")
    if tr is None:
        locale = await services.store.get_locale(user.id) or services.i18n.pick(user.language_code)
        tr = services.i18n.translator(locale)
    return StepView(
        bot=data["bot"],
        chat_id=chat.id,
        user_id=user.id,
        tr=tr,
        state=state,
        services=services,
    )
