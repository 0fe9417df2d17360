"""Kezek's own tables: users (language), drafts (what the parent confirmed so far), applications.

The domain tables are the record; FSM data is only what the current step needs. Reads are served
from an in-process cache after the first load (each aiosqlite call is a thread hop), and every
write commits before it returns, so what a parent was told is saved is on disk.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite

from services.clock import Clock, SystemClock

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    user_id     INTEGER PRIMARY KEY,
    locale      TEXT NOT NULL,
    blocked_at  TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS drafts (
    user_id     INTEGER PRIMARY KEY,
    step        TEXT,
    data        TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS applications (
    id            TEXT PRIMARY KEY,
    user_id       INTEGER NOT NULL,
    chat_id       INTEGER NOT NULL,
    number        TEXT NOT NULL,
    status        TEXT NOT NULL,
    queue_position INTEGER,
    status_reason TEXT,
    deadline      TEXT,
    summary       TEXT NOT NULL,
    submitted_at  TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS applications_user ON applications(user_id);
CREATE TABLE IF NOT EXISTS events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    kind    TEXT NOT NULL,
    at      TEXT NOT NULL,
    data    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_kind_at ON events(kind, at);
CREATE TABLE IF NOT EXISTS meta (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class StoredApplication:
    id: str
    user_id: int
    chat_id: int
    number: str
    status: str
    summary: dict[str, Any]
    submitted_at: datetime
    queue_position: int | None = None
    status_reason: dict[str, str] | None = None
    deadline: datetime | None = None


class Store:
    """Repository over one SQLite file; open with `await Store.open(path)`."""

    def __init__(self, db: aiosqlite.Connection, clock: Clock) -> None:
        self._db = db
        self._clock = clock
        self._locales: dict[int, str] = {}
        self._drafts: dict[int, dict[str, Any]] = {}

    @classmethod
    async def open(cls, path: Path, clock: Clock | None = None) -> Store:
        db = await aiosqlite.connect(path)
        await db.executescript(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=5000;"
            "PRAGMA foreign_keys=ON;" + SCHEMA
        )
        await db.commit()
        return cls(db, clock or SystemClock())

    async def close(self) -> None:
        await self._db.close()

    def _now(self) -> str:
        # UTC everywhere in the tables, so that text comparison orders instants correctly.
        return _utc(self._clock.now())

    # --- users --------------------------------------------------------------------------

    async def get_locale(self, user_id: int) -> str | None:
        if user_id in self._locales:
            return self._locales[user_id]
        async with self._db.execute("SELECT locale FROM users WHERE user_id = ?", (user_id,)) as c:
            row = await c.fetchone()
        if row is not None:
            self._locales[user_id] = row[0]
        return row[0] if row else None

    async def set_locale(self, user_id: int, locale: str) -> None:
        now = self._now()
        await self._db.execute(
            "INSERT INTO users (user_id, locale, created_at, updated_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(user_id) DO UPDATE SET locale = excluded.locale,"
            " updated_at = excluded.updated_at",
            (user_id, locale, now, now),
        )
        await self._db.commit()
        self._locales[user_id] = locale

    # --- drafts -------------------------------------------------------------------------

    async def get_draft(self, user_id: int) -> dict[str, Any]:
        """The parent's draft (a copy: change it through `update_draft`)."""
        if user_id not in self._drafts:
            async with self._db.execute(
                "SELECT data FROM drafts WHERE user_id = ?", (user_id,)
            ) as cur:
                row = await cur.fetchone()
            self._drafts[user_id] = json.loads(row[0]) if row else {}
        return json.loads(json.dumps(self._drafts[user_id]))

    async def update_draft(
        self, user_id: int, step: str | None = None, **fields: Any
    ) -> dict[str, Any]:
        """Merge `fields` into the draft (a value of None removes the key) and save it."""
        draft = await self.get_draft(user_id)
        for key, value in fields.items():
            if value is None:
                draft.pop(key, None)
            else:
                draft[key] = value
        await self._save_draft(user_id, draft, step)
        return draft

    async def replace_draft(
        self, user_id: int, draft: dict[str, Any], step: str | None = None
    ) -> None:
        await self._save_draft(user_id, draft, step)

    async def _save_draft(self, user_id: int, draft: dict[str, Any], step: str | None) -> None:
        payload = json.dumps(draft, ensure_ascii=False, separators=(",", ":"))
        await self._db.execute(
            "INSERT INTO drafts (user_id, step, data, updated_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(user_id) DO UPDATE SET data = excluded.data,"
            " step = COALESCE(excluded.step, drafts.step), updated_at = excluded.updated_at",
            (user_id, step, payload, self._now()),
        )
        await self._db.commit()
        self._drafts[user_id] = json.loads(payload)

    async def delete_draft(self, user_id: int) -> None:
        await self._db.execute("DELETE FROM drafts WHERE user_id = ?", (user_id,))
        await self._db.commit()
        self._drafts[user_id] = {}

    # --- applications -------------------------------------------------------------------

    async def add_application(
        self,
        *,
        application_id: str,
        user_id: int,
        chat_id: int,
        number: str,
        status: str,
        submitted_at: datetime,
        summary: dict[str, Any],
    ) -> None:
        """Record a submitted application; a repeated id (a replayed answer) changes nothing."""
        await self._db.execute(
            "INSERT OR IGNORE INTO applications"
            " (id, user_id, chat_id, number, status, summary, submitted_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                application_id,
                user_id,
                chat_id,
                number,
                status,
                json.dumps(summary, ensure_ascii=False),
                _utc(submitted_at),
                self._now(),
            ),
        )
        await self._db.commit()

    async def list_applications(self, user_id: int) -> list[StoredApplication]:
        async with self._db.execute(
            _SELECT_APPLICATION + " WHERE user_id = ? ORDER BY submitted_at", (user_id,)
        ) as cur:
            rows = await cur.fetchall()
        return [_application(r) for r in rows]

    async def get_application(self, application_id: str) -> StoredApplication | None:
        async with self._db.execute(
            _SELECT_APPLICATION + " WHERE id = ?", (application_id,)
        ) as cur:
            row = await cur.fetchone()
        return _application(row) if row else None

    async def update_application_status(
        self,
        application_id: str,
        *,
        status: str,
        queue_position: int | None,
        status_reason: dict[str, str] | None,
        deadline: datetime | None,
    ) -> StoredApplication | None:
        """Record a status change; returns the application as it was before, or None if unknown."""
        before = await self.get_application(application_id)
        if before is None:
            return None
        await self._db.execute(
            "UPDATE applications SET status = ?, queue_position = ?, status_reason = ?,"
            " deadline = ?, updated_at = ? WHERE id = ?",
            (
                status,
                queue_position,
                json.dumps(status_reason, ensure_ascii=False) if status_reason else None,
                _utc(deadline) if deadline else None,
                self._now(),
                application_id,
            ),
        )
        await self._db.commit()
        return before

    # --- events for the staff digest (no personal data: ids and codes only) --------------

    async def record_event(self, kind: str, **data: str | int | None) -> None:
        """Note something staff count (consent_denied, consent_expired, …) at the clock's now."""
        await self._db.execute(
            "INSERT INTO events (kind, at, data) VALUES (?, ?, ?)",
            (kind, self._now(), json.dumps(data, ensure_ascii=False)),
        )
        await self._db.commit()

    async def count_events(self, since: datetime, until: datetime) -> dict[str, int]:
        async with self._db.execute(
            "SELECT kind, COUNT(*) FROM events WHERE at >= ? AND at < ? GROUP BY kind",
            (_utc(since), _utc(until)),
        ) as cur:
            return {kind: count for kind, count in await cur.fetchall()}

    # --- users who blocked the bot, and small persistent values -------------------------

    async def mark_blocked(self, user_id: int) -> None:
        await self._db.execute(
            "UPDATE users SET blocked_at = ? WHERE user_id = ?", (self._now(), user_id)
        )
        await self._db.commit()

    async def mark_unblocked(self, user_id: int) -> None:
        await self._db.execute("UPDATE users SET blocked_at = NULL WHERE user_id = ?", (user_id,))
        await self._db.commit()

    async def is_blocked(self, user_id: int) -> bool:
        async with self._db.execute(
            "SELECT blocked_at IS NOT NULL FROM users WHERE user_id = ?", (user_id,)
        ) as cur:
            row = await cur.fetchone()
        return bool(row and row[0])

    async def get_meta(self, key: str) -> str | None:
        async with self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)) as cur:
            row = await cur.fetchone()
        return row[0] if row else None

    async def set_meta(self, key: str, value: str) -> None:
        await self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?)"
            " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )
        await self._db.commit()


def _utc(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat()


_SELECT_APPLICATION = (
    "SELECT id, user_id, chat_id, number, status, summary, submitted_at, queue_position,"
    " status_reason, deadline FROM applications"
)


def _application(row: Any) -> StoredApplication:
    return StoredApplication(
        id=row[0],
        user_id=row[1],
        chat_id=row[2],
        number=row[3],
        status=row[4],
        summary=json.loads(row[5]),
        submitted_at=datetime.fromisoformat(row[6]),
        queue_position=row[7],
        status_reason=json.loads(row[8]) if row[8] else None,
        deadline=datetime.fromisoformat(row[9]) if row[9] else None,
    )
