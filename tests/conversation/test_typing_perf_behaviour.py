"""A step that asks the voucher service shows "typing…" only when the service is slow."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bot.app import App
from bot.local_chat import LocalChat
from tests.conversation.seed import seed_identity


async def test_a_fast_service_call_sends_no_chat_action(app: App, chat: LocalChat) -> None:
    app.services.typing_delay = 3600.0  # longer than any call of this test
    await seed_identity(app, chat)
    await chat.send("/help")  # the queue type's help, then its question: one service call
    assert app.services.i18n.t("kk", "choice-queue-ask") in (chat.last().plain or "")
    kinds = [s.kind for s in chat.session.sent(chat.chat_id)]
    assert "action" not in kinds
    assert not [m for m in chat.session.requests if type(m).__name__ == "SendChatAction"]


async def test_a_slow_service_call_shows_typing_before_the_answer(
    app: App, chat: LocalChat, monkeypatch: pytest.MonkeyPatch
) -> None:
    app.services.typing_delay = 0.0
    await seed_identity(app, chat)
    typing = asyncio.Event()
    chat.session.on_send(lambda s: typing.set() if s.kind == "action" else None)
    voucher = app.services.voucher
    original = voucher.list_queue_types

    async def slow_list_queue_types(*args: Any, **kwargs: Any) -> Any:
        # Slow as long as the parent has not been shown "typing…" (bounded: a test timeout).
        await asyncio.wait_for(typing.wait(), timeout=10)
        return await original(*args, **kwargs)

    monkeypatch.setattr(voucher, "list_queue_types", slow_list_queue_types)
    sent = await chat.send("/help")
    kinds = [s.kind for s in sent]
    assert [s.text for s in sent if s.kind == "action"] == ["typing"]
    # "typing…" came while the service was asked, before the question it announced.
    last_message = max(i for i, kind in enumerate(kinds) if kind == "message")
    assert kinds.index("action") < last_message
    assert app.services.i18n.t("kk", "choice-queue-ask") in (chat.last().plain or "")
