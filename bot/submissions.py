"""The bot's side of the submitter: what the parent is told, and where the conversation goes on.

`services/submitter.py` posts the application and decides what the answer means; this desk
words it in the parent's language (the messages the review step used to send itself), puts
the right buttons under it, and moves the parent's FSM state, all from outside any update:

    accepted              → "№ … sent" + *Another child*                         → submitted
    duplicate_application → the number already in the queue + Edit / Review     → review
    intake_closed         → intake closed, draft kept + Retry / Review          → review
    validation_error      → the section to check + Edit / Review                 → review
    consent_missing       → the consents to tick + Review                        → review
    age_out_of_range      → choose another group + Continue                      → group
    document_required     → attach the disability paper + Continue               → disability_doc
    session_invalid       → confirm the phone again + Continue                   → phone
    anything else         → the service refused + Retry / Review                 → review

*Continue* is the common Retry button (`Nav(action="retry")`): it asks the current step again,
which is exactly the step the parent was sent to.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any

from aiogram import Bot
from aiogram.fsm.context import FSMContext
from aiogram.fsm.storage.base import BaseEventIsolation, BaseStorage, StorageKey
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot.delivery import KIND_SUBMITTED
from bot.fsm.states import ApplicationForm
from bot.i18n import Translator
from bot.keyboards.common import Nav, inline
from bot.keyboards.review import (
    ReviewAction,
    fix_keyboard,
    resubmit_keyboard,
    submitted_keyboard,
)
from bot.view import Services, StepView, esc
from services.application import CONSENTS, section_for_fields
from services.clock import format_datetime
from services.outbox import Outgoing
from services.store import Submission
from services.submitter import SESSION_INVALID, Accepted, Notice, Outcome, Refused

S = ApplicationForm

# Where a refusal sends the parent; any other code keeps the review.
REFUSAL_STEP = {
    "age_out_of_range": S.group,
    "document_required": S.disability_doc,
    SESSION_INVALID: S.phone,
}
# The states in which a parent still waits for the answer: only there does the answer move them.
WAITING = frozenset({S.submitting.state, S.review.state})
KIND_REFUSED = "submission_refused"


def confirmation_key(sub: Submission) -> str:
    """The outbox key of the confirmation: one per Idempotency-Key, for ever."""
    return f"submitted:{sub.key}"


class SubmissionDesk:
    """Implements `services.submitter.Desk` for this bot."""

    def __init__(
        self, services: Services, storage: BaseStorage, isolation: BaseEventIsolation, bot: Bot
    ) -> None:
        self._services = services
        self._storage = storage
        self._isolation = isolation
        self._bot = bot

    def exclusive(self, sub: Submission) -> AbstractAsyncContextManager[Any]:
        """The parent's event-isolation lock, the one their updates are handled under."""
        return self._isolation.lock(self._key(sub))

    async def notice(self, sub: Submission, outcome: Outcome) -> Notice:
        """The message about `outcome`, in the parent's language, and the state to go on at."""
        view = await self._view(sub)
        if isinstance(outcome, Accepted):
            return Notice(self._confirmation(view, sub, outcome), S.submitted.state)
        text, markup = self._refusal(view, sub, outcome)
        message = Outgoing(
            chat_id=sub.chat_id,
            text=text + view.footer(),
            kind=KIND_REFUSED,
            # One message per refusal: a row refused again after a resubmit is a new round.
            dedup_key=f"refused:{sub.key}:{sub.round}",
            markup=markup.model_dump(mode="json", exclude_none=True),
        )
        return Notice(message, REFUSAL_STEP.get(outcome.code, S.review).state)

    async def follow(self, sub: Submission, step: str) -> None:
        """Move the parent to `step`, unless they are no longer waiting on this submission."""
        state = FSMContext(self._storage, self._key(sub))
        if await state.get_state() in WAITING:
            await state.set_state(step)

    # --- wording --------------------------------------------------------------------------

    def _confirmation(self, view: StepView, sub: Submission, outcome: Accepted) -> Outgoing:
        app = outcome.application
        sent = format_datetime(datetime.fromisoformat(app["submitted_at"]))
        text = view.tr("review-submitted", number=esc(app["number"]), sent=sent)
        return Outgoing(
            chat_id=sub.chat_id,
            text=view.header(S.submitted.state) + text + view.footer(),
            kind=KIND_SUBMITTED,
            dedup_key=confirmation_key(sub),
            markup=submitted_keyboard(view.tr).model_dump(mode="json", exclude_none=True),
        )

    def _refusal(
        self, view: StepView, sub: Submission, refused: Refused
    ) -> tuple[str, InlineKeyboardMarkup]:
        tr = view.tr
        code = refused.code
        if code == "duplicate_application":
            return tr("review-duplicate", number=esc(refused.number or "")), fix_keyboard(tr)
        if code == "intake_closed":
            queue = (sub.summary or {}).get("queue") or {}
            title = queue.get(view.locale, "") if isinstance(queue, dict) else ""
            return tr("review-intake-closed", queue=esc(title)), resubmit_keyboard(tr)
        if code == "validation_error":
            section = section_for_fields(list(refused.fields))
            text = (
                tr("review-validation-error", section=tr(f"review-section-{section.value}"))
                if section is not None
                else tr("review-validation-error-general")
            )
            return text, fix_keyboard(tr)
        if code == "consent_missing":
            names = ", ".join("«" + tr(f"btn-consent-{name}") + "»" for name in CONSENTS)
            return tr("review-consents-missing", missing=names), inline([_show_button(tr)])
        if code == "age_out_of_range":
            return tr("review-age-out-of-range"), inline([_continue_button(tr)])
        if code == "document_required":
            return tr("review-document-required"), inline([_continue_button(tr)])
        if code == SESSION_INVALID:
            return tr("error-session-expired"), inline([_continue_button(tr)])
        return tr("error-service-refused"), resubmit_keyboard(tr)

    # --- helpers --------------------------------------------------------------------------

    def _key(self, sub: Submission) -> StorageKey:
        return StorageKey(bot_id=self._bot.id, chat_id=sub.chat_id, user_id=sub.user_id)

    async def _view(self, sub: Submission) -> StepView:
        """A StepView for a message the bot sends on its own, in the parent's language."""
        services = self._services
        locale = await services.store.get_locale(sub.user_id) or services.i18n.default
        return StepView(
            bot=self._bot,
            chat_id=sub.chat_id,
            user_id=sub.user_id,
            tr=services.i18n.translator(locale),
            state=FSMContext(self._storage, self._key(sub)),
            services=services,
        )


def _continue_button(tr: Translator) -> InlineKeyboardButton:
    return InlineKeyboardButton(
        text=tr("btn-submission-continue"), callback_data=Nav(action="retry").pack()
    )


def _show_button(tr: Translator) -> InlineKeyboardButton:
    return InlineKeyboardButton(
        text=tr("btn-review-show"), callback_data=ReviewAction(action="show").pack()
    )
