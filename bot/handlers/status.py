"""/status and the buttons of pushes: every application of this parent, at any step.

/status (any state) ──▶ "You have N applications" + one card per application [🔄 Refresh]
                        └─▶ then the current step's question again, if a draft is open
🔄 Refresh ──(GET /applications/{id}, store updated)──▶ the same card, edited in place
           (an application that is not this user's → "button outdated")
▶️ Continue (idle-draft reminder) ──▶ the current step asked again (view.ask)

Included with the commands, before the step routers: these work in every state and change none.
"""

from __future__ import annotations

import logging
from datetime import datetime

from aiogram import Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message

from bot.fsm.states import ApplicationForm
from bot.keyboards.status import DraftResume, StatusRefresh, application_ref, refresh_keyboard
from bot.pushes import StatusDesk
from bot.view import Prompt, StepView, esc
from services.clock import format_datetime, format_time
from services.store import StoredApplication
from services.voucher.errors import NotFound, VoucherError

log = logging.getLogger("kezek.bot.status")

_NO_DRAFT = (None, ApplicationForm.submitted.state)

# Status codes of the contract → message ids (literal, so the locale test sees each one).
STATUS_NAMES = {
    "submitted": "status-name-submitted",
    "registered": "status-name-registered",
    "voucher_issued": "status-name-voucher-issued",
    "voucher_used": "status-name-voucher-used",
    "voucher_expired": "status-name-voucher-expired",
    "rejected": "status-name-rejected",
    "cancelled": "status-name-cancelled",
}


def create_router() -> Router:
    router = Router(name="status")
    router.message.register(on_status, Command("status"))
    router.callback_query.register(on_refresh, StatusRefresh.filter())
    router.callback_query.register(on_resume, DraftResume.filter())
    return router


def _localized(value: object, locale: str) -> str:
    if isinstance(value, dict):
        return str(value.get(locale) or value.get("ru") or value.get("kk") or "")
    return str(value or "")


def render_card(app: StoredApplication, view: StepView, checked: datetime | None = None) -> str:
    """One application as /status shows it."""
    tr, locale = view.tr, view.locale
    summary = app.summary
    status = STATUS_NAMES.get(app.status)
    lines = [
        tr("status-card-title", number=esc(app.number)),
        tr("status-card-child", child=esc(summary.get("child") or "")),
        tr("status-card-queue", queue=esc(_localized(summary.get("queue"), locale))),
        tr(
            "status-card-group",
            group=esc(_localized(summary.get("group"), locale)),
            provider=esc(_localized(summary.get("provider"), locale)),
        ),
        tr("status-card-status", status=tr(status) if status else esc(app.status)),
    ]
    if app.queue_position is not None:
        lines.append(tr("status-card-position", position=str(app.queue_position)))
    if app.deadline is not None and app.status == "voucher_issued":
        lines.append(tr("status-card-deadline", deadline=format_datetime(app.deadline)))
    if app.status == "rejected" and app.status_reason:
        lines.append(tr("status-card-reason", reason=esc(_localized(app.status_reason, locale))))
    if checked is not None:
        lines.append(tr("status-card-checked", time=format_time(checked)))
    return "\n".join(lines)


async def on_status(message: Message, view: StepView) -> None:
    """/status: a card per application with a refresh button, then the current step again."""
    applications = await view.store.list_applications(view.user_id)
    if not applications:
        await view.send(view.tr("status-list-empty"), header=False)
    else:
        await view.send(view.tr("status-list-title", n=len(applications)), header=False)
        for app in applications:
            await view.send(render_card(app, view), refresh_keyboard(view.tr, app.id), header=False)
    if await view.current() not in _NO_DRAFT:
        await view.ask()


async def on_refresh(
    query: CallbackQuery, callback_data: StatusRefresh, view: StepView, status_desk: StatusDesk
) -> None:
    """Ask the voucher service about one of this parent's applications and redraw its card."""
    mine = await view.store.list_applications(view.user_id)
    app = next((a for a in mine if application_ref(a.id) == callback_data.ref), None)
    if app is None:
        await view.send(view.tr("button-outdated"), header=False)
        return
    try:
        async with view.typing():
            updated = await status_desk.tracker.refresh(app.id)
    except NotFound:
        await view.send(view.tr("status-refresh-gone", number=esc(app.number)), header=False)
        return
    except VoucherError as exc:
        log.warning("refresh of application %s failed: %s", app.number, type(exc).__name__)
        await view.send(view.tr("status-refresh-failed"), header=False)
        return
    card = render_card(updated or app, view, checked=view.services.clock.now())
    await _edit(query, view, card, refresh_keyboard(view.tr, app.id))


async def on_resume(query: CallbackQuery, callback_data: DraftResume, view: StepView) -> None:
    """*Continue* under a draft reminder: the step where the parent stopped, asked again."""
    if await view.current() in _NO_DRAFT or not await view.draft():
        await view.send(view.tr("status-draft-gone"), header=False)
        return
    log.info("draft resumed from reminder %d", callback_data.n)
    await view.send(view.tr("resume-draft"), header=False)
    await view.ask()


async def _edit(
    query: CallbackQuery, view: StepView, text: str, markup: InlineKeyboardMarkup
) -> None:
    # Not view.edit: a card carries no "Step N/5" header, whatever step the parent is at.
    message = query.message
    if not isinstance(message, Message):
        await view.send(text, markup, header=False)
        return
    try:
        await message.edit_text(text + view.footer(), reply_markup=markup)
    except TelegramBadRequest as exc:
        if "not modified" not in str(exc):
            await view.send(text, markup, header=False)


PROMPTS: dict[str, Prompt] = {}
