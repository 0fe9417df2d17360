"""Commands and answers that work at every step.

`create_commands_router` is included first so /cancel, /help and /language win over a step's
own text handlers; `create_unknown_command_router` follows every router that owns commands, so
an unknown command is named as such at any step; `create_fallback_router` is included last and
re-asks the current step for anything no step understood: stickers, voice, stale or forged
buttons.
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandStart, Filter, StateFilter
from aiogram.types import CallbackQuery, Message

from bot.fsm.states import ApplicationForm
from bot.keyboards.common import CancelAnswer, LangPick, Nav, cancel_keyboard, language_keyboard
from bot.navigation import previous_state
from bot.view import StepView

_NO_DRAFT = (None, ApplicationForm.submitted.state)
# CallbackData.filter() takes a rule on its fields; these are evaluated once per press.
F_BACK = F.action == "back"
F_RETRY = F.action == "retry"


def create_commands_router() -> Router:
    router = Router(name="commands")
    router.message.register(on_start, CommandStart())
    router.message.register(on_cancel, Command("cancel"))
    router.message.register(on_help, Command("help"))
    router.message.register(on_language, Command("language"))
    router.callback_query.register(on_language_picked, LangPick.filter())
    router.callback_query.register(on_cancel_answer, CancelAnswer.filter())
    router.callback_query.register(on_back, Nav.filter(F_BACK), StateFilter("*"))
    router.callback_query.register(on_retry, Nav.filter(F_RETRY), StateFilter("*"))
    return router


def create_unknown_command_router() -> Router:
    """After every router that owns commands, before the steps' catch-alls."""
    router = Router(name="unknown-commands")
    router.message.register(on_unknown_command, _IsCommand())
    return router


def create_fallback_router() -> Router:
    router = Router(name="fallback")
    router.message.register(on_unexpected_message)
    router.callback_query.register(on_stale_button)
    return router


async def on_start(message: Message, view: StepView) -> None:
    """/start: a new parent chooses a language; a parent with a draft continues it."""
    # Telegram's "Restart" after unblocking the bot sends /start: deliver to this chat again.
    if await view.store.is_blocked(view.user_id):
        await view.store.mark_unblocked(view.user_id)
        if view.services.outbox is not None:
            await view.services.outbox.unblock(view.user_id)
    current = await view.current()
    if current in _NO_DRAFT or current == ApplicationForm.language.state:
        await view.state.clear()
        await view.store.delete_draft(view.user_id)
        await view.goto(ApplicationForm.language)
        return
    await view.send(view.tr("resume-draft"), header=False)
    await view.ask()


async def on_cancel(message: Message, view: StepView) -> None:
    """/cancel: ask first, because it throws the draft away."""
    if await view.current() in _NO_DRAFT:
        await view.send(view.tr("cancel-nothing"), header=False)
        return
    if await view.current() == ApplicationForm.submitting.state:
        # The submitter has it: the application will exist whatever the draft says.
        await view.send(view.tr("submission-no-cancel"), header=False)
        return
    await view.send(view.tr("cancel-confirm"), cancel_keyboard(view.tr), header=False)


async def on_cancel_answer(
    query: CallbackQuery, callback_data: CancelAnswer, view: StepView
) -> None:
    """Yes clears the draft and keeps the language; No goes back to the step."""
    if await view.current() in _NO_DRAFT:
        await view.send(view.tr("button-outdated"), header=False)
        return
    if not callback_data.confirm:
        await view.ask()
        return
    if await view.current() == ApplicationForm.submitting.state:
        await view.send(view.tr("submission-no-cancel"), header=False)
        return
    background = view.services.background
    if background is not None:
        background.cancel(view.user_id)
    await view.state.clear()
    await view.store.delete_draft(view.user_id)
    await view.send(view.tr("cancel-done"), header=False)


async def on_help(message: Message, view: StepView) -> None:
    """/help explains the current step, then asks it again."""
    current = await view.current()
    if current in _NO_DRAFT:
        await view.send(view.tr("help-general"), header=False)
        return
    await view.send(view.tr(f"help-{current.split(':', 1)[1]}"))
    await view.ask()


async def on_language(message: Message, view: StepView) -> None:
    """/language offers both languages; the answers given so far are kept."""
    await view.send(view.tr("language-choose"), language_keyboard(view.locale), header=False)


async def on_language_picked(query: CallbackQuery, callback_data: LangPick, view: StepView) -> None:
    """Store the language in the users table and show the current step in it."""
    if callback_data.code not in view.services.i18n.locales:
        await on_stale_button(query, view)
        return
    await view.store.set_locale(view.user_id, callback_data.code)
    view.tr = view.services.i18n.translator(callback_data.code)
    current = await view.current()
    if current in (None, ApplicationForm.language.state):
        await view.goto(ApplicationForm.rules)
    elif current == ApplicationForm.submitted.state:
        await view.send(view.tr("language-changed"), header=False)
    else:
        await view.ask()


async def on_back(query: CallbackQuery, view: StepView) -> None:
    """*Back*: one step back, answers kept."""
    current = await view.current()
    target = previous_state(current, await view.draft())
    if target is None:
        await on_stale_button(query, view)
        return
    background = view.services.background
    if background is not None:
        background.cancel(view.user_id)
    await view.goto(target)


async def on_retry(query: CallbackQuery, view: StepView) -> None:
    """*Retry* after a fault: the current step again, nothing lost."""
    await _reask_or_start(view)


async def on_unknown_command(message: Message, view: StepView) -> None:
    """An unknown command: say so, then the current step again."""
    await view.send(view.tr("unknown-command"), header=False)
    await _reask_or_start(view)


async def on_unexpected_message(message: Message, view: StepView) -> None:
    """Anything the current step does not expect gets its question again."""
    if await view.current() is not None:
        await view.send(view.tr("unexpected-input"), header=False)
    await _reask_or_start(view)


async def on_stale_button(query: CallbackQuery, view: StepView) -> None:
    """A button from an old message or with forged data changes nothing."""
    await view.send(view.tr("button-outdated"), header=False)
    await _reask_or_start(view)


async def _reask_or_start(view: StepView) -> None:
    current = await view.current()
    if current is None:
        await view.goto(ApplicationForm.language)
    elif current == ApplicationForm.submitted.state:
        await view.send(view.tr("submitted-what-next"), header=False)
    else:
        await view.ask()


class _IsCommand(Filter):
    """A message that starts with '/' and no handler before took it."""

    command_prefix = "/"  # takes only commands: bot/handlers/routing.py skips it for others

    async def __call__(self, message: Message) -> bool:
        return bool(message.text) and message.text.startswith("/")
