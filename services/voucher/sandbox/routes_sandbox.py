"""`/sandbox/...`: the parent's phone and the staff side, for people trying things and for tests."""

from __future__ import annotations

import json

from aiohttp import web
from pydantic import BaseModel, ConfigDict

from services.clock import ALMATY
from services.voucher.models import (
    ConsentAnswer,
    ConsentAnswered,
    FaultsPatch,
    InboxMessage,
    Localized,
    SandboxApplication,
    StatusChange,
)
from services.voucher.sandbox import rules
from services.voucher.sandbox.context import (
    API,
    parse_body,
    parse_query,
    reply,
    state_of,
    timestamp,
)
from services.voucher.sandbox.problems import ProblemError, invalid, not_found
from services.voucher.sandbox.routes_applications import application_view
from services.voucher.sandbox.routes_identity import current_status

routes = web.RouteTableDef()

SANDBOX = API + "/sandbox"
# A finished application has no place in a queue; these keep theirs when none is given.
QUEUED_STATUSES = ("registered", "voucher_issued")


class InboxQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    phone: str


@routes.get(SANDBOX + "/inbox")
async def inbox(request: web.Request) -> web.Response:
    """What the ed24.kz app and 1414 delivered to a phone, oldest first."""
    query = parse_query(request, InboxQuery)
    if not rules.PHONE.fullmatch(query.phone):
        raise invalid(("phone", "Must be +7 followed by 10 digits (encode `+` as %2B)."))
    rows = await state_of(request).db.inbox(query.phone)
    messages = [
        InboxMessage(
            at=timestamp(row["at"]),
            channel=row["channel"],
            text=Localized(kk=row["text_kk"], ru=row["text_ru"]),
            otp_code=row["otp_code"],
            consent_id=row["consent_id"],
        ).model_dump(mode="json", exclude_none=True)
        for row in rows
    ]
    return reply(messages)


@routes.post(SANDBOX + "/consents/{consent_id}")
async def answer_consent(request: web.Request) -> web.Response:
    """Reply to a 1414 SMS: "yes" grants the consent, "no" denies it."""
    state = state_of(request)
    consent_id = request.match_info["consent_id"]
    consent = await state.db.get_consent(consent_id)
    if consent is None:
        raise not_found("consent")
    body = await parse_body(request, ConsentAnswer)
    status = "granted" if body.answer == "yes" else "denied"
    answered = False
    if await current_status(state, consent) == "pending":
        async with state.db.transaction():  # only the first of two racing answers wins
            answered = await state.db.settle_consent(consent_id, status, state.now())
    if not answered:
        raise ProblemError(409, "consent_not_pending", "The consent is no longer pending.")
    return reply(ConsentAnswered(consent_id=consent_id, status=status))


@routes.get(SANDBOX + "/applications")
async def all_applications(request: web.Request) -> web.Response:
    """Every application, oldest first, with what was submitted."""
    rows = await state_of(request).db.all_applications()
    return reply(
        [
            SandboxApplication(
                **application_view(row).model_dump(),
                submitted_at=timestamp(row["submitted_at"]),
                body=json.loads(row["body"]),
            )
            for row in rows
        ]
    )


@routes.post(SANDBOX + "/applications/{application_id}/status")
async def change_status(request: web.Request) -> web.Response:
    """Play the staff: move an application to any status."""
    state = state_of(request)
    app_id = request.match_info["application_id"]
    if await state.db.get_application(app_id) is None:
        raise not_found("application")
    change = await parse_body(request, StatusChange)
    if change.queue_position is not None and change.queue_position < 1:
        raise invalid(("queue_position", "Must be 1 or more."))
    now = state.now()
    if change.deadline is not None:
        deadline_at = change.deadline
        if deadline_at.tzinfo is None:  # a bare local time means Almaty time
            deadline_at = deadline_at.replace(tzinfo=ALMATY)
        deadline: float | None = deadline_at.timestamp()
    elif change.status == "voucher_issued":
        deadline = now + rules.VOUCHER_DEADLINE
    else:
        deadline = None
    async with state.db.transaction():
        row = await state.db.get_application(app_id)
        assert row is not None  # applications are never deleted
        if "queue_position" in change.model_fields_set:
            position = change.queue_position
        else:
            position = row["queue_position"] if change.status in QUEUED_STATUSES else None
        reason = None if change.reason is None else change.reason.model_dump()
        await state.db.set_status(app_id, change.status, position, reason, deadline, now)
        updated = await state.db.get_application(app_id)
    assert updated is not None
    return reply(application_view(updated))


@routes.get(SANDBOX + "/faults")
async def get_faults(request: web.Request) -> web.Response:
    return reply(state_of(request).faults)


@routes.post(SANDBOX + "/faults")
async def set_faults(request: web.Request) -> web.Response:
    """Change the named switches only; `consent_auto_answer_s: null` turns auto-answer off."""
    state = state_of(request)
    patch = await parse_body(request, FaultsPatch)
    changes = patch.model_dump(include=patch.model_fields_set)
    nulls = [
        (name, "May not be null.")
        for name, value in changes.items()
        if value is None and name != "consent_auto_answer_s"
    ]
    if nulls:
        raise invalid(*nulls)
    if "intake_closed" in changes:
        changes["intake_closed"] = list(dict.fromkeys(changes["intake_closed"]))
    state.faults = state.faults.model_copy(update=changes)
    return reply(state.faults)
