"""The benchmark, CI-sized: correctness only (all completed, none duplicated, none lost).

Never a timing: these runs share a CI machine with everything else. The rush goes through the
same path as `python -m bench` (the sandbox in its own process, the real Dispatcher, SQLite
files in a temporary folder); the push through the real outbox and sender against the fake
Bot API, whose limits are checked here too so that "no limit broken" means something.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramRetryAfter

from bench.fake_telegram import FakeTelegramApi, TelegramLimits
from bench.floor import PRESSES_PER_NINE, Handler, run_floor
from bench.push import run_push
from bench.report import BEGIN, END, HISTORY_END, Machine, Report, write_markdown
from bench.rush import run_rush
from services.clock import FakeClock


async def test_fifty_parents_all_get_their_own_application_number(tmp_path: Path) -> None:
    result = await run_rush(50, latency_ms=0, workdir=tmp_path, number_timeout=60)

    assert result.failures == {}
    assert result.completed == 50  # each parent told the number of their own child
    assert result.applications == 50
    assert result.duplicated == 0
    assert result.lost == 0
    assert result.wrong_number == 0
    assert result.updates >= 50 * 20  # every step of the journey went through the Dispatcher
    # Every write went through the one writer, and commits were counted (never more than writes).
    assert 0 < result.commits <= result.writes
    # Every update is put down to a step of the journey, in journey order, each parent's once.
    assert "?" not in result.steps
    assert sum(step.count for step in result.steps.values()) == result.updates
    names = list(result.steps)
    assert names[0] == "/start" and names[-1] == "submit"
    assert names.index("ed24.kz code") < names.index("benefit document") < names.index("group")
    assert result.steps["benefit document"].count == result.steps["submit"].count == 50
    assert sum(step.in_slowest for step in result.steps.values()) >= result.updates // 100


async def test_a_thousand_pushes_are_delivered_once_within_the_limits(tmp_path: Path) -> None:
    result = await run_push(1_000, workdir=tmp_path)

    assert result.delivered == 1_000
    assert result.duplicates == 0
    assert result.lost == 0
    assert result.outbox_counts["sent"] == 1_000
    assert result.outbox_counts["failed"] == result.outbox_counts["pending"] == 0
    assert result.limit_429 == 0  # the sender never broke Telegram's limits
    assert result.busiest_second <= 30
    assert result.mandated_429 > 0  # the random 429s were really there, and were retried
    # Each one held only its own chat (retrying it early would count as a broken limit above).
    assert result.flood_pauses == 0


async def test_the_fake_bot_api_refuses_what_telegram_would() -> None:
    clock = FakeClock()
    api = FakeTelegramApi(clock, TelegramLimits(random_429_share=0.0))
    bot = Bot("4242424242:KEZEK-bench-test-token", session=api)

    for chat in range(30):
        await bot.send_message(chat, f"message {chat}")
    with pytest.raises(TelegramRetryAfter) as too_fast:
        await bot.send_message(99, "the 31st within one second")
    assert too_fast.value.retry_after >= 1

    clock.advance(1.0)
    await bot.send_message(99, "a new second")
    with pytest.raises(TelegramRetryAfter):
        await bot.send_message(99, "the same chat again within a second")
    clock.advance(1.0)
    await bot.send_message(0, "message 0")  # the same text to the same chat: a duplicate

    assert api.delivered == 31
    assert api.duplicates == 1
    assert api.limit_refusals == 2
    assert api.mandated_refusals == 0


async def test_a_chat_refused_with_429_may_not_send_before_its_retry_after() -> None:
    clock = FakeClock()
    api = FakeTelegramApi(clock, TelegramLimits(random_429_share=1.0, random_retry_after=3))
    bot = Bot("4242424242:KEZEK-bench-test-token", session=api)
    with pytest.raises(TelegramRetryAfter) as refused:
        await bot.send_message(7, "refused at random")
    assert refused.value.retry_after == 3
    api.limits.random_429_share = 0.0

    await bot.send_message(8, "another chat is not held")
    clock.advance(2.5)
    with pytest.raises(TelegramRetryAfter) as early:
        await bot.send_message(7, "too early")
    assert early.value.retry_after == 1  # the half second left, rounded up
    clock.advance(0.5)
    await bot.send_message(7, "on time")

    assert api.delivered == 2
    assert (api.mandated_refusals, api.limit_refusals) == (1, 1)


def test_the_report_keeps_what_the_team_wrote_around_the_figures(tmp_path: Path) -> None:
    doc = tmp_path / "performance.md"
    doc.write_text(f"# Notes\n\nkept above\n\n{BEGIN}\nold figures\n{END}\n\nkept below\n")
    report = Report(
        command="python -m bench",
        started=datetime(2026, 11, 26, 6, 0, tzinfo=UTC),
        machine=Machine(2, "23 GiB", "3.11", "3.31.0", "Linux"),
        code="abc1234",
    )

    write_markdown(doc, report, label="a change")

    text = doc.read_text()
    assert "kept above" in text
    assert "kept below" in text
    assert "old figures" not in text
    assert "python -m bench" in text
    assert "| a change | `abc1234` |" in text.split(HISTORY_END)[0]


async def test_the_bare_bots_answer_every_update_as_their_kind_says() -> None:
    chats, each = 10, 9  # nine updates a chat: 7 of them button presses in the rush's mix
    runs = {handler: await run_floor(chats * each, chats, handler=handler) for handler in Handler}

    assert all(run.updates == chats * each for run in runs.values())
    assert runs[Handler.NOOP].calls == 0
    assert runs[Handler.ANSWER].calls == chats * each  # one message per update
    # A press is answered (answerCallbackQuery) and followed by a message; a typed text by one.
    like_rush = chats * (each + PRESSES_PER_NINE)
    assert runs[Handler.LIKE_KEZEK].calls == like_rush
    assert runs[Handler.LIKE_KEZEK_SQLITE].calls == like_rush
    # Every chat's last step (a press) is on disk, the warm-up chat's too.
    assert runs[Handler.LIKE_KEZEK_SQLITE].saved_states == {"_Step:pressed": chats + 1}
    assert runs[Handler.LIKE_KEZEK].saved_states == {}
