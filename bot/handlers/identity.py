"""Step 2/5, parent and child: each IIN, its 1414 consent, the state data to confirm.

parent_iin ──(valid IIN, POST /consents)──▶ parent_consent ──(granted: button or watcher)──▶
  ▲   ▲                                        │ denied / expired → ask 1414 again
  │   └──────────── not me ◀──── parent_confirm ◀┘
  │                                  │ correct
  │                                  ▼            (editing, child confirmed → review)
  │                               child_iin ──(valid child IIN, POST /consents)──▶ child_consent
  │                                  ▲                                                │ granted
  │                                  └──────── re-enter ◀──── child_confirm ◀─────────┘
  │                                                             │ correct
  │                                                             ▼
  └ Back (phone)                                   queue_type (editing, same child → review)

The same IIN entered again within the same ed24 session reuses its granted consent: no new SMS.
The consent states' prompt never creates a consent; it re-shows the stored one and makes sure
the background watcher (`bot/watchers.py`) is polling it.
"""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta
from typing import Any

from aiogram import Router
from aiogram.filters import StateFilter
from aiogram.fsm.state import State
from aiogram.types import CallbackQuery, Message

from bot.failures import explain_failure
from bot.filters import HasText
from bot.fsm.states import ApplicationForm
from bot.keyboards.identity import (
    ConsentAction,
    PersonAction,
    again_keyboard,
    consent_keyboard,
    consent_ref,
    iin_keyboard,
    no_sms_keyboard,
    person_keyboard,
)
from bot.view import Prompt, StepView, esc
from services.clock import almaty, format_date, format_time
from services.hostile_text import strip_invisible
from services.validation import IinInfo, InvalidIin, age_on, mask_tail, parse_iin
from services.voucher.errors import (
    ConsentRequired,
    IinInvalid,
    NotFound,
    PersonNotFound,
    SessionInvalid,
    VoucherError,
)
from services.voucher.models import Person

S = ApplicationForm
WHO = ("parent", "child")
IIN_STATE: dict[str, State] = {"parent": S.parent_iin, "child": S.child_iin}
CONSENT_STATE: dict[str, State] = {"parent": S.parent_consent, "child": S.child_consent}
CONFIRM_STATE: dict[str, State] = {"parent": S.parent_confirm, "child": S.child_confirm}
WHO_OF: dict[str, str] = {
    state.state: who
    for who in WHO
    for state in (IIN_STATE[who], CONSENT_STATE[who], CONFIRM_STATE[who])
}
ADULT_AGE = 18
# A new SMS within a minute of the last one would only cross it; 1414 needs the time to deliver.
AGAIN_AFTER = timedelta(seconds=60)
# FSM data of the consent states; dropped when the consent is settled.
_CONSENT_KEYS = ("consent_id", "consent_iin", "consent_created_at", "consent_expires_at")
_CONSENT_FINAL = ("denied", "expired")
# The service's word on an IIN, at POST /consents or when the person is fetched.
_PERSON_REFUSALS: dict[type[VoucherError], str] = {
    PersonNotFound: "iin-person-not-found",
    IinInvalid: "iin-service-invalid",
}


def create_router() -> Router:
    router = Router(name="identity")
    iin_states = StateFilter(S.parent_iin, S.child_iin)
    consent_states = StateFilter(S.parent_consent, S.child_consent)
    confirm_states = StateFilter(S.parent_confirm, S.child_confirm)
    router.message.register(on_iin, iin_states, HasText())
    router.message.register(on_iin_other, iin_states)
    router.callback_query.register(on_consent_action, ConsentAction.filter(), consent_states)
    router.message.register(on_consent_other, consent_states)
    router.callback_query.register(on_person_action, PersonAction.filter(), confirm_states)
    router.message.register(on_confirm_other, confirm_states)
    return router


# --- prompts ----------------------------------------------------------------------------------


async def ask_parent_iin(view: StepView) -> None:
    """Ask for the parent's own IIN."""
    await view.send(view.tr("iin-ask-parent"), iin_keyboard(view.tr))


async def ask_child_iin(view: StepView) -> None:
    """Ask for the child's IIN."""
    await view.send(view.tr("iin-ask-child"), iin_keyboard(view.tr))


async def ask_consent(view: StepView) -> None:
    """Re-show the stored consent (never a new one) and make sure it is being watched."""
    who = WHO_OF.get(await view.current() or "", "parent")
    data = await view.state.get_data()
    consent_id = data.get("consent_id")
    if not consent_id:
        await view.goto(IIN_STATE[who])
        return
    status = data.get("consent_status")
    if status in _CONSENT_FINAL:
        await view.send(view.tr(f"consent-{status}"), again_keyboard(view.tr, consent_id))
        return
    draft = await view.draft()
    text = view.tr(
        f"consent-sms-{who}",
        phone=pretty_phone(draft.get("phone", "")),
        iin=mask_tail(data.get("consent_iin", "")),
        minutes=_minutes_left(view, data),
    )
    await view.send(text, consent_keyboard(view.tr, consent_id))
    watcher = view.services.background
    if watcher is not None and not watcher.is_watching(view.user_id, consent_id):
        watcher.watch(view.bot, view.chat_id, view.user_id, who, consent_id)


async def ask_parent_confirm(view: StepView) -> None:
    """The parent's state data, to confirm or re-enter the IIN."""
    await _ask_confirm(view, "parent")


async def ask_child_confirm(view: StepView) -> None:
    """The child's state data, to confirm or re-enter the IIN."""
    await _ask_confirm(view, "child")


async def _ask_confirm(view: StepView, who: str) -> None:
    person = (await view.draft()).get(who)
    if not person:
        await view.goto(IIN_STATE[who])
        return
    await view.send(person_card(view, who, person), person_keyboard(view.tr, who))


# --- IIN ----------------------------------------------------------------------------------------


async def on_iin(message: Message, view: StepView) -> None:
    """A typed IIN: checked here first, then 1414 is asked for consent."""
    who = WHO_OF[await view.current() or ""]
    # Parents copy IINs with spaces ("8710 0840 1427") and invisible marks (from PDFs, banking
    # apps); both are dropped, nothing else is (other scripts' digits: `iin-error-not_digits`).
    iin = "".join(strip_invisible(message.text or "").split())
    try:
        info = parse_iin(iin)
    except InvalidIin as exc:
        text = view.tr(f"iin-error-{exc.reason.value}", n=len(iin))
        await view.send(text, iin_keyboard(view.tr))
        return
    draft = await view.draft()
    if who == "child":
        refusal = _child_refusal(view, draft, info)
        if refusal is not None:
            await view.send(refusal, iin_keyboard(view.tr))
            return
    session = draft.get("session")
    if not session:
        await explain_failure(view, SessionInvalid(401, "no session in the draft"))
        return
    if who == "child":
        await _remember_child_before(view, draft)
    known = draft.get(who) or {}
    if known.get("iin") == iin and draft.get(f"{who}_consent_session") == session:
        # Consent for this IIN was granted in this session already: no second SMS.
        await _forget_consent(view)
        await view.goto(CONFIRM_STATE[who])
        return
    await _create_consent(view, who, iin, session)


async def on_iin_other(message: Message, view: StepView) -> None:
    """Not a text: explain and ask for the IIN again."""
    await view.send(view.tr("iin-expected"), header=False)
    await view.ask()


def _child_refusal(view: StepView, draft: dict[str, Any], info: IinInfo) -> str | None:
    """Why this IIN cannot be the child's, in the parent's words, or None."""
    parent_iin = (draft.get("parent") or {}).get("iin")
    if info.iin == parent_iin:
        return view.tr("iin-child-is-parent")
    today = almaty(view.services.clock.now()).date()
    born = format_date(info.birth_date)
    if info.birth_date > today:
        return view.tr("iin-child-future", birth_date=born)
    if age_on(info.birth_date, today) >= ADULT_AGE:
        return view.tr("iin-child-adult", birth_date=born)
    return None


async def _remember_child_before(view: StepView, draft: dict[str, Any]) -> None:
    """Keep the child confirmed before this edit, to know later whether it changed."""
    data = await view.state.get_data()
    if "child_iin_before" not in data:
        before = (draft.get("child") or {}).get("iin") or ""
        await view.state.update_data(child_iin_before=before)


async def _create_consent(view: StepView, who: str, iin: str, session: str) -> None:
    """POST /consents: 1414 sends the SMS; the consent state shows it and starts watching."""
    try:
        async with view.typing():
            created = await view.voucher.create_consent(session, iin)
    except (PersonNotFound, IinInvalid) as exc:
        await _person_failed(view, who, _PERSON_REFUSALS[type(exc)])
        return
    except VoucherError as exc:
        await explain_failure(view, exc)
        return
    now = view.services.clock.now()
    consent = {
        "consent_id": created.consent_id,
        "consent_iin": iin,
        "consent_created_at": now.isoformat(),
        "consent_expires_at": (now + timedelta(seconds=created.expires_in)).isoformat(),
    }

    def waiting_for_this_consent(data: dict[str, Any]) -> dict[str, Any]:
        data.pop("consent_status", None)
        return {**data, **consent}

    await view.goto(CONSENT_STATE[who], change=waiting_for_this_consent)


# --- consent ------------------------------------------------------------------------------------


async def on_consent_action(
    query: CallbackQuery, callback_data: ConsentAction, view: StepView
) -> None:
    """*Request data*, *No SMS?* and *Ask again* for the consent shown."""
    data = await view.state.get_data()
    consent_id = data.get("consent_id")
    if not consent_id or callback_data.ref != consent_ref(consent_id):
        await view.send(view.tr("button-outdated"), header=False)
        await view.ask()
        return
    if callback_data.action == "check":
        await check_consent(view)
        if not await awaiting_consent(view, consent_id):
            _stop_watching(view)  # settled here: the watcher must not tell it a second time
    elif callback_data.action == "nosms":
        draft = await view.draft()
        text = view.tr("consent-no-sms", phone=pretty_phone(draft.get("phone", "")))
        await view.send(text, no_sms_keyboard(view.tr, consent_id))
    elif callback_data.action == "again":
        await _ask_again(view, data)
    else:
        await view.send(view.tr("button-outdated"), header=False)
        await view.ask()


async def awaiting_consent(view: StepView, consent_id: str) -> bool:
    """True while the parent is at a consent state waiting on exactly this consent."""
    if await view.current() not in (S.parent_consent.state, S.child_consent.state):
        return False
    data = await view.state.get_data()
    return data.get("consent_id") == consent_id and data.get("consent_status") not in _CONSENT_FINAL


async def check_consent(view: StepView) -> None:
    """Ask the service about the stored consent and act on it: the button and the watcher."""
    who = WHO_OF[await view.current() or ""]
    data = await view.state.get_data()
    consent_id = data.get("consent_id")
    session = (await view.draft()).get("session")
    if not consent_id or not session:
        await view.goto(IIN_STATE[who])
        return
    person: Person | None = None
    try:
        async with view.typing():
            consent = await view.voucher.get_consent(session, consent_id)
            status = consent.status
            if status == "granted":
                person = await view.voucher.get_person(session, consent_id)
    except NotFound:
        # Unknown to the service (another session's, or forgotten): as good as expired.
        status = "expired"
    except ConsentRequired:
        status = "pending"  # the answer was taken back meanwhile; the next check tells
    except (PersonNotFound, IinInvalid) as exc:
        await _person_failed(view, who, _PERSON_REFUSALS[type(exc)])
        return
    except VoucherError as exc:
        await explain_failure(view, exc)
        return
    if person is not None:
        await _accept_person(view, who, consent_id, session, person)
    elif status == "pending":
        await view.send(view.tr("consent-pending"), consent_keyboard(view.tr, consent_id))
    else:
        if data.get("consent_status") != status:
            # Counted once per consent for the staff digest (no personal data in the event).
            await view.store.record_event(f"consent_{status}", who=who)
        await view.state.update_data(consent_status=status)
        await view.send(view.tr(f"consent-{status}"), again_keyboard(view.tr, consent_id))


async def _accept_person(
    view: StepView, who: str, consent_id: str, session: str, person: Person
) -> None:
    """Granted: the state data goes into the draft and the parent is shown the card."""
    await view.move(
        CONFIRM_STATE[who],
        change=_without_consent,
        **{
            who: person.model_dump(mode="json"),
            f"{who}_consent_id": consent_id,
            f"{who}_consent_session": session,
        },
    )
    await view.send(view.tr("consent-granted"), header=False)
    await view.ask()


async def _person_failed(view: StepView, who: str, msg_id: str) -> None:
    """The service knows no such person: back to typing the IIN, with the reason."""
    await _forget_consent(view)
    target = IIN_STATE[who].state
    if await view.current() != target:
        await view.state.set_state(target)
        await view.store.update_draft(view.user_id, step=target)
    await view.send(view.tr(msg_id), iin_keyboard(view.tr))


async def _ask_again(view: StepView, data: dict[str, Any]) -> None:
    """A new SMS for the same IIN; not within a minute of the last one while it is pending."""
    iin = data.get("consent_iin")
    session = (await view.draft()).get("session")
    who = WHO_OF[await view.current() or ""]
    if not iin or not session:
        await view.goto(IIN_STATE[who])
        return
    created_at = data.get("consent_created_at")
    allowed_at = datetime.fromisoformat(created_at) + AGAIN_AFTER if created_at else None
    pending = data.get("consent_status") not in _CONSENT_FINAL
    if pending and allowed_at is not None and view.services.clock.now() < allowed_at:
        text = view.tr("consent-again-wait", time=format_time(allowed_at))
        await view.send(text, no_sms_keyboard(view.tr, data["consent_id"]))
        return
    _stop_watching(view)
    await _create_consent(view, who, iin, session)


async def on_consent_other(message: Message, view: StepView) -> None:
    """Anything typed here: the answer belongs in the SMS, not in this chat."""
    await view.send(view.tr("consent-answer-in-sms"), header=False)
    await view.ask()


# --- confirm ------------------------------------------------------------------------------------


async def on_person_action(
    query: CallbackQuery, callback_data: PersonAction, view: StepView
) -> None:
    """*Correct* moves on; *Not me* / *Re-enter* goes back to the IIN."""
    who = WHO_OF[await view.current() or ""]
    draft = await view.draft()
    if callback_data.action == "reenter":
        await view.goto(IIN_STATE[who])
        return
    if callback_data.action != "ok" or not draft.get(who):
        await view.send(view.tr("button-outdated"), header=False)
        await view.ask()
        return
    if who == "parent":
        await view.goto(_after_parent(draft))
        return
    before = (await view.state.get_data()).get("child_iin_before")
    changed = bool(before) and before != draft["child"].get("iin")
    # The queue preview and the group were chosen for the other child's age.
    dropped = {"preview": None, "group": None} if changed else {}
    target = S.review if draft.get("editing") and not changed else S.queue_type
    await view.goto(target, change=_without_child_before, **dropped)


def _after_parent(draft: dict[str, Any]) -> State:
    """Next after the parent: the child, or the review when editing and the child still holds."""
    child_ok = bool(draft.get("child")) and draft.get("child_consent_session") == draft.get(
        "session"
    )
    return S.review if draft.get("editing") and child_ok else S.child_iin


async def on_confirm_other(message: Message, view: StepView) -> None:
    """Anything typed under the card: point at the buttons, show the card again."""
    await view.send(view.tr("person-use-buttons"), header=False)
    await view.ask()


# --- rendering ----------------------------------------------------------------------------------


def person_card(view: StepView, who: str, person: dict[str, Any]) -> str:
    """The data card as the portal shows it; every value escaped."""
    not_given = view.tr("person-not-given")

    def value(raw: object) -> str:
        return esc(raw) if raw else not_given

    common = {
        "last_name": value(person.get("last_name")),
        "first_name": value(person.get("first_name")),
        "middle_name": value(person.get("middle_name")),
        "birth_date": _date(person.get("birth_date"), not_given),
        "sex": view.tr(f"person-sex-{'female' if person.get('gender') == 'female' else 'male'}"),
    }
    if who == "parent":
        return view.tr("person-card-parent", **common)
    certificate = person.get("birth_certificate") or {}
    addresses = person.get("addresses") or {}
    number = certificate.get("number")
    return view.tr(
        "person-card-child",
        **common,
        certificate=esc(mask_certificate(number)) if number else not_given,
        certificate_date=_date(certificate.get("issued_on"), not_given),
        permanent=value(addresses.get("permanent")),
        temporary=value(addresses.get("temporary")),
    )


def mask_certificate(number: str) -> str:
    """`10-732-0005933` → `10-732-***0005933`, the way the portal masks it."""
    parts = number.split("-")
    if len(parts) >= 3:
        return "-".join(parts[:2]) + "-***" + parts[-1]
    return "***" + number[-4:]


def pretty_phone(phone: str) -> str:
    """`+77012345678` → `+7 701 234 56 78`, the way people read it (escaped)."""
    if len(phone) != 12:
        return esc(phone)
    return f"{phone[:2]} {phone[2:5]} {phone[5:8]} {phone[8:10]} {phone[10:]}"


def _date(raw: object, fallback: str) -> str:
    if not raw:
        return fallback
    try:
        return format_date(date.fromisoformat(str(raw)))
    except ValueError:
        return esc(raw)


def _minutes_left(view: StepView, data: dict[str, Any]) -> int:
    expires_at = data.get("consent_expires_at")
    if not expires_at:
        return 10
    left = (datetime.fromisoformat(expires_at) - view.services.clock.now()).total_seconds()
    return max(1, math.ceil(left / 60))


async def _forget_consent(view: StepView) -> None:
    await view.state.set_data(_without_consent(await view.state.get_data()))


def _without_child_before(data: dict[str, Any]) -> dict[str, Any]:
    data.pop("child_iin_before", None)
    return data


def _without_consent(data: dict[str, Any]) -> dict[str, Any]:
    for key in (*_CONSENT_KEYS, "consent_status"):
        data.pop(key, None)
    return data


def _stop_watching(view: StepView) -> None:
    watcher = view.services.background
    if watcher is not None:
        watcher.cancel(view.user_id)


PROMPTS: dict[str, Prompt] = {
    S.parent_iin.state: ask_parent_iin,
    S.parent_consent.state: ask_consent,
    S.parent_confirm.state: ask_parent_confirm,
    S.child_iin.state: ask_child_iin,
    S.child_consent.state: ask_consent,
    S.child_confirm.state: ask_child_confirm,
}
