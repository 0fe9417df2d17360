"""The floor: what a bare aiogram Dispatcher does with the same number of updates.

A Dispatcher with MemoryStorage (its default), no middleware of ours and one no-op async message
handler, fed the same number of updates as the rush, shaped the same way: `users` concurrent
chats, each feeding its updates one after another, every update built from a dict with
`Update.model_validate` as the rush's chats do. Telegram is not called, so this is aiogram's own
cost of an update: what our bot is compared with.

A second measure, `reply=True`: the same bare Dispatcher whose handler answers every update with
one message and a three-button keyboard, through the rush's own Telegram stand-in. It is what
any bot that answers each update pays before doing anything of its own (aiogram builds and
prepares the call, the session records it and parses the returned Message): the ceiling of a
conversation on this stack, measured beside the floor the issue steers by.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from aiogram import Bot, Dispatcher, Router
from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, Message, Update

from bench.metrics import Latencies

TOKEN = "4242424242:KEZEK-bench-floor-token"


@dataclass
class FloorResult:
    updates: int
    users: int
    seconds: float
    cpu_seconds: float
    latency_ms_summary: dict[str, float]
    parse: bool = True  # updates built from dicts inside the timed run
    reply: bool = False  # the handler answers each update with one message and a keyboard

    @property
    def updates_per_second(self) -> float:
        return self.updates / self.seconds if self.seconds else 0.0

    @property
    def cpu_us_per_update(self) -> float:
        return self.cpu_seconds / self.updates * 1e6 if self.updates else 0.0


def bare_dispatcher(*, reply: bool = False) -> Dispatcher:
    """MemoryStorage and a no-op async handler (or one that answers): nothing of Kezek."""
    router = Router(name="floor")
    keyboard = InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(text="Иә", callback_data="yes"),
                InlineKeyboardButton(text="Жоқ", callback_data="no"),
            ],
            [InlineKeyboardButton(text="Артқа", callback_data="back")],
        ]
    )

    async def noop(message: Message) -> None:
        return None

    async def answer(message: Message) -> None:
        await message.answer("Қағидалармен таныстым", reply_markup=keyboard)

    router.message.register(answer if reply else noop)
    dp = Dispatcher(storage=MemoryStorage())
    dp.include_router(router)
    return dp


def _update(update_id: int, user_id: int, message_id: int) -> dict[str, Any]:
    user = {"id": user_id, "is_bot": False, "first_name": "Айгүл", "language_code": "kk"}
    return {
        "update_id": update_id,
        "message": {
            "message_id": message_id,
            "date": 1_790_000_000,
            "chat": {"id": user_id, "type": "private", "first_name": "Айгүл"},
            "from": user,
            "text": "Қағидалармен таныстым",
        },
    }


async def run_floor(
    updates: int, users: int, *, parse: bool = True, reply: bool = False
) -> FloorResult:
    """Feed `updates` updates from `users` concurrent chats through a bare Dispatcher.

    `parse`: each update is built from its dict inside the timed run, as the rush's chats do
    (and as polling does with Telegram's JSON); otherwise all are built before the clock starts.
    `reply`: the handler answers each update through the rush's Telegram stand-in.
    """
    from bench.parent import BenchSession  # the rush's stand-in; imported late: it is heavy

    users = max(1, min(users, updates))
    dp = bare_dispatcher(reply=reply)
    bot = Bot(TOKEN, session=BenchSession()) if reply else Bot(TOKEN)
    latencies = Latencies()
    share, extra = divmod(updates, users)
    plans: list[list[dict[str, Any]]] = []
    update_id = 0
    for index in range(users + 1):  # the last one is the warm-up chat
        count = 50 if index == users else share + (index < extra)
        plan = []
        for message_id in range(1, count + 1):
            update_id += 1
            plan.append(_update(update_id, 90_000_000 + index, message_id))
        plans.append(plan)
    prebuilt: list[list[Update]] = []
    if not parse:
        prebuilt = [[Update.model_validate(d, context={"bot": bot}) for d in p] for p in plans]

    async def chat(index: int) -> None:
        for position, data in enumerate(plans[index]):
            if parse:
                update = Update.model_validate(data, context={"bot": bot})
            else:
                update = prebuilt[index][position]
            started = time.perf_counter()
            await dp.feed_update(bot, update)
            latencies.add(time.perf_counter() - started)

    try:
        # Warm-up: aiogram builds its handler and filter caches on the first updates.
        await chat(users)
        latencies.values.clear()
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        await asyncio.gather(*(chat(i) for i in range(users)))
        seconds = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
    finally:
        await bot.session.close()
        await dp.storage.close()
    return FloorResult(
        updates=len(latencies.values),
        users=users,
        seconds=seconds,
        cpu_seconds=cpu,
        latency_ms_summary=latencies.summary_ms(),
        parse=parse,
        reply=reply,
    )
