"""Step 5: submitting an application (idempotent), reading it, and the feed of its changes."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from services.academic_year import academic_year_label
from services.validation import parse_iin
from services.voucher.models import (
    Application,
    ApplicationCreated,
    ApplicationRequest,
    ChangeItem,
    ChangesPage,
    Localized,
)
from services.voucher.sandbox import rules
from services.voucher.sandbox.context import (
    API,
    SandboxState,
    Session,
    digest,
    new_id,
    parse_query,
    read_json,
    reply,
    require_session,
    state_of,
    timestamp,
    validate_body,
)
from services.voucher.sandbox.db import Row
from services.voucher.sandbox.problems import ProblemError, dumps, invalid, not_found
from services.voucher.sandbox.routes_catalog import check_choice
from services.voucher.sandbox.routes_identity import current_status

routes = web.RouteTableDef()

ACTIVE_STATUSES = ("submitted", "registered", "voucher_issued")
MAX_KEY_LENGTH = 255


def _status_fields(row: Row) -> dict[str, Any]:
    """The status part shared by an application and an item of the changes feed."""
    reason = row["status_reason"]
    return {
        "number": str(row["number"]),
        "status": row["status"],
        "queue_position": row["queue_position"],
        "status_reason": None if reason is None else Localized.model_validate_json(reason),
        "deadline": None if row["deadline"] is None else timestamp(row["deadline"]),
    }


def application_view(row: Row) -> Application:
    """An application row as `GET /applications/{id}` shows it."""
    return Application(id=row["id"], updated_at=timestamp(row["updated_at"]), **_status_fields(row))


def _idempotency_key(request: web.Request) -> str:
    key = request.headers.get("Idempotency-Key", "")
    if not key:
        raise invalid(("Idempotency-Key", "The Idempotency-Key header is required."))
    if len(key) > MAX_KEY_LENGTH:
        raise invalid(("Idempotency-Key", f"At most {MAX_KEY_LENGTH} characters."))
    return key


async def _check_references(
    state: SandboxState, session: Session, body: ApplicationRequest
) -> list[str]:
    """422 `validation_error` for whatever does not belong to this session; the documents' kinds."""
    errors: list[tuple[str, str]] = []
    if body.parent.phone != session.phone:
        errors.append(("parent.phone", "Must be the phone the session was verified with."))
    consents = await state.db.session_consents(session.key, [body.parent.iin, body.child.iin])
    granted = {c["iin"] for c in consents if await current_status(state, c) == "granted"}
    for field, iin in (("parent.iin", body.parent.iin), ("child.iin", body.child.iin)):
        if iin not in granted:
            errors.append((field, "No granted consent for this IIN in this session."))
    check_choice(errors, body.queue_type, body.state_order_type)
    if body.provider_id not in state.catalog.groups:
        errors.append(("provider_id", "No such provider."))
    owner = state.catalog.group_owner.get(body.group_id)
    if owner is None:
        errors.append(("group_id", "No such group."))
    elif owner != body.provider_id:
        errors.append(("group_id", "The group does not belong to the provider."))
    owned = await state.db.phone_documents(session.phone, body.documents)
    for index, document_id in enumerate(body.documents):
        if document_id not in owned:
            errors.append((f"documents.{index}", "Not a document of this session."))
    if errors:
        raise invalid(*errors)
    return [row["kind"] for row in owned.values()]


async def _check(state: SandboxState, session: Session, body: ApplicationRequest) -> str:
    """The contract's checks, in its order; the academic year the application is for."""
    if not (body.consents.personal_data and body.consents.contact_use and body.consents.offer):
        raise ProblemError(
            422,
            "consent_missing",
            "All three consents (personal data, contacts, offer) are needed.",
        )
    kinds = await _check_references(state, session, body)
    group = state.catalog.group(body.group_id)
    assert group is not None
    today = state.today()
    rules.place_in_queue(
        parse_iin(body.child.iin).birth_date, body.queue_type, group, state.config.age_bands, today
    )
    rules.require_disability_document(body.queue_type, kinds)
    if body.queue_type in state.faults.intake_closed:
        raise ProblemError(409, "intake_closed", "Intake for this queue type is closed.")
    year = academic_year_label(today)
    existing = await state.db.active_application(
        body.child.iin, body.queue_type, year, ACTIVE_STATUSES
    )
    if existing is not None:
        raise ProblemError(
            409,
            "duplicate_application",
            "The child already stands in this queue this academic year.",
            number=str(existing["number"]),
        )
    return year


@routes.post(API + "/applications")
async def submit_application(request: web.Request) -> web.Response:
    """Create an application exactly once per Idempotency-Key."""
    state = state_of(request)
    session = await require_session(request)
    key = _idempotency_key(request)
    malformed: ProblemError | None = None
    raw, submitted = b"", None
    try:
        raw, submitted = await read_json(request)
    except ProblemError as exc:  # judged after the key: a known key makes it a reuse
        malformed = exc
    scope = digest(state.config.token)
    async with state.submit_lock:
        now = state.now()
        remembered = await state.db.idempotent_result(scope, key, now - rules.IDEMPOTENCY_TTL)
        if remembered is not None:
            if malformed is None and rules.same_json(json.loads(remembered["request"]), submitted):
                return web.json_response(json.loads(remembered["response"]), dumps=dumps)
            raise ProblemError(
                422, "idempotency_key_reused", "This Idempotency-Key was used with another body."
            )
        if malformed is not None:
            raise malformed
        body = validate_body(ApplicationRequest, raw)
        year = await _check(state, session, body)
        app_id = new_id("app")
        async with state.db.transaction():
            number = await state.db.next_number()
            created = ApplicationCreated(
                id=app_id, number=str(number), status="submitted", submitted_at=timestamp(now)
            ).model_dump(mode="json")
            await state.db.add_application(
                {
                    "id": app_id,
                    "number": number,
                    "child_iin": body.child.iin,
                    "queue_type": body.queue_type,
                    "academic_year": year,
                    "submitted_at": now,
                    "body": dumps(submitted),
                }
            )
            await state.db.remember_result(scope, key, submitted, created, now)
    return web.json_response(created, status=201, dumps=dumps)


class ChangesQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    after: str | None = None
    limit: int = Field(100, ge=1, le=1000)


@routes.get(API + "/applications/changes")
async def changes(request: web.Request) -> web.Response:
    """Every status change after the cursor, oldest first."""
    query = parse_query(request, ChangesQuery)
    after = 0
    if query.after is not None:
        decoded = rules.decode_cursor(query.after)
        if decoded is None:
            raise invalid(("after", "Not a cursor given by this feed."))
        after = decoded
    rows = await state_of(request).db.changes_after(after, query.limit)
    items = [
        ChangeItem(
            id=row["application_id"],
            changed_at=timestamp(row["changed_at"]),
            cursor=rules.encode_cursor(row["seq"]),
            **_status_fields(row),
        )
        for row in rows
    ]
    if items:
        next_cursor = items[-1].cursor
    else:
        next_cursor = query.after if query.after is not None else rules.encode_cursor(0)
    return reply(ChangesPage(items=items, next=next_cursor))


@routes.get(API + "/applications/{application_id}")
async def get_application(request: web.Request) -> web.Response:
    row = await state_of(request).db.get_application(request.match_info["application_id"])
    if row is None:
        raise not_found("application")
    return reply(application_view(row))
