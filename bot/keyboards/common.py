"""Buttons every step shares: Back, Retry, the /cancel confirmation."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot.i18n import Translator


class Nav(CallbackData, prefix="nav"):
    """`back` goes one step back, `retry` asks the current step again after a fault."""

    action: str


class CancelAnswer(CallbackData, prefix="cancel"):
    confirm: bool


def back_button(tr: Translator) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=tr("btn-back"), callback_data=Nav(action="back").pack())


def retry_button(tr: Translator) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=tr("btn-retry"), callback_data=Nav(action="retry").pack())


def inline(*rows: list[InlineKeyboardButton]) -> InlineKeyboardMarkup:
    """An inline keyboard from rows, dropping empty rows."""
    return InlineKeyboardMarkup(inline_keyboard=[row for row in rows if row])


def with_back(tr: Translator, *rows: list[InlineKeyboardButton]) -> InlineKeyboardMarkup:
    return inline(*rows, [back_button(tr)])


def retry_keyboard(tr: Translator) -> InlineKeyboardMarkup:
    return inline([retry_button(tr)], [back_button(tr)])


def cancel_keyboard(tr: Translator) -> InlineKeyboardMarkup:
    return inline(
        [
            InlineKeyboardButton(
                text=tr("btn-cancel-yes"), callback_data=CancelAnswer(confirm=True).pack()
            ),
            InlineKeyboardButton(
                text=tr("btn-cancel-no"), callback_data=CancelAnswer(confirm=False).pack()
            ),
        ]
    )


class LangPick(CallbackData, prefix="lang"):
    """The parent's language: at /start and from /language at any step."""

    code: str


def language_keyboard(current: str | None = None) -> InlineKeyboardMarkup:
    # Each language is named in itself, so the button is readable whatever the current one.
    names = {"kk": "🇰🇿 Қазақша", "ru": "🇷🇺 Русский"}
    return inline(
        [
            InlineKeyboardButton(
                text=("✅ " if code == current else "") + name,
                callback_data=LangPick(code=code).pack(),
            )
            for code, name in names.items()
        ]
    )
