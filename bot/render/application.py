"""The application as the portal writes it, for the review step, in the parent's language.

Pure: the draft (plain JSON) and a Translator in, Telegram HTML out. Everything that came from
the parent or the voucher service is escaped here; only our own locale strings carry markup.
Personal numbers are masked the way the portal shows them.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from datetime import date
from typing import TYPE_CHECKING, Any

from services.application import CONSENTS, attached_documents, full_name
from services.validation import mask_tail

if TYPE_CHECKING:
    from bot.i18n import Translator


def esc(value: object) -> str:
    """Escape a value for Telegram HTML."""
    return html.escape(str(value), quote=False)


def mask_phone(phone: str) -> str:
    """`+77012345678` → `+7 701 *** ** 78`."""
    if len(phone) != 12 or not phone.startswith("+7"):
        return mask_tail(phone, keep=2, mask="*")
    return f"+7 {phone[2:5]} *** ** {phone[-2:]}"


def mask_certificate(number: str) -> str:
    """`10-732-0005933` → `10-732-***0005933`: the first two groups, `***`, the last group."""
    groups = number.split("-")
    if len(groups) < 3:
        return mask_tail(number, mask="*")
    return f"{groups[0]}-{groups[1]}-***{groups[-1]}"


def format_iso_date(value: object) -> str:
    """`2016-03-15` → `15.03.2016`; anything else as it is."""
    try:
        return date.fromisoformat(str(value)).strftime("%d.%m.%Y")
    except ValueError:
        return str(value)


def _get(mapping: Mapping[str, Any] | None, *path: str) -> Any:
    value: Any = mapping
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _localized(value: Any, locale: str) -> str:
    if isinstance(value, Mapping):
        return str(value.get(locale) or value.get("ru") or value.get("kk") or "")
    return str(value or "")


def render_application(draft: Mapping[str, Any], tr: Translator) -> str:
    """The generated application text for the review, in `tr`'s language."""
    locale = tr.locale
    none = tr("review-app-none")
    parent, child = draft.get("parent") or {}, draft.get("child") or {}
    parent_address = _get(parent, "addresses", "permanent") or _get(
        parent, "addresses", "temporary"
    )
    docs = attached_documents(draft)

    def doc_name(kind: str) -> str:
        doc = docs.get(kind)
        return esc(doc.get("file_name") or doc["document_id"]) if doc else none

    group = draft.get("group") or {}
    provider = draft.get("provider") or {}
    notification = draft.get("notification") or {}
    certificate = _get(child, "birth_certificate", "number")
    year = str(_get(draft, "preview", "academic_year") or "").replace("-", "–")
    group_language = group.get("language")
    channel, language = notification.get("channel"), notification.get("language")

    head = [
        "<b>" + tr("review-app-to") + "</b>",
        tr("review-app-from", name=esc(full_name(parent))),
        tr("review-app-iin", iin=esc(mask_tail(str(parent.get("iin") or "")))),
        tr("review-app-address", address=esc(parent_address) if parent_address else none),
    ]
    body = [
        "<b>" + tr("review-app-title") + "</b>",
        tr(
            "review-app-request",
            child=esc(full_name(child)),
            birth=esc(format_iso_date(child.get("birth_date") or "")),
        ),
    ]
    documents = [
        "<b>" + tr("review-app-documents") + "</b>",
        "• " + tr("review-app-doc-disability", file=doc_name("disability")),
        "• " + tr("review-app-doc-benefit", file=doc_name("benefit")),
    ]
    temporary = _get(child, "addresses", "temporary")
    permanent = _get(child, "addresses", "permanent")
    details = [
        tr(
            "review-app-provider",
            name=esc(_localized(provider.get("name"), locale)),
            address=esc(provider.get("address") or ""),
        ),
        tr(
            "review-app-group",
            name=esc(_localized(group.get("name"), locale)),
            min=int(group.get("age_min") or 0),
            max=int(group.get("age_max") or 0),
            language=(
                tr(f"review-app-language-{group_language}")
                if group_language in ("kk", "ru")
                else esc(group_language or none)
            ),
        ),
        tr(
            "review-app-queue",
            queue=esc(_localized(_get(draft, "preview", "queue", "title"), locale)),
        ),
        tr("review-app-year", year=esc(year)),
        tr("review-app-child-permanent", address=esc(permanent) if permanent else none),
        tr("review-app-child-temporary", address=esc(temporary) if temporary else none),
        tr(
            "review-app-certificate",
            number=esc(mask_certificate(str(certificate))) if certificate else none,
        ),
        tr(
            "review-app-notification",
            channel=tr(f"notify-channel-name-{channel}")
            if channel in ("sms", "push", "telegram")
            else none,
            language=tr(f"notify-language-name-{language}") if language in ("kk", "ru") else none,
        ),
        tr("review-app-phone", phone=esc(mask_phone(str(draft.get("phone") or "")))),
    ]
    return "\n\n".join("\n".join(block) for block in (head, body, documents, details))


def render_consents(draft: Mapping[str, Any], tr: Translator) -> str:
    """The three consents under the application, each ticked ✅ or not ⬜."""
    given = draft.get("consents") or {}
    lines = ["<b>" + tr("review-consents-title") + "</b>"]
    for name in CONSENTS:
        mark = "✅" if given.get(name) is True else "⬜"
        lines.append(f"{mark} {tr(f'review-consent-{name}')}")
    return "\n".join(lines)


def render_review(draft: Mapping[str, Any], tr: Translator) -> str:
    """The whole review message: the application, then the consents."""
    return render_application(draft, tr) + "\n\n" + render_consents(draft, tr)
