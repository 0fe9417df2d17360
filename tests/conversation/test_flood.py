"""The per-user flood limit, on: 20 updates per 10 s, then quiet drops and one polite notice."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.app import App
from bot.config import Settings
from bot.local_chat import LocalChat
from bot.local_session import Sent
from services.clock import FakeClock
from services.crypto import generate_key


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """The conversation settings with the production flood limit (conftest turns it off)."""
    return Settings(
        _env_file=None,
        voucher_api_url="sandbox",
        database_path=tmp_path / "kezek.sqlite3",
        consent_poll_seconds=0.02,
        data_key=generate_key(),
        flood_burst=20,
        flood_seconds=10,
    )


def t(app: App, msg_id: str, locale: str = "kk", **args: object) -> str:
    return app.services.i18n.t(locale, msg_id, **args)


def visible(sent: list[Sent]) -> list[Sent]:
    return [s for s in sent if s.visible]


async def test_a_flood_is_cut_with_one_notice_and_let_through_again_later(
    app: App, chat: LocalChat, chat_ru: LocalChat, clock: FakeClock
) -> None:
    answered = [bool(visible(await chat.send("/help"))) for _ in range(20)]
    assert all(answered)
    requests_before = len(chat.session.requests)
    notice = visible(await chat.send("/help"))
    assert [s.plain for s in notice] == [
        t(app, "abuse-too-fast", seconds=1) + "\n\n" + t(app, "sandbox-banner")
    ]
    for _ in range(30):  # the rest of the flood: not a single call to Telegram
        assert await chat.send("/help") == []
    await chat.press_data("nav:retry", message_id=notice[0].message_id or 0)
    assert len(chat.session.requests) == requests_before + 1  # the notice, nothing else
    # Someone else is not slowed down by it.
    assert visible(await chat_ru.send("/help"))
    clock.advance(seconds=1)  # two tokens back at 2 per second
    assert visible(await chat.send("/help"))
    assert visible(await chat.send("/help"))
    assert await chat.send("/help") == []  # within the same window: no second notice
    clock.advance(seconds=10)
    assert visible(await chat.send("/help"))


async def test_the_notice_comes_again_in_the_next_window(
    app: App, chat_ru: LocalChat, clock: FakeClock
) -> None:
    for _ in range(20):
        await chat_ru.send("/help")
    first = visible(await chat_ru.send("/help"))
    clock.advance(seconds=10)
    for _ in range(20):
        await chat_ru.send("/help")
    second = visible(await chat_ru.send("/help"))
    assert len(first) == len(second) == 1
    assert t(app, "abuse-too-fast", "ru", seconds=1) in (second[0].plain or "")
