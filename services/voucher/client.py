"""Async client of the voucher-service contract (`docs/voucher-api.yaml`) over one httpx client.

Every answer that is not a success becomes a typed exception from `errors.py`. Only calls that
are safe to repeat are retried: GETs, and `POST /applications`, which the caller always sends
with the same Idempotency-Key. Everything else (OTP, consents, documents, preview, sandbox
POSTs) fails fast, because repeating it could send a second code or SMS to the parent.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from services.voucher.errors import (
    ERRORS_BY_CODE,
    ServiceUnavailable,
    TooManyRequests,
    VoucherError,
)
from services.voucher.models import (
    Application,
    ApplicationCreated,
    ApplicationRequest,
    ChangesPage,
    Consent,
    ConsentAnswer,
    ConsentAnswered,
    ConsentCreated,
    ConsentRequest,
    DocumentUploaded,
    Faults,
    FaultsPatch,
    Group,
    InboxMessage,
    OtpCreated,
    OtpRequest,
    OtpVerified,
    OtpVerifyRequest,
    Person,
    Preview,
    PreviewRequest,
    ProviderPage,
    QueueType,
    SandboxApplication,
    StateOrderType,
    StatusChange,
)

logger = logging.getLogger("kezek.voucher")

M = TypeVar("M", bound=BaseModel)
Sleep = Callable[[float], Awaitable[None]]

# Fields every problem body has; anything else (attempts_left, number, errors) goes to `extra`.
_PROBLEM_FIELDS = frozenset({"type", "title", "status", "detail", "code"})
# Gateway-type answers: the request most likely never reached the application, so a retry is
# safe and useful. A plain 500 is a bug on the other side and is not retried.
_TRANSIENT_STATUS = frozenset({502, 503, 504})
_TRANSIENT_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


class VoucherClient:
    """The voucher service as typed async methods; one instance (one pool) per process."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 15.0,
        max_attempts: int = 4,
        backoff_base: float = 0.5,
        backoff_max: float = 10.0,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if backoff_base < 0 or backoff_max < 0:
            raise ValueError("backoff delays must not be negative")
        self._max_attempts = max_attempts
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._sleep = sleep
        self._rng = rng if rng is not None else random.Random()
        _hide_query_strings_in_httpx_log()
        self._http = httpx.AsyncClient(
            # httpx joins relative paths onto the base path only when it ends with "/".
            base_url=base_url.rstrip("/") + "/",
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/json, application/problem+json",
            },
            timeout=httpx.Timeout(
                connect=connect_timeout,
                read=read_timeout,
                write=read_timeout,
                pool=connect_timeout,
            ),
            transport=transport,
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # --- step 1: phone and one-time code --------------------------------------------------

    async def request_otp(self, phone: str) -> OtpCreated:
        """Ask for a one-time code to be sent to the parent's ed24 app."""
        response = await self._call("POST", "/otp", json_body=OtpRequest(phone=phone))
        return _parse(response, OtpCreated)

    async def verify_otp(self, otp_id: str, code: str) -> OtpVerified:
        """Trade the one-time code for a session."""
        response = await self._call(
            "POST",
            "/otp/{otp_id}/verify",
            path={"otp_id": otp_id},
            json_body=OtpVerifyRequest(code=code),
        )
        return _parse(response, OtpVerified)

    # --- step 2: IIN, consent through 1414, state data -----------------------------------

    async def create_consent(self, session: str, iin: str) -> ConsentCreated:
        """Ask 1414 to send the consent SMS for this IIN to the session's phone."""
        response = await self._call(
            "POST", "/consents", session=session, json_body=ConsentRequest(iin=iin)
        )
        return _parse(response, ConsentCreated)

    async def get_consent(self, session: str, consent_id: str) -> Consent:
        """The consent's current status."""
        response = await self._call(
            "GET", "/consents/{consent_id}", path={"consent_id": consent_id}, session=session
        )
        return _parse(response, Consent)

    async def get_person(self, session: str, consent_id: str) -> Person:
        """The state data of the person behind a granted consent."""
        response = await self._call(
            "GET",
            "/consents/{consent_id}/person",
            path={"consent_id": consent_id},
            session=session,
        )
        return _parse(response, Person)

    # --- step 3: catalogue, providers, documents, preview --------------------------------

    async def list_queue_types(self) -> list[QueueType]:
        """The queue types (general, special)."""
        return _parse_list(await self._call("GET", "/catalog/queue-types"), QueueType)

    async def list_state_order_types(self) -> list[StateOrderType]:
        """The state order types."""
        return _parse_list(await self._call("GET", "/catalog/state-order-types"), StateOrderType)

    async def list_providers(
        self, q: str | None = None, page: int = 1, per_page: int = 10
    ) -> ProviderPage:
        """One page of providers, optionally filtered by a name substring."""
        params: dict[str, str | int] = {"page": page, "per_page": per_page}
        if q is not None:
            params["q"] = q
        response = await self._call("GET", "/providers", params=params)
        return _parse(response, ProviderPage)

    async def list_groups(self, provider_id: str) -> list[Group]:
        """The groups of one provider."""
        response = await self._call(
            "GET", "/providers/{provider_id}/groups", path={"provider_id": provider_id}
        )
        return _parse_list(response, Group)

    async def upload_document(
        self, session: str, kind: str, content: bytes, filename: str = "document"
    ) -> DocumentUploaded:
        """Upload a PDF, JPEG or PNG; the service decides its type from the bytes."""
        response = await self._call(
            "POST",
            "/documents",
            session=session,
            files={"file": (filename, content, "application/octet-stream")},
            data={"kind": kind},
        )
        return _parse(response, DocumentUploaded)

    async def preview_queue(self, session: str, request: PreviewRequest) -> Preview:
        """Which queue the child would stand in, and the child's age on 1 September."""
        response = await self._call("POST", "/queue/preview", session=session, json_body=request)
        return _parse(response, Preview)

    # --- step 5: the application ----------------------------------------------------------

    async def submit_application(
        self, session: str, idempotency_key: str, request: ApplicationRequest
    ) -> ApplicationCreated:
        """Submit the application; a replay with the same key returns the original answer."""
        response = await self._call(
            "POST",
            "/applications",
            session=session,
            json_body=request,
            headers={"Idempotency-Key": idempotency_key},
            retry=True,  # safe: the same key and the same bytes on every attempt
        )
        return _parse(response, ApplicationCreated)

    async def get_application(self, application_id: str) -> Application:
        """An application's current status."""
        response = await self._call(
            "GET", "/applications/{application_id}", path={"application_id": application_id}
        )
        return _parse(response, Application)

    async def list_changes(self, after: str | None = None, limit: int = 100) -> ChangesPage:
        """Status changes after a cursor (from the start when `after` is None)."""
        params: dict[str, str | int] = {"limit": limit}
        if after is not None:
            params["after"] = after
        response = await self._call("GET", "/applications/changes", params=params)
        return _parse(response, ChangesPage)

    # --- sandbox only ---------------------------------------------------------------------

    async def sandbox_inbox(self, phone: str) -> list[InboxMessage]:
        """What the ed24 app and 1414 delivered to this phone, oldest first."""
        response = await self._call("GET", "/sandbox/inbox", params={"phone": phone})
        return _parse_list(response, InboxMessage)

    async def sandbox_answer_consent(self, consent_id: str, answer: str) -> ConsentAnswered:
        """Answer a pending consent SMS as the parent would ("yes" or "no")."""
        response = await self._call(
            "POST",
            "/sandbox/consents/{consent_id}",
            path={"consent_id": consent_id},
            json_body=ConsentAnswer.model_validate({"answer": answer}),
        )
        return _parse(response, ConsentAnswered)

    async def sandbox_list_applications(self) -> list[SandboxApplication]:
        """Every application the sandbox holds, oldest first."""
        return _parse_list(await self._call("GET", "/sandbox/applications"), SandboxApplication)

    async def sandbox_set_status(self, application_id: str, change: StatusChange) -> Application:
        """Move an application to another status, as the staff side would."""
        response = await self._call(
            "POST",
            "/sandbox/applications/{application_id}/status",
            path={"application_id": application_id},
            # Optional fields are left out rather than sent as null.
            json_body=change.model_dump(mode="json", exclude_none=True),
        )
        return _parse(response, Application)

    async def sandbox_get_faults(self) -> Faults:
        """The failure switches now in force."""
        return _parse(await self._call("GET", "/sandbox/faults"), Faults)

    async def sandbox_set_faults(self, **fields: Any) -> Faults:
        """Change only the named failure switches; returns all switches now in force."""
        patch = FaultsPatch.model_validate(fields)
        response = await self._call(
            "POST", "/sandbox/faults", json_body=patch.model_dump(mode="json", exclude_unset=True)
        )
        return _parse(response, Faults)

    # --- transport --------------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        route: str,
        *,
        path: Mapping[str, str] | None = None,
        session: str | None = None,
        params: Mapping[str, str | int] | None = None,
        json_body: BaseModel | Mapping[str, Any] | None = None,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
        data: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        retry: bool | None = None,
    ) -> httpx.Response:
        """Send one logical call, retrying transient failures when the call is safe to repeat."""
        url = _fill_route(route, path or {})
        all_headers = dict(headers or {})
        if session is not None:
            all_headers["X-Session"] = session
        content: bytes | None = None
        if json_body is not None:
            # Serialised once, so every retry sends exactly the same bytes.
            content = _json_bytes(json_body)
            all_headers["Content-Type"] = "application/json"
        repeatable = method == "GET" if retry is None else retry

        for attempt in range(1, self._max_attempts + 1):
            started = time.perf_counter()
            cause: httpx.RequestError | None = None
            try:
                response = await self._http.request(
                    method,
                    url,
                    params=params,
                    content=content,
                    files=files,
                    data=data,
                    headers=all_headers,
                )
            except httpx.RequestError as exc:
                cause = exc
                outcome = type(exc).__name__
                error: VoucherError = ServiceUnavailable(0, outcome)
                transient = isinstance(exc, _TRANSIENT_ERRORS)
            else:
                if response.is_success:
                    _log(logging.INFO, method, route, response.status_code, started, attempt)
                    return response
                error = _error_from(response)
                outcome = f"{response.status_code} {_code_of(error)}"
                transient = response.status_code in _TRANSIENT_STATUS or (
                    response.status_code == 429
                    and method == "GET"
                    and getattr(error, "retry_after", None) is not None
                )
            final = not (repeatable and transient) or attempt == self._max_attempts
            level = logging.WARNING if transient or error.status >= 500 else logging.INFO
            _log(level, method, route, outcome, started, attempt)
            if final:
                raise error from cause
            delay = self._delay(attempt, getattr(error, "retry_after", None))
            logger.info("voucher %s %s retry in %.2f s", method, route, delay)
            await self._sleep(delay)
        raise AssertionError("unreachable: the last attempt always returns or raises")

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        """Full-jitter exponential backoff, never shorter than Retry-After, capped by the max."""
        ceiling = min(self._backoff_max, self._backoff_base * 2 ** min(attempt - 1, 32))
        jittered = self._rng.uniform(0.0, ceiling)
        if retry_after is not None:
            jittered = max(jittered, retry_after)
        return min(jittered, self._backoff_max)


# --- helpers ----------------------------------------------------------------------------------


def _log(
    level: int, method: str, route: str, outcome: object, started: float, attempt: int
) -> None:
    # Only the route template: the filled path holds ids and the query may hold a phone.
    ms = (time.perf_counter() - started) * 1000
    logger.log(level, "voucher %s %s -> %s %.0f ms attempt %d", method, route, outcome, ms, attempt)


class _HideQueryStrings(logging.Filter):
    """Drops the query from URLs in httpx's "HTTP Request: ..." line (`/sandbox/inbox?phone=`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                arg.copy_with(query=None) if isinstance(arg, httpx.URL) else arg
                for arg in record.args
            )
        return True


def _hide_query_strings_in_httpx_log() -> None:
    # httpx logs every request URL at INFO on its own logger; installed once per process, on
    # first use rather than at import.
    httpx_logger = logging.getLogger("httpx")
    if not any(isinstance(f, _HideQueryStrings) for f in httpx_logger.filters):
        httpx_logger.addFilter(_HideQueryStrings())


def _code_of(error: VoucherError) -> str:
    return str(error.extra.get("code", error.code))


def _fill_route(route: str, path: Mapping[str, str]) -> str:
    """The route with each `{name}` replaced by its URL-quoted value, relative to the base URL."""
    quoted = {name: _quote_segment(value) for name, value in path.items()}
    return route.format_map(quoted).lstrip("/")


def _quote_segment(value: str) -> str:
    if not value:
        raise ValueError("a path parameter must not be empty")
    quoted = quote(value, safe="")
    # "." and ".." are unreserved, yet a URL parser would resolve them as dot segments.
    if quoted in {".", ".."}:
        quoted = quoted.replace(".", "%2E")
    return quoted


def _json_bytes(body: BaseModel | Mapping[str, Any]) -> bytes:
    plain = body.model_dump(mode="json") if isinstance(body, BaseModel) else dict(body)
    return json.dumps(plain, ensure_ascii=False, separators=(",", ":")).encode()


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None when absent/bad."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _problem(response: httpx.Response) -> dict[str, Any] | None:
    """The problem+json body as a dict, or None when the answer is not one."""
    if "json" not in response.headers.get("Content-Type", ""):
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict) or not isinstance(body.get("code"), str):
        return None
    return body


def _error_from(response: httpx.Response) -> VoucherError:
    """The typed exception for a non-success answer."""
    status = response.status_code
    retry_after = _retry_after(response.headers.get("Retry-After"))
    body = _problem(response)
    detail = str(body.get("detail", "")) if body else f"HTTP {status}"
    extra = {k: v for k, v in (body or {}).items() if k not in _PROBLEM_FIELDS}
    extra.pop("retry_after", None)  # the header is authoritative; avoid a duplicate argument
    if status >= 500:
        # Whatever the body says, a 5xx is not a final answer about the request.
        return ServiceUnavailable(status, detail, retry_after=retry_after, **extra)
    if body is None:
        return VoucherError(status, detail)
    cls = ERRORS_BY_CODE.get(body["code"])
    if cls is None:
        return VoucherError(status, detail, code=body["code"], **extra)
    if issubclass(cls, ServiceUnavailable | TooManyRequests):
        return cls(status, detail, retry_after=retry_after, **extra)
    return cls(status, detail, **extra)


def _json_of(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise VoucherError(response.status_code, "the answer is not JSON") from None


def _parse(response: httpx.Response, model: type[M]) -> M:
    """One model from a success body; a body off the contract is a `VoucherError`."""
    try:
        return model.model_validate(_json_of(response))
    except ValidationError as exc:
        raise _off_contract(response, exc) from None


def _parse_list(response: httpx.Response, model: type[M]) -> list[M]:
    """A JSON array of models from a success body."""
    body = _json_of(response)
    if not isinstance(body, list):
        raise VoucherError(response.status_code, "answer off the contract: expected an array")
    try:
        return [model.model_validate(item) for item in body]
    except ValidationError as exc:
        raise _off_contract(response, exc) from None


def _off_contract(response: httpx.Response, exc: ValidationError) -> VoucherError:
    # Field paths and error types only: pydantic's own message quotes the input, which may be
    # a name or an IIN, and this exception may end up in a log.
    where = "; ".join(
        f"{'.'.join(str(part) for part in err['loc'])}: {err['type']}" for err in exc.errors()
    )
    return VoucherError(response.status_code, f"answer off the contract: {where}")
