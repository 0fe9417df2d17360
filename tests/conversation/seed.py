"""Put a parent straight at a later step, through the real sandbox, for tests of that step.

The calls are the real ones (OTP from the sandbox inbox, consents answered "yes" through the
sandbox), so the session and the consents the later steps rely on are valid upstream.
"""

from __future__ import annotations

from typing import Any

from aiogram.fsm.storage.base import StorageKey

from bot.app import App
from bot.fsm.states import ApplicationForm
from bot.local_chat import LocalChat

PARENT_IIN = "871008401427"  # 08.10.1987, female
PHONE = "+77012345678"


def child_iin(year: int = 16, month: int = 3, day: int = 15, century_sex: int = 5) -> str:
    """A valid child IIN born on the given date (2000s, male by default)."""
    from services.validation import iin_check_digit

    for serial in range(1, 9999):
        first11 = f"{year:02d}{month:02d}{day:02d}{century_sex}{serial:04d}"
        check = iin_check_digit(first11)
        if check is not None:
            return first11 + str(check)
    raise AssertionError("no IIN")


async def verified_session(app: App, phone: str = PHONE) -> str:
    """Ask a code, read it from the phone's ed24 inbox, verify it: the session id."""
    voucher = app.services.voucher
    otp = await voucher.request_otp(phone)
    inbox = await voucher.sandbox_inbox(phone)
    code = next(m.otp_code for m in reversed(inbox) if m.otp_code)
    verified = await voucher.verify_otp(otp.otp_id, code)
    assert otp.otp_id
    return verified.session


async def granted_person(app: App, session: str, iin: str) -> tuple[str, dict[str, Any]]:
    """A consent for `iin`, answered yes through the sandbox, and the person it opens."""
    voucher = app.services.voucher
    consent = await voucher.create_consent(session, iin)
    await voucher.sandbox_answer_consent(consent.consent_id, "yes")
    person = await voucher.get_person(session, consent.consent_id)
    return consent.consent_id, person.model_dump(mode="json")


async def seed_identity(
    app: App, chat: LocalChat, *, child: str | None = None, locale: str = "kk"
) -> dict[str, Any]:
    """A parent whose phone, own data and child's data are confirmed: at `queue_type`."""
    session = await verified_session(app)
    parent_consent, parent = await granted_person(app, session, PARENT_IIN)
    child_consent, child_person = await granted_person(app, session, child or child_iin())
    store = app.services.store
    await store.set_locale(chat.user_id, locale)
    draft = await store.update_draft(
        chat.user_id,
        step=ApplicationForm.queue_type.state,
        rules_accepted=True,
        phone=PHONE,
        session=session,
        parent=parent,
        parent_consent_id=parent_consent,
        parent_consent_session=session,
        child=child_person,
        child_consent_id=child_consent,
        child_consent_session=session,
    )
    await set_state(app, chat, ApplicationForm.queue_type.state)
    return draft


async def set_state(app: App, chat: LocalChat, state: str) -> None:
    key = StorageKey(bot_id=app.bot.id, chat_id=chat.chat_id, user_id=chat.user_id)
    await app.storage.set_state(key, state)
