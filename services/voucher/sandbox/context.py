"""What every handler shares: the sandbox state and the helpers that read a request."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import secrets
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, NamedTuple, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from services.clock import ALMATY, Clock
from services.voucher.models import Faults
from services.voucher.sandbox.catalog import Catalog
from services.voucher.sandbox.config import SandboxConfig
from services.voucher.sandbox.db import SandboxDB
from services.voucher.sandbox.problems import (
    ProblemError,
    dumps,
    from_validation_error,
    invalid,
)

API = "/api/v1"
M = TypeVar("M", bound=BaseModel)


@dataclass
class SandboxState:
    """One running sandbox: settings, clock, randomness, database, catalogue, fault switches."""

    config: SandboxConfig
    clock: Clock
    rng: random.Random
    db: SandboxDB
    catalog: Catalog
    faults: Faults
    # Applications are created one at a time: that serialises requests that share an
    # Idempotency-Key and makes the duplicate check race-free.
    submit_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def now(self) -> float:
        """POSIX seconds from the injected clock."""
        return self.clock.now().timestamp()

    def today(self) -> date:
        """Today's date in Almaty."""
        return self.clock.now().astimezone(ALMATY).date()


STATE = web.AppKey("voucher_sandbox_state", SandboxState)


class Session(NamedTuple):
    key: str
    phone: str


def state_of(request: web.Request) -> SandboxState:
    return request.app[STATE]


def timestamp(seconds: float) -> datetime:
    """A stored time as shown in answers: Asia/Almaty, whole seconds."""
    return datetime.fromtimestamp(seconds, ALMATY).replace(microsecond=0)


def new_id(prefix: str) -> str:
    """An opaque, unguessable id."""
    return f"{prefix}_{secrets.token_hex(10)}"


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def reply(data: BaseModel | list[BaseModel] | Any, status: int = 200) -> web.Response:
    """A JSON answer built from contract models (or plain JSON data)."""
    if isinstance(data, BaseModel):
        data = data.model_dump(mode="json")
    elif isinstance(data, list):
        data = [
            item.model_dump(mode="json") if isinstance(item, BaseModel) else item for item in data
        ]
    return web.json_response(data, status=status, dumps=dumps)


async def require_session(request: web.Request) -> Session:
    """The live session named by `X-Session`, or 401 `session_invalid`."""
    token = request.headers.get("X-Session", "").strip()
    if not token:
        raise ProblemError(401, "session_invalid", "The X-Session header is missing.")
    state = state_of(request)
    key = digest(token)
    phone = await state.db.session_phone(key, state.now())
    if phone is None:
        raise ProblemError(401, "session_invalid", "The session is unknown or has expired.")
    return Session(key, phone)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


async def read_json(request: web.Request) -> tuple[bytes, Any]:
    """The raw body and its parsed JSON, or 422 `validation_error` on field `body`."""
    raw = await request.read()
    if not raw.strip():
        raise invalid(("body", "A JSON body is required."))
    try:
        return raw, json.loads(raw, parse_constant=_reject_constant)
    except ValueError as exc:
        raise invalid(("body", f"Malformed JSON: {exc}")) from None


def validate_body(model: type[M], raw: bytes) -> M:
    """Validate JSON bytes strictly (no type coercion) against a request model."""
    try:
        return model.model_validate_json(raw, strict=True)
    except ValidationError as exc:
        raise from_validation_error(exc) from None


async def parse_body(request: web.Request, model: type[M]) -> M:
    """Read and validate a JSON request body."""
    raw, _ = await read_json(request)
    return validate_body(model, raw)


def parse_query(request: web.Request, model: type[M]) -> M:
    """Validate the query string (first value of each name) against a model."""
    values = {name: request.query.get(name) for name in request.query}
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise from_validation_error(exc) from None
