"""`Typing`: "typing…" only for a slow call, one timer and no task for a fast one."""

from __future__ import annotations

import asyncio

import pytest
from aiogram import Bot
from aiogram.methods import SendChatAction

from bot import view as view_module
from bot.local_session import LocalBotSession, Sent, forbidden
from bot.view import Typing

CHAT = 4242
NEVER = 3600.0  # a delay no test reaches: the call inside always ends first


def actions(bot: Bot) -> list[Sent]:
    session = bot.session
    assert isinstance(session, LocalBotSession)
    return [s for s in session.sent(CHAT) if s.kind == "action"]


def action_seen(bot: Bot) -> asyncio.Event:
    """An event set when the session records a chat action (instead of waiting for time)."""
    seen = asyncio.Event()
    session = bot.session
    assert isinstance(session, LocalBotSession)
    session.on_send(lambda sent: seen.set() if sent.kind == "action" else None)
    return seen


def typing_tasks() -> set[asyncio.Task[object]]:
    return {t for t in asyncio.all_tasks() if "_keep_typing" in repr(t.get_coro())}


async def test_a_fast_call_sends_no_chat_action_and_starts_no_task(bot: Bot) -> None:
    before = typing_tasks()
    async with Typing(bot, CHAT, NEVER):
        assert typing_tasks() == before  # only a timer while the call runs
        await asyncio.sleep(0)  # the call itself: it yields to the loop and is done
    assert actions(bot) == []
    assert typing_tasks() == before


async def test_a_slow_call_shows_typing_before_it_ends(bot: Bot) -> None:
    seen = action_seen(bot)
    async with Typing(bot, CHAT, 0.0):
        # The "slow call": it ends only once Telegram was told the bot is typing.
        await asyncio.wait_for(seen.wait(), timeout=10)
    sent = actions(bot)
    assert [(s.chat_id, s.text) for s in sent] == [(CHAT, "typing")]
    assert typing_tasks() == set()  # stopped with the block


async def test_typing_is_repeated_while_the_call_goes_on_and_stops_after_it(
    bot: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(view_module, "TYPING_INTERVAL", 0.0)
    session = bot.session
    assert isinstance(session, LocalBotSession)
    third = asyncio.Event()
    session.on_send(lambda sent: third.set() if len(actions(bot)) >= 3 else None)
    async with Typing(bot, CHAT, 0.0):
        await asyncio.wait_for(third.wait(), timeout=10)
    count = len(actions(bot))
    assert count >= 3
    assert typing_tasks() == set()
    for _ in range(20):  # the loop runs on: nothing more may come
        await asyncio.sleep(0)
    assert len(actions(bot)) == count


async def test_a_refused_chat_action_does_not_fail_the_call(bot: Bot) -> None:
    session = bot.session
    assert isinstance(session, LocalBotSession)
    session.fail_next(SendChatAction, forbidden())
    refused = asyncio.Event()
    session_requests = session.requests

    async def call() -> str:
        async with Typing(bot, CHAT, 0.0):
            # Slow until the indicator has tried (and been refused by Telegram).
            for _ in range(1000):
                if any(isinstance(m, SendChatAction) for m in session_requests):
                    refused.set()
                    break
                await asyncio.sleep(0)
            return "answer"

    assert await call() == "answer"
    assert refused.is_set()
    assert actions(bot) == []  # refused, so nothing recorded, and no retry either


async def test_cancelling_the_call_while_typing_still_cancels_it(bot: Bot) -> None:
    seen = action_seen(bot)
    entered = asyncio.Event()

    async def call() -> None:
        async with Typing(bot, CHAT, 0.0):
            entered.set()
            await asyncio.Event().wait()  # a call that never answers

    task = asyncio.create_task(call())
    await entered.wait()
    await asyncio.wait_for(seen.wait(), timeout=10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert typing_tasks() == set()
