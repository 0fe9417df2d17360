"""The sandbox as an aiohttp application: middlewares in contract order, then the routes.

Order of every request: access log → problem+json rendering → token (401 before anything,
even before 404/405) → injected latency and failures (non-sandbox endpoints only) → handler
(which checks the session first where one is needed).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import random
import re
import time
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.typedefs import Handler

from services.clock import Clock, SystemClock
from services.voucher.models import Faults
from services.voucher.sandbox import (
    routes_applications,
    routes_catalog,
    routes_identity,
    routes_sandbox,
)
from services.voucher.sandbox.catalog import Catalog
from services.voucher.sandbox.config import SandboxConfig
from services.voucher.sandbox.context import API, STATE, SandboxState, state_of
from services.voucher.sandbox.db import SandboxDB
from services.voucher.sandbox.problems import ProblemError

log = logging.getLogger("services.voucher.sandbox")

# An unmatched path has no route template; long digit runs may be an IIN or a phone.
_DIGIT_RUN = re.compile(r"[0-9]{5,}")
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}


def _route_label(request: web.Request) -> str:
    """The matched route template, or the masked path; never the query string."""
    resource = request.match_info.route.resource
    if resource is not None:
        return resource.canonical
    return _DIGIT_RUN.sub("…", request.path)


def _is_endpoint(request: web.Request) -> bool:
    """True when the request matched one of the routes (not a 404/405 stand-in)."""
    return (
        request.match_info.http_exception is None and request.match_info.route.resource is not None
    )


@web.middleware
async def access_log(request: web.Request, handler: Handler) -> web.StreamResponse:
    """One line per request: method, route template, status, milliseconds."""
    started = time.perf_counter()
    status = 499  # stays so when the client goes away mid-request
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        elapsed = (time.perf_counter() - started) * 1000
        log.info("%s %s %d %.1fms", request.method, _route_label(request), status, elapsed)


@web.middleware
async def problems(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error leaves as application/problem+json."""
    try:
        return await handler(request)
    except ProblemError as exc:
        return exc.response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        if exc.status == 404:
            detail = "No such endpoint."
        elif exc.status == 405:
            detail = f"{request.method} is not allowed here; use {exc.headers.get('Allow', '')}."
        else:
            detail = exc.reason
        code = _HTTP_CODES.get(exc.status, "http_error")
        return ProblemError(exc.status, code, detail, headers=headers).response()
    except Exception as exc:
        # Only the type: an exception's text may quote personal data from the request.
        log.error("unhandled %s in %s", type(exc).__name__, _route_label(request))
        return ProblemError(500, "internal_error", "The sandbox failed unexpectedly.").response()


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """`Authorization: Bearer <token>` on everything under /api/v1, checked first."""
    if request.path == API or request.path.startswith(API + "/"):
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        expected = state_of(request).config.token
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), expected.encode()
        ):
            raise ProblemError(
                401,
                "unauthorized",
                "A valid `Authorization: Bearer <token>` header is required.",
                headers={"WWW-Authenticate": 'Bearer realm="voucher-sandbox"'},
            )
    return await handler(request)


@web.middleware
async def inject_faults(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The switches of /sandbox/faults, on every endpoint outside /sandbox."""
    if _is_endpoint(request) and not _route_label(request).startswith(API + "/sandbox/"):
        state = state_of(request)
        faults = state.faults
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)  # the feature itself, not a sync
        if faults.failure_rate and state.rng.random() < faults.failure_rate:
            raise ProblemError(
                503,
                "unavailable",
                "Injected failure; try again later.",
                headers={"Retry-After": str(faults.retry_after)},
            )
    return await handler(request)


async def _database(app: web.Application) -> AsyncIterator[None]:
    db = app[STATE].db
    await db.open()
    yield
    await db.close()


def create_sandbox_app(
    config: SandboxConfig, *, clock: Clock | None = None, rng: random.Random | None = None
) -> web.Application:
    """A ready-to-run sandbox; its database opens when the application starts."""
    app = web.Application(middlewares=[access_log, problems, authenticate, inject_faults])
    app[STATE] = SandboxState(
        config=config,
        clock=clock if clock is not None else SystemClock(),
        rng=rng if rng is not None else random.Random(),
        db=SandboxDB(config.db_path),
        catalog=Catalog.build(),
        faults=Faults(
            latency_ms=config.latency_ms,
            failure_rate=config.failure_rate,
            retry_after=config.retry_after,
            intake_closed=list(dict.fromkeys(config.intake_closed)),  # type: ignore[arg-type]
            consent_auto_answer_s=config.consent_auto_answer_s,
        ),
    )
    app.cleanup_ctx.append(_database)
    # /applications/changes is registered before /applications/{id} so it is never an id.
    for module in (routes_identity, routes_catalog, routes_applications, routes_sandbox):
        app.router.add_routes(module.routes)
    return app
