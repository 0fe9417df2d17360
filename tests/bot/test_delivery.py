"""TelegramDelivery against the in-process Telegram: what is sent, and how each answer maps."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.exceptions import TelegramEntityTooLarge, TelegramNetworkError, TelegramServerError
from aiogram.methods import SendDocument, SendMessage, TelegramMethod
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot.delivery import TelegramDelivery
from bot.local_session import Button, LocalBotSession, bad_request, forbidden, retry_after
from services.clock import FakeClock
from services.outbox import Outbox, OutboxMessage
from services.sender import (
    Blocked,
    Delivered,
    Permanent,
    RetryAfter,
    Sender,
    Transient,
)

TOKEN = "4242:LOCAL-TEST-TOKEN"
CHAT = 5005
MARKUP = InlineKeyboardMarkup(
    inline_keyboard=[
        [InlineKeyboardButton(text="Өтінімді көру", callback_data="app:open:A-1")],
        [InlineKeyboardButton(text="ed24.kz", url="https://ed24.kz")],
    ]
).model_dump(mode="json")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 9, 10, 5, 0, tzinfo=UTC))


@pytest.fixture
async def session(clock: FakeClock) -> AsyncIterator[LocalBotSession]:
    session = LocalBotSession(clock=clock)
    yield session
    await session.close()


@pytest.fixture
def delivery(session: LocalBotSession) -> TelegramDelivery:
    bot = Bot(TOKEN, session=session, default=DefaultBotProperties(parse_mode="HTML"))
    return TelegramDelivery(bot)


def message(text: str = "<b>Кезек</b>: өтініміңіз кезекте", **kwargs: Any) -> OutboxMessage:
    return OutboxMessage(id=1, chat_id=CHAT, kind="status", text=text, **kwargs)


async def test_text_goes_out_as_html_with_its_keyboard_rebuilt(
    delivery: TelegramDelivery, session: LocalBotSession
) -> None:
    result = await delivery(message(markup=MARKUP))

    [sent] = session.sent(CHAT)
    assert result == Delivered(sent.message_id or 0)
    assert (sent.kind, sent.parse_mode, sent.plain) == (
        "message",
        "HTML",
        "Кезек: өтініміңіз кезекте",
    )
    assert sent.buttons == [
        [Button("Өтінімді көру", callback_data="app:open:A-1")],
        [Button("ed24.kz", url="https://ed24.kz")],
    ]


async def test_an_attachment_goes_out_as_one_document_with_the_text_as_caption(
    delivery: TelegramDelivery, session: LocalBotSession
) -> None:
    csv = "Күні;Өтінімдер\n10.09.2026;42\n".encode()

    result = await delivery(message("Күнделікті есеп", attachment=("digest.csv", csv)))

    [sent] = session.sent(CHAT)
    assert isinstance(result, Delivered) and result.message_id == sent.message_id
    assert (sent.kind, sent.file_name, sent.content, sent.plain) == (
        "document",
        "digest.csv",
        csv,
        "Күнделікті есеп",
    )
    assert [type(m) for m in session.requests] == [SendDocument]


def network_error(method: TelegramMethod[Any]) -> BaseException:
    return TelegramNetworkError(method=method, message="Request timeout error")


def server_error(method: TelegramMethod[Any]) -> BaseException:
    return TelegramServerError(method=method, message="Internal Server Error")


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (retry_after(7), RetryAfter(7.0)),
        (forbidden(), Blocked()),
        (forbidden("Forbidden: user is deactivated"), Blocked()),
        (bad_request("Bad Request: chat not found"), Blocked()),
        (
            bad_request("Bad Request: message is too long"),
            Permanent("Bad Request: message is too long"),
        ),
        (network_error, Transient("TelegramNetworkError: Request timeout error")),
        (server_error, Transient("TelegramServerError: Internal Server Error")),
    ],
)
async def test_telegram_answers_map_to_outcomes(
    delivery: TelegramDelivery, session: LocalBotSession, fault: Any, expected: object
) -> None:
    session.fail_next(SendMessage, fault)

    assert await delivery(message()) == expected
    assert session.sent(CHAT) == []
    # the fault was for one call only: the next one goes through
    assert isinstance(await delivery(message()), Delivered)


async def test_a_too_large_file_is_permanent(
    delivery: TelegramDelivery, session: LocalBotSession
) -> None:
    session.fail_next(
        SendDocument, lambda m: TelegramEntityTooLarge(method=m, message="Request Entity Too Large")
    )

    result = await delivery(message("есеп", attachment=("big.csv", b"x")))

    assert result == Permanent("attachment too large")


async def test_a_user_who_blocked_the_bot_is_blocked(
    delivery: TelegramDelivery, session: LocalBotSession
) -> None:
    session.block(CHAT)

    assert await delivery(message()) == Blocked()


async def test_telegrams_own_refusals_are_permanent_and_quote_none_of_our_text(
    delivery: TelegramDelivery, session: LocalBotSession
) -> None:
    assert await delivery(message("x" * 4097)) == Permanent("Bad Request: message is too long")
    broken = await delivery(message("Құрметті <Айгерім>, өтініміңіз қабылданды"))
    assert broken == Permanent("Bad Request: can't parse entities")
    assert session.sent(CHAT) == []


async def test_a_broken_keyboard_is_permanent_without_a_call(
    delivery: TelegramDelivery, session: LocalBotSession
) -> None:
    result = await delivery(message(markup={"inline_keyboard": "not rows"}))

    assert result == Permanent("invalid reply markup")
    assert session.requests == []


async def test_the_sender_delivers_through_aiogram_and_records_message_ids(
    delivery: TelegramDelivery, session: LocalBotSession, clock: FakeClock, tmp_path: Path
) -> None:
    outbox = await Outbox.open(tmp_path / "kezek.sqlite3", clock)
    blocked: list[int] = []

    async def on_blocked(chat_id: int) -> None:
        blocked.append(chat_id)

    async def sleep(seconds: float) -> None:
        clock.advance(seconds)

    try:
        await outbox.enqueue(chat_id=CHAT, text="бірінші", kind="status", dedup_key="a")
        await outbox.enqueue(chat_id=CHAT, text="екінші", kind="status", dedup_key="b")
        await outbox.enqueue(chat_id=6006, text="үшінші", kind="status", dedup_key="c")
        session.block(6006)
        session.fail_next(SendMessage, retry_after(2))

        await Sender(outbox, delivery, clock, sleep=sleep, on_blocked=on_blocked).drain()

        assert [s.plain for s in session.sent(CHAT)] == ["бірінші", "екінші"]
        a, b = await outbox.get("a"), await outbox.get("b")
        assert a is not None and b is not None
        assert (a.message_id, b.message_id) == tuple(s.message_id for s in session.sent(CHAT))
        assert blocked == [6006]
        assert await outbox.counts() == {
            "pending": 0,
            "sending": 0,
            "sent": 2,
            "failed": 0,
            "blocked": 1,
        }
    finally:
        await outbox.close()
