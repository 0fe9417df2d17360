"""Step 1/5, contact details: the parent's phone and the 4-digit code from the ed24.kz app.

phone ──(own contact | typed KZ mobile, POST /otp)──▶ otp ──(right code)──▶ parent_iin
  ▲                                                    │ wrong → attempts left
  └──────────────── change number ◀────────────────────┘ expired/locked → resend after cooldown

Whatever the service allows, the bot keeps its own limits per Telegram user and per phone
(`services/otp_guard.py`): 5 wrong codes per code, 60 s between codes, a lockout after an
exhausted code that doubles each time; a refused try never reaches the service.
"""

from __future__ import annotations

import html
from datetime import datetime, timedelta

from aiogram import Router
from aiogram.filters import StateFilter
from aiogram.types import CallbackQuery, Message, ReplyKeyboardRemove

from bot.failures import explain_failure
from bot.filters import HasContact, HasText
from bot.fsm.states import ApplicationForm
from bot.keyboards.phone import OtpAction, contact_keyboard, otp_keyboard
from bot.view import Prompt, StepView
from services.clock import format_datetime, format_time
from services.hostile_text import has_foreign_digits, strip_invisible
from services.otp_guard import OtpGuard, Refusal
from services.validation import InvalidPhone, is_ascii_digits, normalize_phone
from services.voucher.errors import (
    NotFound,
    OtpExpired,
    OtpInvalid,
    OtpLocked,
    PhoneInvalid,
    PhoneNotRegistered,
    TooManyRequests,
    VoucherError,
)

S = ApplicationForm


def create_router() -> Router:
    router = Router(name="phone")
    router.message.register(on_contact, StateFilter(S.phone), HasContact())
    router.message.register(on_phone_typed, StateFilter(S.phone), HasText())
    router.message.register(on_phone_other, StateFilter(S.phone))
    router.message.register(on_code, StateFilter(S.otp), HasText())
    router.message.register(on_code_other, StateFilter(S.otp))
    router.callback_query.register(on_otp_action, OtpAction.filter(), StateFilter(S.otp))
    return router


async def ask_phone(view: StepView) -> None:
    """Ask for the parent's own contact or a typed Kazakhstan mobile number."""
    await view.send(view.tr("phone-ask"), contact_keyboard(view.tr))


async def ask_code(view: StepView) -> None:
    """Ask for the 4-digit code the ed24.kz app shows."""
    data = await view.state.get_data()
    phone = data.get("phone") or (await view.draft()).get("phone", "")
    await view.send(view.tr("otp-ask", phone=_pretty(phone)), otp_keyboard(view.tr))


async def on_contact(message: Message, view: StepView, otp_guard: OtpGuard | None = None) -> None:
    """A shared contact is accepted only if it is the parent's own."""
    contact = message.contact
    if contact is None or contact.user_id != message.from_user.id:
        await view.send(view.tr("phone-not-own-contact"), contact_keyboard(view.tr))
        return
    await _accept_phone(view, contact.phone_number, otp_guard)


async def on_phone_typed(
    message: Message, view: StepView, otp_guard: OtpGuard | None = None
) -> None:
    """A typed number: the ed24 number may differ from the Telegram one; the code proves it."""
    # Copied numbers carry invisible marks; digits of other scripts get their own answer.
    typed = strip_invisible(message.text or "")
    if has_foreign_digits(typed):
        await view.send(view.tr("abuse-foreign-digits"), contact_keyboard(view.tr))
        return
    await _accept_phone(view, typed, otp_guard)


async def on_phone_other(message: Message, view: StepView) -> None:
    """Anything else at this step: ask again."""
    await view.send(view.tr("phone-expected"), header=False)
    await ask_phone(view)


async def _accept_phone(view: StepView, raw: str, guard: OtpGuard | None) -> None:
    try:
        phone = normalize_phone(raw)
    except InvalidPhone as exc:
        await view.send(view.tr(f"phone-error-{exc.reason.value}"), contact_keyboard(view.tr))
        return
    # The phone goes into the FSM data with its code (`_send_code`): until a code is sent,
    # nothing reads it.
    await _send_code(view, phone, guard)


async def _send_code(view: StepView, phone: str, guard: OtpGuard | None) -> None:
    # The bot's own limits first: a locked-out user or phone does not even reach the service.
    refusal = await guard.may_request(view.user_id, phone) if guard is not None else None
    if refusal is not None:
        await _say_refused(view, refusal)
        return
    try:
        async with view.typing():
            otp = await view.voucher.request_otp(phone)
    except PhoneNotRegistered:
        await view.send(
            view.tr("phone-not-registered", phone=_pretty(phone)), contact_keyboard(view.tr)
        )
        return
    except PhoneInvalid:
        await view.send(view.tr("phone-error-not_kazakhstan"), contact_keyboard(view.tr))
        return
    except TooManyRequests as exc:
        await _say_wait(view, exc.retry_after)
        return
    except VoucherError as exc:
        await explain_failure(view, exc)
        return
    if guard is not None:
        await guard.requested(view.user_id, phone, otp.otp_id)
    resend_at = view.services.clock.now() + timedelta(seconds=otp.resend_after)
    sent = {"phone": phone, "otp_id": otp.otp_id, "otp_resend_at": resend_at.isoformat()}
    await view.move(S.otp, change=lambda data: {**data, **sent})
    await view.send(view.tr("phone-code-sent"), ReplyKeyboardRemove(), header=False)
    await ask_code(view)


async def on_code(message: Message, view: StepView, otp_guard: OtpGuard | None = None) -> None:
    """Check the code with the voucher service; on success the session opens step 2."""
    # Invisible marks from a copied code are dropped; other scripts' digits get `otp-format`,
    # which names 0–9 (the service takes nothing else).
    code = strip_invisible(message.text or "").strip().replace(" ", "")
    if len(code) != 4 or not is_ascii_digits(code):
        await view.send(view.tr("otp-format"), otp_keyboard(view.tr))
        return
    data = await view.state.get_data()
    otp_id, phone = data.get("otp_id"), data.get("phone")
    if not otp_id or not phone:
        await view.goto(S.phone)
        return
    guard = otp_guard  # may be None where the app was built without one (bare Dispatchers)
    refusal = await guard.may_verify(view.user_id, phone, otp_id) if guard is not None else None
    if refusal is not None:
        await _say_refused(view, refusal, data)
        return
    try:
        async with view.typing():
            verified = await view.voucher.verify_otp(otp_id, code)
    except OtpInvalid as exc:
        attempts = exc.attempts_left
        if guard is not None:
            counted = await guard.wrong(view.user_id, phone, otp_id)
            if counted.refusal is not None:
                await _say_refused(view, counted.refusal, data)
                return
            attempts = min(attempts, counted.left)
        await view.send(view.tr("otp-wrong", attempts=attempts), otp_keyboard(view.tr))
        return
    except OtpLocked:
        if guard is not None:
            # The service's count ran out: the bot stops calling it for this code too.
            await _say_refused(view, await guard.exhaust(view.user_id, phone, otp_id), data)
            return
        await view.send(view.tr("otp-locked", time=_resend_time(view, data)), otp_keyboard(view.tr))
        return
    except (OtpExpired, NotFound):
        await view.send(
            view.tr("otp-expired", time=_resend_time(view, data)), otp_keyboard(view.tr)
        )
        return
    except VoucherError as exc:
        await explain_failure(view, exc)
        return
    if guard is not None:
        await guard.verified(view.user_id, phone)
    expires = view.services.clock.now() + timedelta(seconds=verified.expires_in)
    await view.move(
        S.parent_iin,
        change=lambda current: {**current, "otp_id": None, "otp_resend_at": None},
        phone=phone,
        session=verified.session,
        session_expires_at=expires.isoformat(),
    )
    await view.send(view.tr("otp-verified"), header=False)
    await view.ask()


async def on_code_other(message: Message, view: StepView) -> None:
    """Not a text: ask for the code again."""
    await view.send(view.tr("otp-format"), otp_keyboard(view.tr))


async def on_otp_action(
    query: CallbackQuery,
    callback_data: OtpAction,
    view: StepView,
    otp_guard: OtpGuard | None = None,
) -> None:
    """Resend the code (after the cooldown) or go back to change the number."""
    if callback_data.action == "change":
        await view.goto(S.phone)
        return
    if callback_data.action != "resend":
        await view.send(view.tr("button-outdated"), header=False)
        return
    data = await view.state.get_data()
    resend_at = data.get("otp_resend_at")
    now = view.services.clock.now()
    if resend_at and datetime.fromisoformat(resend_at) > now:
        wait = (datetime.fromisoformat(resend_at) - now).total_seconds()
        await _say_wait(view, wait)
        return
    phone = data.get("phone")
    if not phone:
        await view.goto(S.phone)
        return
    await _send_code(view, phone, otp_guard)


async def _say_wait(view: StepView, seconds: float | None) -> None:
    wait = max(1, int(seconds or 60))
    when = view.services.clock.now() + timedelta(seconds=wait)
    await view.send(view.tr("otp-wait", seconds=wait, time=format_time(when)), header=False)


async def _say_refused(
    view: StepView, refusal: Refusal, data: dict[str, str] | None = None
) -> None:
    """The bot's own OTP limits, with the time the parent may try again."""
    now = view.services.clock.now()
    if refusal.reason == "cooldown":
        await _say_wait(view, (refusal.until - now).total_seconds())
        return
    when = refusal.until
    resend_at = (data or {}).get("otp_resend_at")
    if resend_at:
        when = max(when, datetime.fromisoformat(resend_at))
    # Lockouts grow to a day: past a few hours the time alone could mean tomorrow.
    shown = format_time(when) if when - now < timedelta(hours=6) else format_datetime(when)
    if refusal.reason == "locked":
        await view.send(view.tr("abuse-otp-locked", time=shown), header=False)
    else:  # this code is used up: the same words as when the service locks it
        await view.send(view.tr("otp-locked", time=shown), otp_keyboard(view.tr))


def _resend_time(view: StepView, data: dict[str, str]) -> str:
    now = view.services.clock.now()
    resend_at = data.get("otp_resend_at")
    when = max(now, datetime.fromisoformat(resend_at)) if resend_at else now
    return format_time(when)


def _pretty(phone: str) -> str:
    """`+77012345678` → `+7 701 234 56 78`, the way people read it."""
    if len(phone) != 12:
        return html.escape(phone)
    return f"{phone[:2]} {phone[2:5]} {phone[5:8]} {phone[8:10]} {phone[10:]}"


PROMPTS: dict[str, Prompt] = {
    S.phone.state: ask_phone,
    S.otp.state: ask_code,
}
