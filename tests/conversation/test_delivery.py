"""Telegram's delivery: repeated updates, one user's updates one at a time, callbacks answered
first, stale and forged buttons — through the real Dispatcher, storage and sandbox."""

from __future__ import annotations

import ast
import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiogram.fsm.storage.base import StorageKey
from aiogram.types import Message, TelegramObject, Update

from bot.app import App, open_app
from bot.config import Settings
from bot.fsm.states import ApplicationForm
from bot.keyboards.start import JoinQueue, RuleToggle
from bot.local_chat import LocalChat
from bot.local_session import LocalBotSession, Sent
from services.clock import FakeClock
from services.voucher.sandbox import SandboxConfig
from tests.conversation.seed import seed_identity

S = ApplicationForm
PHONE = "+77012223344"
ROOT = Path(__file__).resolve().parents[2]


def visible(sent: list[Sent]) -> list[Sent]:
    return [s for s in sent if s.visible]


def t(app: App, msg_id: str, locale: str = "kk", **args: object) -> str:
    return app.services.i18n.t(locale, msg_id, **args)


async def state_of(app: App, chat: LocalChat) -> str | None:
    key = StorageKey(bot_id=app.bot.id, chat_id=chat.chat_id, user_id=chat.user_id)
    return await app.storage.get_state(key)


async def data_of(app: App, chat: LocalChat) -> dict[str, Any]:
    key = StorageKey(bot_id=app.bot.id, chat_id=chat.chat_id, user_id=chat.user_id)
    return await app.storage.get_data(key)


def text_update(chat: LocalChat, text: str) -> Update:
    """A message update as Telegram would send it (kept, so the test can send it again)."""
    session = chat.session
    message: dict[str, Any] = {
        "message_id": session.next_message_id(chat.chat_id),
        "date": session.now(),
        "chat": chat.chat,
        "from": chat.user,
        "text": text,
    }
    if text.startswith("/"):
        message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text)}]
    session.store_incoming(message)
    return Update.model_validate(
        {"update_id": session.next_update_id(), "message": message}, context={"bot": chat.bot}
    )


def button_update(chat: LocalChat, data: str, message_id: int) -> Update:
    """A callback-query update: `data` pressed under the bot's message `message_id`."""
    session = chat.session
    query = {
        "id": session.new_callback_id(chat.chat_id),
        "from": chat.user,
        "chat_instance": f"local-{chat.chat_id}",
        "message": session.message(chat.chat_id, message_id),
        "data": data,
    }
    return Update.model_validate(
        {"update_id": session.next_update_id(), "callback_query": query},
        context={"bot": chat.bot},
    )


async def at_rules(app: App, chat: LocalChat) -> Sent:
    await chat.send("/start")
    await chat.press("Қазақша")
    rules = chat.session.last_inline(chat.chat_id)
    assert rules is not None and await state_of(app, chat) == S.rules.state
    return rules


async def at_phone(app: App, chat: LocalChat) -> None:
    await at_rules(app, chat)
    for item in (1, 2, 3):
        await chat.press(t(app, f"rules-item-{item}-short"))
    await chat.press(t(app, "btn-join-queue"))
    assert await state_of(app, chat) == S.phone.state


async def codes_sent(app: App, phone: str = PHONE) -> int:
    inbox = await app.services.voucher.sandbox_inbox(phone)
    return sum(1 for m in inbox if m.otp_code)


# --- duplicated update_ids ------------------------------------------------------------------


async def test_a_repeated_message_update_is_handled_once(app: App, chat: LocalChat) -> None:
    await at_phone(app, chat)
    update = text_update(chat, "+7 701 222 33 44")
    first = visible(await chat.feed(update))
    again = await chat.feed(update)
    assert "+7 701 222 33 44" in (first[-1].plain or "")
    assert again == []  # acknowledged and dropped: not a word, not a second code
    assert await codes_sent(app) == 1
    assert await state_of(app, chat) == S.otp.state


async def test_a_repeated_button_press_is_handled_once(app: App, chat: LocalChat) -> None:
    rules = await at_rules(app, chat)
    assert rules.message_id is not None
    update = button_update(chat, RuleToggle(item=2).pack(), rules.message_id)
    first = await chat.feed(update)
    again = await chat.feed(update)
    assert [s.kind for s in first] == ["callback_answer", "edit"]
    assert again == []  # a second toggle would have unticked it
    assert (await data_of(app, chat))["rules"] == [2]


@asynccontextmanager
async def process(
    settings: Settings, clock: FakeClock, sandbox: SandboxConfig
) -> AsyncIterator[App]:
    async with open_app(
        settings, clock=clock, session=LocalBotSession(), sandbox_config=sandbox
    ) as opened:
        yield opened


async def test_a_repeat_after_a_restart_is_dropped(
    settings: Settings, clock: FakeClock, sandbox_config: SandboxConfig
) -> None:
    async with process(settings, clock, sandbox_config) as first:
        chat = LocalChat(first.dp, first.bot, user_id=3003)
        await at_phone(first, chat)
        update = text_update(chat, "+7 701 222 33 44")
        assert visible(await chat.feed(update))
        raw = update.model_dump(mode="json", exclude_none=True)
    async with process(settings, clock, sandbox_config) as second:
        chat = LocalChat(second.dp, second.bot, user_id=3003)
        # Telegram delivers the update again after the restart (its answer never reached it).
        redelivered = Update.model_validate(raw, context={"bot": second.bot})
        assert await chat.feed(redelivered) == []
        assert await codes_sent(second) == 1
        assert await state_of(second, chat) == S.otp.state
        # The next, new update is handled as usual.
        help_text = visible(await chat.send("/help"))
        assert t(second, "help-otp") in (help_text[0].plain or "")


# --- event isolation ------------------------------------------------------------------------


class Tracer:
    """Records when each update asks for its user's lock and when its handlers run."""

    def __init__(self, app: App, monkeypatch: pytest.MonkeyPatch) -> None:
        self.events: list[tuple[str, int, str]] = []
        self.hold: dict[str, asyncio.Event] = {}
        self.waiting = asyncio.Event()
        isolation = app.dp.fsm.events_isolation
        original = isolation.lock

        @asynccontextmanager
        async def traced_lock(key: StorageKey) -> AsyncIterator[None]:
            self.events.append(("lock", key.user_id, ""))
            self.waiting.set()
            async with original(key):
                yield

        monkeypatch.setattr(isolation, "lock", traced_lock)
        app.dp.message.outer_middleware(self.middleware)

    async def middleware(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        assert isinstance(event, Message) and event.from_user is not None
        who, text = event.from_user.id, event.text or ""
        self.events.append(("enter", who, text))
        gate = self.hold.get(text)
        if gate is not None:
            await asyncio.wait_for(gate.wait(), 5.0)
        try:
            return await handler(event, data)
        finally:
            self.events.append(("exit", who, text))

    def locks_asked(self, user_id: int) -> int:
        return sum(1 for kind, who, _ in self.events if kind == "lock" and who == user_id)

    async def until_locks_asked(self, user_id: int, count: int) -> None:
        for _ in range(1000):  # bounded: each round waits for the next lock request
            if self.locks_asked(user_id) >= count:
                return
            self.waiting.clear()
            await asyncio.wait_for(self.waiting.wait(), 5.0)
        raise AssertionError("the updates never asked for the lock")


async def test_one_users_updates_are_handled_one_at_a_time(
    app: App, chat: LocalChat, monkeypatch: pytest.MonkeyPatch
) -> None:
    await at_phone(app, chat)
    tracer = Tracer(app, monkeypatch)
    first_text, second_text = "+7 701 222 33 44", "8 701 222 33 44"
    tracer.hold[first_text] = asyncio.Event()

    async def release_when_the_second_waits() -> None:
        await tracer.until_locks_asked(chat.user_id, 2)
        # The second update asked for the lock while the first is inside: it must not enter.
        assert ("enter", chat.user_id, second_text) not in tracer.events
        tracer.hold[first_text].set()

    await asyncio.gather(
        chat.send(first_text), chat.send(second_text), release_when_the_second_waits()
    )
    handled = [(kind, text) for kind, _, text in tracer.events if kind != "lock"]
    assert handled == [
        ("enter", first_text),
        ("exit", first_text),
        ("enter", second_text),
        ("exit", second_text),
    ]
    # The second one saw the state the first left: a code was sent, the second is a bad code.
    assert await codes_sent(app) == 1
    assert await state_of(app, chat) == S.otp.state
    assert t(app, "otp-format") in (chat.last().plain or "")


async def test_two_users_are_handled_at_the_same_time(
    app: App, chat: LocalChat, chat_ru: LocalChat, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracer = Tracer(app, monkeypatch)
    # Aigül's /help waits inside her handler until Olga's update has been handled in full.
    tracer.hold["/help"] = asyncio.Event()

    async def olga() -> None:
        await chat_ru.send("/status")
        tracer.hold["/help"].set()

    await asyncio.gather(chat.send("/help"), olga())
    handled = [(kind, who) for kind, who, _ in tracer.events if kind != "lock"]
    assert handled == [
        ("enter", chat.user_id),
        ("enter", chat_ru.user_id),
        ("exit", chat_ru.user_id),
        ("exit", chat.user_id),
    ]
    assert visible(chat.history()) and visible(chat_ru.history())


# --- callbacks answered first ---------------------------------------------------------------


async def test_a_button_is_answered_before_anything_else_is_sent(app: App, chat: LocalChat) -> None:
    await at_rules(app, chat)
    for item in (1, 2, 3):
        await chat.press(t(app, f"rules-item-{item}-short"))
    before = len(chat.session.requests)
    sent = await chat.press(t(app, "btn-join-queue"))
    assert sent[0].kind == "callback_answer"
    assert any(s.kind == "message" for s in sent[1:])
    methods = [type(m).__name__ for m in chat.session.requests[before:]]
    assert methods[0] == "AnswerCallbackQuery"
    assert "SendMessage" in methods


async def test_a_step_that_calls_the_service_answers_the_button_first(
    app: App, chat: LocalChat
) -> None:
    # Retry at the queue type asks the voucher service again: the spinner stops before that.
    await seed_identity(app, chat)
    await chat.send("/help")
    sent = await chat.press_data("nav:retry", message_id=chat.last().message_id or 0)
    kinds = [s.kind for s in sent]
    assert kinds[0] == "callback_answer"
    # "typing…" only shows for a slow call (tests/bot/test_typing_perf_behaviour.py).
    assert "message" in kinds
    assert t(app, "choice-queue-ask") in (chat.last().plain or "")


# --- stale and forged buttons ---------------------------------------------------------------


async def snapshot(app: App, chat: LocalChat) -> tuple[str | None, dict[str, Any], Any]:
    return (
        await state_of(app, chat),
        await data_of(app, chat),
        await app.services.store.get_draft(chat.user_id),
    )


@pytest.mark.parametrize(
    "data",
    ["zz:nothing", "rule:banana", "nav:teleport", "ch-q:", "\u202eotp:resend", "x" * 64],
)
async def test_unknown_button_data_changes_nothing(app: App, chat: LocalChat, data: str) -> None:
    await seed_identity(app, chat)
    shown = visible(await chat.send("/help"))
    before = await snapshot(app, chat)
    inbox = await app.services.voucher.sandbox_inbox(PHONE)
    reply = visible(await chat.press_data(data, message_id=shown[-1].message_id or 0))
    assert t(app, "button-outdated") in (reply[0].plain or "")
    assert await snapshot(app, chat) == before
    assert await app.services.voucher.sandbox_inbox(PHONE) == inbox


async def test_an_old_messages_button_changes_nothing(app: App, chat: LocalChat) -> None:
    rules = await at_rules(app, chat)
    for item in (1, 2, 3):
        await chat.press(t(app, f"rules-item-{item}-short"))
    await chat.press(t(app, "btn-join-queue"))
    await chat.share_contact(PHONE)
    assert await state_of(app, chat) == S.otp.state
    before = await snapshot(app, chat)
    # The rules message is still on screen; its buttons belong to a step long gone.
    assert rules.message_id is not None
    for data in (JoinQueue().pack(), RuleToggle(item=1).pack()):
        reply = visible(await chat.press_data(data, message_id=rules.message_id))
        assert t(app, "button-outdated") in (reply[0].plain or "")
        assert t(app, "otp-ask", phone="+7 701 222 33 44") in (reply[-1].plain or "")
    assert await snapshot(app, chat) == before
    assert await codes_sent(app) == 1


# --- pending updates are never dropped ------------------------------------------------------


def test_no_code_path_drops_pending_updates() -> None:
    """`run` (polling or webhook) keeps what parents sent while the bot was down."""
    offenders = []
    for path in sorted((ROOT / "bot").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.keyword) and node.arg == "drop_pending_updates":
                value = node.value
                if not (isinstance(value, ast.Constant) and value.value is False):
                    offenders.append(f"{path.relative_to(ROOT)}:{value.lineno}")
    assert offenders == []
