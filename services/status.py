"""After submission: follow each application's status and decide what the parent must be told.

No aiogram here. The bot layer passes a `deliver` coroutine that renders a `StatusPush` in the
parent's language and puts it in the outbox; this module decides *what* happened and keeps the
record straight:

    changes feed page ─┐                    ┌─▶ deliver(push)            (outbox, idempotent)
    webhook item ──────┼─▶ handle_item ─────┼─▶ store.update_application_status
    /status refresh ───┘   (one lock)       └─▶ meta "status-seen:<id>"  (changed_at, cursor)
    after the page: meta "status-cursor" = page.next

Order matters for "never twice, never lost": the push is enqueued before the store changes (a
crash in between re-derives the same push, and its dedup key makes the repeat a no-op), and the
feed cursor moves only after every item of the page is handled. An item older than the last one
applied to that application (a late webhook retry) is ignored, so the status never goes back.

Reminders: 48 h and 24 h before a voucher's deadline, once each; and for a draft left untouched
for a day, at most two gentle nudges that stop as soon as the draft is submitted or cancelled.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiosqlite

from services.clock import Clock
from services.store import Store, StoredApplication
from services.voucher.client import VoucherClient
from services.voucher.errors import ValidationFailed
from services.voucher.models import Application, ChangeItem

log = logging.getLogger("kezek.status")

CURSOR_KEY = "status-cursor"
SEEN_PREFIX = "status-seen:"
DEADLINE_MARK_PREFIX = "status-deadline-reminded:"
DRAFT_REMINDERS_KEY = "status-draft-reminders"

PAGE_LIMIT = 100
MAX_PAGES_PER_POLL = 20  # 2,000 changes per run; the next run goes on from the cursor
DEADLINE_REMINDERS = (24, 48)  # hours before the deadline, tightest first
DRAFT_IDLE = timedelta(hours=24)
DRAFT_MAX_REMINDERS = 2

# Push kinds, one per message the parent can get about an application.
REGISTERED = "registered"
MOVED = "moved"
SUBMITTED = "submitted"
ISSUED = "voucher_issued"
USED = "voucher_used"
EXPIRED = "voucher_expired"
REJECTED = "rejected"
CANCELLED = "cancelled"
REMIND_48H = "remind_48h"
REMIND_24H = "remind_24h"


@dataclass(frozen=True, slots=True)
class StatusPush:
    """One message to a parent about an application, as it stands after the change."""

    kind: str
    dedup_key: str
    application: StoredApplication
    previous_position: int | None = None


@dataclass(frozen=True, slots=True)
class DraftReminder:
    """A nudge for a draft left untouched; `n` is 1 or 2."""

    user_id: int
    step: str
    n: int
    dedup_key: str


@dataclass(frozen=True, slots=True)
class DraftRow:
    user_id: int
    step: str | None
    updated_at: datetime
    submitted: bool


Deliver = Callable[[StatusPush], Awaitable[object]]
DeliverDraft = Callable[[DraftReminder], Awaitable[object]]


def push_kind(before: StoredApplication, item: ChangeItem | Application) -> str | None:
    """What the parent should hear about `item` given the stored status; None: nothing new."""
    if item.status != before.status:
        return REGISTERED if item.status == "registered" else item.status
    if item.status == "registered" and item.queue_position != before.queue_position:
        if item.queue_position is None:
            return None  # the service no longer says a place: nothing useful to tell
        return MOVED if before.queue_position is not None else REGISTERED
    if item.status == "voucher_issued" and item.deadline != before.deadline:
        return ISSUED  # a new deadline (an extension) is worth telling
    return None


def status_dedup_key(item: ChangeItem) -> str:
    """The outbox key of a change: the same whether it came by the feed or by the webhook."""
    return f"status:{item.id}:{item.cursor}"


def child_first_name(summary: dict[str, Any]) -> str:
    """The child's first name from the stored summary ("Surname Name Patronymic")."""
    explicit = summary.get("child_first_name")
    if isinstance(explicit, str) and explicit:
        return explicit
    parts = str(summary.get("child") or "").split()
    if not parts:
        return ""
    # full_name() writes surname, name, patronymic: the name is the second word when present.
    return parts[1] if len(parts) >= 2 else parts[0]


class StatusTracker:
    """Applies status changes to the store and hands the resulting pushes to `deliver`."""

    def __init__(
        self, store: Store, voucher: VoucherClient, clock: Clock, database_path: Path
    ) -> None:
        self._store = store
        self._voucher = voucher
        self._clock = clock
        self._database_path = database_path
        # One process applies changes; the lock keeps a webhook item, a poll and a refresh of
        # the same application from interleaving their read-deliver-write sequences.
        self._apply_lock = asyncio.Lock()
        self._poll_lock = asyncio.Lock()

    # --- the changes feed -------------------------------------------------------------------

    async def poll_once(self, deliver: Deliver) -> int:
        """Read the feed from the stored cursor and handle every item; returns how many."""
        async with self._poll_lock:
            cursor = await self._store.get_meta(CURSOR_KEY)
            handled = 0
            for _ in range(MAX_PAGES_PER_POLL):
                try:
                    page = await self._voucher.list_changes(after=cursor, limit=PAGE_LIMIT)
                except ValidationFailed:
                    if cursor is None:
                        raise
                    # The service no longer knows our cursor (its feed was rebuilt, say). Polling
                    # it forever would stall every push; reading from the start is safe, since
                    # changes already applied are recognised and stay silent.
                    log.error("the changes feed refused our cursor; reading it from the start")
                    cursor = None
                    continue
                for item in page.items:
                    await self.handle_item(item, deliver)
                    handled += 1
                if page.next != cursor:
                    # Only now: every push of this page is in the outbox.
                    await self._store.set_meta(CURSOR_KEY, page.next)
                    cursor = page.next
                if len(page.items) < PAGE_LIMIT:
                    break
            return handled

    async def handle_item(self, item: ChangeItem, deliver: Deliver) -> bool:
        """Apply one change (from the feed or the webhook); True when it changed our record."""
        async with self._apply_lock:
            before = await self._store.get_application(item.id)
            if before is None:
                # Not an application this bot submitted (or the feed predates us): nothing to do.
                log.debug("change %s for an unknown application ignored", item.cursor)
                return False
            seen = await self._seen(item.id)
            if seen is not None and (
                item.cursor == seen.get("cursor")
                or item.changed_at < datetime.fromisoformat(seen["changed_at"])
            ):
                return False  # already applied, or older than what we hold
            after = replace(
                before,
                status=item.status,
                queue_position=item.queue_position,
                status_reason=item.status_reason.model_dump() if item.status_reason else None,
                deadline=item.deadline,
            )
            kind = push_kind(before, item)
            if kind is not None:
                await deliver(
                    StatusPush(kind, status_dedup_key(item), after, before.queue_position)
                )
            await self._record(after, item.changed_at, item.cursor)
            log.info("application %s: %s -> %s", item.number, before.status, item.status)
            return True

    async def refresh(self, application_id: str) -> StoredApplication | None:
        """Ask the service for one application now and store what it says (no push)."""
        current = await self._voucher.get_application(application_id)
        async with self._apply_lock:
            before = await self._store.get_application(application_id)
            if before is None:
                return None
            seen = await self._seen(application_id)
            if seen is not None and current.updated_at < datetime.fromisoformat(seen["changed_at"]):
                return before  # the answer is older than a change we already applied
            after = replace(
                before,
                status=current.status,
                queue_position=current.queue_position,
                status_reason=current.status_reason.model_dump() if current.status_reason else None,
                deadline=current.deadline,
            )
            await self._record(after, current.updated_at, None)
            return after

    async def _seen(self, application_id: str) -> dict[str, Any] | None:
        raw = await self._store.get_meta(SEEN_PREFIX + application_id)
        return json.loads(raw) if raw else None

    async def _record(
        self, after: StoredApplication, changed_at: datetime, cursor: str | None
    ) -> None:
        await self._store.update_application_status(
            after.id,
            status=after.status,
            queue_position=after.queue_position,
            status_reason=after.status_reason,
            deadline=after.deadline,
        )
        seen = {"changed_at": changed_at.astimezone(UTC).isoformat(), "cursor": cursor}
        await self._store.set_meta(SEEN_PREFIX + after.id, json.dumps(seen))

    # --- reminders --------------------------------------------------------------------------

    async def deadline_reminders(self, deliver: Deliver) -> int:
        """Remind of a voucher's deadline 48 h and 24 h before it, once each; returns how many."""
        now = self._clock.now()
        sent = 0
        async with open_scan(self._database_path) as scan:
            candidates = await scan.issued_vouchers()
        for application_id in candidates:
            app = await self._store.get_application(application_id)
            if app is None or app.status != "voucher_issued" or app.deadline is None:
                continue
            hours = await self._due_threshold(app, now)
            if hours is None:
                continue
            stamp = app.deadline.astimezone(UTC).isoformat()
            key = f"deadline:{app.id}:{stamp}:{hours}"
            mark_key = DEADLINE_MARK_PREFIX + app.id
            marks = json.loads(await self._store.get_meta(mark_key) or "[]")
            if key in marks:
                continue
            kind = REMIND_24H if hours == 24 else REMIND_48H
            await deliver(StatusPush(kind, key, app))
            # Only the marks of the current deadline matter; older ones are dropped here.
            kept = [m for m in marks if m.startswith(f"deadline:{app.id}:{stamp}:")]
            await self._store.set_meta(mark_key, json.dumps([*kept, key]))
            sent += 1
        return sent

    async def _due_threshold(self, app: StoredApplication, now: datetime) -> int | None:
        """24 or 48 when that reminder is due now, else None."""
        assert app.deadline is not None
        left = app.deadline - now
        if left <= timedelta(0):
            return None
        seen = await self._seen(app.id)
        issued_at = datetime.fromisoformat(seen["changed_at"]) if seen else None
        for hours in DEADLINE_REMINDERS:
            window = timedelta(hours=hours)
            if left > window:
                continue
            if issued_at is not None and app.deadline - issued_at <= window:
                # The voucher came with less than this much time: its own message said the
                # deadline, and a "two days left" right after it would only confuse.
                return None
            return hours
        return None

    async def draft_reminders(self, deliver: DeliverDraft, steps: Collection[str]) -> int:
        """Nudge drafts idle for 24 h, at most twice each; `steps` are the ones worth a nudge."""
        now = self._clock.now()
        book: dict[str, dict[str, Any]] = json.loads(
            await self._store.get_meta(DRAFT_REMINDERS_KEY) or "{}"
        )
        async with open_scan(self._database_path) as scan:
            rows = await scan.drafts()
        kept: dict[str, dict[str, Any]] = {}
        sent = 0
        for row in rows:
            if row.submitted or row.step not in steps:
                continue  # a new draft after this one starts its own count
            uid = str(row.user_id)
            entry = book.get(uid, {"count": 0, "last": None})
            count = int(entry["count"])
            if count >= DRAFT_MAX_REMINDERS:
                kept[uid] = entry
                continue
            last = datetime.fromisoformat(entry["last"]) if entry.get("last") else None
            since = max(row.updated_at, last) if last else row.updated_at
            if now - since < DRAFT_IDLE or not await self._still_open(row.user_id):
                if count:
                    kept[uid] = entry
                continue
            n = count + 1
            stamp = row.updated_at.astimezone(UTC).isoformat()
            await deliver(DraftReminder(row.user_id, row.step or "", n, f"draft:{uid}:{stamp}:{n}"))
            kept[uid] = {"count": n, "last": now.astimezone(UTC).isoformat()}
            sent += 1
        # Users without an open draft (cancelled, submitted) drop out, and with them their count.
        if kept != book:
            await self._store.set_meta(DRAFT_REMINDERS_KEY, json.dumps(kept))
        return sent

    async def _still_open(self, user_id: int) -> bool:
        # The scan is a snapshot: /cancel or a submission may have come since.
        if await self._store.is_blocked(user_id):
            return False
        draft = await self._store.get_draft(user_id)
        return bool(draft) and "application" not in draft


# --- read-only scans the Store has no query for -------------------------------------------------


class _Scan:
    """Whole-table reads on a read-only connection of their own (see services/reports.py)."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    async def issued_vouchers(self) -> list[str]:
        """Ids of applications whose voucher waits for confirmation."""
        async with self._db.execute(
            "SELECT id FROM applications WHERE status = 'voucher_issued'"
            " AND deadline IS NOT NULL ORDER BY deadline"
        ) as cur:
            return [row[0] for row in await cur.fetchall()]

    async def drafts(self) -> list[DraftRow]:
        """Every draft with its step and last change."""
        async with self._db.execute(
            # `submitted` is kept plain by the Store: the draft itself (`data`) is sealed.
            "SELECT user_id, step, updated_at, submitted FROM drafts ORDER BY updated_at"
        ) as cur:
            rows = await cur.fetchall()
        return [DraftRow(int(r[0]), r[1], datetime.fromisoformat(r[2]), bool(r[3])) for r in rows]


def _read_only_uri(path: Path) -> str:
    # mode=ro: a scan can never change the record, even by mistake.
    return "file:" + quote(os.path.abspath(path)) + "?mode=ro"


@asynccontextmanager
async def open_scan(database_path: Path) -> AsyncIterator[_Scan]:
    """A read-only connection to the bot's SQLite file for one job run."""
    db = await aiosqlite.connect(_read_only_uri(database_path), uri=True)
    try:
        # Read-only: WAL, synchronous and secure_delete are the writers' business (services/
        # store.py); a reader only waits out a writer's lock instead of failing at once.
        await db.execute("PRAGMA busy_timeout = 5000")
        yield _Scan(db)
    finally:
        await db.close()
