"""The aiogram side of the outbox: one `OutboxMessage` becomes one Bot API call.

`TelegramDelivery(bot)` is the `deliver` callable of `services.sender.Sender`. It makes exactly
one call per message (a message with an attachment is one sendDocument with the text as its
caption, so keep such texts within Telegram's 1024-character caption limit) and turns
Telegram's answer into the sender's vocabulary:

    accepted                                   → Delivered(message_id)
    TelegramRetryAfter (429)                   → RetryAfter(seconds): its chat waits them out
    TelegramForbiddenError (403: blocked, …)   → Blocked()
    TelegramBadRequest "chat not found"        → Blocked(): nobody to send to any more
    TelegramBadRequest, anything else          → Permanent(description)
    TelegramEntityTooLarge                     → Permanent: a retry would not be smaller
    TelegramNetworkError, TelegramServerError  → Transient(reason): retried with backoff
    TelegramMigrateToChat, TelegramNotFound    → Permanent

A network error is retried as the issue asks; note that a *timeout* can hide a message that
Telegram did accept, so on a timeout Telegram's side is at-least-once. Errors carry Telegram's
description or the error's type, never the message text.
"""

from __future__ import annotations

from typing import Any

from aiogram import Bot
from aiogram.enums import ParseMode
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramEntityTooLarge,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import BufferedInputFile, InlineKeyboardMarkup, Message
from pydantic import ValidationError

from services.failpoints import failpoint
from services.outbox import OutboxMessage
from services.sender import (
    Blocked,
    Delivered,
    DeliveryResult,
    Permanent,
    RetryAfter,
    Transient,
)

KIND_SUBMITTED = "submitted"  # the confirmation of an application (bot/submissions.py)
CHAT_GONE = ("chat not found", "user not found", "peer_id_invalid")
# Telegram quotes a piece of our HTML after this (a tag, maybe a name): keep only the kind.
_PARSE_ERROR = "can't parse entities"


class TelegramDelivery:
    """Sends one outbox row through `bot` and reports how it went."""

    def __init__(self, bot: Bot) -> None:
        self._bot = bot

    async def __call__(self, msg: OutboxMessage) -> DeliveryResult:
        """One Bot API call for `msg`, its outcome mapped for the sender."""
        try:
            markup = _markup(msg.markup)
        except ValidationError:
            return Permanent("invalid reply markup")
        try:
            sent = await self._send(msg, markup)
        except TelegramRetryAfter as exc:
            return RetryAfter(float(exc.retry_after))
        except TelegramForbiddenError:
            return Blocked()
        except TelegramBadRequest as exc:
            if any(marker in exc.message.lower() for marker in CHAT_GONE):
                return Blocked()
            return Permanent(_description(exc.message))
        except TelegramEntityTooLarge:
            return Permanent("attachment too large")
        except (TelegramMigrateToChat, TelegramNotFound) as exc:
            return Permanent(f"{type(exc).__name__}: {exc.message}")
        except (TelegramNetworkError, TelegramServerError) as exc:
            return Transient(f"{type(exc).__name__}: {exc.message}")
        if msg.kind == KIND_SUBMITTED:
            # The crash tests' point: Telegram has the confirmation, the row is not marked.
            failpoint("confirm.after_send")
        return Delivered(sent.message_id)

    async def _send(self, msg: OutboxMessage, markup: InlineKeyboardMarkup | None) -> Message:
        if msg.attachment is not None:
            file_name, data = msg.attachment
            return await self._bot.send_document(
                msg.chat_id,
                BufferedInputFile(data, filename=file_name),
                caption=msg.text or None,
                parse_mode=ParseMode.HTML,
                reply_markup=markup,
            )
        return await self._bot.send_message(
            msg.chat_id, msg.text, parse_mode=ParseMode.HTML, reply_markup=markup
        )


def _description(message: str) -> str:
    """Telegram's description without any quoted piece of our own text."""
    at = message.find(_PARSE_ERROR)
    return message[: at + len(_PARSE_ERROR)] if at >= 0 else message


def _markup(data: dict[str, Any] | None) -> InlineKeyboardMarkup | None:
    return InlineKeyboardMarkup.model_validate(data) if data else None
