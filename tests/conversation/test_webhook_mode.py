"""`run --webhook`: the real Dispatcher behind aiohttp on a loopback port, real HTTP requests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiogram import Bot
from aiogram.methods import SetWebhook, TelegramMethod

from bot.__main__ import _check_webhook_settings
from bot.app import DEMO_TOKEN, App
from bot.config import Settings
from bot.local_chat import LocalChat
from bot.local_session import LocalBotSession
from bot.webhook_mode import (
    SECRET_HEADER,
    WebhookServer,
    register_webhook,
    serve_webhook,
    start_webhook_server,
)

SECRET = "kezek-webhook-secret_0123456789"
PATH = "/telegram/webhook"


@pytest.fixture
async def server(app: App) -> AsyncIterator[WebhookServer]:
    started = await start_webhook_server(
        app.dp, app.bot, host="127.0.0.1", port=0, path=PATH, secret=SECRET
    )
    yield started
    await started.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def start_update(chat: LocalChat, update_id: int) -> dict[str, Any]:
    return {
        "update_id": update_id,
        "message": {
            "message_id": chat.session.next_message_id(chat.chat_id),
            "date": chat.session.now(),
            "chat": chat.chat,
            "from": chat.user,
            "text": "/start",
            "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
        },
    }


async def post(
    http: aiohttp.ClientSession, server: WebhookServer, body: Any, secret: str | None
) -> int:
    headers = {SECRET_HEADER: secret} if secret is not None else {}
    if isinstance(body, bytes):
        response = await http.post(server.url, data=body, headers=headers)
    else:
        response = await http.post(server.url, json=body, headers=headers)
    async with response:
        await response.read()
        return response.status


@pytest.mark.parametrize("secret", [None, "", "wrong-secret_0123456789", SECRET + "x", "ғ" * 8])
async def test_a_request_without_the_right_secret_is_refused_and_not_processed(
    app: App, chat: LocalChat, server: WebhookServer, http: aiohttp.ClientSession, secret: Any
) -> None:
    status = await post(http, server, start_update(chat, 7001), secret)
    assert status == 401
    await server.handler.drain()
    assert chat.history() == []
    assert app.dedup is not None
    await app.dedup.flush()
    assert await app.dedup.stored_ids(app.bot.id) == []


async def test_an_update_with_the_secret_is_answered_once(
    app: App, chat: LocalChat, server: WebhookServer, http: aiohttp.ClientSession
) -> None:
    update = start_update(chat, 7002)
    assert await post(http, server, update, SECRET) == 200
    question = await chat.wait_for(lambda s: s.visible)
    assert question.button_texts == ["✅ 🇰🇿 Қазақша", "🇷🇺 Русский"]
    # Telegram retries when our 200 got lost: the same update is acknowledged, not answered.
    assert await post(http, server, update, SECRET) == 200
    await server.handler.drain()
    assert len([s for s in chat.history() if s.visible]) == 1


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'{"update_id": "x"}'])
async def test_a_body_that_is_not_an_update_gets_400(
    chat: LocalChat, server: WebhookServer, http: aiohttp.ClientSession, body: bytes
) -> None:
    assert await post(http, server, body, SECRET) == 400
    assert server.handler.in_flight == 0
    assert chat.history() == []


async def test_healthz_answers_without_a_secret(
    server: WebhookServer, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"http://{server.host}:{server.port}/healthz") as response:
        assert response.status == 200
        assert await response.text() == "ok"


class RecordingSession(LocalBotSession):
    """The local Telegram, plus setWebhook (recorded)."""

    def __init__(self) -> None:
        super().__init__()
        self.webhooks: list[SetWebhook] = []
        self.registered = asyncio.Event()

    async def make_request(
        self,
        bot: Bot,
        method: TelegramMethod[Any],
        timeout: int | None = None,  # noqa: ASYNC109 - BaseSession's signature
    ) -> Any:
        if isinstance(method, SetWebhook):
            self.webhooks.append(method)
            self.registered.set()
            return True
        return await super().make_request(bot, method, timeout)


async def test_setwebhook_carries_the_secret_and_keeps_pending_updates(app: App) -> None:
    session = RecordingSession()
    bot = Bot(DEMO_TOKEN, session=session)
    await register_webhook(bot, app.dp, url="https://kezek.example.kz/tg", secret=SECRET)
    [call] = session.webhooks
    assert call.url == "https://kezek.example.kz/tg"
    assert call.secret_token == SECRET
    assert call.drop_pending_updates is False
    assert {"message", "callback_query"} <= set(call.allowed_updates or [])


async def test_serve_webhook_registers_then_stops_when_told(app: App) -> None:
    session = RecordingSession()
    bot = Bot(DEMO_TOKEN, session=session)
    stop = asyncio.Event()
    task = asyncio.create_task(
        serve_webhook(
            app.dp,
            bot,
            public_url="https://kezek.example.kz/",
            host="127.0.0.1",
            port=0,
            path=PATH,
            secret=SECRET,
            stop=stop,
        )
    )
    await asyncio.wait_for(session.registered.wait(), 5.0)
    assert not task.done()
    assert [w.url for w in session.webhooks] == ["https://kezek.example.kz/telegram/webhook"]
    stop.set()
    await asyncio.wait_for(task, 5.0)


def test_webhook_mode_refuses_to_start_without_url_and_secret() -> None:
    with pytest.raises(SystemExit, match="WEBHOOK_URL"):
        _check_webhook_settings(Settings(_env_file=None, webhook_secret=SECRET))
    with pytest.raises(SystemExit, match="WEBHOOK_SECRET"):
        _check_webhook_settings(Settings(_env_file=None, webhook_url="https://k.example.kz"))
    with pytest.raises(ValueError, match="WEBHOOK_SECRET must be"):
        Settings(_env_file=None, webhook_secret="short")
    _check_webhook_settings(
        Settings(_env_file=None, webhook_url="https://k.example.kz", webhook_secret=SECRET)
    )
