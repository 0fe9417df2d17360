"""StepView: what every handler uses to talk to the parent about the current step.

One is built per update by `ViewMiddleware` and passed to handlers by name (`view`). It knows
the chat, the parent's language, the FSM context and the services, and it owns the conventions
every message follows: the "Step N/5 — title" header, HTML escaping, the sandbox banner, the
typing indicator while the voucher service works, and re-asking the current step.
"""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State
from aiogram.types import InlineKeyboardMarkup, Message, ReplyKeyboardMarkup, ReplyKeyboardRemove
from aiogram.utils.chat_action import ChatActionSender

from bot.fsm.states import STEP_OF

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.i18n import I18n, Translator
    from services.clock import Clock
    from services.outbox import Outbox
    from services.store import Store
    from services.voucher.client import VoucherClient

Markup = InlineKeyboardMarkup | ReplyKeyboardMarkup | ReplyKeyboardRemove
Prompt = Callable[["StepView"], Awaitable[None]]


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

    def typing(self) -> AbstractAsyncContextManager[Any]:
        """Show "typing…" while we wait on the voucher service."""
        return ChatActionSender.typing(bot=self.bot, chat_id=self.chat_id, initial_sleep=0.0)

    async def goto(self, target: State | str) -> None:
        """Move to `target` and ask its question."""
        name = target.state if isinstance(target, State) else target
        await self.state.set_state(name)
        await self.services.store.update_draft(self.user_id, step=name)
        await self.ask()

    async def ask(self) -> None:
        """(Re)ask the current step's question."""
        current = await self.current()
        prompt = self.services.prompts.get(current or "")
        if prompt is None:
            from bot.fsm.states import ApplicationForm

            await self.state.set_state(ApplicationForm.language)
            prompt = self.services.prompts[ApplicationForm.language.state]
        await prompt(self)
