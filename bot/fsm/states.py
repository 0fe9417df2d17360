"""The conversation's states, declared once.

The names are persisted in the FSM table and in `drafts.step`: never rename one; add new ones.
`STEP_OF` maps each state to the portal step (1–5) shown in the "Step N/5" header; 0 means the
welcome before the portal's steps. `docs/conversation.md` draws these states; a test keeps the
diagram in step with this file.
"""

from __future__ import annotations

from aiogram.fsm.state import State, StatesGroup


class ApplicationForm(StatesGroup):
    language = State()
    rules = State()
    # step 1: contact details
    phone = State()
    otp = State()
    # step 2: parent and child
    parent_iin = State()
    parent_consent = State()
    parent_confirm = State()
    child_iin = State()
    child_consent = State()
    child_confirm = State()
    # step 3: benefits and choice
    queue_type = State()
    state_order = State()
    disability_doc = State()
    benefit = State()
    benefit_doc = State()
    provider = State()
    group = State()
    preview = State()
    # step 4: notifications
    notify_channel = State()
    notify_language = State()
    # step 5: review and submit
    review = State()
    submitted = State()
    # Submit saved the application; the submitter (services/submitter.py) is sending it.
    submitting = State()


F_ = ApplicationForm

STEP_OF: dict[str, int] = {
    F_.language.state: 0,
    F_.rules.state: 0,
    F_.phone.state: 1,
    F_.otp.state: 1,
    F_.parent_iin.state: 2,
    F_.parent_consent.state: 2,
    F_.parent_confirm.state: 2,
    F_.child_iin.state: 2,
    F_.child_consent.state: 2,
    F_.child_confirm.state: 2,
    F_.queue_type.state: 3,
    F_.state_order.state: 3,
    F_.disability_doc.state: 3,
    F_.benefit.state: 3,
    F_.benefit_doc.state: 3,
    F_.provider.state: 3,
    F_.group.state: 3,
    F_.preview.state: 3,
    F_.notify_channel.state: 4,
    F_.notify_language.state: 4,
    F_.review.state: 5,
    F_.submitted.state: 5,
    F_.submitting.state: 5,
}

ALL_STATES: tuple[str, ...] = tuple(s.state for s in ApplicationForm.__all_states__)
