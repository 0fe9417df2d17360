"""A scripted aiohttp server on loopback for the voucher client's fault and cache tests.

Each test scripts the answers (503 with Retry-After, a hang longer than the read timeout, plain
HTML 500s, every problem code) and asserts on what the server received.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass(frozen=True)
class Reply:
    """One scripted answer; `hang` holds it until the test releases the server (or ends)."""

    status: int = 200
    body: Any = None
    text: str | None = None
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False


def problem(status: int, code: str, retry_after: str | None = None, **extra: Any) -> Reply:
    body = {"type": "about:blank", "title": code, "status": status, "detail": f"d-{code}"}
    body |= {"code": code, **extra}
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return Reply(status, body, content_type="application/problem+json", headers=headers)


def unavailable(retry_after: str | None = None) -> Reply:
    return problem(503, "unavailable", retry_after)


HTML_500 = Reply(
    500, text="<html><body>Internal Server Error</body></html>", content_type="text/html"
)


@dataclass(frozen=True)
class Seen:
    method: str
    raw_path: str  # path and query exactly as sent, percent-encoding intact
    headers: dict[str, str]
    body: bytes
    peer: tuple[str, int]  # the client's end of the connection: one per connection


class FaultServer:
    """Answers the Nth request with the Nth scripted reply (the last one repeats) and records it."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.base_url = ""
        self.hanging = asyncio.Event()  # set when a request is being held by a `hang` reply
        self._replies: list[Reply] = [Reply(200, {})]
        self._release = asyncio.Event()

    def script(self, *replies: Reply) -> None:
        self._replies = list(replies)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        headers = {k.lower(): v for k, v in request.headers.items()}
        peer = request.transport.get_extra_info("peername") if request.transport else None
        body = await request.read()
        self.seen.append(Seen(request.method, request.raw_path, headers, body, tuple(peer or ())))
        reply = self._replies.pop(0) if len(self._replies) > 1 else self._replies[0]
        if reply.hang:
            self.hanging.set()
            await self._release.wait()
        text = reply.text if reply.text is not None else json.dumps(reply.body)
        response = web.Response(status=reply.status, text=text, headers=reply.headers)
        response.content_type = reply.content_type
        return response

    def release(self) -> None:
        """Let every held request answer (and any later `hang` reply answer at once)."""
        self._release.set()
