"""Step 1 keyboards: share the contact; resend the code or change the number."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData
from aiogram.types import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
)

from bot.i18n import Translator
from bot.keyboards.common import back_button, inline, shared


class OtpAction(CallbackData, prefix="otp"):
    action: str  # "resend" | "change"


def contact_keyboard(tr: Translator) -> ReplyKeyboardMarkup:
    return shared(
        tr,
        "contact",
        lambda: ReplyKeyboardMarkup(
            keyboard=[[KeyboardButton(text=tr("btn-share-contact"), request_contact=True)]],
            resize_keyboard=True,
            one_time_keyboard=True,
            input_field_placeholder="+7 7__ ___ __ __",
        ),
    )


def otp_keyboard(tr: Translator) -> InlineKeyboardMarkup:
    return shared(tr, "otp", lambda: _otp_keyboard(tr))


def _otp_keyboard(tr: Translator) -> InlineKeyboardMarkup:
    return inline(
        [
            InlineKeyboardButton(
                text=tr("btn-otp-resend"), callback_data=OtpAction(action="resend").pack()
            ),
            InlineKeyboardButton(
                text=tr("btn-otp-change-phone"), callback_data=OtpAction(action="change").pack()
            ),
        ],
        [back_button(tr)],
    )
