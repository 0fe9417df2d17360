"""Step 5 keyboards: consent toggles, *Edit* and *Submit*, the section menu, retry after a fault."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot.i18n import Translator
from bot.keyboards.common import back_button, inline, shared
from services.application import CONSENTS, Section


class ConsentToggle(CallbackData, prefix="rvc"):
    item: str  # one of services.application.CONSENTS


class ReviewAction(CallbackData, prefix="rva"):
    action: str  # "edit" (section menu) | "submit" | "show" (the review keyboard again)


class EditSection(CallbackData, prefix="rve"):
    section: str  # a services.application.Section value


class AnotherChild(CallbackData, prefix="rvn"):
    """*Apply for another child*, under the confirmation of a sent application."""


def _button(text: str, data: CallbackData) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text, callback_data=data.pack())


def edit_button(tr: Translator) -> InlineKeyboardButton:
    return _button(tr("btn-review-edit"), ReviewAction(action="edit"))


def review_keyboard(tr: Translator, consents: Mapping[str, Any]) -> InlineKeyboardMarkup:
    """A toggle per consent, then *Edit* and *Submit* (locked until all three are ticked)."""
    marks = tuple(consents.get(name) is True for name in CONSENTS)
    return shared(tr, ("review", marks), lambda: _review_keyboard(tr, marks))


def _review_keyboard(tr: Translator, marks: tuple[bool, ...]) -> InlineKeyboardMarkup:
    rows = [
        [
            _button(
                ("✅ " if given else "⬜ ") + tr(f"btn-consent-{name}"),
                ConsentToggle(item=name),
            )
        ]
        for name, given in zip(CONSENTS, marks, strict=True)
    ]
    ready = all(marks)
    submit = ("" if ready else "🔒 ") + tr("btn-review-submit")
    rows.append([edit_button(tr), _button(submit, ReviewAction(action="submit"))])
    return inline(*rows, [back_button(tr)])


def edit_keyboard(tr: Translator) -> InlineKeyboardMarkup:
    """The sections *Edit* can open, two a row, and the way back to the review."""
    return shared(tr, "review-edit", lambda: _edit_keyboard(tr))


def _edit_keyboard(tr: Translator) -> InlineKeyboardMarkup:
    buttons = [_button(tr(f"btn-edit-{s.value}"), EditSection(section=s.value)) for s in Section]
    rows = [buttons[i : i + 2] for i in range(0, len(buttons), 2)]
    return inline(*rows, [_button(tr("btn-review-show"), ReviewAction(action="show"))])


def resubmit_keyboard(tr: Translator) -> InlineKeyboardMarkup:
    """After a fault: *Retry* sends again (with the same Idempotency-Key), or back to the review."""
    return shared(
        tr,
        "review-resubmit",
        lambda: inline(
            [_button(tr("btn-retry"), ReviewAction(action="submit"))],
            [_button(tr("btn-review-show"), ReviewAction(action="show"))],
        ),
    )


def fix_keyboard(tr: Translator) -> InlineKeyboardMarkup:
    """After a refusal the parent can fix: *Edit*, or back to the review."""
    return shared(
        tr,
        "review-fix",
        lambda: inline(
            [edit_button(tr), _button(tr("btn-review-show"), ReviewAction(action="show"))]
        ),
    )


def submitted_keyboard(tr: Translator) -> InlineKeyboardMarkup:
    return shared(
        tr, "submitted", lambda: inline([_button(tr("btn-another-child"), AnotherChild())])
    )
