"""The rules' checkboxes and the *Join the queue* button."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot.i18n import Translator
from bot.keyboards.common import back_button, inline, shared

RULES = (1, 2, 3)


class RuleToggle(CallbackData, prefix="rule"):
    item: int


class JoinQueue(CallbackData, prefix="join"):
    pass


def rules_keyboard(tr: Translator, ticked: set[int]) -> InlineKeyboardMarkup:
    """A checkbox per rule and *Join the queue*, locked until every rule is ticked (shared)."""
    marks = tuple(item in ticked for item in RULES)
    return shared(tr, ("rules", marks), lambda: _rules_keyboard(tr, marks))


def _rules_keyboard(tr: Translator, marks: tuple[bool, ...]) -> InlineKeyboardMarkup:
    rows = [
        [
            InlineKeyboardButton(
                text=("✅ " if ticked else "⬜ ") + tr(f"rules-item-{item}-short"),
                callback_data=RuleToggle(item=item).pack(),
            )
        ]
        for item, ticked in zip(RULES, marks, strict=True)
    ]
    join = ("▶️ " if all(marks) else "🔒 ") + tr("btn-join-queue")
    rows.append([InlineKeyboardButton(text=join, callback_data=JoinQueue().pack())])
    return inline(*rows, [back_button(tr)])
