"""Fixtures shared by the tests of `bot/` that need only a Bot on the recording session."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiogram import Bot

from bot.local_session import LocalBotSession


@pytest.fixture
async def bot(request: pytest.FixtureRequest) -> AsyncIterator[Bot]:
    """A Bot on a fresh LocalBotSession that knows the test module's private `CHAT`."""
    session = LocalBotSession()
    session.register_chat({"id": request.module.CHAT, "type": "private", "first_name": "Айгүл"})
    bot = Bot("42:TEST", session=session)
    yield bot
    await bot.session.close()
