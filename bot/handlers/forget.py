"""/forget: delete everything Kezek holds about the parent, after a confirmation.

/forget (any state) ──▶ "Delete everything?"  [Yes, delete all] [No, keep]
  Yes ──▶ consent watcher stopped; FSM rows of the user (every key), draft, applications,
          users row and the chat's outbox rows deleted ──▶ "Done. The voucher service keeps
          the submitted applications (their numbers); withdraw them there" (no state left)
  No  ──▶ "Nothing deleted", then the current step's question again (when there is one)

Included right after the commands router, so it works at every step. Submitted applications
live on in the voucher service (the education department's record): the bot cannot and does
not delete them, and says so. The OTP limits (services/otp_guard.py) are not personal data in
clear and are kept until they expire: forgetting must not reset a lockout.
"""

from __future__ import annotations

import contextlib
import logging

from aiogram import Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message

from bot.fsm.states import ApplicationForm
from bot.fsm.storage import SQLiteStorage
from bot.keyboards.forget import ForgetAnswer, forget_keyboard
from bot.view import Prompt, StepView, esc

log = logging.getLogger("kezek.bot.forget")

_NO_STEP = (None, ApplicationForm.submitted.state)

PROMPTS: dict[str, Prompt] = {}


def create_router() -> Router:
    """/forget and its confirmation buttons, in every state."""
    router = Router(name="forget")
    router.message.register(on_forget, Command("forget"))
    router.callback_query.register(on_forget_answer, ForgetAnswer.filter())
    return router


async def on_forget(message: Message, view: StepView) -> None:
    """/forget: say what goes and what stays, and ask first."""
    await view.send(view.tr("forget-confirm"), forget_keyboard(view.tr), header=False)


async def on_forget_answer(
    query: CallbackQuery, callback_data: ForgetAnswer, view: StepView
) -> None:
    """Yes deletes everything and says what the voucher service keeps; No changes nothing."""
    if isinstance(query.message, Message):
        # The question is answered: its buttons go, so an old Yes cannot be pressed by mistake.
        with contextlib.suppress(TelegramBadRequest):
            await query.message.edit_reply_markup(reply_markup=None)
    if not callback_data.confirm:
        await view.send(view.tr("forget-kept"), header=False)
        if await view.current() not in _NO_STEP:
            await view.ask()
        return
    numbers = await forget_user(view)
    text = view.tr("forget-done")
    if numbers:
        text += "\n\n" + view.tr("forget-done-applications", numbers=esc(", ".join(numbers)))
    await view.send(text, header=False)


async def forget_user(view: StepView) -> list[str]:
    """Delete every row about this user; returns the numbers of the applications forgotten."""
    services = view.services
    if services.background is not None:
        services.background.cancel(view.user_id)  # no consent check may write after this
    storage = view.state.storage
    if isinstance(storage, SQLiteStorage):
        await storage.forget_user(view.user_id)
    else:  # another storage: at least this chat's state and data
        await view.state.clear()
    numbers = [app.number for app in await services.store.list_applications(view.user_id)]
    await services.store.forget_user(view.user_id)
    if services.outbox is not None:
        await services.outbox.forget_chat(view.chat_id)
    log.info("user %s: forgotten on request (%d applications)", view.user_id, len(numbers))
    return numbers
