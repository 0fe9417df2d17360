"""Status pushes and reminders in the parent's language, put in the outbox (never sent here).

`services.status` decides what happened; this module words it (Fluent, HTML-escaped values)
and enqueues it with the push's dedup key, so a change seen twice (feed and webhook, or a
repeat after a crash) is one message. `StatusDesk` ties the two together for the scheduler
jobs, the webhook and `/status`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from bot.fsm.states import STEP_OF, ApplicationForm
from bot.keyboards.status import resume_keyboard
from bot.view import esc
from services.clock import format_datetime
from services.status import (
    CANCELLED,
    EXPIRED,
    ISSUED,
    MOVED,
    REGISTERED,
    REJECTED,
    REMIND_24H,
    REMIND_48H,
    SUBMITTED,
    USED,
    DraftReminder,
    StatusPush,
    StatusTracker,
    child_first_name,
)
from services.voucher.models import ChangeItem

if TYPE_CHECKING:
    from bot.i18n import I18n, Translator
    from bot.view import Services
    from services.store import Store

log = logging.getLogger("kezek.pushes")

# Drafts worth a nudge: the parent got past the rules and has not submitted yet.
REMINDABLE_STEPS = frozenset(
    state
    for state, step in STEP_OF.items()
    # `submitting`: the application is on its way, the parent has nothing left to do.
    if step >= 1
    and state not in (ApplicationForm.submitted.state, ApplicationForm.submitting.state)
)


class OutboxLike(Protocol):
    """The part of `services.outbox.Outbox` pushes use."""

    async def enqueue(
        self,
        *,
        chat_id: int,
        text: str,
        kind: str,
        dedup_key: str,
        markup: dict[str, Any] | None = None,
        attachment: tuple[str, bytes] | None = None,
        not_before: datetime | None = None,
    ) -> bool: ...


def _localized(value: Any, locale: str) -> str:
    if isinstance(value, Mapping):
        return str(value.get(locale) or value.get("ru") or value.get("kk") or "")
    return str(value or "")


def render_push(push: StatusPush, tr: Translator) -> str:
    """The push's text: application number and child's name, what it means, what to do."""
    app = push.application
    summary = app.summary
    provider = esc(_localized(summary.get("provider"), tr.locale))
    deadline = format_datetime(app.deadline) if app.deadline else None
    unknown = tr("status-value-unknown")
    title = tr("status-push-title", number=esc(app.number), child=esc(child_first_name(summary)))
    kind = push.kind
    if kind == REGISTERED:
        body = tr(
            "status-push-registered",
            queue=esc(_localized(summary.get("queue"), tr.locale)),
            position=str(app.queue_position) if app.queue_position is not None else unknown,
        )
    elif kind == MOVED:
        body = tr(
            "status-push-moved",
            was=str(push.previous_position),
            now=str(app.queue_position),
        )
    elif kind == ISSUED:
        body = (
            tr("status-push-issued", provider=provider, deadline=deadline)
            if deadline
            else tr("status-push-issued-no-deadline", provider=provider)
        )
    elif kind == USED:
        body = tr("status-push-used", provider=provider)
    elif kind == EXPIRED:
        body = tr("status-push-expired")
    elif kind == REJECTED:
        reason = _localized(app.status_reason, tr.locale)
        body = tr(
            "status-push-rejected",
            reason=esc(reason) if reason else tr("status-reason-none"),
        )
    elif kind == CANCELLED:
        body = tr("status-push-cancelled")
    elif kind == SUBMITTED:
        body = tr("status-push-submitted")
    elif kind == REMIND_48H:
        body = tr("status-remind-48h", provider=provider, deadline=deadline or unknown)
    elif kind == REMIND_24H:
        body = tr("status-remind-24h", provider=provider, deadline=deadline or unknown)
    else:
        raise ValueError(f"unknown push kind {kind!r}")
    return title + "\n" + body


def render_draft_reminder(reminder: DraftReminder, tr: Translator) -> str:
    """A gentle nudge naming the step the parent stopped at."""
    step = STEP_OF.get(reminder.step, 1) or 1
    return tr("status-draft-reminder", n=step, title=tr(f"step-title-{step}"))


class Pushes:
    """Renders pushes in each parent's language and enqueues them."""

    def __init__(self, *, i18n: I18n, store: Store, outbox: OutboxLike, sandbox: bool) -> None:
        self._i18n = i18n
        self._store = store
        self._outbox = outbox
        self._sandbox = sandbox

    async def translator(self, user_id: int) -> Translator:
        """The parent's language from the users table (the default when unknown)."""
        return self._i18n.translator(self._i18n.pick(await self._store.get_locale(user_id)))

    def _footer(self, tr: Translator) -> str:
        # `run` against the sandbox says so in every message, pushes included.
        return "\n\n<i>" + tr("sandbox-banner") + "</i>" if self._sandbox else ""

    async def deliver(self, push: StatusPush) -> bool:
        """Enqueue a status push or deadline reminder; False when it was already queued."""
        app = push.application
        tr = await self.translator(app.user_id)
        kind = "deadline_reminder" if push.kind in (REMIND_48H, REMIND_24H) else "status"
        return await self._outbox.enqueue(
            chat_id=app.chat_id,
            text=render_push(push, tr) + self._footer(tr),
            kind=kind,
            dedup_key=push.dedup_key,
        )

    async def deliver_draft(self, reminder: DraftReminder) -> bool:
        """Enqueue a draft reminder with its one-tap *Continue* button."""
        tr = await self.translator(reminder.user_id)
        markup = resume_keyboard(tr, reminder.n).model_dump(mode="json", exclude_none=True)
        # Drafts belong to private chats, whose id is the user's id.
        return await self._outbox.enqueue(
            chat_id=reminder.user_id,
            text=render_draft_reminder(reminder, tr) + self._footer(tr),
            kind="draft_reminder",
            dedup_key=reminder.dedup_key,
            markup=markup,
        )


@dataclass(slots=True)
class StatusDesk:
    """What the jobs, the webhook and /status call: tracker decisions, delivered as pushes."""

    tracker: StatusTracker
    pushes: Pushes

    async def poll(self) -> int:
        """One run of the changes feed (the status-poll job)."""
        return await self.tracker.poll_once(self.pushes.deliver)

    async def accept(self, item: ChangeItem) -> None:
        """A change pushed to `/voucher/events`: handled exactly like one from the feed."""
        await self.tracker.handle_item(item, self.pushes.deliver)

    async def remind(self) -> int:
        """One run of the reminder job: deadlines, then idle drafts."""
        sent = await self.tracker.deadline_reminders(self.pushes.deliver)
        sent += await self.tracker.draft_reminders(self.pushes.deliver_draft, REMINDABLE_STEPS)
        return sent


def create_status_desk(services: Services, outbox: OutboxLike) -> StatusDesk:
    """The desk for this process's services and outbox."""
    settings = services.settings
    tracker = StatusTracker(
        services.store, services.voucher, services.clock, settings.database_path
    )
    pushes = Pushes(
        i18n=services.i18n, store=services.store, outbox=outbox, sandbox=settings.uses_sandbox
    )
    return StatusDesk(tracker=tracker, pushes=pushes)
