"""The bot's own small HTTP server: `/healthz`, and `/voucher/events` for the service's pushes.

POST /voucher/events ──X-Signature: sha256=<hex HMAC of the raw body>──▶
    missing or wrong signature → 401, nothing stored (checked before the body is read as JSON)
    not JSON → 400; JSON but not a change item → 422
    otherwise the item is handled exactly like one from the changes feed → 204
    (an error while storing → 500, and the service retries; the feed is the backstop anyway)

The route exists only when VOUCHER_WEBHOOK_SECRET is set: an unsigned push is never accepted.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from pydantic import ValidationError

from services.voucher.models import ChangeItem

log = logging.getLogger("kezek.webhook")

EVENTS_PATH = "/voucher/events"
HEALTH_PATH = "/healthz"
SIGNATURE_HEADER = "X-Signature"
MAX_BODY = 64 * 1024  # one change item is a few hundred bytes

ItemHandler = Callable[[ChangeItem], Awaitable[object]]


def sign(secret: str, body: bytes) -> str:
    """The X-Signature value for `body`: `sha256=<lowercase hex HMAC-SHA256>`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_ok(secret: str, body: bytes, header: str | None) -> bool:
    """Whether `header` is the right signature of `body`, compared in constant time."""
    if not header:
        return False
    scheme, _, given = header.strip().partition("=")
    if scheme.lower() != "sha256" or not given:
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), given.lower().encode("ascii", "replace"))


def _problem(status: int, code: str, detail: str) -> web.Response:
    body = {"type": "about:blank", "title": code, "status": status, "detail": detail, "code": code}
    return web.json_response(body, status=status, content_type="application/problem+json")


def create_events_app(*, secret: str | None, on_item: ItemHandler) -> web.Application:
    """The aiohttp app; `on_item` stores the item (and enqueues its push) before returning."""
    app = web.Application(client_max_size=MAX_BODY)

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def events(request: web.Request) -> web.Response:
        assert secret is not None
        raw = await request.read()
        if not signature_ok(secret, raw, request.headers.get(SIGNATURE_HEADER)):
            log.warning("voucher event with a bad or missing signature refused")
            return _problem(401, "unauthorized", "Bad or missing X-Signature.")
        try:
            payload = json.loads(raw)
        except (UnicodeDecodeError, ValueError):
            return _problem(400, "bad_request", "The body is not JSON.")
        try:
            item = ChangeItem.model_validate(payload)
        except ValidationError as exc:
            # Field paths only: the values may be personal data.
            fields = sorted({".".join(map(str, e["loc"])) or "body" for e in exc.errors()})
            return _problem(422, "validation_error", "Not a change item: " + ", ".join(fields))
        await on_item(item)
        return web.Response(status=204)

    app.router.add_get(HEALTH_PATH, healthz)
    if secret:
        app.router.add_post(EVENTS_PATH, events)
    return app


@dataclass(slots=True)
class EventsServer:
    """A running events server; `port` is the bound one (useful with port 0)."""

    runner: web.AppRunner
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def stop(self) -> None:
        """Stop listening and finish the requests in flight."""
        await self.runner.cleanup()


async def start_events_server(
    host: str, port: int, *, secret: str | None, on_item: ItemHandler
) -> EventsServer:
    """Serve `create_events_app` on host:port until `stop()`."""
    runner = web.AppRunner(create_events_app(secret=secret, on_item=on_item), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    bound = int(runner.addresses[0][1])
    if not secret:
        log.info(
            "VOUCHER_WEBHOOK_SECRET is not set: %s is off, the feed alone is used", EVENTS_PATH
        )
    return EventsServer(runner=runner, host=host, port=bound)
