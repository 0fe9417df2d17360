"""Step 4/5, notifications: how the parent hears about the application, and in which language.

notify_channel ──(SMS | ed24.kz app | Telegram)──▶ notify_language ──(kk | ru)──▶ review
      ▲                                                  │
      └──────────────────────── Back ◀───────────────────┘
The language is pre-selected from the parent's interface language. Both answers are saved
together as the draft's `notification` = {"channel", "language"}.
"""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import StateFilter
from aiogram.types import CallbackQuery, Message

from bot.fsm.states import ApplicationForm
from bot.keyboards.notifications import (
    NotifyChannel,
    NotifyLanguage,
    channel_keyboard,
    notify_language_keyboard,
)
from bot.render.application import mask_phone
from bot.view import Prompt, StepView, esc
from services.application import CHANNELS, LANGUAGES

S = ApplicationForm


def create_router() -> Router:
    router = Router(name="notifications")
    router.callback_query.register(
        on_channel, NotifyChannel.filter(), StateFilter(S.notify_channel)
    )
    router.message.register(on_channel_other, StateFilter(S.notify_channel))
    router.callback_query.register(
        on_language, NotifyLanguage.filter(), StateFilter(S.notify_language)
    )
    router.message.register(on_language_other, StateFilter(S.notify_language))
    return router


async def ask_channel(view: StepView) -> None:
    """Offer SMS, the ed24.kz app or Telegram, one line each on what it means."""
    draft = await view.draft()
    current = (draft.get("notification") or {}).get("channel")
    phone = esc(mask_phone(str(draft.get("phone") or "")))
    await view.send(view.tr("notify-channel-ask", phone=phone), channel_keyboard(view.tr, current))


async def ask_language(view: StepView) -> None:
    """Offer kk / ru, the earlier answer or else the parent's own language ticked."""
    draft = await view.draft()
    current = (draft.get("notification") or {}).get("language")
    preselected = current if current in LANGUAGES else view.locale
    await view.send(view.tr("notify-language-ask"), notify_language_keyboard(view.tr, preselected))


async def on_channel(query: CallbackQuery, callback_data: NotifyChannel, view: StepView) -> None:
    """Remember the channel for the next question; the draft gets both answers at once."""
    if callback_data.code not in CHANNELS:
        await view.send(view.tr("button-outdated"), header=False)
        await ask_channel(view)
        return
    code = callback_data.code
    await view.goto(S.notify_language, change=lambda data: {**data, "notify_channel": code})


async def on_channel_other(message: Message, view: StepView) -> None:
    """Typed text or anything else: the channel is chosen with a button."""
    await view.send(view.tr("notify-channel-expected"), header=False)
    await ask_channel(view)


async def on_language(query: CallbackQuery, callback_data: NotifyLanguage, view: StepView) -> None:
    """Save {"channel", "language"} in the draft and show the application for review."""
    if callback_data.code not in LANGUAGES:
        await view.send(view.tr("button-outdated"), header=False)
        await ask_language(view)
        return
    data = await view.state.get_data()
    channel = data.get("notify_channel") or ((await view.draft()).get("notification") or {}).get(
        "channel"
    )
    if channel not in CHANNELS:
        # The channel answer was lost (a very old button, a restart mid-step): ask it again.
        await view.goto(S.notify_channel)
        return
    # The review follows either way; after the review's *Edit* it is where the parent returns.
    await view.goto(
        S.review,
        change=lambda data: {**data, "notify_channel": None},
        notification={"channel": channel, "language": callback_data.code},
    )


async def on_language_other(message: Message, view: StepView) -> None:
    """Typed text or anything else: the language is chosen with a button."""
    await view.send(view.tr("notify-language-expected"), header=False)
    await ask_language(view)


PROMPTS: dict[str, Prompt] = {
    S.notify_channel.state: ask_channel,
    S.notify_language.state: ask_language,
}
