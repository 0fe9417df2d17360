"""UpdateDedup on its own: a bare Dispatcher, a counting handler, a real SQLite file.

Every test runs twice: writes through the dedup's own writer, and through a shared
`SQLiteWriter` as in the bot."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiogram import Bot, Dispatcher
from aiogram.types import Message, Update

from bot.dedup import UpdateDedup
from bot.local_session import LocalBotSession
from services.clock import FakeClock
from services.sqlite_writer import SQLiteWriter

TOKEN = "4242424242:KEZEK-dedup-test-token"


class Env:
    def __init__(self, dp: Dispatcher, bot: Bot, dedup: UpdateDedup) -> None:
        self.dp, self.bot, self.dedup = dp, bot, dedup
        self.handled: list[int] = []
        self.fail_next = False

    def update(self, update_id: int, text: str = "сәлем") -> Update:
        message = {
            "message_id": update_id,
            "date": 0,
            "chat": {"id": 7, "type": "private", "first_name": "Айгүл"},
            "from": {"id": 7, "is_bot": False, "first_name": "Айгүл"},
            "text": text,
        }
        return Update.model_validate(
            {"update_id": update_id, "message": message}, context={"bot": self.bot}
        )

    async def feed(self, *update_ids: int) -> None:
        for update_id in update_ids:
            await self.dp.feed_update(self.bot, self.update(update_id))


@pytest.fixture(params=[False, True], ids=["own-writer", "shared-writer"])
def shared(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


@asynccontextmanager
async def running(
    path: Path, clock: FakeClock, *, shared: bool, **options: Any
) -> AsyncIterator[Env]:
    writer = await SQLiteWriter.open(path) if shared else None
    dedup = await UpdateDedup.open(path, clock, writer=writer, **options)
    bot = Bot(TOKEN, session=LocalBotSession())
    dp = Dispatcher()
    env = Env(dp, bot, dedup)
    dp.update.outer_middleware(dedup)

    async def on_message(message: Message) -> None:
        if env.fail_next:
            env.fail_next = False
            raise RuntimeError("handler failed")
        env.handled.append(message.message_id)

    dp.message.register(on_message)
    try:
        yield env
        if writer is not None:
            await dedup.flush()
            assert writer.stats.jobs > 0  # the ids went through the shared writer
    finally:
        await dedup.close()
        if writer is not None:
            await writer.close()


async def test_a_repeated_update_is_handled_once(tmp_path: Path, shared: bool) -> None:
    async with running(tmp_path / "db.sqlite3", FakeClock(), shared=shared) as env:
        await env.feed(1, 2, 1, 2, 3)
        assert env.handled == [1, 2, 3]
        await env.dedup.flush()
        assert await env.dedup.stored_ids(env.bot.id) == [1, 2, 3]


async def test_ids_out_of_order_are_new_unless_seen(tmp_path: Path, shared: bool) -> None:
    # Not "highest id seen": a lower id that never came is handled.
    async with running(tmp_path / "db.sqlite3", FakeClock(), shared=shared) as env:
        await env.feed(10, 5, 5, 7)
        assert env.handled == [10, 5, 7]


async def test_repeats_are_dropped_across_a_restart(tmp_path: Path, shared: bool) -> None:
    path, clock = tmp_path / "db.sqlite3", FakeClock()
    async with running(path, clock, shared=shared) as first:
        await first.feed(100, 101, 105)
    async with running(path, clock, shared=shared) as second:
        # 101 and 105 from the database; 103 was never seen and is lower than the top.
        await second.feed(105, 101, 103, 106, 106)
        assert second.handled == [103, 106]


async def test_concurrent_copies_are_handled_once(tmp_path: Path, shared: bool) -> None:
    async with running(tmp_path / "db.sqlite3", FakeClock(), shared=shared) as first:
        await first.feed(50)
    async with running(tmp_path / "db.sqlite3", FakeClock(), shared=shared) as env:
        # Both copies of 40 need the database (40 is below the stored top 50) at the same time.
        update = env.update(40)
        await asyncio.gather(*(env.dp.feed_update(env.bot, update) for _ in range(3)))
        assert env.handled == [40]


async def test_a_failed_update_can_be_delivered_again(tmp_path: Path, shared: bool) -> None:
    path, clock = tmp_path / "db.sqlite3", FakeClock()
    async with running(path, clock, shared=shared) as env:
        env.fail_next = True
        try:
            await env.feed(8)
        except RuntimeError:
            pass
        else:
            raise AssertionError("the handler's error must reach the Dispatcher's caller")
        await env.dedup.flush()
        assert await env.dedup.stored_ids(env.bot.id) == []
        await env.feed(8, 8)
        assert env.handled == [8]


async def test_rows_expire_after_48_hours_pruned_in_batches(tmp_path: Path, shared: bool) -> None:
    path, clock = tmp_path / "db.sqlite3", FakeClock()
    async with running(path, clock, shared=shared, capacity=100) as env:
        await env.feed(*range(1, 2502))
        await env.dedup.flush()
        clock.advance(hours=47)
        await env.feed(3000)
        await env.dedup.flush()
        assert await env.dedup.prune() == 0  # nothing is 48 h old yet
        clock.advance(hours=2)
        assert await env.dedup.prune() == 2501  # three batches of at most 1000
        assert await env.dedup.stored_ids(env.bot.id) == [3000]


async def test_the_writer_prunes_by_itself_every_ten_minutes(tmp_path: Path, shared: bool) -> None:
    path, clock = tmp_path / "db.sqlite3", FakeClock()
    async with running(path, clock, shared=shared, ttl=timedelta(hours=1)) as env:
        await env.feed(1)
        await env.dedup.flush()
        clock.advance(hours=2)
        await env.feed(2)  # the writer wakes, writes 2 and prunes 1 (due: 2 h since last)
        await env.dedup.flush()
        assert await env.dedup.stored_ids(env.bot.id) == [2]
