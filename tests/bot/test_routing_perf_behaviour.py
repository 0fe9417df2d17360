"""SkippingRouter: each event reaches the handler plain aiogram would pick, past fewer routers."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiogram import BaseMiddleware, Bot, Dispatcher, Router
from aiogram.dispatcher.event.handler import HandlerObject
from aiogram.filters import Command, Filter, StateFilter
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.types import CallbackQuery, Message, TelegramObject, Update

from bot.config import Settings
from bot.fsm.states import ApplicationForm
from bot.handlers import create_plain_routers, create_routers
from bot.handlers.routing import SkippingRouter
from bot.keyboards.choice import (
    BenefitAnswer,
    ChoiceAction,
    DocKeep,
    GroupPick,
    OrderPick,
    ProviderNav,
    ProviderPick,
    QueuePick,
)
from bot.keyboards.common import CancelAnswer, LangPick, Nav
from bot.keyboards.forget import ForgetAnswer
from bot.keyboards.identity import ConsentAction, PersonAction
from bot.keyboards.notifications import NotifyChannel, NotifyLanguage
from bot.keyboards.phone import OtpAction
from bot.keyboards.review import AnotherChild, ConsentToggle, EditSection, ReviewAction
from bot.keyboards.start import JoinQueue, RuleToggle
from bot.keyboards.status import DraftResume, StatusRefresh
from bot.local_session import LocalBotSession

USER = {"id": 77, "is_bot": False, "first_name": "Айгүл"}
CHAT = {"id": 77, "type": "private", "first_name": "Айгүл"}
STATES: list[str | None] = [
    None,
    *(s.state for s in ApplicationForm.__all_states__),
    "ApplicationForm:renamed_long_ago",
]


def message(**fields: Any) -> Message:
    return Message.model_validate(
        {"message_id": 1, "date": 0, "chat": CHAT, "from": USER, **fields}
    )


def button(data: str | None) -> CallbackQuery:
    query: dict[str, Any] = {"id": "q", "chat_instance": "c", "from": USER}
    if data is not None:
        query["data"] = data
    query["message"] = {"message_id": 1, "date": 0, "chat": CHAT, "text": "x"}
    return CallbackQuery.model_validate(query)


DOCUMENT = {"file_id": "f", "file_unique_id": "u", "file_name": "a.pdf"}
MESSAGES = [
    message(text=t)
    for t in (
        "hello",
        "+7 701 222 33 44",
        "123456",
        "880512400123",
        "/start",
        "/start ref",
        "/cancel",
        "/help",
        "  /help",
        "/help@kezek_bot",
        "/language",
        "/forget",
        "/status",
        "/digest",
        "/stats",
        "/nope",
        "/",
    )
] + [
    message(contact={"phone_number": "+77012223344", "first_name": "A", "user_id": 77}),
    message(document=DOCUMENT),
    message(document=DOCUMENT, caption="/cancel"),
    message(document=DOCUMENT, caption="my paper"),
    message(photo=[{"file_id": "p", "file_unique_id": "pu", "width": 1, "height": 1}]),
    message(
        sticker={
            "file_id": "s",
            "file_unique_id": "su",
            "type": "regular",
            "width": 1,
            "height": 1,
            "is_animated": False,
            "is_video": False,
        }
    ),
]
VALID_DATA: list[CallbackData] = [
    Nav(action="back"),
    Nav(action="retry"),
    Nav(action="elsewhere"),
    LangPick(code="kk"),
    CancelAnswer(confirm=True),
    ForgetAnswer(confirm=False),
    StatusRefresh(ref="0123456789abcdef"),
    DraftResume(n=1),
    RuleToggle(item=1),
    JoinQueue(),
    OtpAction(action="resend"),
    ConsentAction(action="check", ref="abc"),
    PersonAction(action="ok"),
    QueuePick(code="general"),
    OrderPick(code="x"),
    DocKeep(kind="benefit"),
    BenefitAnswer(has=True),
    ProviderNav(action="page", page=2),
    ProviderPick(id="p1"),
    GroupPick(id="g1"),
    ChoiceAction(action="continue"),
    NotifyChannel(code="telegram"),
    NotifyLanguage(code="kk"),
    ConsentToggle(item="offer"),
    ReviewAction(action="submit"),
    EditSection(section="child"),
    AnotherChild(),
]
BUTTONS = [button(d.pack()) for d in VALID_DATA] + [
    button(data)
    for data in ("nav", "nav:", "nav:back:more", "rule:x", "zzz:1", "ch-p", ":", "", None)
]


@pytest.fixture(scope="module")
def facts() -> dict[str, Any]:
    settings = Settings(_env_file=None, voucher_api_url="sandbox", staff_chat_ids=[77])
    # A mention in a command makes aiogram ask Telegram for the bot's name: the local one.
    return {"bot": Bot("42:TEST", session=LocalBotSession()), "settings": settings}


async def first_handler(
    routers: Iterable_Routers, update_type: str, event: TelegramObject, data: dict[str, Any]
) -> HandlerObject | None:
    """The handler aiogram's order picks: routers in turn, handlers in turn, first match."""
    for router in routers:
        for handler in router.observers[update_type].handlers:
            matched, _ = await handler.check(event, **data)
            if matched:
                return handler
    return None


Iterable_Routers = tuple[Router, ...] | list[Router]


@pytest.mark.parametrize(
    ("update_type", "events"), [("message", MESSAGES), ("callback_query", BUTTONS)]
)
async def test_the_bots_routers_pick_the_same_handler_as_plain_aiogram(
    facts: dict[str, Any], update_type: str, events: list[TelegramObject]
) -> None:
    plain = create_plain_routers()
    (skipping,) = create_routers()
    assert isinstance(skipping, SkippingRouter)
    # The same handler objects in both: compare the callbacks they call.
    picked: set[Any] = set()
    for event, state in itertools.product(events, STATES):
        data = {**facts, "raw_state": state}
        offered = skipping.offered(update_type, event, state)
        words = getattr(event, "text", None) or getattr(event, "caption", None) or ""
        if not words.lstrip().startswith("/"):
            # Worth it: an answer to a step meets its step's router and the catch-all (and
            # the commands' router for the buttons of every step), not the dozen routers.
            assert len(offered) <= 3, [r.name for r in offered]
        expected = await first_handler(plain, update_type, event, data)
        got = await first_handler(offered, update_type, event, data)
        assert (got and got.callback) == (expected and expected.callback), (event, state)
        if expected is not None:
            picked.add(expected.callback)
    assert len(picked) >= 25  # the corpus reaches most handlers, not only the catch-alls


# --- the router itself, in a Dispatcher -------------------------------------------------------


class A(CallbackData, prefix="a"):
    n: int


class B(CallbackData, prefix="b"):
    n: int


class Spy(Filter):
    """A root filter that says yes and remembers each time it was asked."""

    def __init__(self, seen: list[str], name: str) -> None:
        self.seen, self.name = seen, name

    async def __call__(self, event: TelegramObject) -> bool:
        self.seen.append(self.name)
        return True


class Outer(BaseMiddleware):
    def __init__(self, seen: list[str]) -> None:
        self.seen = seen

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        self.seen.append("outer")
        return await handler(event, data)


class Env:
    def __init__(self) -> None:
        self.seen: list[str] = []
        self.dp = Dispatcher(storage=MemoryStorage())
        self.bot = Bot("42:TEST")
        self.update_id = 0

        def record(name: str) -> Callable[..., Awaitable[None]]:
            async def handler(event: TelegramObject) -> None:
                self.seen.append(name)

            return handler

        commands = Router(name="commands")
        commands.message.register(record("help"), Command("help"))
        commands.callback_query.register(record("a"), A.filter())
        one = Router(name="one")
        one.message.filter(Spy(self.seen, "spy-one"))
        one.callback_query.filter(Spy(self.seen, "spy-one"))
        one.message.register(record("one-text"), StateFilter("S:one"))
        one.callback_query.register(record("b-one"), B.filter(), StateFilter("S:one"))
        two = Router(name="two")
        two.message.outer_middleware(Outer(self.seen))
        two.message.register(record("two"), StateFilter("S:two"))
        anywhere = Router(name="anywhere")
        anywhere.message.register(record("anywhere"), StateFilter("*"), Command("where"))
        fallback = Router(name="fallback")
        fallback.message.register(record("fallback"))
        fallback.callback_query.register(record("stale"))
        self.dp.include_router(SkippingRouter(commands, one, two, anywhere, fallback))

    async def feed(self, state: str | None, **event: Any) -> list[str]:
        await self.dp.fsm.get_context(self.bot, chat_id=77, user_id=77).set_state(state)
        self.update_id += 1
        self.seen.clear()
        await self.dp.feed_update(
            self.bot, Update.model_validate({"update_id": self.update_id, **event})
        )
        return list(self.seen)


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    env = Env()
    yield env
    await env.bot.session.close()


def text(value: str) -> dict[str, Any]:
    return {"message": message(text=value).model_dump(by_alias=True, exclude_none=True)}


def press(data: str) -> dict[str, Any]:
    return {"callback_query": button(data).model_dump(by_alias=True, exclude_none=True)}


async def test_each_event_reaches_its_handler_past_routers_that_cannot_take_it(env: Env) -> None:
    assert await env.feed("S:one", **text("/help")) == ["help"]
    assert await env.feed("S:one", **text("hi")) == ["spy-one", "one-text"]
    # A router with outer middlewares is always offered (they run), others are skipped.
    assert await env.feed("S:two", **text("hi")) == ["outer", "two"]
    assert await env.feed(None, **text("hi")) == ["outer", "fallback"]
    assert await env.feed("S:three", **text("/where")) == ["outer", "anywhere"]
    assert await env.feed("S:one", **press("a:1")) == ["a"]
    assert await env.feed("S:one", **press("b:1")) == ["spy-one", "b-one"]
    assert await env.feed("S:two", **press("b:1")) == ["stale"]
    assert await env.feed("S:one", **press("forged")) == ["stale"]
    caption = message(document=DOCUMENT, caption="/help").model_dump(
        by_alias=True, exclude_none=True
    )
    assert await env.feed("S:one", message=caption) == ["help"]


async def test_other_update_types_go_the_plain_way(env: Env) -> None:
    seen: list[str] = []
    router = Router(name="edits")

    async def on_edit(event: TelegramObject) -> None:
        seen.append("edited")

    router.edited_message.register(on_edit)
    env.dp.include_router(SkippingRouter(router, name="more"))
    edited = message(text="x", edit_date=1).model_dump(by_alias=True, exclude_none=True)
    await env.dp.feed_update(
        env.bot, Update.model_validate({"update_id": 999, "edited_message": edited})
    )
    assert seen == ["edited"]


def test_a_handler_of_its_own_is_refused() -> None:
    skipping = SkippingRouter(Router(name="inner"))

    async def own(event: TelegramObject) -> None: ...

    skipping.message.register(own)
    with pytest.raises(RuntimeError, match="no handlers or filters of its own"):
        skipping.offered("message", message(text="x"), None)
