"""The staff digest as a Telegram HTML message (or plain text for the shell) in kk or ru.

Pure: a `Digest` and a Translator in, text out. Provider and group names come from the voucher
service and are escaped here; only our own locale strings carry markup. Long lists are cut to
the busiest few so the message stays far below Telegram's 4,096 characters: the attached table
has every application anyway.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from bot.fsm.states import ALL_STATES, STEP_OF
from services.clock import almaty, format_datetime
from services.digest import CSV_COLUMNS, Digest, submissions_csv
from services.reports import Count, NamedCount, SubmissionRow
from services.voucher.models import APPLICATION_STATUSES

if TYPE_CHECKING:
    from bot.i18n import Translator

TOP = 10  # providers and groups listed by name; the rest are summed up in one line
QUEUE_TYPES = ("general", "special")
LANGUAGES = ("kk", "ru")
_TAG = re.compile(r"<[^>]+>")


def esc(value: object) -> str:
    """Escape a value for Telegram HTML."""
    return html.escape(str(value), quote=False)


def status_name(code: str, tr: Translator) -> str:
    """An application status in words (an unknown code as it is)."""
    if code in APPLICATION_STATUSES:
        return tr(f"digest-status-{code.replace('_', '-')}")
    return code or tr("digest-unknown")


def code_name(code: str, tr: Translator) -> str:
    """A queue type, language or status code in words, for the digest and the table."""
    if code in QUEUE_TYPES:
        return tr(f"digest-queue-{code}")
    if code in LANGUAGES:
        return tr(f"digest-language-{code}")
    return status_name(code, tr)


def step_name(state: str, tr: Translator) -> str:
    """Where a draft rests, in words: `ApplicationForm:parent_consent` → the 1414 consent."""
    if state in ALL_STATES:
        return tr(f"digest-step-{state.split(':', 1)[1].replace('_', '-')}")
    return state


def _counts(items: Iterable[Count], tr: Translator) -> list[str]:
    return [tr("digest-line", name=esc(code_name(c.key, tr)), n=c.n) for c in items]


def _top(items: Sequence[NamedCount], tr: Translator, *, groups: bool) -> list[str]:
    lines = []
    for item in items[:TOP]:
        name = esc(item.name(tr.locale) or tr("digest-unknown"))
        if groups:
            provider = esc(item.within(tr.locale) or tr("digest-unknown"))
            lines.append(tr("digest-group-line", name=name, provider=provider, n=item.n))
        else:
            lines.append(tr("digest-line", name=name, n=item.n))
    rest = len(items) - TOP
    if rest > 0:
        lines.append(tr("digest-more-groups" if groups else "digest-more-providers", n=rest))
    return lines


def _submissions(digest: Digest, tr: Translator) -> list[str]:
    if digest.submitted == 0:
        return [tr("digest-none-submitted")]
    return [
        tr("digest-submitted", n=digest.submitted),
        tr("digest-by-queue-type"),
        *_counts(digest.by_queue_type, tr),
        tr("digest-by-language"),
        *_counts(digest.by_language, tr),
        tr("digest-by-provider"),
        *_top(digest.by_provider, tr, groups=False),
        tr("digest-by-group"),
        *_top(digest.by_group, tr, groups=True),
    ]


def _statuses(digest: Digest, tr: Translator) -> list[str]:
    if not digest.status_changes:
        return [tr("digest-no-status-changes")]
    # In the order an application lives through them, unknown codes last.
    order = {code: i for i, code in enumerate(APPLICATION_STATUSES)}
    items = sorted(digest.status_changes, key=lambda c: (order.get(c.key, len(order)), c.key))
    lines = [tr("digest-status-changes", n=digest.status_changed)]
    lines += [tr("digest-line", name=esc(status_name(c.key, tr)), n=c.n) for c in items]
    return lines


def _drafts(digest: Digest, tr: Translator) -> list[str]:
    if not digest.drafts_by_step:
        return [tr("digest-drafts-none")]
    # In form order, so staff read it as a funnel from the first step to the last.
    order = {state: i for i, state in enumerate(ALL_STATES)}
    items = sorted(digest.drafts_by_step, key=lambda c: (order.get(c.key, len(order)), c.key))
    lines = [tr("digest-drafts-title", n=digest.drafts)]
    for item in items:
        name = esc(step_name(item.key, tr))
        step = STEP_OF.get(item.key, 0)
        if step:
            lines.append(tr("digest-step-line", step=str(step), name=name, n=item.n))
        else:
            lines.append(tr("digest-line", name=name, n=item.n))
    return lines


def render_digest(digest: Digest, tr: Translator, *, sandbox: bool = False) -> str:
    """The digest (since=None: the figures since the start) as Telegram HTML."""
    if digest.since is None:
        head = [
            tr("digest-stats-title"),
            tr("digest-period-start", until=format_datetime(digest.until)),
        ]
    else:
        head = [
            tr("digest-title"),
            tr(
                "digest-period",
                since=format_datetime(digest.since),
                until=format_datetime(digest.until),
            ),
        ]
    blocks = [head, _submissions(digest, tr), _statuses(digest, tr)]
    if digest.outbox_waiting is not None and digest.outbox_failed is not None:
        blocks.append(
            [
                tr("digest-outbox-title"),
                tr("digest-outbox-waiting", n=digest.outbox_waiting),
                tr("digest-outbox-failed", n=digest.outbox_failed),
            ]
        )
    blocks.append(
        [
            tr("digest-consents-title"),
            tr("digest-consents-denied", n=digest.consents_denied),
            tr("digest-consents-expired", n=digest.consents_expired),
        ]
    )
    blocks.append(_drafts(digest, tr))
    blocks.append(
        [tr("digest-blocked", n=digest.blocked) if digest.blocked else tr("digest-blocked-none")]
    )
    if sandbox:
        blocks.append(["<i>" + tr("sandbox-banner") + "</i>"])
    return "\n\n".join("\n".join(block) for block in blocks)


def render_plain(digest: Digest, tr: Translator) -> str:
    """The digest as plain text, for `voucher-bot digest` in a terminal."""
    return html.unescape(_TAG.sub("", render_digest(digest, tr)))


def csv_header(tr: Translator) -> list[str]:
    """The table's column titles in `tr`'s language."""
    return [tr(f"digest-col-{column.replace('_', '-')}") for column in CSV_COLUMNS]


def digest_csv(rows: Iterable[SubmissionRow], tr: Translator) -> bytes:
    """The period's submissions as a table in `tr`'s language (IINs masked, no names)."""
    return submissions_csv(
        rows, locale=tr.locale, header=csv_header(tr), label=lambda code: code_name(code, tr)
    )


def csv_file_name(digest: Digest) -> str:
    """`kezek-2026-09-10.csv`: the Almaty date the period ends on."""
    return f"kezek-{almaty(digest.until).strftime('%Y-%m-%d')}.csv"
