"""Step 5/5, review and submit: the application as the portal writes it, three consents, send.

review ──(tick ⬜/✅ in place)──▶ review
   │ Edit ──▶ section menu ──▶ phone | parent_iin | child_iin | queue_type | provider
   │                           | notify_channel   (draft.editing: the section returns here)
   └─(Submit, all three ticked: the submission saved with the draft's Idempotency-Key)──▶
      submitting ──(the submitter's answer, services/submitter.py + bot/submissions.py)──▶
        submitted (the number, through the outbox)
        duplicate / intake closed / refused → review, draft and key kept
        age out of range → group; document required → disability_doc; session → phone

Submit answers at once ("saved, sending"): the POST itself is the submitter's, which retries
until the voucher service gives a final answer. The Idempotency-Key is made once per draft and
stored before the submission row, so Retry, a double tap or a restart can never create a second
application; while a submission is on its way every review button says so.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from aiogram import Router
from aiogram.filters import StateFilter
from aiogram.fsm.state import State
from aiogram.types import CallbackQuery, Message

from bot.failures import explain_failure
from bot.fsm.states import ApplicationForm
from bot.keyboards.review import (
    AnotherChild,
    ConsentToggle,
    EditSection,
    ReviewAction,
    edit_keyboard,
    review_keyboard,
    submitted_keyboard,
)
from bot.render.application import render_review
from bot.view import Prompt, StepView, esc
from services.application import (
    CONSENTS,
    Section,
    application_summary,
    build_request,
    missing_consents,
    missing_sections,
    new_idempotency_key,
    next_child_draft,
    session_is_live,
)
from services.clock import format_datetime
from services.voucher.errors import SessionInvalid

log = logging.getLogger("kezek.bot.review")

S = ApplicationForm

# Where *Edit* (and a missing part) sends the parent: the first state of each section.
SECTION_START: dict[Section, State] = {
    Section.PHONE: S.phone,
    Section.PARENT: S.parent_iin,
    Section.CHILD: S.child_iin,
    Section.QUEUE: S.queue_type,
    Section.PROVIDER: S.provider,
    Section.NOTIFICATION: S.notify_channel,
}


def create_router() -> Router:
    router = Router(name="review")
    router.callback_query.register(on_toggle, ConsentToggle.filter(), StateFilter(S.review))
    router.callback_query.register(on_action, ReviewAction.filter(), StateFilter(S.review))
    router.callback_query.register(on_edit_section, EditSection.filter(), StateFilter(S.review))
    router.message.register(on_review_other, StateFilter(S.review))
    # After submission every review button (a double tap, an old message) says it is sent.
    for data in (ConsentToggle, ReviewAction, EditSection):
        router.callback_query.register(on_after_submit, data.filter(), StateFilter(S.submitted))
    router.callback_query.register(
        on_another_child, AnotherChild.filter(), StateFilter(S.submitted)
    )
    router.message.register(on_submitted_other, StateFilter(S.submitted))
    # While the submitter sends it, a review button (a double tap) or text says so; no new POST.
    for data in (ConsentToggle, ReviewAction, EditSection):
        router.callback_query.register(on_while_sending, data.filter(), StateFilter(S.submitting))
    router.message.register(on_submitting_other, StateFilter(S.submitting))
    return router


# --- prompts --------------------------------------------------------------------------------


async def ask_review(view: StepView) -> None:
    """Show the generated application with the consent toggles; safe to re-run at any time."""
    if await _still_sending(view):
        await view.goto(S.submitting)
        return
    draft = await view.draft()
    missing = missing_sections(draft)
    if missing:
        await _send_to_section(view, missing[0])
        return
    if draft.get("editing"):
        # Back at the review: the next pass through the form goes on step by step again.
        await view.save(editing=None)
    await view.send(
        _review_text(view, draft), review_keyboard(view.tr, draft.get("consents") or {})
    )


async def ask_submitted(view: StepView) -> None:
    """The number and time of the sent application, and what happens next."""
    application = (await view.draft()).get("application") or {}
    if not application.get("number"):
        # A submitted state without a record cannot show anything useful: start afresh.
        await view.send(view.tr("submitted-what-next"), header=False)
        return
    await view.send(_submitted_text(view, application), submitted_keyboard(view.tr))


async def ask_submitting(view: StepView) -> None:
    """Saved and on its way: the number comes by itself; safe to re-run at any time."""
    # The same test as ask_review's (a pending row of this parent), so the two never bounce.
    if await _still_sending(view):
        await view.send(view.tr("submission-sending"))
        return
    key = (await view.draft()).get("idempotency_key")
    submission = await view.store.submission(key) if key else None
    if submission is not None and submission.status == "done":
        # The answer came (a restart may have cut off the rest): show the number.
        await view.goto(S.submitted)
        return
    await view.goto(S.review)


async def on_another_child(query: CallbackQuery, view: StepView) -> None:
    """A new draft for another child: the phone and the parent's data carry over."""
    draft = await view.draft()
    now = view.services.clock.now()
    await view.store.replace_draft(view.user_id, next_child_draft(draft, now))
    await view.state.set_data({})
    await view.send(view.tr("review-another-child"), header=False)
    live = session_is_live(draft, now) and draft.get("parent")
    await view.goto(S.child_iin if live else S.phone)


# --- consents, edit menu --------------------------------------------------------------------


async def on_toggle(query: CallbackQuery, callback_data: ConsentToggle, view: StepView) -> None:
    """Tick or untick one consent and redraw the review in place."""
    if await _still_sending(view):
        await on_while_sending(query, view)
        return
    if callback_data.item not in CONSENTS:
        await view.send(view.tr("button-outdated"), header=False)
        await ask_review(view)
        return
    draft = await view.draft()
    consents = {name: draft.get("consents", {}).get(name) is True for name in CONSENTS}
    consents[callback_data.item] = not consents[callback_data.item]
    draft = await view.save(consents=consents)
    await view.edit(query.message, _review_text(view, draft), review_keyboard(view.tr, consents))


async def on_action(query: CallbackQuery, callback_data: ReviewAction, view: StepView) -> None:
    """*Edit* opens the section menu, *Show* restores the review, *Submit* sends."""
    if await _still_sending(view):
        await on_while_sending(query, view)
        return
    draft = await view.draft()
    if callback_data.action == "edit":
        text = _review_text(view, draft) + "\n\n" + view.tr("review-edit-choose")
        await view.edit(query.message, text, edit_keyboard(view.tr))
    elif callback_data.action == "show":
        keyboard = review_keyboard(view.tr, draft.get("consents") or {})
        await view.edit(query.message, _review_text(view, draft), keyboard)
    elif callback_data.action == "submit":
        await _submit(query, view, draft)
    else:
        await view.send(view.tr("button-outdated"), header=False)
        await ask_review(view)


async def on_edit_section(query: CallbackQuery, callback_data: EditSection, view: StepView) -> None:
    """Open a section with `editing` set, so its last step returns here."""
    if await _still_sending(view):
        await on_while_sending(query, view)
        return
    try:
        section = Section(callback_data.section)
    except ValueError:
        await view.send(view.tr("button-outdated"), header=False)
        await ask_review(view)
        return
    await view.goto(SECTION_START[section], editing=True)


async def on_review_other(message: Message, view: StepView) -> None:
    """Text at the review: point at the buttons, then show the review again."""
    await view.send(view.tr("review-use-buttons"), header=False)
    await ask_review(view)


async def on_after_submit(query: CallbackQuery, view: StepView) -> None:
    """A second *Submit* (or any review button) after success: already sent, no new POST."""
    number = ((await view.draft()).get("application") or {}).get("number", "")
    await view.send(view.tr("review-already-sent", number=esc(number)), header=False)


async def on_submitted_other(message: Message, view: StepView) -> None:
    """Anything typed after submission: the number again and what comes next."""
    await ask_submitted(view)


async def on_while_sending(query: CallbackQuery, view: StepView) -> None:
    """A second *Submit* (or any review button) while it is on its way: no second one."""
    if await view.current() != S.submitting.state:
        await view.state.set_state(S.submitting)
        await view.store.update_draft(view.user_id, step=S.submitting.state)
    await view.send(view.tr("submission-already-sending"), header=False)


async def on_submitting_other(message: Message, view: StepView) -> None:
    """Text while the application is on its way: say so again."""
    await ask_submitting(view)


# --- submit ---------------------------------------------------------------------------------


async def _submit(query: CallbackQuery, view: StepView, draft: dict[str, Any]) -> None:
    not_ticked = missing_consents(draft)
    if not_ticked:
        await _refuse_consents(query, view, draft, not_ticked)
        return
    missing = missing_sections(draft)
    if missing:
        await _send_to_section(view, missing[0])
        return
    if _session_over(view, draft):
        # Known before any POST: the service would only answer session_invalid.
        await view.save(editing=True)
        await explain_failure(view, SessionInvalid(401, "the ed24 session has ended"))
        return
    key = draft.get("idempotency_key")
    if not key:
        # Stored before the submission row: whatever happens next, a repeat reuses it.
        key = new_idempotency_key()
        draft = await view.save(idempotency_key=key)
    submission, opened = await view.store.begin_submission(
        key=key,
        user_id=view.user_id,
        chat_id=view.chat_id,
        session=draft["session"],
        body=build_request(draft, view.chat_id).model_dump(mode="json"),
        summary=application_summary(draft, "submitted"),
    )
    if not opened and submission.status == "done":
        # Answered already (a restart cut off the rest): the state catches up, nothing is sent.
        number = ((submission.outcome or {}).get("application") or {}).get("number", "")
        await view.state.set_state(S.submitted)
        await view.store.update_draft(view.user_id, step=S.submitted.state)
        await view.send(view.tr("review-already-sent", number=esc(number)), header=False)
        return
    if not opened:
        await on_while_sending(query, view)
        return
    submitter = view.services.submitter
    if submitter is not None:
        submitter.wake()
    log.info("submission %d saved; the submitter sends it", submission.id)
    await view.goto(S.submitting)


# --- helpers --------------------------------------------------------------------------------


def _review_text(view: StepView, draft: dict[str, Any]) -> str:
    return view.tr("review-intro") + "\n\n" + render_review(draft, view.tr)


def _submitted_text(view: StepView, application: dict[str, Any]) -> str:
    sent = format_datetime(datetime.fromisoformat(application["submitted_at"]))
    return view.tr("review-submitted", number=esc(application["number"]), sent=sent)


async def _refuse_consents(
    query: CallbackQuery, view: StepView, draft: dict[str, Any], not_ticked: list[str]
) -> None:
    names = ", ".join("«" + view.tr(f"btn-consent-{name}") + "»" for name in not_ticked)
    text = _review_text(view, draft) + "\n\n⚠️ " + view.tr("review-consents-missing", missing=names)
    await view.edit(query.message, text, review_keyboard(view.tr, draft.get("consents") or {}))


async def _still_sending(view: StepView) -> bool:
    """True while this parent's application is on its way (the submitter has it)."""
    return await view.store.open_submission(view.user_id) is not None


def _session_over(view: StepView, draft: dict[str, Any]) -> bool:
    expires = draft.get("session_expires_at")
    return bool(expires) and datetime.fromisoformat(str(expires)) <= view.services.clock.now()


async def _send_to_section(view: StepView, section: Section) -> None:
    """A part the application needs is missing: fill it in, then come back to the review."""
    await view.move(SECTION_START[section], editing=True)
    name = view.tr(f"review-section-{section.value}")
    await view.send(view.tr("review-missing", section=name), header=False)
    await view.ask()


PROMPTS: dict[str, Prompt] = {
    S.review.state: ask_review,
    S.submitted.state: ask_submitted,
    S.submitting.state: ask_submitting,
}
