"""Async client of the voucher-service contract (`docs/voucher-api.yaml`) over one aiohttp pool.

Every answer that is not a success becomes a typed exception from `errors.py`. Only calls that
are safe to repeat are retried: GETs, and `POST /applications`, which the caller always sends
with the same Idempotency-Key. Everything else (OTP, consents, documents, preview, sandbox
POSTs) fails fast, because repeating it could send a second code or SMS to the parent.

The transport is aiohttp, used directly: under a rush of 2,000 parents httpx 0.28/httpcore 1.0
cost 1–2.7 ms of CPU per request (and grew with the crowd), aiohttp ~0.1–0.15 ms
(docs/performance.md). At most `max_connections` requests are in flight; a call that finds
them all busy waits its turn for at most `pool_timeout` and then fails as `ServiceUnavailable`
*without* a retry: the wait is our own queue, and retrying would only make it longer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import quote, urlencode

import aiohttp
from pydantic import BaseModel, ValidationError
from yarl import URL

from services.voucher.catalog_cache import Monotonic, TtlCache
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
# The outcome logged (and the detail raised) when the wait for a free connection runs out.
POOL_TIMEOUT = "PoolTimeout"


@dataclass(frozen=True, slots=True)
class _Answer:
    """What the client keeps of one HTTP answer: read whole, so the connection is free again."""

    status: int
    content_type: str
    retry_after: str | None
    body: bytes

    @property
    def is_success(self) -> bool:
        return 200 <= self.status < 300


class VoucherClient:
    """The voucher service as typed async methods; one instance (one pool) per process."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 15.0,
        pool_timeout: float | None = 120.0,
        max_connections: int = 100,
        max_attempts: int = 4,
        backoff_base: float = 0.5,
        backoff_max: float = 10.0,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        catalog_ttl: float = 600.0,
        listing_ttl: float = 60.0,
        cache_entries: int = 256,
        monotonic: Monotonic = time.monotonic,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        if backoff_base < 0 or backoff_max < 0:
            raise ValueError("backoff delays must not be negative")
        self._base = base_url.rstrip("/")
        self._headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/json, application/problem+json",
        }
        # sock_connect bounds the TCP connect, sock_read each wait for bytes of the answer;
        # the wait for a free connection is ours (the semaphore), never aiohttp's.
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=None, sock_connect=connect_timeout, sock_read=read_timeout
        )
        self._pool_timeout = pool_timeout
        self._max_connections = max_connections
        self._max_attempts = max_attempts
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._sleep = sleep
        self._rng = rng if rng is not None else random.Random()
        # Queue and state-order types change with a new intake, not during one: minutes.
        # Providers and groups (seats) change more often: a minute.
        self._catalog: TtlCache[Any] = TtlCache(catalog_ttl, cache_entries, monotonic)
        self._listings: TtlCache[Any] = TtlCache(listing_ttl, cache_entries, monotonic)
        # Made on first use, inside the running loop (aiohttp binds a session to its loop).
        self._http: aiohttp.ClientSession | None = None
        self._slots: asyncio.Semaphore | None = None
        self._closed = False

    def clear_cache(self) -> None:
        """Forget the cached catalogue: the next reads ask the service (a new intake, a test)."""
        self._catalog.clear()
        self._listings.clear()

    async def aclose(self) -> None:
        """Close the connection pool; safe twice, and when no call was ever made."""
        self._closed = True
        self.clear_cache()
        http, self._http = self._http, None
        if http is not None:
            await http.close()

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
        """The queue types (general, special); cached for `catalog_ttl`."""
        types: list[QueueType] = await self._catalog.get(("queue-types",), self._queue_types)
        return list(types)  # a list of its own: a caller's append must not reach the next caller

    async def list_state_order_types(self) -> list[StateOrderType]:
        """The state order types; cached for `catalog_ttl`."""
        key = ("state-order-types",)
        types: list[StateOrderType] = await self._catalog.get(key, self._state_order_types)
        return list(types)

    async def list_providers(
        self, q: str | None = None, page: int = 1, per_page: int = 10
    ) -> ProviderPage:
        """One page of providers, optionally filtered by a name substring; cached briefly."""
        found: ProviderPage = await self._listings.get(
            ("providers", q, page, per_page), lambda: self._providers(q, page, per_page)
        )
        # The models are frozen; only the page's list could be changed in place: copy it.
        return found.model_copy(update={"items": list(found.items)})

    async def list_groups(self, provider_id: str) -> list[Group]:
        """The groups of one provider; cached briefly."""
        groups: list[Group] = await self._listings.get(
            ("groups", provider_id), lambda: self._groups(provider_id)
        )
        return list(groups)

    async def _queue_types(self) -> list[QueueType]:
        return _parse_list(await self._call("GET", "/catalog/queue-types"), QueueType)

    async def _state_order_types(self) -> list[StateOrderType]:
        return _parse_list(await self._call("GET", "/catalog/state-order-types"), StateOrderType)

    async def _providers(self, q: str | None, page: int, per_page: int) -> ProviderPage:
        params: dict[str, str | int] = {"page": page, "per_page": per_page}
        if q is not None:
            params["q"] = q
        response = await self._call("GET", "/providers", params=params)
        return _parse(response, ProviderPage)

    async def _groups(self, provider_id: str) -> list[Group]:
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
            form={"file": (filename, content, "application/octet-stream"), "kind": kind},
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

    def _open(self) -> tuple[aiohttp.ClientSession, asyncio.Semaphore]:
        """The session and its slots, made on the first call (inside the running loop)."""
        if self._closed:
            raise RuntimeError("the voucher client is closed")
        if self._http is None or self._slots is None:
            connector = aiohttp.TCPConnector(limit=self._max_connections, limit_per_host=0)
            self._http = aiohttp.ClientSession(
                connector=connector,
                headers=self._headers,
                timeout=self._timeout,
                # The service sets no cookies; the dummy jar spares the work per answer.
                cookie_jar=aiohttp.DummyCookieJar(),
                # No HTTP(S)_PROXY / ~/.netrc lookups: aiohttp would redo them per request.
                trust_env=False,
                raise_for_status=False,
            )
            self._slots = asyncio.Semaphore(self._max_connections)
        return self._http, self._slots

    async def _call(
        self,
        method: str,
        route: str,
        *,
        path: Mapping[str, str] | None = None,
        session: str | None = None,
        params: Mapping[str, str | int] | None = None,
        json_body: BaseModel | Mapping[str, Any] | None = None,
        form: Mapping[str, str | tuple[str, bytes, str]] | None = None,
        headers: Mapping[str, str] | None = None,
        retry: bool | None = None,
    ) -> _Answer:
        """Send one logical call, retrying transient failures when the call is safe to repeat."""
        url = self._url(route, path, params)
        all_headers = dict(headers or {})
        if session is not None:
            all_headers["X-Session"] = session
        content: bytes | None = None
        if json_body is not None:
            # Serialised once, so every retry sends exactly the same bytes.
            content = _json_bytes(json_body)
            all_headers["Content-Type"] = "application/json"
        repeatable = method == "GET" if retry is None else retry
        http, slots = self._open()

        for attempt in range(1, self._max_attempts + 1):
            started = time.perf_counter()
            if not await self._take_slot(slots):
                # Our own pool is full: the service may be fine, so this is neither retried nor
                # logged as the service's failure.
                _log(logging.WARNING, method, route, POOL_TIMEOUT, started, attempt)
                raise ServiceUnavailable(0, POOL_TIMEOUT)
            try:
                answer = await self._send(http, method, url, all_headers, content, form)
            except (aiohttp.ClientError, TimeoutError) as exc:
                outcome = type(exc).__name__
                error: VoucherError = ServiceUnavailable(0, outcome)
                transient = not isinstance(exc, aiohttp.InvalidURL)
            else:
                if answer.is_success:
                    _log(logging.INFO, method, route, answer.status, started, attempt)
                    return answer
                error = _error_from(answer)
                outcome = f"{answer.status} {_code_of(error)}"
                transient = answer.status in _TRANSIENT_STATUS or (
                    answer.status == 429
                    and method == "GET"
                    and getattr(error, "retry_after", None) is not None
                )
            finally:
                slots.release()
            final = not (repeatable and transient) or attempt == self._max_attempts
            level = logging.WARNING if transient or error.status >= 500 else logging.INFO
            _log(level, method, route, outcome, started, attempt)
            if final:
                # Not chained to aiohttp's exception: some of its messages quote the whole URL,
                # query string (a phone) included, and a traceback would print it.
                raise error from None
            delay = self._delay(attempt, getattr(error, "retry_after", None))
            logger.info("voucher %s %s retry in %.2f s", method, route, delay)
            await self._sleep(delay)
        raise AssertionError("unreachable: the last attempt always returns or raises")

    async def _take_slot(self, slots: asyncio.Semaphore) -> bool:
        """One of the `max_connections` slots; False when none frees up within the pool timeout."""
        if not slots.locked() or self._pool_timeout is None:
            await slots.acquire()  # free: no timer to arm
            return True
        try:
            async with asyncio.timeout(self._pool_timeout):
                await slots.acquire()
        except TimeoutError:
            return False
        return True

    async def _send(
        self,
        http: aiohttp.ClientSession,
        method: str,
        url: URL,
        headers: Mapping[str, str],
        content: bytes | None,
        form: Mapping[str, str | tuple[str, bytes, str]] | None,
    ) -> _Answer:
        """One HTTP exchange, the answer read whole (which hands the connection back)."""
        data: bytes | aiohttp.FormData | None = content
        if form is not None:
            data = _form_data(form)  # a FormData is consumed by sending it: one per attempt
        async with http.request(
            method, url, data=data, headers=headers, allow_redirects=False
        ) as response:
            body = await response.read()
            return _Answer(
                status=response.status,
                content_type=response.headers.get("Content-Type", ""),
                retry_after=response.headers.get("Retry-After"),
                body=body,
            )

    def _url(
        self, route: str, path: Mapping[str, str] | None, params: Mapping[str, str | int] | None
    ) -> URL:
        """The absolute URL, encoded here once; yarl must not re-encode or resolve `%2E%2E`."""
        url = self._base + _fill_route(route, path or {})
        if params:
            url += "?" + urlencode(params)
        return URL(url, encoded=True)

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


def _form_data(form: Mapping[str, str | tuple[str, bytes, str]]) -> aiohttp.FormData:
    """multipart/form-data: plain fields as text, (filename, bytes, type) tuples as files."""
    data = aiohttp.FormData()
    for name, value in form.items():
        if isinstance(value, str):
            data.add_field(name, value)
        else:
            filename, content, content_type = value
            data.add_field(name, content, filename=filename, content_type=content_type)
    return data


def _code_of(error: VoucherError) -> str:
    return str(error.extra.get("code", error.code))


def _fill_route(route: str, path: Mapping[str, str]) -> str:
    """The route with each `{name}` replaced by its URL-quoted value."""
    quoted = {name: _quote_segment(value) for name, value in path.items()}
    return route.format_map(quoted)


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


def _problem(answer: _Answer) -> dict[str, Any] | None:
    """The problem+json body as a dict, or None when the answer is not one."""
    if "json" not in answer.content_type:
        return None
    try:
        body = json.loads(answer.body)
    except ValueError:
        return None
    if not isinstance(body, dict) or not isinstance(body.get("code"), str):
        return None
    return body


def _error_from(answer: _Answer) -> VoucherError:
    """The typed exception for a non-success answer."""
    status = answer.status
    retry_after = _retry_after(answer.retry_after)
    body = _problem(answer)
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


def _json_of(answer: _Answer) -> Any:
    try:
        return json.loads(answer.body)
    except ValueError:  # UnicodeDecodeError and JSONDecodeError both are ValueErrors
        raise VoucherError(answer.status, "the answer is not JSON") from None


def _parse(answer: _Answer, model: type[M]) -> M:
    """One model from a success body; a body off the contract is a `VoucherError`."""
    try:
        return model.model_validate(_json_of(answer))
    except ValidationError as exc:
        raise _off_contract(answer, exc) from None


def _parse_list(answer: _Answer, model: type[M]) -> list[M]:
    """A JSON array of models from a success body."""
    body = _json_of(answer)
    if not isinstance(body, list):
        raise VoucherError(answer.status, "answer off the contract: expected an array")
    try:
        return [model.model_validate(item) for item in body]
    except ValidationError as exc:
        raise _off_contract(answer, exc) from None


def _off_contract(answer: _Answer, exc: ValidationError) -> VoucherError:
    # Field paths and error types only: pydantic's own message quotes the input, which may be
    # a name or an IIN, and this exception may end up in a log.
    where = "; ".join(
        f"{'.'.join(str(part) for part in err['loc'])}: {err['type']}" for err in exc.errors()
    )
    return VoucherError(answer.status, f"answer off the contract: {where}")
