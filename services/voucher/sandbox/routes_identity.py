"""Steps 1 and 2: one-time codes, sessions, consents through 1414 and the person's state data."""

from __future__ import annotations

import hmac
import secrets

from aiohttp import web

from services.validation import InvalidIin, parse_iin
from services.voucher.models import (
    Consent,
    ConsentCreated,
    ConsentRequest,
    OtpCreated,
    OtpRequest,
    OtpVerified,
    OtpVerifyRequest,
)
from services.voucher.sandbox import rules
from services.voucher.sandbox.context import (
    API,
    SandboxState,
    Session,
    digest,
    new_id,
    parse_body,
    reply,
    require_session,
    state_of,
)
from services.voucher.sandbox.db import Row
from services.voucher.sandbox.messages import consent_text, otp_text
from services.voucher.sandbox.people import make_person
from services.voucher.sandbox.problems import ProblemError, not_found

routes = web.RouteTableDef()


@routes.post(API + "/otp")
async def request_otp(request: web.Request) -> web.Response:
    """Send a new code to the phone's ed24.kz app (the sandbox inbox)."""
    state = state_of(request)
    body = await parse_body(request, OtpRequest)
    phone = body.phone
    if not rules.PHONE.fullmatch(phone):
        raise ProblemError(422, "phone_invalid", "The phone must be +7 followed by 10 digits.")
    if phone.endswith("0000"):
        raise ProblemError(
            404, "phone_not_registered", "The phone is not registered in eGov mobile or ed24.kz."
        )
    now = state.now()
    async with state.db.transaction():
        wait = rules.otp_wait(await state.db.otp_times_since(phone, now - rules.HOUR), now)
        if wait:
            raise ProblemError(
                429,
                "too_many_requests",
                f"Too many codes for this phone; try again in {wait} s.",
                headers={"Retry-After": str(wait)},
            )
        otp_id = new_id("otp")
        code = f"{state.rng.randrange(10_000):04d}"
        await state.db.add_otp(otp_id, phone, code, now)
        await state.db.add_message(phone, now, "ed24_app", otp_text(code), otp_code=code)
    created = OtpCreated(
        otp_id=otp_id, expires_in=rules.OTP_TTL, resend_after=rules.OTP_RESEND_AFTER
    )
    return reply(created, 201)


@routes.post(API + "/otp/{otp_id}/verify")
async def verify_otp(request: web.Request) -> web.Response:
    """Exchange the right code for a session; count and lock wrong ones."""
    state = state_of(request)
    otp_id = request.match_info["otp_id"]
    if await state.db.get_otp(otp_id) is None:
        raise not_found("one-time code")
    body = await parse_body(request, OtpVerifyRequest)
    now = state.now()
    session = secrets.token_urlsafe(32)
    attempts_left = 0
    # Decide inside the transaction, raise after it: a wrong code must stay counted.
    async with state.db.transaction():
        otp = await state.db.get_otp(otp_id)
        assert otp is not None  # codes are never deleted
        if otp["wrong"] >= rules.OTP_MAX_WRONG:
            outcome = "locked"
        elif otp["used"] or otp["replaced"] or now - otp["created_at"] >= rules.OTP_TTL:
            outcome = "expired"
        elif rules.OTP_CODE.fullmatch(body.code) and hmac.compare_digest(
            body.code.encode(), otp["code"].encode()
        ):
            outcome = "ok"
            await state.db.use_otp(otp_id)
            await state.db.add_session(digest(session), otp["phone"], now + rules.SESSION_TTL)
        else:
            await state.db.count_wrong_code(otp_id)
            attempts_left = rules.OTP_MAX_WRONG - otp["wrong"] - 1
            outcome = "invalid" if attempts_left else "locked"
    if outcome == "locked":
        raise ProblemError(423, "otp_locked", "Too many wrong codes; ask for a new one.")
    if outcome == "expired":
        raise ProblemError(410, "otp_expired", "The code was used, replaced or has expired.")
    if outcome == "invalid":
        raise ProblemError(
            422,
            "otp_invalid",
            f"Wrong code; {attempts_left} attempts left.",
            attempts_left=attempts_left,
        )
    return reply(OtpVerified(session=session, expires_in=rules.SESSION_TTL))


def _check_person_iin(state: SandboxState, iin: str) -> None:
    """422 `iin_invalid` for a malformed IIN, 404 `person_not_found` for an unknown one."""
    try:
        parse_iin(iin)
    except InvalidIin as exc:
        raise ProblemError(422, "iin_invalid", f"The IIN is not valid ({exc.reason}).") from None
    if iin in state.config.unknown_iins:
        raise ProblemError(404, "person_not_found", "No person with this IIN.")


@routes.post(API + "/consents")
async def create_consent(request: web.Request) -> web.Response:
    """Ask the session's phone, by a 1414 SMS, to allow access to an IIN's data."""
    state = state_of(request)
    session = await require_session(request)
    body = await parse_body(request, ConsentRequest)
    _check_person_iin(state, body.iin)
    consent_id = new_id("cns")
    now = state.now()
    async with state.db.transaction():
        await state.db.add_consent(consent_id, session.key, session.phone, body.iin, now)
        await state.db.add_message(
            session.phone, now, "sms_1414", consent_text(body.iin), consent_id=consent_id
        )
    created = ConsentCreated(consent_id=consent_id, status="pending", expires_in=rules.CONSENT_TTL)
    return reply(created, 201)


async def current_status(state: SandboxState, consent: Row) -> str:
    """The consent's status now; a lazily reached `granted`/`expired` is written down."""
    now = state.now()
    status = rules.consent_status(
        consent["status"], consent["created_at"], now, state.faults.consent_auto_answer_s
    )
    if status == consent["status"]:
        return status
    async with state.db.transaction():
        if await state.db.settle_consent(consent["id"], status, now):
            return status
        # Answered meanwhile through /sandbox/consents: the stored answer wins.
        fresh = await state.db.get_consent(consent["id"])
    assert fresh is not None
    return str(fresh["status"])


async def _own_consent(request: web.Request, session: Session) -> Row:
    consent = await state_of(request).db.get_consent(request.match_info["consent_id"])
    if consent is None or consent["phone"] != session.phone:
        raise not_found("consent")
    return consent


@routes.get(API + "/consents/{consent_id}")
async def get_consent(request: web.Request) -> web.Response:
    """A consent of the session's phone and its current status."""
    state = state_of(request)
    session = await require_session(request)
    consent = await _own_consent(request, session)
    status = await current_status(state, consent)
    return reply(Consent(consent_id=consent["id"], iin=consent["iin"], status=status))


@routes.get(API + "/consents/{consent_id}/person")
async def get_person(request: web.Request) -> web.Response:
    """The state data of the consent's IIN, once the consent is granted."""
    state = state_of(request)
    session = await require_session(request)
    consent = await _own_consent(request, session)
    if await current_status(state, consent) != "granted":
        raise ProblemError(403, "consent_required", "The consent is not granted.")
    _check_person_iin(state, consent["iin"])
    return reply(make_person(consent["iin"], state.today()))
