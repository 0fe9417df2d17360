"""Per-update wiring: build the StepView a handler receives as `view`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject

from bot.view import Services, StepView


class ViewMiddleware(BaseMiddleware):
    """Inner middleware: runs after the locale middleware put `tr` into the data."""

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        chat = data.get("event_chat")
        user = data.get("event_from_user")
        services: Services = data["services"]
        if chat is not None and user is not None and "state" in data:
            data["view"] = StepView(
                bot=data["bot"],
                chat_id=chat.id,
                user_id=user.id,
                tr=data["tr"],
                state=data["state"],
                services=services,
            )
        return await handler(event, data)
