"""Step 3: catalogue, providers and groups, document upload, queue preview."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from aiohttp import BodyPartReader, web
from pydantic import BaseModel, ConfigDict, Field

from services.academic_year import academic_year_label
from services.documents import MAX_DOCUMENT_BYTES, sniff_type
from services.validation import InvalidIin, parse_iin
from services.voucher.models import DocumentUploaded, Preview, PreviewRequest, ProviderPage
from services.voucher.sandbox import rules
from services.voucher.sandbox.catalog import QUEUE_TYPES, STATE_ORDER_TYPES
from services.voucher.sandbox.context import (
    API,
    new_id,
    parse_body,
    parse_query,
    reply,
    require_session,
    state_of,
)
from services.voucher.sandbox.problems import ProblemError, invalid, not_found

routes = web.RouteTableDef()

DOCUMENT_KINDS = ("disability", "benefit")
QUEUE_TYPE_CODES = tuple(q.code for q in QUEUE_TYPES)
STATE_ORDER_CODES = tuple(s.code for s in STATE_ORDER_TYPES)


@routes.get(API + "/catalog/queue-types")
async def queue_types(request: web.Request) -> web.Response:
    return reply(list(QUEUE_TYPES))


@routes.get(API + "/catalog/state-order-types")
async def state_order_types(request: web.Request) -> web.Response:
    return reply(list(STATE_ORDER_TYPES))


class ProvidersQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    q: str = ""
    page: int = Field(1, ge=1)
    per_page: int = Field(10, ge=1, le=100)


@routes.get(API + "/providers")
async def providers(request: web.Request) -> web.Response:
    """A page of providers whose name (kk or ru) contains `q`."""
    query = parse_query(request, ProvidersQuery)
    found = state_of(request).catalog.search(query.q)
    start = (query.page - 1) * query.per_page
    return reply(ProviderPage(items=found[start : start + query.per_page], total=len(found)))


@routes.get(API + "/providers/{provider_id}/groups")
async def provider_groups(request: web.Request) -> web.Response:
    groups = state_of(request).catalog.groups.get(request.match_info["provider_id"])
    if groups is None:
        raise not_found("provider")
    return reply(list(groups))


# --- documents ------------------------------------------------------------------------------


@dataclass
class _Upload:
    """What the sandbox keeps of an uploaded file: never the bytes, only their traits."""

    size: int = 0
    head: bytes = b""
    sha256: Any = field(default_factory=hashlib.sha256)

    def add(self, chunk: bytes) -> None:
        if len(self.head) < 8:
            self.head += chunk[: 8 - len(self.head)]
        self.size += len(chunk)
        if self.size <= MAX_DOCUMENT_BYTES:  # past the limit the file is refused: stop hashing
            self.sha256.update(chunk)

    def content_type(self) -> str | None:
        return sniff_type(self.head)


async def _read_form(request: web.Request) -> tuple[_Upload | None, str | None]:
    """Stream the multipart body: the `file` part's traits and the `kind` value."""
    if not request.content_type.startswith("multipart/"):
        raise invalid(("file", "Send multipart/form-data with the parts `file` and `kind`."))
    upload: _Upload | None = None
    kind: str | None = None
    try:
        reader = await request.multipart()
        async for part in reader:
            if not isinstance(part, BodyPartReader):
                raise invalid(("body", "Nested multipart bodies are not accepted."))
            if part.name == "file" and upload is None:
                upload = _Upload()
                while chunk := await part.read_chunk(256 * 1024):
                    upload.add(chunk)
            elif part.name == "kind" and kind is None:
                raw = await part.read()
                kind = raw.decode("utf-8", errors="replace") if len(raw) <= 64 else "?"
            else:
                await part.release()
    except ValueError:  # aiohttp's complaints about a malformed multipart body
        raise invalid(("body", "Malformed multipart body.")) from None
    return upload, kind


@routes.post(API + "/documents")
async def upload_document(request: web.Request) -> web.Response:
    """Keep a document's size, type and SHA-256 for the session's phone."""
    state = state_of(request)
    session = await require_session(request)
    upload, kind = await _read_form(request)
    if upload is not None and upload.size > MAX_DOCUMENT_BYTES:
        raise ProblemError(
            413, "file_too_large", f"A document may have at most {MAX_DOCUMENT_BYTES} bytes."
        )
    errors = []
    if upload is None:
        errors.append(("file", "A file part named `file` is required."))
    if kind not in DOCUMENT_KINDS:
        errors.append(("kind", f"`kind` must be one of: {', '.join(DOCUMENT_KINDS)}."))
    if errors:
        raise invalid(*errors)
    assert upload is not None and kind is not None
    content_type = upload.content_type()
    if content_type is None:
        raise ProblemError(415, "unsupported_type", "Only PDF, JPEG and PNG files are accepted.")
    document = DocumentUploaded(
        document_id=new_id("doc"),
        size=upload.size,
        content_type=content_type,  # type: ignore[arg-type]  # one of sniff_type's types
        sha256=upload.sha256.hexdigest(),
    )
    async with state.db.transaction():
        await state.db.add_document(
            {
                "id": document.document_id,
                "phone": session.phone,
                "session_key": session.key,
                "kind": kind,
                "size": document.size,
                "content_type": document.content_type,
                "sha256": document.sha256,
                "created_at": state.now(),
            }
        )
    return reply(document, 201)


# --- queue preview --------------------------------------------------------------------------


def check_choice(errors: list[tuple[str, str]], queue_type: str, state_order_type: str) -> None:
    """Add errors for an unknown queue type or state order type."""
    if queue_type not in QUEUE_TYPE_CODES:
        errors.append(("queue_type", f"Must be one of: {', '.join(QUEUE_TYPE_CODES)}."))
    if state_order_type not in STATE_ORDER_CODES:
        errors.append(("state_order_type", f"Must be one of: {', '.join(STATE_ORDER_CODES)}."))


@routes.post(API + "/queue/preview")
async def preview(request: web.Request) -> web.Response:
    """Which queue the child would stand in, and the age that decides it."""
    state = state_of(request)
    session = await require_session(request)
    body = await parse_body(request, PreviewRequest)
    errors: list[tuple[str, str]] = []
    try:
        birth_date = parse_iin(body.child_iin).birth_date
    except InvalidIin as exc:
        errors.append(("child_iin", f"Not a valid IIN ({exc.reason})."))
    check_choice(errors, body.queue_type, body.state_order_type)
    group = state.catalog.group(body.group_id)
    if group is None:
        errors.append(("group_id", "No such group."))
    if errors:
        raise invalid(*errors)
    assert group is not None
    queue, age = rules.place_in_queue(
        birth_date, body.queue_type, group, state.config.age_bands, state.today()
    )
    # Here a document of another phone simply does not count.
    owned = await state.db.phone_documents(session.phone, body.documents)
    rules.require_disability_document(body.queue_type, [d["kind"] for d in owned.values()])
    return reply(
        Preview(
            queue=queue,
            age_on_sept_1=age,
            academic_year=academic_year_label(state.today()),
        )
    )
