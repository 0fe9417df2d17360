"""The application as the voucher service wants it, built from the parent's draft.

Pure business rules, no aiogram: which parts of the draft are still missing, the
`POST /applications` body, the Idempotency-Key, and the summary the bot keeps of a submitted
application. The review step (`bot/handlers/review.py`) is the only caller in the bot.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from services.validation import mask_tail
from services.voucher.models import (
    ApplicationRequest,
    ChildRef,
    Consents,
    NotificationChoice,
    ParentRef,
)

CHANNELS: tuple[str, ...] = ("sms", "push", "telegram")
LANGUAGES: tuple[str, ...] = ("kk", "ru")
CONSENTS: tuple[str, ...] = ("personal_data", "contact_use", "offer")
QUEUE_TYPES: tuple[str, ...] = ("general", "special")

Draft = Mapping[str, Any]


class Section(StrEnum):
    """The parts of the application the review's *Edit* can send the parent back to."""

    PHONE = "phone"
    PARENT = "parent"
    CHILD = "child"
    QUEUE = "queue"
    PROVIDER = "provider"
    NOTIFICATION = "notification"


class IncompleteDraft(ValueError):
    """The draft lacks parts the application needs; `missing` names them in form order."""

    def __init__(self, missing: list[Section]) -> None:
        super().__init__(", ".join(s.value for s in missing))
        self.missing = missing


def _dict(draft: Draft, key: str) -> Mapping[str, Any]:
    value = draft.get(key)
    return value if isinstance(value, Mapping) else {}


def _person_ok(draft: Draft, who: str) -> bool:
    person = _dict(draft, who)
    if not person.get("iin") or not draft.get(f"{who}_consent_id"):
        return False
    # A consent is valid only in the session it was granted in (a re-verified phone opens a
    # new session); drafts that do not record the session are trusted as they are.
    consent_session = draft.get(f"{who}_consent_session")
    return consent_session is None or consent_session == draft.get("session")


def _documents(draft: Draft) -> Mapping[str, Any]:
    return _dict(draft, "documents")


def _has_document(draft: Draft, kind: str) -> bool:
    doc = _documents(draft).get(kind)
    return isinstance(doc, Mapping) and bool(doc.get("document_id"))


def disability_needed(draft: Draft) -> bool:
    """The special queue is for children with special needs: a disability paper is required."""
    return draft.get("queue_type") == "special"


def benefit_claimed(draft: Draft) -> bool:
    """The parent said there is a benefit (an older draft without the flag: a paper was sent)."""
    flag = draft.get("has_benefit")
    return bool(flag) if flag is not None else _has_document(draft, "benefit")


def attached_documents(draft: Draft) -> dict[str, Mapping[str, Any]]:
    """The documents that go with the application, by kind."""
    # A paper for an answer the parent later changed (a disability paper after switching to
    # the general queue, a benefit paper after "no benefit") stays out of the application.
    docs = _documents(draft)
    wanted = {"disability": disability_needed(draft), "benefit": benefit_claimed(draft)}
    return {kind: docs[kind] for kind, on in wanted.items() if on and _has_document(draft, kind)}


def missing_sections(draft: Draft) -> list[Section]:
    """Which sections still need an answer before the application can be sent."""
    missing: list[Section] = []
    if not draft.get("phone") or not draft.get("session"):
        missing.append(Section.PHONE)
    if not _person_ok(draft, "parent"):
        missing.append(Section.PARENT)
    if not _person_ok(draft, "child"):
        missing.append(Section.CHILD)
    queue_ok = (
        draft.get("queue_type") in QUEUE_TYPES
        and bool(draft.get("state_order_type"))
        and (not disability_needed(draft) or _has_document(draft, "disability"))
        and (not benefit_claimed(draft) or _has_document(draft, "benefit"))
    )
    if not queue_ok:
        missing.append(Section.QUEUE)
    provider, group, preview = _dict(draft, "provider"), _dict(draft, "group"), draft.get("preview")
    if not provider.get("id") or not group.get("id") or not isinstance(preview, Mapping):
        missing.append(Section.PROVIDER)
    notification = _dict(draft, "notification")
    if notification.get("channel") not in CHANNELS or notification.get("language") not in LANGUAGES:
        missing.append(Section.NOTIFICATION)
    return missing


def missing_consents(draft: Draft) -> list[str]:
    """The review's consents not yet ticked, in the order they are shown."""
    given = _dict(draft, "consents")
    return [name for name in CONSENTS if given.get(name) is not True]


def build_request(draft: Draft, chat_id: int) -> ApplicationRequest:
    """The `POST /applications` body; raises IncompleteDraft when a section is missing."""
    missing = missing_sections(draft)
    if missing:
        raise IncompleteDraft(missing)
    notification = _dict(draft, "notification")
    consents = _dict(draft, "consents")
    channel = notification["channel"]
    return ApplicationRequest(
        parent=ParentRef(iin=_dict(draft, "parent")["iin"], phone=draft["phone"]),
        child=ChildRef(iin=_dict(draft, "child")["iin"]),
        queue_type=draft["queue_type"],
        state_order_type=draft["state_order_type"],
        provider_id=_dict(draft, "provider")["id"],
        group_id=_dict(draft, "group")["id"],
        documents=[doc["document_id"] for doc in attached_documents(draft).values()],
        notification=NotificationChoice(channel=channel, language=notification["language"]),
        consents=Consents(**{name: consents.get(name) is True for name in CONSENTS}),
        # The chat id is personal data of a kind: the service gets it only when the parent
        # chose to be told in Telegram. The bot follows every application itself anyway.
        telegram_chat_id=chat_id if channel == "telegram" else None,
    )


def new_idempotency_key() -> str:
    """A fresh Idempotency-Key; the caller stores it in the draft before the first POST."""
    return str(uuid.uuid4())


_FIELD_SECTIONS: tuple[tuple[str, Section], ...] = (
    ("parent.phone", Section.PHONE),
    ("parent", Section.PARENT),
    ("child", Section.CHILD),
    ("queue_type", Section.QUEUE),
    ("state_order_type", Section.QUEUE),
    ("documents", Section.QUEUE),
    ("provider_id", Section.PROVIDER),
    ("group_id", Section.PROVIDER),
    ("notification", Section.NOTIFICATION),
)


def section_for_fields(fields: list[str]) -> Section | None:
    """The section a `validation_error` points at (its first recognised field), if any."""
    for name in fields:
        for prefix, section in _FIELD_SECTIONS:
            if name == prefix or name.startswith((prefix + ".", prefix + "[")):
                return section
    return None


def full_name(person: Mapping[str, Any]) -> str:
    """Surname, name and patronymic, in the order Kazakh documents write them."""
    parts = (person.get("last_name"), person.get("first_name"), person.get("middle_name"))
    return " ".join(str(p) for p in parts if p)


def application_summary(draft: Draft, status: str) -> dict[str, Any]:
    """What the bot keeps about a submitted application to talk about it later, in kk and ru."""
    preview = _dict(draft, "preview")
    child = _dict(draft, "child")
    provider = _dict(draft, "provider")
    group = _dict(draft, "group")
    birth_date = str(child.get("birth_date") or "")
    return {
        "child": full_name(child),
        "child_first_name": child.get("first_name") or "",
        "child_birth_year": int(birth_date[:4]) if birth_date[:4].isdigit() else None,
        "child_iin_masked": mask_tail(str(child.get("iin") or "")),
        "queue_type": draft.get("queue_type"),
        "queue": dict(_dict(preview, "queue").get("title") or {}),
        "provider_id": provider.get("id"),
        "provider": dict(provider.get("name") or {}),
        "group_id": group.get("id"),
        "group": dict(group.get("name") or {}),
        "group_language": group.get("language"),
        "status": status,
    }


# What a second child's draft may take over from the first: the ed24 session (while it lasts)
# and the parent's confirmed data with its consent from that same session.
_FAMILY_KEYS = (
    "rules_accepted",
    "phone",
    "session",
    "session_expires_at",
    "parent",
    "parent_consent_id",
    "parent_consent_session",
)
# A session about to end would expire in the middle of the next child's steps.
SESSION_MARGIN = timedelta(minutes=10)


def next_child_draft(draft: Draft, now: datetime) -> dict[str, Any]:
    """A fresh draft for another child of the same parent: what is still valid, nothing more."""
    kept = {key: draft[key] for key in _FAMILY_KEYS if key in draft}
    expires = kept.get("session_expires_at")
    if not expires or datetime.fromisoformat(str(expires)) - SESSION_MARGIN <= now:
        # Without a live session neither the phone nor the consents can be reused.
        for key in ("session", "session_expires_at", "parent_consent_id", "parent_consent_session"):
            kept.pop(key, None)
    return kept


def session_is_live(draft: Draft, now: datetime) -> bool:
    """True when the draft holds an ed24 session that outlives the margin."""
    expires = draft.get("session_expires_at")
    return bool(
        draft.get("session")
        and expires
        and datetime.fromisoformat(str(expires)) - SESSION_MARGIN > now
    )
