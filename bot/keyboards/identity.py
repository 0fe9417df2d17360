"""Step 2 keyboards: the 1414 consent (request data, no SMS, ask again) and the data cards."""

from __future__ import annotations

import hashlib

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot.i18n import Translator
from bot.keyboards.common import back_keyboard, inline, shared, with_back


class ConsentAction(CallbackData, prefix="consent"):
    """`check` asks for the data now, `nosms` explains, `again` asks 1414 for a new SMS.

    `ref` names the consent the button was shown for, so a button left over from an earlier
    consent (or forged) is recognised instead of acting on the current one.
    """

    action: str
    ref: str


class PersonAction(CallbackData, prefix="person"):
    action: str  # "ok" | "reenter"


def consent_ref(consent_id: str) -> str:
    """A short, stable tag of a consent id: callback data is limited to 64 bytes."""
    return hashlib.sha256(consent_id.encode()).hexdigest()[:10]


def _consent_button(tr: Translator, msg_id: str, action: str, ref: str) -> InlineKeyboardButton:
    return InlineKeyboardButton(
        text=tr(msg_id), callback_data=ConsentAction(action=action, ref=ref).pack()
    )


def consent_keyboard(tr: Translator, consent_id: str) -> InlineKeyboardMarkup:
    """While the SMS is pending: request the data now, help when no SMS came, Back."""
    ref = consent_ref(consent_id)
    return with_back(
        tr,
        [_consent_button(tr, "btn-consent-check", "check", ref)],
        [_consent_button(tr, "btn-consent-no-sms", "nosms", ref)],
    )


def no_sms_keyboard(tr: Translator, consent_id: str) -> InlineKeyboardMarkup:
    """Under the "no SMS?" help: request the data, ask for a new SMS, Back."""
    ref = consent_ref(consent_id)
    return with_back(
        tr,
        [_consent_button(tr, "btn-consent-check", "check", ref)],
        [_consent_button(tr, "btn-consent-again", "again", ref)],
    )


def again_keyboard(tr: Translator, consent_id: str) -> InlineKeyboardMarkup:
    """After a refusal or an expired SMS: ask 1414 again, or Back to re-enter the IIN."""
    return with_back(
        tr, [_consent_button(tr, "btn-consent-again", "again", consent_ref(consent_id))]
    )


def iin_keyboard(tr: Translator) -> InlineKeyboardMarkup:
    return back_keyboard(tr)


def person_keyboard(tr: Translator, who: str) -> InlineKeyboardMarkup:
    """Under a data card: *Correct*, or re-enter the IIN (*Not me* for the parent)."""
    reenter = "btn-parent-not-me" if who == "parent" else "btn-child-reenter"
    return shared(tr, ("person", reenter), lambda: _person_keyboard(tr, reenter))


def _person_keyboard(tr: Translator, reenter: str) -> InlineKeyboardMarkup:
    return inline(
        [
            InlineKeyboardButton(
                text=tr("btn-person-correct"), callback_data=PersonAction(action="ok").pack()
            )
        ],
        [
            InlineKeyboardButton(
                text=tr(reenter), callback_data=PersonAction(action="reenter").pack()
            )
        ],
    )
