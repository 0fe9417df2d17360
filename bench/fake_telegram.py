"""A fake Bot API for the push benchmark: Telegram's sending limits, on a virtual clock.

What it enforces, as Telegram documents them for bots:
- at most `global_rate` (30) accepted messages in any one-second window, all chats together;
- at most one message per chat per `per_chat_interval` (1 s).
A call that breaks a limit is refused with 429 and a `retry_after` of the whole seconds until it
would have been allowed (at least 1), as Telegram does. Those refusals are counted apart: a
sender that keeps the limits never gets one.

On top of that the issue asks for 1 % of calls to be answered 429 whatever the rate (Telegram's
flood control is not only about these two limits). Those come with `retry_after` =
`random_retry_after` (1 s, the smallest Telegram sends). After any 429, a call into the same chat
before its `retry_after` is over breaks a limit too: the request may only be repeated then.

Accepted messages are recorded by (chat, text): the benchmark gives every message a distinct
text per chat, so a text seen twice in a chat is a duplicate. The request is prepared as a real
session prepares it (`prepare_value` on every field) and the answer is parsed by aiogram's own
`check_response`, so the bot pays what it would pay with Telegram, minus the network.
"""

from __future__ import annotations

import collections
import json
import random
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from math import ceil
from typing import TYPE_CHECKING, Any

from aiogram.client.session.base import BaseSession
from aiogram.methods import SendDocument, SendMessage, TelegramMethod

from services.clock import FakeClock

if TYPE_CHECKING:
    from aiogram import Bot

_SECOND = 1_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


@dataclass
class Refusal:
    """One 429 the fake answered."""

    at_us: int
    retry_after: int
    mandated: bool  # the random 1 %, not a broken limit


@dataclass
class TelegramLimits:
    global_rate: int = 30
    per_chat_interval: float = 1.0
    random_429_share: float = 0.01
    random_retry_after: int = 1


class FakeTelegramApi(BaseSession):
    """A BaseSession answering sendMessage/sendDocument under Telegram's limits (see module)."""

    def __init__(
        self, clock: FakeClock, limits: TelegramLimits | None = None, *, seed: int = 429
    ) -> None:
        super().__init__()
        self.clock = clock
        self.limits = limits or TelegramLimits()
        self.accepted: collections.Counter[tuple[int, str]] = collections.Counter()
        self.accepted_at: list[int] = []  # µs of each accepted message
        self.refusals: list[Refusal] = []
        self.calls = 0
        self.cpu_seconds = 0.0  # thread CPU inside make_request
        self._rng = random.Random(seed)
        self._window: collections.deque[int] = collections.deque()
        self._chat_last: dict[int, int] = {}
        self._chat_hold: dict[int, int] = {}  # chat → µs its last 429's retry_after ends
        self._message_ids: dict[int, int] = {}

    # --- what the benchmark reads ---------------------------------------------------------

    @property
    def delivered(self) -> int:
        """Distinct (chat, text) pairs accepted."""
        return len(self.accepted)

    @property
    def duplicates(self) -> int:
        """Accepted messages beyond the first of the same (chat, text)."""
        return sum(count - 1 for count in self.accepted.values())

    @property
    def limit_refusals(self) -> int:
        """429s for a broken limit: zero for a sender that keeps Telegram's limits."""
        return sum(1 for r in self.refusals if not r.mandated)

    @property
    def mandated_refusals(self) -> int:
        return sum(1 for r in self.refusals if r.mandated)

    # --- BaseSession ----------------------------------------------------------------------

    async def close(self) -> None:
        return None

    async def make_request(
        self,
        bot: Bot,
        method: TelegramMethod[Any],
        timeout: int | None = None,  # noqa: ASYNC109 - BaseSession's signature
    ) -> Any:
        # Nothing here waits: the thread CPU between the two reads is the fake's own.
        started = time.thread_time()
        try:
            return self._answer(bot, method)
        finally:
            self.cpu_seconds += time.thread_time() - started

    async def stream_content(
        self,
        url: str,
        headers: dict[str, Any] | None = None,
        timeout: int = 30,  # noqa: ASYNC109 - BaseSession's signature
        chunk_size: int = 65536,
        raise_for_status: bool = True,
    ) -> AsyncGenerator[bytes, None]:
        raise NotImplementedError("the push benchmark downloads nothing")
        yield b""  # pragma: no cover - makes this an async generator

    # --- the answers ----------------------------------------------------------------------

    def _answer(self, bot: Bot, method: TelegramMethod[Any]) -> Any:
        self.calls += 1
        if not isinstance(method, SendMessage | SendDocument):
            raise NotImplementedError(f"the fake Bot API does not answer {type(method).__name__}")
        files: dict[str, Any] = {}
        data = {}
        for key, value in method.model_dump(warnings=False).items():
            prepared = self.prepare_value(value, bot=bot, files=files)
            if prepared:
                data[key] = prepared
        chat_id = int(data["chat_id"])
        text = str(data.get("text") or data.get("caption") or "")
        now = self._now_us()
        wait = self._limit_wait(chat_id, now)
        if wait > 0:
            retry_after = max(1, ceil(wait / _SECOND))
            self._chat_hold[chat_id] = max(self._chat_hold.get(chat_id, 0), now + wait)
            return self._refuse(bot, method, now, retry_after, mandated=False)
        if self._rng.random() < self.limits.random_429_share:
            retry_after = self.limits.random_retry_after
            self._chat_hold[chat_id] = now + retry_after * _SECOND
            return self._refuse(bot, method, now, retry_after, mandated=True)
        self._window.append(now)
        self._chat_last[chat_id] = now
        self.accepted[(chat_id, text)] += 1
        self.accepted_at.append(now)
        message_id = self._message_ids.get(chat_id, 0) + 1
        self._message_ids[chat_id] = message_id
        result = {
            "message_id": message_id,
            "date": now // _SECOND,
            "chat": {"id": chat_id, "type": "private", "first_name": "Parent"},
            "text": text,
        }
        content = json.dumps({"ok": True, "result": result}, ensure_ascii=False)
        return self.check_response(bot, method, 200, content).result

    def _limit_wait(self, chat_id: int, now: int) -> int:
        """µs until this send would keep both limits (0: it keeps them now)."""
        window = self._window
        while window and window[0] <= now - _SECOND:
            window.popleft()
        wait = 0
        if len(window) >= self.limits.global_rate:
            wait = window[len(window) - self.limits.global_rate] + _SECOND - now
        last = self._chat_last.get(chat_id)
        interval = int(self.limits.per_chat_interval * _SECOND)
        if last is not None and now - last < interval:
            wait = max(wait, last + interval - now)
        hold = self._chat_hold.get(chat_id, 0)
        return max(wait, hold - now)

    def _refuse(
        self, bot: Bot, method: TelegramMethod[Any], now: int, retry_after: int, *, mandated: bool
    ) -> Any:
        self.refusals.append(Refusal(now, retry_after, mandated))
        content = json.dumps(
            {
                "ok": False,
                "error_code": 429,
                "description": f"Too Many Requests: retry after {retry_after}",
                "parameters": {"retry_after": retry_after},
            }
        )
        self.check_response(bot, method, 429, content)  # raises TelegramRetryAfter
        raise AssertionError("check_response accepted a 429")  # pragma: no cover

    def _now_us(self) -> int:
        return _us(self.clock.now())


def _us(ts: datetime) -> int:
    """Whole microseconds since the epoch, exactly as the sender counts them."""
    return (ts - _EPOCH) // _US
