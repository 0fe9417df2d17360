"""`voucher-bot run --webhook`: Telegram POSTs each update to us instead of us polling.

Telegram ──POST WEBHOOK_PATH, X-Telegram-Bot-Api-Secret-Token: WEBHOOK_SECRET──▶ this server
    missing or wrong secret ──▶ 401, the body is not read, nothing is processed
    not JSON, or JSON that is not an Update ──▶ 400 (a 5xx would make Telegram retry it)
    otherwise ──▶ 200 at once; the update goes through the same Dispatcher as in polling
                 (dedup, flood limit, event isolation, errors handler) in a background task
GET /healthz ──▶ 200 "ok" (for the load balancer or the monitoring)

On start `setWebhook(WEBHOOK_URL + WEBHOOK_PATH, secret_token=…)` without
`drop_pending_updates`: what parents sent while the bot was down is delivered. On stop the
server stops accepting, the updates in hand are finished, and the webhook stays set, so
Telegram keeps new updates until the bot is back.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from dataclasses import dataclass
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.methods import TelegramMethod
from aiogram.types import Update
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web
from pydantic import ValidationError

log = logging.getLogger("kezek.webhook_mode")

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
HEALTH_PATH = "/healthz"
# An update is a few KB; a document's bytes never travel in it (only its file_id).
MAX_BODY = 1024 * 1024
DRAIN_SECONDS = 10.0


class TelegramWebhookHandler(SimpleRequestHandler):
    """aiogram's handler with a mandatory secret, 400 for bad bodies and a drain on stop."""

    def __init__(self, dispatcher: Dispatcher, bot: Bot, *, secret: str, **data: Any) -> None:
        if not secret:
            raise ValueError("a webhook without a secret token would accept anyone's updates")
        super().__init__(dispatcher, bot, handle_in_background=True, secret_token=secret, **data)
        self._secret = secret.encode()
        self._tasks: set[asyncio.Task[None]] = set()

    def verify_secret(self, telegram_secret_token: str, bot: Bot) -> bool:
        """Constant-time comparison of bytes (aiogram's compares str and fails on non-ASCII)."""
        given = telegram_secret_token.encode("utf-8", "surrogateescape")
        return hmac.compare_digest(given, self._secret)

    async def _handle_request_background(self, bot: Bot, request: web.Request) -> web.Response:
        try:
            payload = await request.json(loads=bot.session.json_loads)
            update = Update.model_validate(payload, context={"bot": bot})
        except (ValueError, ValidationError):
            # Field names only would do, but nothing at all is simplest: the body may be anything.
            log.warning("webhook body refused: not an update")
            return web.Response(status=400, text="not an update")
        task = asyncio.create_task(self._feed(bot, update), name=f"update-{update.update_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return web.json_response({})

    async def _feed(self, bot: Bot, update: Update) -> None:
        try:
            result = await self.dispatcher.feed_update(bot, update, **self.data)
            if isinstance(result, TelegramMethod):
                await self.dispatcher.silent_call_request(bot=bot, result=result)
        except Exception as exc:  # the errors handler took the rest; this is a bug upstream of it
            log.error(
                "update %s failed outside the handlers: %s", update.update_id, type(exc).__name__
            )

    async def close(self) -> None:
        """Finish the updates in hand; the Bot's session belongs to whoever opened it."""
        await self.drain()

    async def drain(self, timeout: float = DRAIN_SECONDS) -> None:  # noqa: ASYNC109
        """Wait for the updates being handled (at most `timeout` seconds)."""
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
            for task in pending:
                task.cancel()

    @property
    def in_flight(self) -> int:
        """Updates being handled right now."""
        return len(self._tasks)


def create_webhook_app(
    dp: Dispatcher, bot: Bot, *, path: str, secret: str, **data: Any
) -> tuple[web.Application, TelegramWebhookHandler]:
    """The aiohttp app: the webhook route at `path` and /healthz."""
    app = web.Application(client_max_size=MAX_BODY)
    handler = TelegramWebhookHandler(dp, bot, secret=secret, **data)
    handler.register(app, path=path)

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app.router.add_get(HEALTH_PATH, healthz)
    return app, handler


@dataclass(slots=True)
class WebhookServer:
    """A running webhook server; `port` is the bound one (useful with port 0)."""

    runner: web.AppRunner
    handler: TelegramWebhookHandler
    host: str
    port: int
    path: str

    @property
    def url(self) -> str:
        """The local URL of the webhook route."""
        return f"http://{self.host}:{self.port}{self.path}"

    async def stop(self) -> None:
        """Stop accepting, finish the updates in hand (the runner's shutdown calls drain)."""
        await self.runner.cleanup()


async def start_webhook_server(
    dp: Dispatcher, bot: Bot, *, host: str, port: int, path: str, secret: str, **data: Any
) -> WebhookServer:
    """Serve `create_webhook_app` on host:port until `stop()`."""
    app, handler = create_webhook_app(dp, bot, path=path, secret=secret, **data)
    runner = web.AppRunner(app, access_log=None)  # the access log would print every path
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError:
        await runner.cleanup()
        raise
    bound = int(runner.addresses[0][1])
    return WebhookServer(runner=runner, handler=handler, host=host, port=bound, path=path)


async def register_webhook(bot: Bot, dp: Dispatcher, *, url: str, secret: str) -> None:
    """Tell Telegram where to POST; updates that waited meanwhile are kept, not dropped."""
    await bot.set_webhook(
        url=url,
        secret_token=secret,
        allowed_updates=dp.resolve_used_update_types(),
        drop_pending_updates=False,
    )
    log.info("webhook set; Telegram will POST updates to the configured WEBHOOK_URL")


def webhook_url(base: str, path: str) -> str:
    """`https://kezek.example.kz` + `/telegram/webhook`, with exactly one slash between."""
    return base.rstrip("/") + "/" + path.lstrip("/")


async def serve_webhook(
    dp: Dispatcher,
    bot: Bot,
    *,
    public_url: str,
    host: str,
    port: int,
    path: str,
    secret: str,
    stop: asyncio.Event,
) -> None:
    """Serve the webhook and tell Telegram about it; return once `stop` is set."""
    server = await start_webhook_server(dp, bot, host=host, port=port, path=path, secret=secret)
    try:
        await register_webhook(bot, dp, url=webhook_url(public_url, path), secret=secret)
        log.info("webhook mode: listening on %s:%d", host, server.port)
        await stop.wait()
    finally:
        await server.stop()
