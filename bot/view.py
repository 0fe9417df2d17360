"""StepView: what every handler uses to talk to the parent about the current step.

One is built per update by `ViewMiddleware` and passed to handlers by name (`view`). It knows
the chat, the parent's language, the FSM context and the services, and it owns the conventions
every message follows: the "Step N/5 — title" header, HTML escaping, the sandbox banner, the
typing indicator while the voucher service works, and re-asking the current step.
"""

from __future__ import annotations

import asyncio
import html
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

from aiogram import Bot
from aiogram.enums import ChatAction
from aiogram.exceptions import TelegramBadRequest
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State
from aiogram.types import InlineKeyboardMarkup, Message, ReplyKeyboardMarkup, ReplyKeyboardRemove

from bot.fsm.states import STEP_OF
from bot.fsm.storage import SQLiteStorage

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.i18n import I18n, Translator
    from services.clock import Clock
    from services.outbox import Outbox
    from services.store import Store
    from services.voucher.client import VoucherClient

log = logging.getLogger("kezek.view")

Markup = InlineKeyboardMarkup | ReplyKeyboardMarkup | ReplyKeyboardRemove
Prompt = Callable[["StepView"], Awaitable[None]]

# "typing…" only for a call that is still running after this many seconds: most calls answer
# sooner, and each chat action is one more Bot API request counted against Telegram's limits.
TYPING_DELAY = 0.5
# Telegram shows a chat action for 5 s (or until the bot's next message): repeat it that often.
TYPING_INTERVAL = 5.0


@dataclass(slots=True)
class Services:
    """The long-lived parts of the bot, created once by `bot.app.build_services`."""

    settings: Settings
    store: Store
    voucher: VoucherClient
    i18n: I18n
    clock: Clock
    outbox: Outbox | None = None  # messages the bot sends on its own initiative
    prompts: Mapping[str, Prompt] = field(default_factory=dict)
    background: Any = None  # bot.watchers.ConsentWatcher, set by create_dispatcher
    submitter: Any = None  # services.submitter.Submitter, set by bot.app.open_app
    # {"waiting": n, "failed": n} of the submissions, for the staff digest (bot/handlers/staff.py)
    outbox_counts: Callable[[], Awaitable[Mapping[str, int]]] | None = None
    typing_delay: float = TYPING_DELAY  # seconds before "typing…" shows (StepView.typing)


class Typing:
    """Shows "typing…" in a chat while a slow call runs; a fast call costs one timer, no task.

    `async with Typing(bot, chat_id, delay):` — after `delay` seconds a task starts sending the
    chat action every TYPING_INTERVAL seconds; leaving the block cancels the timer, or stops the
    task (and waits for it, so no action arrives after the answer it announced).
    """

    __slots__ = ("_bot", "_chat_id", "_delay", "_task", "_timer")

    def __init__(self, bot: Bot, chat_id: int, delay: float = TYPING_DELAY) -> None:
        """Prepare the indicator for `chat_id`; nothing happens before `async with`."""
        self._bot = bot
        self._chat_id = chat_id
        self._delay = delay
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Typing:
        self._timer = asyncio.get_running_loop().call_later(self._delay, self._start)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # our own task is being cancelled, not just the indicator

    def _start(self) -> None:
        self._timer = None
        self._task = asyncio.get_running_loop().create_task(self._keep_typing())

    async def _keep_typing(self) -> None:
        try:
            while True:
                await self._bot.send_chat_action(chat_id=self._chat_id, action=ChatAction.TYPING)
                await asyncio.sleep(TYPING_INTERVAL)
        except Exception as exc:  # a blocked chat, a flood limit: "typing…" is only a courtesy
            log.info("typing indicator stopped: %s", type(exc).__name__)


def esc(value: object) -> str:
    """Escape anything that did not come from our own locale files before it goes into HTML."""
    return html.escape(str(value), quote=False)


@dataclass(slots=True)
class StepView:
    bot: Bot
    chat_id: int
    user_id: int
    tr: Translator
    state: FSMContext
    services: Services

    @property
    def locale(self) -> str:
        return self.tr.locale

    @property
    def store(self) -> Store:
        return self.services.store

    @property
    def voucher(self) -> VoucherClient:
        return self.services.voucher

    async def current(self) -> str | None:
        return await self.state.get_state()

    async def draft(self) -> dict[str, Any]:
        return await self.services.store.get_draft(self.user_id)

    async def save(self, **fields: Any) -> dict[str, Any]:
        """Record confirmed answers in the draft (None removes a key)."""
        return await self.services.store.update_draft(
            self.user_id, step=await self.current(), **fields
        )

    def header(self, state: str | None) -> str:
        step = STEP_OF.get(state or "", 0)
        if not step:
            return ""
        # The same few headers again and again: formatted once per locale and step.
        return self.tr.memo(("step-header", step), lambda: self._format_header(step))

    def _format_header(self, step: int) -> str:
        title = self.tr(f"step-title-{step}")
        return "<b>" + self.tr("step-header", n=step, title=title) + "</b>\n\n"

    def footer(self) -> str:
        if not self.services.settings.uses_sandbox:
            return ""
        return "\n\n<i>" + self.tr("sandbox-banner") + "</i>"

    async def send(
        self, text: str, markup: Markup | None = None, *, header: bool = True
    ) -> Message:
        """Send `text` (already-escaped HTML from the locale files) with the step header."""
        head = self.header(await self.current()) if header else ""
        return await self.bot.send_message(
            self.chat_id, head + text + self.footer(), reply_markup=markup
        )

    async def edit(
        self, message: Message | None, text: str, markup: InlineKeyboardMarkup | None = None
    ) -> None:
        """Update a message in place (toggles, pages); send anew when it cannot be edited."""
        head = self.header(await self.current())
        if message is None or not isinstance(message, Message):
            await self.send(text, markup)
            return
        try:
            await message.edit_text(head + text + self.footer(), reply_markup=markup)
        except TelegramBadRequest as exc:  # "message is not modified" and too-old messages
            if "not modified" in str(exc):
                return
            await self.send(text, markup)

    def typing(self) -> Typing:
        """Show "typing…" if we wait on the voucher service longer than a moment."""
        return Typing(self.bot, self.chat_id, self.services.typing_delay)

    async def goto(
        self,
        target: State | str,
        *,
        change: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        **fields: Any,
    ) -> None:
        """`move` to `target`, then ask its question."""
        await self.move(target, change=change, **fields)
        await self.ask()

    async def move(
        self,
        target: State | str,
        *,
        change: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        **fields: Any,
    ) -> None:
        """Record `fields` (as `save` does), replace the FSM data by `change(data)` if given and
        move to `target`, in one commit; the question is not asked (see `goto`).

        For a step that says something of its own (a confirmation, "code sent") before the next
        question: `save(...)`, a data change and `goto(...)` one after the other would each
        wait for a commit of their own.
        """
        name = target.state if isinstance(target, State) else target
        store, storage = self.services.store, self.state.storage
        if isinstance(storage, SQLiteStorage):
            # One commit for both, the FSM record changing only if the draft was saved.
            async with storage.moving(self.state.key, name, data=change) as then:
                await store.update_draft(self.user_id, step=name, then=then, **fields)
            return
        await store.update_draft(self.user_id, step=name, **fields)  # bare Dispatchers
        await self.state.set_state(name)
        if change is not None:
            await self.state.set_data(change(await self.state.get_data()))

    async def ask(self) -> None:
        """(Re)ask the current step's question."""
        current = await self.current()
        prompt = self.services.prompts.get(current or "")
        if prompt is None:
            from bot.fsm.states import ApplicationForm

            await self.state.set_state(ApplicationForm.language)
            prompt = self.services.prompts[ApplicationForm.language.state]
        await prompt(self)
