"""What a running bot does in the background after *Submit*, done once on the tests' clock.

`open_app` in the tests starts neither the submitter nor the outbox sender: a test calls
`settle(app)` where the running bot would simply wait, and gets what the chat received.
"""

from __future__ import annotations

from bot.app import App
from bot.delivery import TelegramDelivery
from bot.local_chat import LocalChat
from bot.local_session import Sent
from services.clock import FakeClock
from services.sender import Sender


async def drain(app: App) -> int:
    """Deliver the outbox into the local Telegram through the real Sender and TelegramDelivery."""
    clock = app.services.clock
    assert isinstance(clock, FakeClock), "the conversation tests run on a FakeClock"
    assert app.services.outbox is not None

    async def virtual_sleep(seconds: float) -> None:
        clock.advance(seconds=seconds)

    sender = Sender(app.services.outbox, TelegramDelivery(app.bot), clock, sleep=virtual_sleep)
    return await sender.drain()


async def settle(app: App) -> int:
    """The submitter's pass over due submissions, then the sender; returns final answers."""
    assert app.submitter is not None
    final = await app.submitter.run_once()
    await drain(app)
    return final


async def settle_chat(app: App, chat: LocalChat) -> list[Sent]:
    """`settle`, and the messages this chat got meanwhile (visible ones)."""
    before = len(chat.history())
    await settle(app)
    return [s for s in chat.history()[before:] if s.visible]
