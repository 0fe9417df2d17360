"""The notification outbox: every message the bot sends on its own initiative is a row first.

Pushes, reminders and digests are written here by whoever decides to send them; the sender
(`services.sender`) delivers them within Telegram's limits. A row's life:

    enqueue ──▶ pending ──claim──▶ sending ──▶ sent
                  ▲                   │  ├──▶ failed   (permanent error, too many attempts,
                  └──── retry ────────┘  │              or interrupted: see services.sender)
                                         └──▶ blocked  (the user blocked the bot: with every
                                                        pending row of that chat)

`dedup_key` is UNIQUE, so one event reported twice (webhook and polling) is stored once.
Per chat, rows go out in the order of their *place* (`due_at`: `not_before`, or the enqueue
time) and then of their id; a row that waits for a retry keeps its place and holds back the
later rows of its chat. Only the sender changes a row after it is written.

Priority. A row that answers a parent who is in the chat right now (the confirmation of an
application, or its refusal: `ANSWER_KINDS`) has `priority` 1, a push 0. Among chats, the sender
takes first the chats that hold an answer, in the answers' place order, and then the others;
within a chat the order above never changes, so an answer queued behind a push of its own chat
lifts that push along with it.

Writes go through the process's `SQLiteWriter` (one job, one transaction each, shared commits);
reads are single statements on a read connection of their own, run to the end in one hop.

Times are UTC ISO-8601 text with microseconds, so text order is time order. Rows may hold
names (the text goes to the parent) and digests carry CSVs: `text` and `file_data` are sealed
with the `DataCipher` given to `open` (bound to the row's dedup key), and opened only when the
sender takes the row. Errors hold no personal data, and nothing here logs text.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite

from services.clock import Clock
from services.crypto import MIN_BLOB_BYTES, DataCipher, row_context
from services.sqlite import close_on_error, open_database
from services.sqlite_writer import SQLiteWriter

STATUSES = ("pending", "sending", "sent", "failed", "blocked")
INTERRUPTED = "interrupted: the process stopped during the call, delivery unknown"
BLOCKED = "blocked: the user blocked the bot"

PRIORITY_PUSH = 0
PRIORITY_ANSWER = 1
# Kinds that answer a parent who just acted in the chat (bot/submissions.py): they go first.
ANSWER_KINDS = frozenset({"submitted", "submission_refused"})

# Run statement by statement in a writer job: `executescript` would commit the writer's
# transaction half-way.
SCHEMA = (
    """
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
    message_id      INTEGER,
    priority        INTEGER NOT NULL DEFAULT 0
)""",
    # Partial indexes hold only open rows, so they stay small however many rows were sent.
    """CREATE INDEX IF NOT EXISTS outbox_queue
    ON outbox(due_at, id, chat_id, next_attempt_at) WHERE status = 'pending'""",
    """CREATE INDEX IF NOT EXISTS outbox_chat
    ON outbox(chat_id, due_at, id) WHERE status IN ('pending', 'sending')""",
    """CREATE INDEX IF NOT EXISTS outbox_retry
    ON outbox(next_attempt_at) WHERE status = 'pending'""",
    """CREATE TABLE IF NOT EXISTS outbox_blocked (
    chat_id     INTEGER PRIMARY KEY,
    blocked_at  TEXT NOT NULL
)""",
)
# Columns added after the first release (an older file gets them at open), then what needs them.
_ADDED_COLUMNS = (("priority", "INTEGER NOT NULL DEFAULT 0"),)
_AFTER_COLUMNS = (
    """CREATE INDEX IF NOT EXISTS outbox_urgent
    ON outbox(due_at, id) WHERE status = 'pending' AND priority > 0""",
)

# Also used by services/store.py, which writes a confirmation in its own transaction: the
# parameters come from `_insert_params`.
_INSERT = (
    "INSERT INTO outbox (dedup_key, chat_id, kind, text, markup, file_name, file_data, status,"
    " due_at, next_attempt_at, created_at, priority)"
    " VALUES (?, ?, ?, ?, ?, ?, ?,"
    " CASE WHEN EXISTS (SELECT 1 FROM outbox_blocked WHERE chat_id = ?)"
    " THEN 'blocked' ELSE 'pending' END, ?, ?, ?, ?)"
    " ON CONFLICT(dedup_key) DO NOTHING"
)

_COLUMNS = (
    "o.id, o.chat_id, o.kind, o.text, o.markup, o.file_name, o.file_data, o.attempts, o.dedup_key"
)
# The heads of the chats that hold an answer: the earliest open row of each (the answer itself,
# or a row before it), found through the small index of due answers.
_URGENT_HEADS = """
urgent AS NOT MATERIALIZED (
    SELECT u.priority, u.due_at, u.id,
           (SELECT p.id FROM outbox AS p
            WHERE p.chat_id = u.chat_id AND p.status IN ('pending', 'sending')
            ORDER BY p.due_at, p.id LIMIT 1) AS head
    FROM outbox AS u
    WHERE u.status = 'pending' AND u.priority > 0 AND u.due_at <= :now
    ORDER BY u.due_at, u.id LIMIT :limit
)"""
_URGENT_SELECT = f"""
SELECT urgent.priority, urgent.due_at, urgent.id, {_COLUMNS}
FROM urgent CROSS JOIN outbox AS o ON o.id = urgent.head
WHERE o.status = 'pending' AND o.next_attempt_at <= :now"""
# The heads of all chats: due pending rows with no earlier open row (pending, or in flight) in
# their chat. Candidates stream in place order (a co-routine, not a temp table, so the scan
# stops at `limit` heads) and are capped, so a chat with a huge backlog costs a bounded scan;
# a chat whose head lies past the cap waits until the rows before it are gone.
_HEADS = """
cand AS NOT MATERIALIZED (
    SELECT id, chat_id, due_at, next_attempt_at FROM outbox
    WHERE status = 'pending' AND due_at <= :now
    ORDER BY due_at, id LIMIT :scan
),
heads AS NOT MATERIALIZED (
    SELECT c.id, c.due_at FROM cand AS c
    WHERE c.next_attempt_at <= :now
      AND NOT EXISTS (
        SELECT 1 FROM outbox AS p
        WHERE p.chat_id = c.chat_id AND p.status IN ('pending', 'sending')
          AND (p.due_at, p.id) < (c.due_at, c.id)
      )
    LIMIT :limit
)"""
_HEADS_SELECT = f"""
SELECT 0, heads.due_at, heads.id, {_COLUMNS}
FROM heads CROSS JOIN outbox AS o ON o.id = heads.id"""
# Each row: effective priority, place (due_at, id) of the row that gave it, then the row.
_DUE = f"WITH {_URGENT_HEADS},{_HEADS}{_URGENT_SELECT}\nUNION ALL{_HEADS_SELECT}"
_DUE_URGENT = f"WITH {_URGENT_HEADS}{_URGENT_SELECT}"

# One statement for every change the sender makes to a row, so a batch of them is one
# `executemany`: NULL parameters leave a column as it is.
_UPDATE = (
    "UPDATE outbox SET status = ?, attempts = attempts + ?,"
    " next_attempt_at = COALESCE(?, next_attempt_at), last_error = COALESCE(?, last_error),"
    " sent_at = COALESCE(?, sent_at), message_id = COALESCE(?, message_id) WHERE id = ?"
)
# Only a row still pending and due is claimed: one forgotten, blocked, sent or put back for a
# retry since the sender found it is not sent.
_CLAIM = (
    "UPDATE outbox SET status = 'sending', attempts = attempts + 1"
    " WHERE id = ? AND status = 'pending' AND next_attempt_at <= ?"
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
    priority: int = PRIORITY_PUSH  # its chat's: an answer behind this row lifts it


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
    priority: int = PRIORITY_PUSH


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message to enqueue, for `enqueue_many` (and the store's own transactions)."""

    chat_id: int
    text: str
    kind: str
    dedup_key: str
    markup: dict[str, Any] | None = None
    attachment: tuple[str, bytes] | None = None
    not_before: datetime | None = None
    priority: int | None = None  # None: PRIORITY_ANSWER for `ANSWER_KINDS`, else PRIORITY_PUSH


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
    """The `outbox` table; open with `await Outbox.open(path, clock)`."""

    def __init__(
        self,
        db: aiosqlite.Connection,
        writer: SQLiteWriter,
        clock: Clock,
        cipher: DataCipher | None = None,
        *,
        owns_writer: bool = False,
    ) -> None:
        """Wrap a read connection and the writer; use `Outbox.open` instead."""
        self._db = db
        self._writer = writer
        self._owns_writer = owns_writer
        self._clock = clock
        self._cipher = cipher
        self._listeners: list[Callable[[], None]] = []

    @classmethod
    async def open(
        cls,
        path: Path,
        clock: Clock,
        *,
        cipher: DataCipher | None = None,
        writer: SQLiteWriter | None = None,
    ) -> Outbox:
        """Open (and create or bring up to date) the outbox tables in the bot's SQLite file.

        `writer` is the process's shared writer of this file; without one the outbox opens
        (and closes) its own. Without `cipher` texts stay in clear: for tests of the outbox
        alone; the bot always passes one (`bot.app.open_app`).
        """
        # Autocommit: a read never leaves a transaction (a snapshot) open behind it.
        db = await open_database(path, schema="", autocommit=True)
        async with close_on_error(db):
            owns_writer = writer is None
            if writer is None:
                writer = await SQLiteWriter.open(path)
            outbox = cls(db, writer, clock, cipher, owns_writer=owns_writer)
            try:
                await writer.run(outbox._migrate)
            except BaseException:
                if owns_writer:
                    await writer.close()
                raise
        return outbox

    async def close(self) -> None:
        """Close the read connection (and the writer if it is the outbox's own); safe twice."""
        if self._owns_writer:
            await self._writer.close()
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
        priority: int | None = None,
    ) -> bool:
        """Store a message to send; False when `dedup_key` is already there (nothing changes)."""
        message = Outgoing(chat_id, text, kind, dedup_key, markup, attachment, not_before, priority)
        return await self.enqueue_many([message]) == 1

    async def enqueue_many(self, messages: Iterable[Outgoing]) -> int:
        """Store many messages in one transaction; returns how many were new."""
        now = iso(self._clock.now())
        rows = [_insert_params(m, now, self._cipher) for m in messages]
        if not rows:
            return 0

        def insert(conn: sqlite3.Connection) -> int:
            # Summed over the rows; a duplicate adds 0.
            return max(conn.executemany(_INSERT, rows).rowcount, 0)

        added = await self._writer.run(insert)
        if added:
            self.notify()
        return added

    def notify(self) -> None:
        """Wake the listeners: for rows stored by another transaction (services/store.py)."""
        for listener in self._listeners:
            listener()

    async def forget_chat(self, chat_id: int) -> int:
        """Delete every row of this chat and its blocked mark (/forget); returns how many rows.

        A row in flight (`sending`) goes too: the sender's later update of it changes nothing.
        """

        def forget(conn: sqlite3.Connection) -> int:
            deleted = conn.execute("DELETE FROM outbox WHERE chat_id = ?", (chat_id,)).rowcount
            conn.execute("DELETE FROM outbox_blocked WHERE chat_id = ?", (chat_id,))
            return max(deleted, 0)

        return await self._writer.run(forget)

    async def scrub_finished(self, before: datetime) -> int:
        """Empty the text and file of rows finished (sent, failed, blocked) before `before`.

        The row itself stays: its dedup key keeps a replayed event from being sent again. The
        text becomes a sealed empty string, so every row still opens. Returns how many rows.
        """
        empty = MIN_BLOB_BYTES if self._cipher is not None else 0
        rows = await self._read(
            "SELECT id, dedup_key FROM outbox"
            " WHERE status IN ('sent', 'failed', 'blocked') AND created_at < ?"
            " AND (length(text) > ? OR file_data IS NOT NULL)",
            (iso(before), empty),
        )
        if not rows:
            return 0
        # Sealed here, not in the writer's thread: the writer holds the lock only to write.
        params = [(_seal_text(self._cipher, "", key), row_id) for row_id, key in rows]

        def scrub(conn: sqlite3.Connection) -> None:
            conn.executemany("UPDATE outbox SET text = ?, file_data = NULL WHERE id = ?", params)

        await self._writer.run(scrub)
        return len(rows)

    async def unblock(self, chat_id: int) -> None:
        """The user talks to the bot again: new messages to this chat are sent again."""

        def unblock(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM outbox_blocked WHERE chat_id = ?", (chat_id,))

        await self._writer.run(unblock)

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """A writer job at open: the tables, columns added since, clear texts sealed."""
        for statement in SCHEMA:
            conn.execute(statement)
        names = {row[1] for row in conn.execute("PRAGMA table_info(outbox)")}
        for column, declaration in _ADDED_COLUMNS:
            if column not in names:
                conn.execute(f"ALTER TABLE outbox ADD COLUMN {column} {declaration}")
                if column == "priority":  # the answers already waiting go first too
                    kinds = sorted(ANSWER_KINDS)
                    conn.execute(
                        f"UPDATE outbox SET priority = ? WHERE status = 'pending'"
                        f" AND kind IN ({', '.join('?' * len(kinds))})",
                        (PRIORITY_ANSWER, *kinds),
                    )
        for statement in _AFTER_COLUMNS:
            conn.execute(statement)
        self._seal_old_rows(conn)

    def _seal_old_rows(self, conn: sqlite3.Connection) -> None:
        """Seal texts and files written in clear (older files) or with a retired key."""
        cipher = self._cipher
        if cipher is None:
            return
        # Text and file are always sealed together, with the same key: the text tells for both.
        rows = conn.execute(
            "SELECT id, dedup_key, text, file_data FROM outbox"
            " WHERE typeof(text) != 'blob' OR substr(text, 2, 8) != ?",
            (cipher.key_id,),
        ).fetchall()
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
            conn.executemany("UPDATE outbox SET text = ?, file_data = ? WHERE id = ?", updates)

    # --- readers --------------------------------------------------------------------------

    async def _read(self, sql: str, params: Any = ()) -> list[Any]:
        """One statement run to its end in one hop: no cursor or snapshot left open."""
        return list(await self._db.execute_fetchall(sql, params))

    async def counts(self) -> dict[str, int]:
        """How many rows are in each status (every status present, zeros included)."""
        counts = dict.fromkeys(STATUSES, 0)
        for status, count in await self._read(
            "SELECT status, COUNT(*) FROM outbox GROUP BY status"
        ):
            counts[status] = count
        return counts

    async def get(self, dedup_key: str) -> OutboxRecord | None:
        """Where the row of `dedup_key` stands, or None."""
        rows = await self._read(
            "SELECT id, chat_id, kind, status, attempts, next_attempt_at, last_error, sent_at,"
            " message_id, priority FROM outbox WHERE dedup_key = ?",
            (dedup_key,),
        )
        if not rows:
            return None
        row = rows[0]
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
            priority=row[9],
        )

    async def is_blocked(self, chat_id: int) -> bool:
        """True once a delivery to this chat found the bot blocked (until `unblock`)."""
        return bool(await self._read("SELECT 1 FROM outbox_blocked WHERE chat_id = ?", (chat_id,)))

    # --- the sender's side ----------------------------------------------------------------

    async def recover(self, *, release: Collection[int] = ()) -> int:
        """Settle rows left `sending` by a sender that stopped mid-call: `failed`, never resent.

        `release`: rows this process claimed and knows it never called (a sender starting
        again after an error): they go back to `pending`, their claim not counted. Returns how
        many rows became failed.
        """
        released = [(row_id,) for row_id in release]

        def recover(conn: sqlite3.Connection) -> int:
            if released:
                conn.executemany(
                    "UPDATE outbox SET status = 'pending', attempts = attempts - 1"
                    " WHERE id = ? AND status = 'sending'",
                    released,
                )
            return conn.execute(
                "UPDATE outbox SET status = 'failed', last_error = ? WHERE status = 'sending'",
                (INTERRUPTED,),
            ).rowcount

        return await self._writer.run(recover)

    async def due(
        self,
        now: datetime,
        limit: int,
        *,
        scan: int | None = None,
        urgent_only: bool = False,
    ) -> list[OutboxMessage]:
        """Up to `limit` rows to send now, one per chat (its head): chats that hold an answer
        first, each group in place order. `urgent_only`: only those chats (a cheap look)."""
        params = {"now": iso(now), "limit": limit, "scan": scan or max(limit * 50, 1000)}
        rows = await self._read(_DUE_URGENT if urgent_only else _DUE, params)
        # SQL promises no order without ORDER BY; a chat in both parts counts as urgent.
        rows.sort(key=lambda r: (-r[0], r[1], r[2]))
        seen: set[int] = set()
        messages = []
        for r in rows:
            if r[3] in seen:
                continue
            seen.add(r[3])
            messages.append(
                OutboxMessage(
                    id=r[3],
                    chat_id=r[4],
                    kind=r[5],
                    text=_open_text(self._cipher, r[6], r[11]),
                    markup=json.loads(r[7]) if r[7] else None,
                    attachment=(
                        (r[8], _open_file(self._cipher, r[9], r[11])) if r[8] is not None else None
                    ),
                    attempts=r[10],
                    dedup_key=r[11],
                    priority=r[0],
                )
            )
            if len(messages) == limit:
                break
        return messages

    async def next_due(self, now: datetime) -> datetime | None:
        """The earliest retry or `not_before` after `now` among pending rows, if any."""
        rows = await self._read(
            "SELECT MIN(next_attempt_at) FROM outbox"
            " WHERE status = 'pending' AND next_attempt_at > ?",
            (iso(now),),
        )
        return datetime.fromisoformat(rows[0][0]) if rows and rows[0][0] else None

    async def has_open(self) -> bool:
        """True while any row is pending or in flight."""
        rows = await self._read(
            "SELECT EXISTS (SELECT 1 FROM outbox WHERE status IN ('pending', 'sending'))"
        )
        return bool(rows and rows[0][0])

    async def write(self, updates: Sequence[RowUpdate], *, block_chats: Sequence[int] = ()) -> None:
        """Apply the sender's changes in one transaction (all or nothing).

        For each of `block_chats`, every pending row of the chat becomes `blocked` and the chat
        is remembered, so that later enqueues to it are stored as `blocked` too.
        """
        await self.claim((), updates=updates, block_chats=block_chats)

    async def claim(
        self,
        row_ids: Sequence[int],
        *,
        updates: Sequence[RowUpdate] = (),
        block_chats: Sequence[int] = (),
    ) -> set[int]:
        """`write(updates, block_chats)`, then mark `row_ids` `sending` (one more attempt
        each), in one transaction; returns the rows claimed.

        A row is claimed only if it is still pending and due: one forgotten, blocked, sent, or
        put back for a retry since it was read is left out, and must not be sent.
        """
        params = [u.params() for u in updates]
        now = iso(self._clock.now())

        def write(conn: sqlite3.Connection) -> set[int]:
            if params:
                conn.executemany(_UPDATE, params)
            if block_chats:
                conn.executemany(
                    "UPDATE outbox SET status = 'blocked', last_error = ?"
                    " WHERE chat_id = ? AND status = 'pending'",
                    [(BLOCKED, c) for c in block_chats],
                )
                conn.executemany(
                    "INSERT OR IGNORE INTO outbox_blocked (chat_id, blocked_at) VALUES (?, ?)",
                    [(c, now) for c in block_chats],
                )
            return {
                row_id for row_id in row_ids if conn.execute(_CLAIM, (row_id, now)).rowcount == 1
            }

        return await self._writer.run(write)


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


def priority_of(m: Outgoing) -> int:
    """The row's priority: as given, else an answer's for `ANSWER_KINDS` and a push's for others."""
    if m.priority is not None:
        return m.priority
    return PRIORITY_ANSWER if m.kind in ANSWER_KINDS else PRIORITY_PUSH


def _insert_params(m: Outgoing, now: str, cipher: DataCipher | None = None) -> tuple[Any, ...]:
    """The parameters of `_INSERT` for `m`, enqueued at `now` (`iso`), sealed with `cipher`."""
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
        priority_of(m),
    )
