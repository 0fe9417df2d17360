"""Conversation tests: the real Dispatcher from `open_app`, a recording Bot session, the real
sandbox over loopback HTTP and a real SQLite file in a temporary folder."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.app import App, open_app
from bot.config import Settings
from bot.local_chat import LocalChat
from bot.local_session import LocalBotSession
from services.clock import FakeClock
from services.crypto import generate_key
from services.voucher.sandbox import SandboxConfig


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,
        voucher_api_url="sandbox",
        database_path=tmp_path / "kezek.sqlite3",
        consent_poll_seconds=0.02,
        # A scripted parent answers faster than any person; tests/bot/test_abuse.py turns it on.
        flood_burst=0,
        data_key=generate_key(),  # a throwaway key, as the demo makes: data is sealed at rest
    )


@pytest.fixture
def sandbox_config(tmp_path: Path) -> SandboxConfig:
    return SandboxConfig(token="sandbox-token", db_path=tmp_path / "sandbox.sqlite3")


@pytest.fixture
def retry_delays() -> list[float]:
    """The voucher client's retry waits, recorded instead of slept (faults are injected)."""
    return []


@pytest.fixture
async def app(
    settings: Settings, clock: FakeClock, sandbox_config: SandboxConfig, retry_delays: list[float]
) -> AsyncIterator[App]:
    async def record(delay: float) -> None:
        retry_delays.append(delay)

    session = LocalBotSession()
    async with open_app(
        settings,
        clock=clock,
        session=session,
        sandbox_config=sandbox_config,
        voucher_options={"sleep": record},
    ) as opened:
        yield opened


@pytest.fixture
def chat(app: App) -> LocalChat:
    return LocalChat(app.dp, app.bot, user_id=1001, language_code="kk")


@pytest.fixture
def chat_ru(app: App) -> LocalChat:
    return LocalChat(app.dp, app.bot, user_id=2002, language_code="ru", first_name="Ольга")
