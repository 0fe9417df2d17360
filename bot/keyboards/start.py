"""The rules' checkboxes and the *Join the queue* button."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot.i18n import Translator
from bot.keyboards.common import back_button, inline

RULES = (1, 2, 3)


class RuleToggle(CallbackData, prefix="rule"):
    item: int


class JoinQueue(CallbackData, prefix="join"):
    pass


def rules_keyboard(tr: Translator, ticked: set[int]) -> InlineKeyboardMarkup:
    rows = [
        [
            InlineKeyboardButton(
                text=("✅ " if item in ticked else "⬜ ") + tr(f"rules-item-{item}-short"),
                callback_data=RuleToggle(item=item).pack(),
            )
        ]
        for item in RULES
    ]
    join = ("▶️ " if ticked >= set(RULES) else "🔒 ") + tr("btn-join-queue")
    rows.append([InlineKeyboardButton(text=join, callback_data=JoinQueue().pack())])
    return inline(*rows, [back_button(tr)])
