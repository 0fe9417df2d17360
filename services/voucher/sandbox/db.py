"""The sandbox's own SQLite file: schema and every query, so a restart keeps all state.

Times are stored as POSIX seconds (REAL) read from the injected clock; JSON columns hold
what the contract returns. One connection, one writer lock: a sandbox needs correctness
under concurrent requests, not throughput.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

SCHEMA = """
CREATE TABLE IF NOT EXISTS otps (
    id          TEXT PRIMARY KEY,
    phone       TEXT NOT NULL,
    code        TEXT NOT NULL,
    created_at  REAL NOT NULL,
    wrong       INTEGER NOT NULL DEFAULT 0,
    used        INTEGER NOT NULL DEFAULT 0,
    replaced    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS otps_by_phone ON otps (phone, created_at);

CREATE TABLE IF NOT EXISTS sessions (
    key         TEXT PRIMARY KEY,          -- sha256 of the session token, never the token
    phone       TEXT NOT NULL,
    expires_at  REAL NOT NULL
);

CREATE TABLE IF NOT EXISTS consents (
    id          TEXT PRIMARY KEY,
    session_key TEXT NOT NULL,
    phone       TEXT NOT NULL,
    iin         TEXT NOT NULL,
    status      TEXT NOT NULL,             -- pending | granted | denied | expired
    created_at  REAL NOT NULL,
    settled_at  REAL
);
CREATE INDEX IF NOT EXISTS consents_by_session ON consents (session_key, iin);

CREATE TABLE IF NOT EXISTS documents (
    id           TEXT PRIMARY KEY,
    phone        TEXT NOT NULL,
    session_key  TEXT NOT NULL,
    kind         TEXT NOT NULL,
    size         INTEGER NOT NULL,
    content_type TEXT NOT NULL,
    sha256       TEXT NOT NULL,
    created_at   REAL NOT NULL
);

CREATE TABLE IF NOT EXISTS applications (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    id             TEXT NOT NULL UNIQUE,
    number         INTEGER NOT NULL UNIQUE,
    child_iin      TEXT NOT NULL,
    queue_type     TEXT NOT NULL,
    academic_year  TEXT NOT NULL,
    status         TEXT NOT NULL,
    queue_position INTEGER,
    status_reason  TEXT,                   -- JSON {kk, ru} or NULL
    deadline       REAL,
    submitted_at   REAL NOT NULL,
    updated_at     REAL NOT NULL,
    body           TEXT NOT NULL           -- the submitted JSON
);
CREATE INDEX IF NOT EXISTS applications_by_child
    ON applications (child_iin, queue_type, academic_year);

CREATE TABLE IF NOT EXISTS changes (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    application_id TEXT NOT NULL,
    number         INTEGER NOT NULL,
    status         TEXT NOT NULL,
    queue_position INTEGER,
    status_reason  TEXT,
    deadline       REAL,
    changed_at     REAL NOT NULL
);

CREATE TABLE IF NOT EXISTS idempotency (
    scope       TEXT NOT NULL,             -- sha256 of the API token
    key         TEXT NOT NULL,
    request     TEXT NOT NULL,             -- the parsed request body, as JSON
    response    TEXT NOT NULL,             -- the 201 body, as JSON
    created_at  REAL NOT NULL,
    PRIMARY KEY (scope, key)
);

CREATE TABLE IF NOT EXISTS inbox (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    phone       TEXT NOT NULL,
    at          REAL NOT NULL,
    channel     TEXT NOT NULL,
    text_kk     TEXT NOT NULL,
    text_ru     TEXT NOT NULL,
    otp_code    TEXT,
    consent_id  TEXT
);
CREATE INDEX IF NOT EXISTS inbox_by_phone ON inbox (phone, seq);
"""

Row = aiosqlite.Row
FIRST_NUMBER = 21792


def _json_or_none(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)


class SandboxDB:
    """All reads and writes of the sandbox state."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._conn: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()

    @property
    def conn(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise RuntimeError("the sandbox database is not open")
        return self._conn

    async def open(self) -> None:
        """Open (and create on first start) the database file."""
        self._path.parent.mkdir(parents=True, exist_ok=True)
        conn = await aiosqlite.connect(self._path, isolation_level=None)
        conn.row_factory = aiosqlite.Row
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute("PRAGMA synchronous=NORMAL")
        await conn.executescript(f"BEGIN;\n{SCHEMA}\nCOMMIT;")  # one commit, not one per table
        self._conn = conn

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """One writer at a time; everything inside commits together or not at all."""
        async with self._write_lock:
            await self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                await self.conn.execute("ROLLBACK")
                raise
            await self.conn.execute("COMMIT")

    async def _one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        async with self.conn.execute(sql, params) as cursor:
            return await cursor.fetchone()

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        async with self.conn.execute(sql, params) as cursor:
            return list(await cursor.fetchall())

    # --- one-time codes -------------------------------------------------------------------

    async def otp_times_since(self, phone: str, since: float) -> list[float]:
        """Creation times of this phone's codes after `since`, newest first."""
        rows = await self._all(
            "SELECT created_at FROM otps WHERE phone = ? AND created_at > ? "
            "ORDER BY created_at DESC",
            (phone, since),
        )
        return [row["created_at"] for row in rows]

    async def add_otp(self, otp_id: str, phone: str, code: str, at: float) -> None:
        """Store a new code; every earlier code of the phone stops working."""
        await self.conn.execute("UPDATE otps SET replaced = 1 WHERE phone = ?", (phone,))
        await self.conn.execute(
            "INSERT INTO otps (id, phone, code, created_at) VALUES (?, ?, ?, ?)",
            (otp_id, phone, code, at),
        )

    async def get_otp(self, otp_id: str) -> Row | None:
        return await self._one("SELECT * FROM otps WHERE id = ?", (otp_id,))

    async def count_wrong_code(self, otp_id: str) -> None:
        await self.conn.execute("UPDATE otps SET wrong = wrong + 1 WHERE id = ?", (otp_id,))

    async def use_otp(self, otp_id: str) -> None:
        await self.conn.execute("UPDATE otps SET used = 1 WHERE id = ?", (otp_id,))

    # --- sessions -------------------------------------------------------------------------

    async def add_session(self, key: str, phone: str, expires_at: float) -> None:
        await self.conn.execute(
            "INSERT INTO sessions (key, phone, expires_at) VALUES (?, ?, ?)",
            (key, phone, expires_at),
        )

    async def session_phone(self, key: str, now: float) -> str | None:
        """The phone of a live session, or None when it is unknown or expired."""
        row = await self._one(
            "SELECT phone FROM sessions WHERE key = ? AND expires_at > ?", (key, now)
        )
        return None if row is None else row["phone"]

    # --- inbox ----------------------------------------------------------------------------

    async def add_message(
        self,
        phone: str,
        at: float,
        channel: str,
        text: dict[str, str],
        *,
        otp_code: str | None = None,
        consent_id: str | None = None,
    ) -> None:
        await self.conn.execute(
            "INSERT INTO inbox (phone, at, channel, text_kk, text_ru, otp_code, consent_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (phone, at, channel, text["kk"], text["ru"], otp_code, consent_id),
        )

    async def inbox(self, phone: str) -> list[Row]:
        return await self._all("SELECT * FROM inbox WHERE phone = ? ORDER BY seq", (phone,))

    # --- consents -------------------------------------------------------------------------

    async def add_consent(
        self, consent_id: str, session_key: str, phone: str, iin: str, at: float
    ) -> None:
        await self.conn.execute(
            "INSERT INTO consents (id, session_key, phone, iin, status, created_at) "
            "VALUES (?, ?, ?, ?, 'pending', ?)",
            (consent_id, session_key, phone, iin, at),
        )

    async def get_consent(self, consent_id: str) -> Row | None:
        return await self._one("SELECT * FROM consents WHERE id = ?", (consent_id,))

    async def session_consents(self, session_key: str, iins: Iterable[str]) -> list[Row]:
        wanted = sorted(set(iins))
        marks = ",".join("?" * len(wanted))
        return await self._all(
            f"SELECT * FROM consents WHERE session_key = ? AND iin IN ({marks})",
            (session_key, *wanted),
        )

    async def settle_consent(self, consent_id: str, status: str, at: float) -> bool:
        """Move a pending consent to `status`; False when it was no longer pending."""
        cursor = await self.conn.execute(
            "UPDATE consents SET status = ?, settled_at = ? WHERE id = ? AND status = 'pending'",
            (status, at, consent_id),
        )
        await cursor.close()
        return cursor.rowcount == 1

    # --- documents ------------------------------------------------------------------------

    async def add_document(self, row: dict[str, Any]) -> None:
        await self.conn.execute(
            "INSERT INTO documents (id, phone, session_key, kind, size, content_type, sha256, "
            "created_at) VALUES (:id, :phone, :session_key, :kind, :size, :content_type, "
            ":sha256, :created_at)",
            row,
        )

    async def phone_documents(self, phone: str, ids: Iterable[str]) -> dict[str, Row]:
        """Those of `ids` that belong to this phone, by id."""
        wanted = sorted(set(ids))
        if not wanted:
            return {}
        marks = ",".join("?" * len(wanted))
        rows = await self._all(
            f"SELECT * FROM documents WHERE phone = ? AND id IN ({marks})", (phone, *wanted)
        )
        return {row["id"]: row for row in rows}

    # --- applications and the changes feed -----------------------------------------------

    async def next_number(self) -> int:
        row = await self._one("SELECT MAX(number) AS top FROM applications")
        top = row["top"] if row is not None else None
        return FIRST_NUMBER if top is None else top + 1

    async def add_application(self, row: dict[str, Any]) -> None:
        """Store a new `submitted` application; its creation is the first item of the feed."""
        await self.conn.execute(
            "INSERT INTO applications (id, number, child_iin, queue_type, academic_year, status, "
            "submitted_at, updated_at, body) VALUES (:id, :number, :child_iin, :queue_type, "
            ":academic_year, 'submitted', :submitted_at, :submitted_at, :body)",
            row,
        )
        await self._record_change(row["id"])

    async def get_application(self, app_id: str) -> Row | None:
        return await self._one("SELECT * FROM applications WHERE id = ?", (app_id,))

    async def active_application(
        self, child_iin: str, queue_type: str, academic_year: str, statuses: Sequence[str]
    ) -> Row | None:
        marks = ",".join("?" * len(statuses))
        return await self._one(
            "SELECT * FROM applications WHERE child_iin = ? AND queue_type = ? "
            f"AND academic_year = ? AND status IN ({marks}) ORDER BY seq LIMIT 1",
            (child_iin, queue_type, academic_year, *statuses),
        )

    async def all_applications(self) -> list[Row]:
        return await self._all("SELECT * FROM applications ORDER BY seq")

    async def set_status(
        self,
        app_id: str,
        status: str,
        queue_position: int | None,
        reason: dict[str, str] | None,
        deadline: float | None,
        at: float,
    ) -> None:
        """Change an application's status and append the change to the feed."""
        reason_json = _json_or_none(reason)
        await self.conn.execute(
            "UPDATE applications SET status = ?, queue_position = ?, status_reason = ?, "
            "deadline = ?, updated_at = ? WHERE id = ?",
            (status, queue_position, reason_json, deadline, at, app_id),
        )
        await self._record_change(app_id)

    async def _record_change(self, app_id: str) -> None:
        """Copy the application's current status into the feed, stamped with updated_at."""
        await self.conn.execute(
            "INSERT INTO changes (application_id, number, status, queue_position, status_reason, "
            "deadline, changed_at) SELECT id, number, status, queue_position, status_reason, "
            "deadline, updated_at FROM applications WHERE id = ?",
            (app_id,),
        )

    async def changes_after(self, seq: int, limit: int) -> list[Row]:
        return await self._all(
            "SELECT * FROM changes WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit)
        )

    # --- idempotency keys -----------------------------------------------------------------

    async def idempotent_result(self, scope: str, key: str, since: float) -> Row | None:
        """The remembered request and 201 body for this key, if younger than `since`."""
        return await self._one(
            "SELECT request, response FROM idempotency "
            "WHERE scope = ? AND key = ? AND created_at > ?",
            (scope, key, since),
        )

    async def remember_result(
        self, scope: str, key: str, request: Any, response: Any, at: float
    ) -> None:
        await self.conn.execute(
            "INSERT OR REPLACE INTO idempotency (scope, key, request, response, created_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (scope, key, _json_or_none(request), _json_or_none(response), at),
        )
