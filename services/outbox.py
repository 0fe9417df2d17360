"""The notification outbox: every message the bot sends on its own initiative is a row first.

Pushes, reminders and digests are written here by whoever decides to send them; the sender
(`services.sender`) delivers them within Telegram's limits. A row's life:

    enqueue ──▶ pending ──mark──▶ sending ──▶ sent
                  ▲                  │  ├──▶ failed   (permanent error, too many attempts,
                  └──── retry ───────┘  │              or interrupted: see services.sender)
                                        └──▶ blocked  (the user blocked the bot: with every
                                                       pending row of that chat)

`dedup_key` is UNIQUE, so one event reported twice (webhook and polling) is stored once.
Per chat, rows go out in the order of their *place* (`due_at`: `not_before`, or the enqueue
time) and then of their id; a row that waits for a retry keeps its place and holds back the
later rows of its chat. Only the sender changes a row after it is written.

Times are UTC ISO-8601 text with microseconds, so text order is time order. Rows may hold
names (the text goes to the parent) and digests carry CSVs: `text` and `file_data` are sealed
with the `DataCipher` given to `open` (bound to the row's dedup key), and opened only when the
sender takes the row. Errors hold no personal data, and nothing here logs text.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite

from services.clock import Clock
from services.crypto import MIN_BLOB_BYTES, DataCipher, row_context
from services.sqlite import close_on_error, open_database

STATUSES = ("pending", "sending", "sent", "failed", "blocked")
INTERRUPTED = "interrupted: the process stopped during the call, delivery unknown"
BLOCKED = "blocked: the user blocked the bot"

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    dedup_key       TEXT NOT NULL UNIQUE,
    chat_id         INTEGER NOT NULL,
    kind            TEXT NOT NULL,
    text            BLOB NOT NULL,  -- sealed (clear only without a cipher)
    markup          TEXT,
    file_name       TEXT,
    file_data       BLOB,
    status          TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'blocked')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    due_at          TEXT NOT NULL,
    next_attempt_at TEXT NOT NULL,
    last_error      TEXT,
    created_at      TEXT NOT NULL,
    sent_at         TEXT,
    message_id      INTEGER
);
-- Partial indexes hold only open rows, so they stay small however many rows were sent.
CREATE INDEX IF NOT EXISTS outbox_queue
    ON outbox(due_at, id, chat_id, next_attempt_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS outbox_chat
    ON outbox(chat_id, due_at, id) WHERE status IN ('pending', 'sending');
CREATE INDEX IF NOT EXISTS outbox_retry
    ON outbox(next_attempt_at) WHERE status = 'pending';
CREATE TABLE IF NOT EXISTS outbox_blocked (
    chat_id     INTEGER PRIMARY KEY,
    blocked_at  TEXT NOT NULL
);
"""

_INSERT = (
    "INSERT INTO outbox (dedup_key, chat_id, kind, text, markup, file_name, file_data, status,"
    " due_at, next_attempt_at, created_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?,"
    " CASE WHEN EXISTS (SELECT 1 FROM outbox_blocked WHERE chat_id = ?)"
    " THEN 'blocked' ELSE 'pending' END, ?, ?, ?)"
    " ON CONFLICT(dedup_key) DO NOTHING"
)

# The heads of the chats: due pending rows with no earlier open row (pending, or in flight) in
# their chat. Candidates stream in place order (a co-routine, not a temp table, so the scan
# stops at `limit` heads) and are capped, so a chat with a huge backlog costs a bounded scan;
# a chat whose head lies past the cap waits until the rows before it are gone.
_DUE = """
WITH cand AS NOT MATERIALIZED (
    SELECT id, chat_id, due_at, next_attempt_at FROM outbox
    WHERE status = 'pending' AND due_at <= :now
    ORDER BY due_at, id LIMIT :scan
)
SELECT o.id, o.chat_id, o.kind, o.text, o.markup, o.file_name, o.file_data, o.attempts,
       o.dedup_key, o.due_at
FROM cand AS c CROSS JOIN outbox AS o ON o.id = c.id
WHERE c.next_attempt_at <= :now
  AND NOT EXISTS (
    SELECT 1 FROM outbox AS p
    WHERE p.chat_id = c.chat_id AND p.status IN ('pending', 'sending')
      AND (p.due_at, p.id) < (c.due_at, c.id)
  )
LIMIT :limit
"""

# One statement for every change the sender makes to a row, so a batch of them is one
# `executemany`: NULL parameters leave a column as it is.
_UPDATE = (
    "UPDATE outbox SET status = ?, attempts = attempts + ?,"
    " next_attempt_at = COALESCE(?, next_attempt_at), last_error = COALESCE(?, last_error),"
    " sent_at = COALESCE(?, sent_at), message_id = COALESCE(?, message_id) WHERE id = ?"
)


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One row as the sender hands it to `deliver`."""

    id: int
    chat_id: int
    kind: str
    text: str
    markup: dict[str, Any] | None = None  # InlineKeyboardMarkup.model_dump(mode="json")
    attachment: tuple[str, bytes] | None = None  # (file name, bytes): sent as a document
    attempts: int = 0  # calls already made for this row, not counting this one
    dedup_key: str = ""


@dataclass(frozen=True, slots=True)
class OutboxRecord:
    """Where a row stands (for tests, operators and callers that want to know)."""

    id: int
    chat_id: int
    kind: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    sent_at: datetime | None
    message_id: int | None


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message to enqueue, for `enqueue_many`."""

    chat_id: int
    text: str
    kind: str
    dedup_key: str
    markup: dict[str, Any] | None = None
    attachment: tuple[str, bytes] | None = None
    not_before: datetime | None = None


@dataclass(frozen=True, slots=True)
class RowUpdate:
    """A change the sender makes to one row; None leaves a column as it is."""

    id: int
    status: str
    attempts_delta: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    sent_at: datetime | None = None
    message_id: int | None = None

    def params(self) -> tuple[Any, ...]:
        """The parameters of `_UPDATE`."""
        return (
            self.status,
            self.attempts_delta,
            iso(self.next_attempt_at) if self.next_attempt_at else None,
            self.last_error,
            iso(self.sent_at) if self.sent_at else None,
            self.message_id,
            self.id,
        )


class Outbox:
    """The `outbox` table on its own connection; open with `await Outbox.open(path, clock)`."""

    def __init__(
        self, db: aiosqlite.Connection, clock: Clock, cipher: DataCipher | None = None
    ) -> None:
        self._db = db
        self._clock = clock
        self._cipher = cipher
        self._listeners: list[Callable[[], None]] = []
        # One connection is shared by enqueuers and the sender: a lock keeps each writer's
        # statements and its commit together, so one never commits (or counts) another's.
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path, clock: Clock, *, cipher: DataCipher | None = None) -> Outbox:
        """Open (and create if needed) the outbox tables in the bot's SQLite file.

        Without `cipher` texts stay in clear: for tests of the outbox alone; the bot always
        passes one (`bot.app.open_app`).
        """
        db = await open_database(path, schema=SCHEMA)
        async with close_on_error(db):
            outbox = cls(db, clock, cipher)
            await outbox._seal_old_rows()
        return outbox

    async def close(self) -> None:
        """Close the connection; every write has been committed already."""
        await self._db.close()

    def subscribe(self, listener: Callable[[], None]) -> None:
        """Call `listener` after every enqueue that stored something (the sender wakes up)."""
        self._listeners.append(listener)

    # --- writers --------------------------------------------------------------------------

    async def enqueue(
        self,
        *,
        chat_id: int,
        text: str,
        kind: str,
        dedup_key: str,
        markup: dict[str, Any] | None = None,
        attachment: tuple[str, bytes] | None = None,
        not_before: datetime | None = None,
    ) -> bool:
        """Store a message to send; False when `dedup_key` is already there (nothing changes)."""
        message = Outgoing(chat_id, text, kind, dedup_key, markup, attachment, not_before)
        return await self.enqueue_many([message]) == 1

    async def enqueue_many(self, messages: Iterable[Outgoing]) -> int:
        """Store many messages in one transaction; returns how many were new."""
        now = iso(self._clock.now())
        rows = [_insert_params(m, now, self._cipher) for m in messages]
        async with self._lock:
            try:
                cur = await self._db.executemany(_INSERT, rows)
                added = max(cur.rowcount, 0)  # summed over the rows; a duplicate adds 0
                await self._db.commit()
            except Exception:
                await self._db.rollback()
                raise
        if added:
            for listener in self._listeners:
                listener()
        return added

    async def forget_chat(self, chat_id: int) -> int:
        """Delete every row of this chat and its blocked mark (/forget); returns how many rows.

        A row in flight (`sending`) goes too: the sender's later update of it changes nothing.
        """
        async with self._lock:
            try:
                cur = await self._db.execute("DELETE FROM outbox WHERE chat_id = ?", (chat_id,))
                await self._db.execute("DELETE FROM outbox_blocked WHERE chat_id = ?", (chat_id,))
                await self._db.commit()
            except Exception:
                await self._db.rollback()
                raise
        return max(cur.rowcount, 0)

    async def scrub_finished(self, before: datetime) -> int:
        """Empty the text and file of rows finished (sent, failed, blocked) before `before`.

        The row itself stays: its dedup key keeps a replayed event from being sent again. The
        text becomes a sealed empty string, so every row still opens. Returns how many rows.
        """
        empty = MIN_BLOB_BYTES if self._cipher is not None else 0
        async with self._lock:
            async with self._db.execute(
                "SELECT id, dedup_key FROM outbox"
                " WHERE status IN ('sent', 'failed', 'blocked') AND created_at < ?"
                " AND (length(text) > ? OR file_data IS NOT NULL)",
                (iso(before), empty),
            ) as cur:
                rows = list(await cur.fetchall())
            if not rows:
                return 0
            try:
                await self._db.executemany(
                    "UPDATE outbox SET text = ?, file_data = NULL WHERE id = ?",
                    [(_seal_text(self._cipher, "", key), row_id) for row_id, key in rows],
                )
                await self._db.commit()
            except Exception:
                await self._db.rollback()
                raise
        return len(rows)

    async def _seal_old_rows(self) -> None:
        """At open: seal texts and files written in clear (older files) or with a retired key."""
        cipher = self._cipher
        if cipher is None:
            return
        # Text and file are always sealed together, with the same key: the text tells for both.
        async with self._db.execute(
            "SELECT id, dedup_key, text, file_data FROM outbox"
            " WHERE typeof(text) != 'blob' OR substr(text, 2, 8) != ?",
            (cipher.key_id,),
        ) as cur:
            rows = list(await cur.fetchall())
        updates = []
        for row_id, dedup_key, text, file_data in rows:
            legacy = isinstance(text, str)
            clear_text = (
                text.encode("utf-8")
                if legacy
                else cipher.decrypt(text, _context("text", dedup_key))
            )
            clear_file = None
            if file_data is not None:
                clear_file = (
                    bytes(file_data)
                    if legacy
                    else cipher.decrypt(file_data, _context("file_data", dedup_key))
                )
            updates.append(
                (
                    _seal(cipher, clear_text, "text", dedup_key),
                    _seal(cipher, clear_file, "file_data", dedup_key),
                    row_id,
                )
            )
        if updates:
            await self._db.executemany(
                "UPDATE outbox SET text = ?, file_data = ? WHERE id = ?", updates
            )
        await self._db.commit()

    async def unblock(self, chat_id: int) -> None:
        """The user talks to the bot again: new messages to this chat are sent again."""
        async with self._lock:
            await self._db.execute("DELETE FROM outbox_blocked WHERE chat_id = ?", (chat_id,))
            await self._db.commit()

    # --- readers --------------------------------------------------------------------------

    async def counts(self) -> dict[str, int]:
        """How many rows are in each status (every status present, zeros included)."""
        counts = dict.fromkeys(STATUSES, 0)
        async with self._db.execute("SELECT status, COUNT(*) FROM outbox GROUP BY status") as cur:
            for status, count in await cur.fetchall():
                counts[status] = count
        return counts

    async def get(self, dedup_key: str) -> OutboxRecord | None:
        """Where the row of `dedup_key` stands, or None."""
        async with self._db.execute(
            "SELECT id, chat_id, kind, status, attempts, next_attempt_at, last_error, sent_at,"
            " message_id FROM outbox WHERE dedup_key = ?",
            (dedup_key,),
        ) as cur:
            row = await cur.fetchone()
        if row is None:
            return None
        return OutboxRecord(
            id=row[0],
            chat_id=row[1],
            kind=row[2],
            status=row[3],
            attempts=row[4],
            next_attempt_at=datetime.fromisoformat(row[5]),
            last_error=row[6],
            sent_at=datetime.fromisoformat(row[7]) if row[7] else None,
            message_id=row[8],
        )

    async def is_blocked(self, chat_id: int) -> bool:
        """True once a delivery to this chat found the bot blocked (until `unblock`)."""
        async with self._db.execute(
            "SELECT 1 FROM outbox_blocked WHERE chat_id = ?", (chat_id,)
        ) as cur:
            return await cur.fetchone() is not None

    # --- the sender's side ----------------------------------------------------------------

    async def recover(self) -> int:
        """Settle rows left `sending` by a process that died mid-call: `failed`, never resent."""
        async with self._lock:
            cur = await self._db.execute(
                "UPDATE outbox SET status = 'failed', last_error = ? WHERE status = 'sending'",
                (INTERRUPTED,),
            )
            await self._db.commit()
        return cur.rowcount

    async def due(
        self, now: datetime, limit: int, *, scan: int | None = None
    ) -> list[OutboxMessage]:
        """Up to `limit` rows to send now, one per chat (its head), in place order."""
        params = {"now": iso(now), "limit": limit, "scan": scan or max(limit * 50, 1000)}
        async with self._db.execute(_DUE, params) as cur:
            rows = list(await cur.fetchall())
        rows.sort(key=lambda r: (r[9], r[0]))  # SQL promises no order without ORDER BY
        return [
            OutboxMessage(
                id=r[0],
                chat_id=r[1],
                kind=r[2],
                text=_open_text(self._cipher, r[3], r[8]),
                markup=json.loads(r[4]) if r[4] else None,
                attachment=(
                    (r[5], _open_file(self._cipher, r[6], r[8])) if r[5] is not None else None
                ),
                attempts=r[7],
                dedup_key=r[8],
            )
            for r in rows
        ]

    async def next_due(self, now: datetime) -> datetime | None:
        """The earliest retry or `not_before` after `now` among pending rows, if any."""
        async with self._db.execute(
            "SELECT MIN(next_attempt_at) FROM outbox"
            " WHERE status = 'pending' AND next_attempt_at > ?",
            (iso(now),),
        ) as cur:
            row = await cur.fetchone()
        return datetime.fromisoformat(row[0]) if row and row[0] else None

    async def has_open(self) -> bool:
        """True while any row is pending or in flight."""
        async with self._db.execute(
            "SELECT EXISTS (SELECT 1 FROM outbox WHERE status IN ('pending', 'sending'))"
        ) as cur:
            row = await cur.fetchone()
        return bool(row and row[0])

    async def write(self, updates: Sequence[RowUpdate], *, block_chats: Sequence[int] = ()) -> None:
        """Apply the sender's changes in one transaction (one commit, one fsync).

        For each of `block_chats`, every pending row of the chat becomes `blocked` and the chat
        is remembered, so that later enqueues to it are stored as `blocked` too.
        """
        async with self._lock:
            try:
                if updates:
                    await self._db.executemany(_UPDATE, [u.params() for u in updates])
                if block_chats:
                    now = iso(self._clock.now())
                    await self._db.executemany(
                        "UPDATE outbox SET status = 'blocked', last_error = ?"
                        " WHERE chat_id = ? AND status = 'pending'",
                        [(BLOCKED, c) for c in block_chats],
                    )
                    await self._db.executemany(
                        "INSERT OR IGNORE INTO outbox_blocked (chat_id, blocked_at) VALUES (?, ?)",
                        [(c, now) for c in block_chats],
                    )
                await self._db.commit()
            except Exception:
                await self._db.rollback()  # all or nothing: the sender keeps what failed
                raise


def iso(ts: datetime) -> str:
    """UTC ISO-8601 with microseconds always present, so that text order is time order."""
    return ts.astimezone(UTC).isoformat(timespec="microseconds")


def _context(column: str, dedup_key: str) -> str:
    # Bound to the dedup key: unique, and known before the row has an id.
    return row_context(f"outbox.{column}", dedup_key)


def _seal(cipher: DataCipher | None, value: bytes | None, column: str, key: str) -> Any:
    if value is None or cipher is None:
        return value
    return cipher.encrypt(value, _context(column, key))


def _seal_text(cipher: DataCipher | None, text: str, key: str) -> str | bytes:
    return text if cipher is None else cipher.encrypt_text(text, _context("text", key))


def _open_text(cipher: DataCipher | None, stored: str | bytes, key: str) -> str:
    """A row's text: clear text is a str, sealed text a blob (so the two cannot be confused)."""
    if cipher is None:
        if not isinstance(stored, str):
            raise ValueError("outbox.text is encrypted: DATA_KEY is needed to read it")
        return stored
    if isinstance(stored, str):
        # `_seal_old_rows` sealed every clear row at open: one now was injected.
        raise ValueError("outbox.text: a value in clear where a sealed one belongs")
    return cipher.decrypt_text(stored, _context("text", key))


def _open_file(cipher: DataCipher | None, stored: bytes, key: str) -> bytes:
    """A row's file; sealed whenever the row's text is (checked by `_open_text` first)."""
    if cipher is None:
        return bytes(stored)
    return cipher.decrypt(stored, _context("file_data", key))


def _insert_params(m: Outgoing, now: str, cipher: DataCipher | None = None) -> tuple[Any, ...]:
    if m.not_before is not None and m.not_before.tzinfo is None:
        raise ValueError("not_before must be timezone-aware")
    due = iso(m.not_before) if m.not_before else now
    markup = json.dumps(m.markup, ensure_ascii=False, separators=(",", ":")) if m.markup else None
    file_name, file_data = m.attachment if m.attachment else (None, None)
    return (
        m.dedup_key,
        m.chat_id,
        m.kind,
        _seal_text(cipher, m.text, m.dedup_key),
        markup,
        file_name,
        _seal(cipher, file_data, "file_data", m.dedup_key),
        m.chat_id,
        due,
        due,
        now,
    )
