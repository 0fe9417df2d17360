"""Step 5/5, review and submit: the application as the portal writes it, three consents, send.

review ──(tick ⬜/✅ in place)──▶ review
   │ Edit ──▶ section menu ──▶ phone | parent_iin | child_iin | queue_type | provider
   │                           | notify_channel   (draft.editing: the section returns here)
   └─(Submit, all three ticked, POST /applications with the draft's Idempotency-Key)──▶ submitted
        duplicate / intake closed / unavailable → stay at review, draft and key kept
        age out of range → group; document required → disability_doc; session → phone

The Idempotency-Key is made once per draft and stored before the first POST, so Retry, a double
tap or a restart after an unanswered POST can never create a second application.
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
    fix_keyboard,
    resubmit_keyboard,
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
    section_for_fields,
    session_is_live,
)
from services.clock import format_datetime
from services.voucher.errors import (
    AgeOutOfRange,
    ConsentMissing,
    DocumentRequired,
    DuplicateApplication,
    IdempotencyKeyReused,
    IntakeClosed,
    ServiceUnavailable,
    SessionInvalid,
    ValidationFailed,
    VoucherError,
)
from services.voucher.models import ApplicationCreated

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
    return router


# --- prompts --------------------------------------------------------------------------------


async def ask_review(view: StepView) -> None:
    """Show the generated application with the consent toggles; safe to re-run at any time."""
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
    try:
        section = Section(callback_data.section)
    except ValueError:
        await view.send(view.tr("button-outdated"), header=False)
        await ask_review(view)
        return
    await view.save(editing=True)
    await view.goto(SECTION_START[section])


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
    try:
        async with view.typing():
            created = await _post(view, draft)
    except DuplicateApplication as exc:
        text = view.tr("review-duplicate", number=esc(exc.number))
        await view.send(text, fix_keyboard(view.tr), header=False)
    except IntakeClosed:
        queue = (draft.get("preview") or {}).get("queue", {}).get("title", {})
        text = view.tr("review-intake-closed", queue=esc(queue.get(view.locale, "")))
        await view.send(text, resubmit_keyboard(view.tr), header=False)
    except ConsentMissing:
        # Only when the service disagrees with the ticks we sent: name every one it needs.
        await _refuse_consents(query, view, draft, missing_consents(draft) or list(CONSENTS))
    except AgeOutOfRange:
        await view.save(editing=True)
        await view.send(view.tr("review-age-out-of-range"), header=False)
        await view.goto(S.group)
    except DocumentRequired:
        await view.save(editing=True)
        await view.send(view.tr("review-document-required"), header=False)
        await view.goto(S.disability_doc)
    except ValidationFailed as exc:
        section = section_for_fields([e.get("field", "") for e in exc.errors])
        text = (
            view.tr("review-validation-error", section=view.tr(f"review-section-{section.value}"))
            if section is not None
            else view.tr("review-validation-error-general")
        )
        await view.send(text, fix_keyboard(view.tr), header=False)
    except ServiceUnavailable:
        # The draft and its Idempotency-Key stay: Retry sends the very same request again.
        await view.send(view.tr("review-not-sent"), resubmit_keyboard(view.tr))
    except SessionInvalid as exc:
        # A fresh code opens a new session; `editing` brings the parent back to this review.
        await view.save(editing=True)
        await explain_failure(view, exc)
    except VoucherError as exc:
        await explain_failure(view, exc)
    else:
        await _accepted(view, draft, created)


async def _post(view: StepView, draft: dict[str, Any]) -> ApplicationCreated:
    key = draft.get("idempotency_key")
    if not key:
        # Stored before the first POST: whatever happens to this request, a repeat reuses it.
        key = new_idempotency_key()
        await view.save(idempotency_key=key)
    request = build_request(draft, view.chat_id)
    session = draft["session"]
    try:
        return await view.voucher.submit_application(session, key, request)
    except IdempotencyKeyReused:
        # The key already stands for another body: an earlier POST whose answer never came
        # back, after which the parent edited the application. That request is settled
        # upstream; this one is a different request and gets its own key (a duplicate child
        # and queue is still refused by the service as `duplicate_application`).
        log.warning("idempotency key held another body; sending with a new key")
        key = new_idempotency_key()
        await view.save(idempotency_key=key)
        return await view.voucher.submit_application(session, key, request)


async def _accepted(view: StepView, draft: dict[str, Any], created: ApplicationCreated) -> None:
    application = {
        "id": created.id,
        "number": created.number,
        "submitted_at": created.submitted_at.isoformat(),
    }
    # The record first, then the state: a crash in between leaves the review with the same
    # key, and the next *Submit* gets the same application back from the service.
    await view.save(application=application)
    await view.store.add_application(
        application_id=created.id,
        user_id=view.user_id,
        chat_id=view.chat_id,
        number=created.number,
        status=created.status,
        submitted_at=created.submitted_at,
        summary=application_summary(draft, created.status),
    )
    log.info("application %s submitted", created.number)
    await view.goto(S.submitted)


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


async def _send_to_section(view: StepView, section: Section) -> None:
    """A part the application needs is missing: fill it in, then come back to the review."""
    await view.save(editing=True)
    name = view.tr(f"review-section-{section.value}")
    await view.send(view.tr("review-missing", section=name), header=False)
    await view.goto(SECTION_START[section])


PROMPTS: dict[str, Prompt] = {
    S.review.state: ask_review,
    S.submitted.state: ask_submitted,
}
