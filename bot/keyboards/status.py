"""Buttons after submission: refresh one application in /status, resume an idle draft."""

from __future__ import annotations

import hashlib

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot.i18n import Translator
from bot.keyboards.common import inline


class StatusRefresh(CallbackData, prefix="str"):
    """Refresh one application; `ref` is `application_ref(id)`, looked up among the user's own."""

    ref: str


class DraftResume(CallbackData, prefix="drs"):
    """Resume an idle draft at its current step (from a draft reminder)."""

    n: int  # which reminder carried the button, for the logs only


def application_ref(application_id: str) -> str:
    """A short stand-in for an application id in callback data.

    Ids are opaque strings of any length (callback data holds 64 bytes) and may contain the
    ":" separator; the handler finds the application among this user's own by this digest, so
    a forged or foreign ref simply finds nothing.
    """
    return hashlib.sha256(application_id.encode()).hexdigest()[:16]


def refresh_keyboard(tr: Translator, application_id: str) -> InlineKeyboardMarkup:
    button = InlineKeyboardButton(
        text=tr("status-btn-refresh"),
        callback_data=StatusRefresh(ref=application_ref(application_id)).pack(),
    )
    return inline([button])


def resume_keyboard(tr: Translator, n: int) -> InlineKeyboardMarkup:
    button = InlineKeyboardButton(
        text=tr("status-btn-resume"), callback_data=DraftResume(n=n).pack()
    )
    return inline([button])
