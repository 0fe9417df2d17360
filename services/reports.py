"""Read-only SQL over Kezek's tables for the staff digest, on a connection of its own.

Why its own connection: the Store's connection serves parents one short statement at a time;
a digest scans whole tables and must not queue behind (or in front of) a parent's write. The
connection is opened with `mode=ro`, so nothing here can change the record even by mistake.
WAL mode (set by the Store) lets it read a consistent snapshot while the Store writes.

What an application is counted by comes from `applications.summary` (JSON written by the review
step through `services.application.application_summary`). Older summaries lack some fields;
every field read here has a fallback, and a figure that cannot be known is counted under "".
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote

import aiosqlite

from services.validation import is_valid_iin, mask_tail, parse_iin

SUBMITTED_STEP = "ApplicationForm:submitted"  # the FSM state name kept in drafts.step

# Keys of `applications.summary`, with the fallbacks for summaries written before them.
_QUEUE_TYPE = "COALESCE(json_extract(summary, '$.queue_type'), '')"
_PROVIDER_KEY = (
    "COALESCE(json_extract(summary, '$.provider_id'), json_extract(summary, '$.provider.ru'), '')"
)
# Group names repeat across providers ("Домбыра"), so a group is known by its provider too.
_GROUP_KEY = (
    "COALESCE(json_extract(summary, '$.group_id'),"
    " json_extract(summary, '$.provider.ru') || ' / ' || json_extract(summary, '$.group.ru'), '')"
)
_LANGUAGE = "COALESCE(json_extract(summary, '$.group_language'), '')"


class Count(NamedTuple):
    """How many of something, by a code (a status, a queue type, a state name)."""

    key: str
    n: int


@dataclass(frozen=True, slots=True)
class NamedCount:
    """How many applications went to one provider or group, with its name in kk and ru."""

    key: str
    n: int
    name_kk: str
    name_ru: str
    # The provider a group belongs to; empty for providers themselves.
    within_kk: str = ""
    within_ru: str = ""

    def name(self, locale: str) -> str:
        """The name in `locale`, or in the other language when that one is missing."""
        return (self.name_kk or self.name_ru) if locale == "kk" else (self.name_ru or self.name_kk)

    def within(self, locale: str) -> str:
        """The provider's name in `locale` (groups only)."""
        if locale == "kk":
            return self.within_kk or self.within_ru
        return self.within_ru or self.within_kk


@dataclass(frozen=True, slots=True)
class SubmissionRow:
    """One submitted application as the staff table shows it: no names, no phones."""

    number: str
    submitted_at: datetime
    status: str
    queue_type: str
    provider_kk: str
    provider_ru: str
    group_kk: str
    group_ru: str
    language: str
    child_birth_year: int | None
    child_iin_masked: str


def utc_text(ts: datetime) -> str:
    """An instant as the tables store it (UTC ISO text, so text order is time order)."""
    return ts.astimezone(UTC).isoformat()


def _bounds(since: datetime | None, until: datetime) -> tuple[str, str]:
    # "" sorts before every timestamp: no `since` means from the very first row.
    return (utc_text(since) if since is not None else "", utc_text(until))


def mask_iin(value: object) -> str:
    """`871008401427` (or an already masked one) → `••••••••1427`; anything else → ""."""
    text = str(value or "")
    tail = text[-4:]
    if len(text) < 4 or not tail.isascii() or not tail.isdigit():
        return ""
    return mask_tail("0" * 8 + tail)


def _birth_year(summary: Mapping[str, Any]) -> int | None:
    year = summary.get("child_birth_year")
    if isinstance(year, int):
        return year
    birth = summary.get("child_birth_date")
    if isinstance(birth, str):
        try:
            return date.fromisoformat(birth).year
        except ValueError:
            pass
    iin = summary.get("child_iin")
    if isinstance(iin, str) and is_valid_iin(iin):
        return parse_iin(iin).birth_date.year
    return None


def _localized(summary: Mapping[str, Any], key: str) -> tuple[str, str]:
    value = summary.get(key)
    if not isinstance(value, Mapping):
        return ("", "")
    return (str(value.get("kk") or ""), str(value.get("ru") or ""))


def submission_row(
    number: str, submitted_at: str, status: str, summary: Mapping[str, Any]
) -> SubmissionRow:
    """Build a row from the table's columns; the child's name in the summary is left out."""
    provider, group = _localized(summary, "provider"), _localized(summary, "group")
    iin = summary.get("child_iin_masked") or summary.get("child_iin")
    return SubmissionRow(
        number=number,
        submitted_at=datetime.fromisoformat(submitted_at),
        status=status,
        queue_type=str(summary.get("queue_type") or ""),
        provider_kk=provider[0],
        provider_ru=provider[1],
        group_kk=group[0],
        group_ru=group[1],
        language=str(summary.get("group_language") or ""),
        child_birth_year=_birth_year(summary),
        child_iin_masked=mask_iin(iin),
    )


class Reports:
    """The staff figures, each one SQL query over the period [since, until)."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        """Wrap an open read-only connection; use `open_reports` instead."""
        self._db = db

    async def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        return list(await self._db.execute_fetchall(sql, params))

    async def _counts(self, sql: str, params: tuple[Any, ...]) -> list[Count]:
        rows = await self._rows(sql, params)
        return sorted((Count(str(k or ""), int(n)) for k, n in rows), key=lambda c: (-c.n, c.key))

    # --- applications --------------------------------------------------------------------

    async def submitted(self, since: datetime | None, until: datetime) -> int:
        """How many applications were submitted in the period."""
        rows = await self._rows(
            "SELECT COUNT(*) FROM applications WHERE submitted_at >= ? AND submitted_at < ?",
            _bounds(since, until),
        )
        return int(rows[0][0])

    async def submitted_by(self, what: str, since: datetime | None, until: datetime) -> list[Count]:
        """Submissions in the period by `queue_type` or `language` (of the group)."""
        expression = {"queue_type": _QUEUE_TYPE, "language": _LANGUAGE}[what]
        return await self._counts(
            f"SELECT {expression}, COUNT(*) FROM applications"
            " WHERE submitted_at >= ? AND submitted_at < ? GROUP BY 1",
            _bounds(since, until),
        )

    async def submitted_by_provider(
        self, since: datetime | None, until: datetime
    ) -> list[NamedCount]:
        """Submissions in the period by provider, the busiest first."""
        rows = await self._rows(
            f"SELECT {_PROVIDER_KEY}, COUNT(*),"
            " MAX(COALESCE(json_extract(summary, '$.provider.kk'), '')),"
            " MAX(COALESCE(json_extract(summary, '$.provider.ru'), ''))"
            " FROM applications WHERE submitted_at >= ? AND submitted_at < ? GROUP BY 1",
            _bounds(since, until),
        )
        return _named(NamedCount(str(k), int(n), kk, ru) for k, n, kk, ru in rows)

    async def submitted_by_group(self, since: datetime | None, until: datetime) -> list[NamedCount]:
        """Submissions in the period by group (named with its provider), the busiest first."""
        rows = await self._rows(
            f"SELECT {_GROUP_KEY}, COUNT(*),"
            " MAX(COALESCE(json_extract(summary, '$.group.kk'), '')),"
            " MAX(COALESCE(json_extract(summary, '$.group.ru'), '')),"
            " MAX(COALESCE(json_extract(summary, '$.provider.kk'), '')),"
            " MAX(COALESCE(json_extract(summary, '$.provider.ru'), ''))"
            " FROM applications WHERE submitted_at >= ? AND submitted_at < ? GROUP BY 1",
            _bounds(since, until),
        )
        return _named(
            NamedCount(str(k), int(n), kk, ru, pkk, pru) for k, n, kk, ru, pkk, pru in rows
        )

    async def submissions(self, since: datetime | None, until: datetime) -> list[SubmissionRow]:
        """The period's applications, oldest first, as rows for the staff table."""
        rows = await self._rows(
            "SELECT number, submitted_at, status, summary FROM applications"
            " WHERE submitted_at >= ? AND submitted_at < ? ORDER BY submitted_at, number",
            _bounds(since, until),
        )
        return [submission_row(num, at, status, json.loads(s)) for num, at, status, s in rows]

    # --- events, drafts, users -----------------------------------------------------------

    async def events(
        self, kinds: tuple[str, ...], since: datetime | None, until: datetime
    ) -> dict[str, int]:
        """How many events of each of `kinds` happened in the period (0 for none)."""
        marks = ", ".join("?" for _ in kinds)
        rows = await self._rows(
            f"SELECT kind, COUNT(*) FROM events WHERE kind IN ({marks})"
            " AND at >= ? AND at < ? GROUP BY kind",
            (*kinds, *_bounds(since, until)),
        )
        found = {kind: int(n) for kind, n in rows}
        return {kind: found.get(kind, 0) for kind in kinds}

    async def status_changes(self, since: datetime | None, until: datetime) -> list[Count]:
        """`status_changed` events in the period by the status reached."""
        return await self._counts(
            "SELECT COALESCE(json_extract(data, '$.status'), ''), COUNT(*) FROM events"
            " WHERE kind = 'status_changed' AND at >= ? AND at < ? GROUP BY 1",
            _bounds(since, until),
        )

    async def drafts_by_step(self) -> list[Count]:
        """Unfinished drafts now, by the state they rest at (where parents stop)."""
        return await self._counts(
            "SELECT step, COUNT(*) FROM drafts WHERE step IS NOT NULL AND step != ? GROUP BY step",
            (SUBMITTED_STEP,),
        )

    async def blocked(self, since: datetime | None, until: datetime) -> int:
        """Parents who blocked the bot in the period (as noticed when a message bounced)."""
        rows = await self._rows(
            "SELECT COUNT(*) FROM users WHERE blocked_at >= ? AND blocked_at < ?",
            _bounds(since, until),
        )
        return int(rows[0][0])


def _named(counts: Any) -> list[NamedCount]:
    return sorted(counts, key=lambda c: (-c.n, c.name_ru or c.name_kk, c.key))


def read_only_uri(path: Path) -> str:
    """The SQLite URI that opens `path` read-only (never creating it)."""
    return "file:" + quote(os.path.abspath(path)) + "?mode=ro"


@asynccontextmanager
async def open_reports(path: Path) -> AsyncIterator[Reports]:
    """Open the SQLite file at `path` read-only for the duration of the block."""
    # Checked first: a failed aiosqlite.connect leaves its worker thread to die after the loop.
    if not await asyncio.to_thread(os.path.isfile, path):
        raise FileNotFoundError(f"no Kezek database at {path}")
    try:
        db = await aiosqlite.connect(read_only_uri(path), uri=True)
    except sqlite3.OperationalError as exc:
        # mode=ro never creates a file; say which one is missing instead of sqlite's riddle.
        raise FileNotFoundError(f"cannot open the Kezek database at {path}: {exc}") from exc
    try:
        await db.execute("PRAGMA busy_timeout = 5000")
        yield Reports(db)
    finally:
        await db.close()
