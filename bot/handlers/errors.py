"""The last line of defence: an update whose handler raised.

handler raises ──▶ aiogram's ErrorsMiddleware ──▶ on_error:
    log the error's type and where it happened (file:line of each frame) — never the
    exception's message or a local value, which may hold an IIN, a phone or a name
    tell the parent "something went wrong, try again" in their language; the step is kept
    the update counts as handled: nothing escapes the Dispatcher (polling goes on, a webhook
    answers 200 so Telegram does not send the same poison update again and again)
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

from aiogram import Dispatcher
from aiogram.types import Chat, ErrorEvent, User

from bot.view import Services

log = logging.getLogger("kezek.errors")

# Enough frames to find the handler and the failing call; the rest is aiogram's plumbing.
_FRAMES = 6


def install(dp: Dispatcher) -> None:
    """Register `on_error` on the Dispatcher (errors of every router reach it)."""
    dp.errors.register(on_error)


async def on_error(
    event: ErrorEvent,
    services: Services,
    event_chat: Chat | None = None,
    event_from_user: User | None = None,
    **data: Any,
) -> bool:
    """Log without personal data, apologise to the parent, and mark the update handled."""
    exc = event.exception
    log.error(
        "update %s failed: %s at %s",
        event.update.update_id,
        type(exc).__name__,
        where(exc),
    )
    if event_chat is None or event_from_user is None:
        return True
    try:
        locale = await services.store.get_locale(event_from_user.id) or services.i18n.pick(
            event_from_user.language_code
        )
        tr = services.i18n.translator(locale)
        footer = ""
        if services.settings.uses_sandbox:
            footer = "\n\n<i>" + tr("sandbox-banner") + "</i>"
        await data["bot"].send_message(event_chat.id, tr("error-unexpected") + footer)
    except Exception as second:  # the apology failing must not raise from here
        log.error(
            "could not tell user %s about the error: %s", event_from_user.id, type(second).__name__
        )
    return True


def where(exc: BaseException) -> str:
    """`bot/handlers/phone.py:121 on_code ← …`: the innermost frames, no values."""
    frames = traceback.extract_tb(exc.__traceback__)[-_FRAMES:]
    return " ← ".join(
        f"{_short(frame.filename)}:{frame.lineno} {frame.name}" for frame in reversed(frames)
    )


def _short(path: str) -> str:
    for marker in ("/bot/", "/services/", "/aiogram/"):
        index = path.rfind(marker)
        if index >= 0:
            return path[index + 1 :]
    return path.rsplit("/", 1)[-1]
