"""Step 4 keyboards: the notification channel and the notification language."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot.i18n import Translator
from bot.keyboards.common import shared, with_back
from services.application import CHANNELS, LANGUAGES


class NotifyChannel(CallbackData, prefix="ntc"):
    code: str  # one of services.application.CHANNELS


class NotifyLanguage(CallbackData, prefix="ntl"):
    code: str  # one of services.application.LANGUAGES


def _mark(code: str, current: str | None) -> str:
    return "✅ " if code == current else ""


def channel_keyboard(tr: Translator, current: str | None) -> InlineKeyboardMarkup:
    """One button per channel, the current choice (if any) ticked (shared)."""
    chosen = current if current in CHANNELS else None
    return shared(tr, ("notify-channel", chosen), lambda: _channel_keyboard(tr, chosen))


def _channel_keyboard(tr: Translator, current: str | None) -> InlineKeyboardMarkup:
    rows = [
        [
            InlineKeyboardButton(
                text=_mark(code, current) + tr(f"btn-notify-{code}"),
                callback_data=NotifyChannel(code=code).pack(),
            )
        ]
        for code in CHANNELS
    ]
    return with_back(tr, *rows)


def notify_language_keyboard(tr: Translator, current: str | None) -> InlineKeyboardMarkup:
    """Kazakh and Russian side by side, the pre-selected one ticked (shared)."""
    chosen = current if current in LANGUAGES else None
    return shared(tr, ("notify-language", chosen), lambda: _language_keyboard(tr, chosen))


def _language_keyboard(tr: Translator, current: str | None) -> InlineKeyboardMarkup:
    row = [
        InlineKeyboardButton(
            text=_mark(code, current) + tr(f"btn-notify-lang-{code}"),
            callback_data=NotifyLanguage(code=code).pack(),
        )
        for code in LANGUAGES
    ]
    return with_back(tr, row)
