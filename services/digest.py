"""The staff digest: plain figures for a period, and the period's submissions as a table.

No aiogram and no wording here: `build_digest` gathers numbers through `services.reports`,
`bot/render/digest.py` turns them into a message in kk or ru, and `submissions_csv` makes the
table staff open in Excel. The table never holds a name or a phone, and IINs only masked.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from services.clock import format_datetime
from services.reports import Count, NamedCount, Reports, SubmissionRow

CONSENT_EVENTS = ("consent_denied", "consent_expired")
OUTBOX_KEYS = ("waiting", "failed")  # the keys `outbox_counts` is read by

CSV_COLUMNS: tuple[str, ...] = (
    "number",
    "submitted_at",
    "status",
    "queue_type",
    "provider",
    "group",
    "language",
    "child_birth_year",
    "child_iin",
)
# Excel set to a Russian or Kazakh locale splits CSV on ";" (the list separator there), and
# reads UTF-8 only with a BOM. A "sep=;" line would make it ignore the BOM, so none is written.
CSV_DELIMITER = ";"
# A cell starting with one of these is a formula to a spreadsheet; names come from outside.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True, slots=True)
class Digest:
    """What staff are told about [since, until); since=None means from the very start."""

    since: datetime | None
    until: datetime
    submitted: int
    by_queue_type: tuple[Count, ...]
    by_provider: tuple[NamedCount, ...]
    by_group: tuple[NamedCount, ...]
    by_language: tuple[Count, ...]
    status_changes: tuple[Count, ...]
    consents_denied: int
    consents_expired: int
    drafts_by_step: tuple[Count, ...]  # a snapshot at `until`, not limited to the period
    blocked: int
    outbox_waiting: int | None = None  # None: the outbox was not asked
    outbox_failed: int | None = None

    @property
    def status_changed(self) -> int:
        """All status changes in the period."""
        return sum(c.n for c in self.status_changes)

    @property
    def drafts(self) -> int:
        """All unfinished drafts."""
        return sum(c.n for c in self.drafts_by_step)


async def build_digest(
    reports: Reports,
    *,
    since: datetime | None,
    until: datetime,
    outbox_counts: Mapping[str, int] | None = None,
) -> Digest:
    """Gather the figures of [since, until) from the tables (and the outbox's own counts)."""
    consents = await reports.events(CONSENT_EVENTS, since, until)
    outbox = outbox_counts or {}
    return Digest(
        since=since,
        until=until,
        submitted=await reports.submitted(since, until),
        by_queue_type=tuple(await reports.submitted_by("queue_type", since, until)),
        by_provider=tuple(await reports.submitted_by_provider(since, until)),
        by_group=tuple(await reports.submitted_by_group(since, until)),
        by_language=tuple(await reports.submitted_by("language", since, until)),
        status_changes=tuple(await reports.status_changes(since, until)),
        consents_denied=consents["consent_denied"],
        consents_expired=consents["consent_expired"],
        drafts_by_step=tuple(await reports.drafts_by_step()),
        blocked=await reports.blocked(since, until),
        outbox_waiting=int(outbox.get("waiting", 0)) if outbox_counts is not None else None,
        outbox_failed=int(outbox.get("failed", 0)) if outbox_counts is not None else None,
    )


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def submissions_csv(
    rows: Iterable[SubmissionRow],
    *,
    locale: str = "ru",
    header: Sequence[str] = CSV_COLUMNS,
    label: Callable[[str], str] | None = None,
) -> bytes:
    """The rows as a `;`-separated UTF-8 table with a BOM, names in `locale`, IINs masked.

    `label` turns codes (statuses, queue types, languages) into words; without it the codes
    are written as they are. Times are `DD.MM.YYYY HH:MM` in Asia/Almaty.
    """
    if len(header) != len(CSV_COLUMNS):
        raise ValueError(f"the header needs {len(CSV_COLUMNS)} columns, got {len(header)}")
    word = label or (lambda code: code)
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=CSV_DELIMITER, lineterminator="\r\n")
    writer.writerow([_cell(h) for h in header])
    for row in rows:
        kk = locale == "kk"
        provider = (
            (row.provider_kk or row.provider_ru) if kk else (row.provider_ru or row.provider_kk)
        )
        group = (row.group_kk or row.group_ru) if kk else (row.group_ru or row.group_kk)
        writer.writerow(
            [
                _cell(row.number),
                format_datetime(row.submitted_at),
                _cell(word(row.status) if row.status else ""),
                _cell(word(row.queue_type) if row.queue_type else ""),
                _cell(provider),
                _cell(group),
                _cell(word(row.language) if row.language else ""),
                "" if row.child_birth_year is None else str(row.child_birth_year),
                row.child_iin_masked,
            ]
        )
    return buffer.getvalue().encode("utf-8-sig")
