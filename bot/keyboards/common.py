"""Buttons every step shares: Back, Retry, the /cancel confirmation; keyboards built once.

Most keyboards depend only on the locale and on a few fixed values (which boxes are ticked):
`shared(tr, key, build)` builds one once per locale and key and hands every chat the same,
frozen object (aiogram's markups are mutable pydantic models; a frozen copy raises on any
attribute change instead of altering what other chats receive).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import TypeVar

from aiogram.filters.callback_data import CallbackData
from aiogram.types import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
)
from pydantic import ConfigDict

from bot.i18n import Translator

M = TypeVar("M", InlineKeyboardMarkup, ReplyKeyboardMarkup)


class _FrozenInlineButton(InlineKeyboardButton):
    model_config = ConfigDict(frozen=True)


class _FrozenInlineMarkup(InlineKeyboardMarkup):
    model_config = ConfigDict(frozen=True)


class _FrozenButton(KeyboardButton):
    model_config = ConfigDict(frozen=True)


class _FrozenReplyMarkup(ReplyKeyboardMarkup):
    model_config = ConfigDict(frozen=True)


def _freeze_button(button: InlineKeyboardButton) -> InlineKeyboardButton:
    return _FrozenInlineButton.model_validate(button.model_dump(exclude_none=True))


def freeze(markup: M) -> M:
    """An equal markup whose every model refuses changes."""
    if isinstance(markup, InlineKeyboardMarkup):
        rows = [[_freeze_button(b) for b in row] for row in markup.inline_keyboard]
        return _FrozenInlineMarkup.model_validate(
            {**markup.model_dump(exclude_none=True), "inline_keyboard": rows}
        )
    keys = [
        [_FrozenButton.model_validate(b.model_dump(exclude_none=True)) for b in row]
        for row in markup.keyboard
    ]
    return _FrozenReplyMarkup.model_validate(
        {**markup.model_dump(exclude_none=True), "keyboard": keys}
    )


def shared(tr: Translator, key: Hashable, build: Callable[[], M]) -> M:
    """The keyboard `build()` makes for `key` in tr's locale: built and frozen once, then shared.

    `key` must say everything `build` depends on besides the locale, and take few values.
    """
    return tr.memo(("keyboard", key), lambda: freeze(build()))


class Nav(CallbackData, prefix="nav"):
    """`back` goes one step back, `retry` asks the current step again after a fault."""

    action: str


class CancelAnswer(CallbackData, prefix="cancel"):
    confirm: bool


def shared_button(
    tr: Translator, key: Hashable, build: Callable[[], InlineKeyboardButton]
) -> InlineKeyboardButton:
    """Like `shared`, for one button that keyboards built per message include."""
    return tr.memo(("button", key), lambda: _freeze_button(build()))


def back_button(tr: Translator) -> InlineKeyboardButton:
    """*Back*: one frozen button per locale, shared by every keyboard that has it."""
    return shared_button(
        tr,
        "back",
        lambda: InlineKeyboardButton(text=tr("btn-back"), callback_data=Nav(action="back").pack()),
    )


def retry_button(tr: Translator) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=tr("btn-retry"), callback_data=Nav(action="retry").pack())


def inline(*rows: list[InlineKeyboardButton]) -> InlineKeyboardMarkup:
    """An inline keyboard from rows, dropping empty rows."""
    return InlineKeyboardMarkup(inline_keyboard=[row for row in rows if row])


def with_back(tr: Translator, *rows: list[InlineKeyboardButton]) -> InlineKeyboardMarkup:
    return inline(*rows, [back_button(tr)])


def back_keyboard(tr: Translator) -> InlineKeyboardMarkup:
    """Only *Back* (shared)."""
    return shared(tr, "back", lambda: with_back(tr))


def retry_keyboard(tr: Translator) -> InlineKeyboardMarkup:
    return shared(tr, "retry", lambda: inline([retry_button(tr)], [back_button(tr)]))


def cancel_keyboard(tr: Translator) -> InlineKeyboardMarkup:
    return shared(
        tr,
        "cancel",
        lambda: inline(
            [
                InlineKeyboardButton(
                    text=tr("btn-cancel-yes"), callback_data=CancelAnswer(confirm=True).pack()
                ),
                InlineKeyboardButton(
                    text=tr("btn-cancel-no"), callback_data=CancelAnswer(confirm=False).pack()
                ),
            ]
        ),
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
