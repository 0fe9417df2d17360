"""The floor: what a bare aiogram Dispatcher does with the same number of updates.

A Dispatcher with MemoryStorage (its default), no middleware of ours and one no-op async message
handler, fed the same number of updates as the rush, shaped the same way: `users` concurrent
chats, each feeding its updates one after another, every update built from a dict with
`Update.model_validate` as the rush's chats do. Telegram is not called, so this is aiogram's own
cost of an update: what our bot is compared with.

The same bare Dispatcher is also measured with handlers that answer, through the rush's own
Telegram stand-in, to show what a conversation on this stack pays before any work of its own:

- `ANSWER`: every update is a message, answered with one message and a three-button keyboard
  (aiogram builds and prepares the call, the session records it and parses the returned Message);
- `LIKE_KEZEK`: the rush's mix of updates and nothing else: 7 of every 9 updates are
  button presses, answered with `answerCallbackQuery` and then a message with a keyboard, the
  others typed messages answered with one (1.78 Bot API calls per update; the rush makes 2.07,
  its edits and file downloads are left out), and each update sets the chat's FSM state in
  MemoryStorage;
- `LIKE_KEZEK_SQLITE`: the same, the state set in Kezek's own FSM storage on a SQLite file (one
  sealed write per update, committed with `synchronous=FULL` before the bot answers): the least
  a step of our conversation does, since what a parent was told is saved must be on disk.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from aiogram import Bot, Dispatcher, Router
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.fsm.storage.base import BaseStorage
from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message, Update

from bench.metrics import Latencies

TOKEN = "4242424242:KEZEK-bench-floor-token"
# In the rush 0.78 of the updates are button presses (answerCallbackQuery per update).
PRESSES_PER_NINE = 7


class Handler(StrEnum):
    """What the bare Dispatcher's handler does with each update."""

    NOOP = "noop"
    ANSWER = "answer"
    LIKE_KEZEK = "like-kezek"
    LIKE_KEZEK_SQLITE = "like-kezek-sqlite"


@dataclass
class FloorResult:
    updates: int
    users: int
    seconds: float
    cpu_seconds: float
    latency_ms_summary: dict[str, float]
    parse: bool = True  # updates built from dicts inside the timed run
    handler: Handler = Handler.NOOP
    calls: int = 0  # Bot API calls the handlers made (the stand-in's count)
    # LIKE_KEZEK_SQLITE: the FSM states found in the SQLite file after the run, by name.
    saved_states: dict[str, int] = field(default_factory=dict)

    @property
    def updates_per_second(self) -> float:
        return self.updates / self.seconds if self.seconds else 0.0

    @property
    def cpu_us_per_update(self) -> float:
        return self.cpu_seconds / self.updates * 1e6 if self.updates else 0.0


class _Step(StatesGroup):
    typed = State()
    pressed = State()


_KEYBOARD = InlineKeyboardMarkup(
    inline_keyboard=[
        [
            InlineKeyboardButton(text="Иә", callback_data="yes"),
            InlineKeyboardButton(text="Жоқ", callback_data="no"),
        ],
        [InlineKeyboardButton(text="Артқа", callback_data="back")],
    ]
)
_TEXT = "Қағидалармен таныстым"
# The keyboard as Telegram sends it back with a pressed message (the same for every press).
_KEYBOARD_JSON = _KEYBOARD.model_dump(exclude_none=True)


def bare_dispatcher(
    handler: Handler = Handler.NOOP, storage: BaseStorage | None = None
) -> Dispatcher:
    """Our storage (or MemoryStorage) and one bare handler per event type: nothing else of Kezek."""
    router = Router(name="floor")

    async def noop(message: Message) -> None:
        return None

    async def answer(message: Message) -> None:
        await message.answer(_TEXT, reply_markup=_KEYBOARD)

    async def typed(message: Message, state: FSMContext) -> None:
        await state.set_state(_Step.typed)
        await message.answer(_TEXT, reply_markup=_KEYBOARD)

    async def pressed(query: CallbackQuery, state: FSMContext) -> None:
        await state.set_state(_Step.pressed)
        await query.answer()
        if isinstance(query.message, Message):
            await query.message.answer(_TEXT, reply_markup=_KEYBOARD)

    if handler is Handler.NOOP:
        router.message.register(noop)
    elif handler is Handler.ANSWER:
        router.message.register(answer)
    else:
        router.message.register(typed)
        router.callback_query.register(pressed)
    dp = Dispatcher(storage=storage or MemoryStorage())
    dp.include_router(router)
    return dp


def _update(update_id: int, user_id: int, message_id: int, *, press: bool) -> dict[str, Any]:
    user = {"id": user_id, "is_bot": False, "first_name": "Айгүл", "language_code": "kk"}
    message: dict[str, Any] = {
        "message_id": message_id,
        "date": 1_790_000_000,
        "chat": {"id": user_id, "type": "private", "first_name": "Айгүл"},
        "from": user,
        "text": _TEXT,
    }
    if not press:
        return {"update_id": update_id, "message": message}
    # The bot's message whose button was pressed, as Telegram sends it back.
    shown = message | {
        "from": {"id": 4242424242, "is_bot": True, "first_name": "Kezek"},
        "reply_markup": _KEYBOARD_JSON,
    }
    query = {"id": str(update_id), "from": user, "chat_instance": "1", "data": "yes"}
    return {"update_id": update_id, "callback_query": query | {"message": shown}}


async def _storage(handler: Handler, folder: Path) -> BaseStorage:
    if handler is not Handler.LIKE_KEZEK_SQLITE:
        return MemoryStorage()
    from bot.fsm.storage import SQLiteStorage
    from services.crypto import DataCipher

    # Sealed as the bot seals FSM data (its cipher is given by bot.app.open_app).
    cipher = DataCipher(secrets.token_bytes(32))
    return await SQLiteStorage.open(folder / "floor.sqlite3", cipher=cipher)


async def run_floor(
    updates: int, users: int, *, parse: bool = True, handler: Handler = Handler.NOOP
) -> FloorResult:
    """Feed `updates` updates from `users` concurrent chats through a bare Dispatcher.

    `parse`: each update is built from its dict inside the timed run, as the rush's chats do
    (and as polling does with Telegram's JSON); otherwise all are built before the clock starts.
    `handler`: what the handler does (see the module); any but NOOP answers through the rush's
    Telegram stand-in.
    """
    from bench.parent import BenchSession  # the rush's stand-in; imported late: it is heavy

    users = max(1, min(users, updates))
    folder = Path(tempfile.mkdtemp(prefix="kezek-floor-"))
    try:
        storage = await _storage(handler, folder)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    dp = bare_dispatcher(handler, storage)
    bot = Bot(TOKEN) if handler is Handler.NOOP else Bot(TOKEN, session=BenchSession())
    mixed = handler in (Handler.LIKE_KEZEK, Handler.LIKE_KEZEK_SQLITE)
    latencies = Latencies()
    share, extra = divmod(updates, users)
    plans: list[list[dict[str, Any]]] = []
    update_id = 0
    for index in range(users + 1):  # the last one is the warm-up chat
        count = 50 if index == users else share + (index < extra)
        plan = []
        for message_id in range(1, count + 1):
            update_id += 1
            press = mixed and (message_id - 1) % 9 >= 9 - PRESSES_PER_NINE
            plan.append(_update(update_id, 90_000_000 + index, message_id, press=press))
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
        calls0 = getattr(bot.session, "calls", 0)
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        await asyncio.gather(*(chat(i) for i in range(users)))
        seconds = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        calls = getattr(bot.session, "calls", 0) - calls0
        keys_in_state = getattr(dp.storage, "keys_in_state", None)  # Kezek's storage only
        saved_states = await keys_in_state() if keys_in_state is not None else {}
    finally:
        await bot.session.close()
        await dp.storage.close()
        shutil.rmtree(folder, ignore_errors=True)
    return FloorResult(
        updates=len(latencies.values),
        users=users,
        seconds=seconds,
        cpu_seconds=cpu,
        latency_ms_summary=latencies.summary_ms(),
        parse=parse,
        handler=handler,
        calls=calls,
        saved_states=saved_states,
    )
