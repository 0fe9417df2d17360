"""The /forget confirmation: delete everything, or keep it."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot.i18n import Translator
from bot.keyboards.common import inline


class ForgetAnswer(CallbackData, prefix="forget"):
    """The parent's answer to "delete everything the bot holds about you?"."""

    confirm: bool


def forget_keyboard(tr: Translator) -> InlineKeyboardMarkup:
    """Yes (delete everything) and No, side by side."""
    return inline(
        [
            InlineKeyboardButton(
                text=tr("btn-forget-yes"), callback_data=ForgetAnswer(confirm=True).pack()
            ),
            InlineKeyboardButton(
                text=tr("btn-forget-no"), callback_data=ForgetAnswer(confirm=False).pack()
            ),
        ]
    )
