"""Kezek's own tables: users (language), drafts (what the parent confirmed so far), applications.

The domain tables are the record; FSM data is only what the current step needs. Languages and
drafts are served from bounded in-process caches (LRU) after the first load; other reads are one
statement each on the store's own autocommit connection (one thread hop, no snapshot kept). Every
write is a job of the process's `SQLiteWriter` (services/sqlite_writer.py): what must be atomic
(a check and its write, a submission's several rows) is ONE job, so it never holds SQLite's write
lock across an `await`; it shares its commit with the other writes of the moment and returns once
committed, so what a parent was told is saved is on disk.

Personal data is sealed with the `DataCipher` (services/crypto.py) given to `open`: the whole
draft (`drafts.data`) and the personal part of an application's summary (`applications.personal`:
the child's name…). What staff figures and jobs query stays plain: `applications.summary` keeps
only the fields in `PLAIN_SUMMARY_KEYS`, `drafts.submitted` says whether a draft was sent. The
caches hold decrypted values: each is decrypted once on load and encrypted on every write.
Users, events and meta hold ids, codes and times only — no personal data.
"""

from __future__ import annotations

import asyncio
import enum
import json
import sqlite3
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

import aiosqlite

from services.clock import Clock, SystemClock
from services.crypto import DataCipher, row_context
from services.keyed_locks import KeyedLocks
from services.outbox import _INSERT as OUTBOX_INSERT
from services.outbox import Outgoing, iso
from services.outbox import _insert_params as outbox_insert_params
from services.sqlite import close_on_error, open_database
from services.sqlite_writer import Job, Pending, SQLiteWriter
from services.validation import is_valid_iin, mask_tail, parse_iin

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
    data        BLOB NOT NULL,  -- the draft's JSON, sealed (clear only without a cipher)
    updated_at  TEXT NOT NULL,
    submitted   INTEGER NOT NULL DEFAULT 0  -- the draft holds an `application`
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
    summary       TEXT NOT NULL,  -- JSON of PLAIN_SUMMARY_KEYS only: what staff figures read
    submitted_at  TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    personal      BLOB            -- JSON of the other summary keys (names), sealed
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


# What `applications.summary` may keep in clear: codes, catalogue names and the masked IIN that
# the staff digest reads with SQL. Every other key of a summary (the child's names, and anything
# added later) goes to the sealed `personal` column: a new field is private until listed here.
PLAIN_SUMMARY_KEYS = frozenset(
    {
        "queue_type",
        "queue",
        "provider_id",
        "provider",
        "group_id",
        "group",
        "group_language",
        "child_birth_year",
        "child_iin_masked",
        "status",
    }
)
# Columns added after the first release, with their declarations (see `_migrate`).
_ADDED_COLUMNS = (
    ("drafts", "submitted", "INTEGER NOT NULL DEFAULT 0"),
    ("applications", "personal", "BLOB"),
)


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


DEFAULT_CACHE_SIZE = 10_000  # users whose language and draft stay in memory (LRU)

_K = TypeVar("_K")
_V = TypeVar("_V")
_D = TypeVar("_D")


class _Missing(enum.Enum):
    """Not in a cache (where None is a value: a user without a language)."""

    MISSING = enum.auto()


_MISSING = _Missing.MISSING


class _Lru(Generic[_K, _V]):
    """A dict of at most `size` entries, the least recently used leaving first.

    The database always holds every value, so an evicted entry costs one read later; the bound
    keeps memory flat however many parents came through.
    """

    __slots__ = ("_items", "_size")

    def __init__(self, size: int) -> None:
        self._items: OrderedDict[_K, _V] = OrderedDict()
        self._size = size

    def get(self, key: _K, default: _D) -> _V | _D:
        try:
            value = self._items[key]
        except KeyError:
            return default
        self._items.move_to_end(key)
        return value

    def put(self, key: _K, value: _V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self._size:
            self._items.popitem(last=False)

    def pop(self, key: _K) -> None:
        self._items.pop(key, None)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items


def _statement(sql: str, params: tuple[object, ...]) -> Job[int]:
    """A writer job running one statement; its result is the row count."""

    def job(conn: sqlite3.Connection) -> int:
        return conn.execute(sql, params).rowcount

    return job


def _merged(draft_json: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """A fresh draft from its JSON with `fields` merged in (a value of None removes the key)."""
    draft: dict[str, Any] = json.loads(draft_json)
    for key, value in fields.items():
        if value is None:
            draft.pop(key, None)
        else:
            draft[key] = value
    return draft


class Store:
    """Repository over one SQLite file; open with `await Store.open(path)`."""

    def __init__(
        self,
        db: aiosqlite.Connection,
        clock: Clock,
        cipher: DataCipher | None = None,
        *,
        writer: SQLiteWriter,
        owns_writer: bool = False,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> None:
        """Wrap open connections; use `Store.open` instead of calling this directly."""
        self._db = db  # reads only: every write is a job of `_writer`
        self._writer = writer
        self._owns_writer = owns_writer
        self._clock = clock
        self._cipher = cipher
        # None is a known answer (no language chosen yet), so absence is `_MISSING`.
        self._locales: _Lru[int, str | None] = _Lru(cache_size)
        # The draft's JSON text: each `get_draft` parses its own copy, nothing is shared.
        self._drafts: _Lru[int, str] = _Lru(cache_size)
        self._locks: KeyedLocks[int] = KeyedLocks()

    @classmethod
    async def open(
        cls,
        path: Path,
        clock: Clock | None = None,
        *,
        cipher: DataCipher | None = None,
        writer: SQLiteWriter | None = None,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> Store:
        """Open the tables; without `cipher` values stay in clear (unit tests of the SQL only:
        the bot always passes one, see `bot.app.open_app`). `writer` is the process's shared
        writer of this file; without one the store opens (and closes) its own."""
        # Autocommit: a read never leaves a transaction (a snapshot) open behind it.
        db = await open_database(path, schema=SCHEMA + SUBMISSIONS_SCHEMA, autocommit=True)
        async with close_on_error(db):  # e.g. a wrong DATA_KEY found by the migration
            owns_writer = writer is None
            if writer is None:
                writer = await SQLiteWriter.open(path)
            store = cls(
                db,
                clock or SystemClock(),
                cipher,
                writer=writer,
                owns_writer=owns_writer,
                cache_size=cache_size,
            )
            try:
                await writer.run(store._migrate)
            except BaseException:
                if owns_writer:
                    await writer.close()
                raise
        return store

    @property
    def cipher(self) -> DataCipher | None:
        """The cipher of this store (for modules that need a keyed hash of a phone, say)."""
        return self._cipher

    async def close(self) -> None:
        """Close the read connection (and the writer if it is the store's own); safe twice."""
        if self._owns_writer:
            await self._writer.close()
        await self._db.close()

    def _now(self) -> str:
        # UTC everywhere in the tables, so that text comparison orders instants correctly.
        return _utc(self._clock.now())

    async def _read(self, sql: str, params: tuple[object, ...] = ()) -> list[Any]:
        """One statement run to its end in one hop: no cursor or snapshot left open."""
        return list(await self._db.execute_fetchall(sql, params))

    # --- users --------------------------------------------------------------------------

    async def get_locale(self, user_id: int) -> str | None:
        """The language the user chose, or None."""
        cached = self._locales.get(user_id, _MISSING)
        if cached is not _MISSING:
            return cached
        # Loaded under the lock, so a load can never cache a value older than a concurrent write.
        async with self._locks(user_id):
            cached = self._locales.get(user_id, _MISSING)
            if cached is not _MISSING:
                return cached
            rows = await self._read("SELECT locale FROM users WHERE user_id = ?", (user_id,))
            locale: str | None = rows[0][0] if rows else None
            self._locales.put(user_id, locale)
            return locale

    async def set_locale(self, user_id: int, locale: str) -> None:
        now = self._now()
        async with self._locks(user_id):
            await self._writer.run(
                _statement(
                    "INSERT INTO users (user_id, locale, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?) ON CONFLICT(user_id) DO UPDATE SET"
                    " locale = excluded.locale, updated_at = excluded.updated_at",
                    (user_id, locale, now, now),
                )
            )
            self._locales.put(user_id, locale)

    # --- drafts -------------------------------------------------------------------------

    async def get_draft(self, user_id: int) -> dict[str, Any]:
        """The parent's draft (a copy: change it through `update_draft`)."""
        text = self._drafts.get(user_id, None)
        if text is None:
            async with self._locks(user_id):
                text = await self._draft_text(user_id)
        draft: dict[str, Any] = json.loads(text)
        return draft

    async def update_draft(
        self,
        user_id: int,
        step: str | None = None,
        *,
        then: Callable[[Pending[Any]], Pending[Any]] | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """Merge `fields` into the draft (a value of None removes the key) and save it.

        `then` gets the draft's queued write and queues one of its own `after` it, at once: the
        two share one commit (a step's answers and its next state) and never half succeed.
        """
        async with self._locks(user_id):
            draft = _merged(await self._draft_text(user_id), fields)
            payload, params = self._draft_params(user_id, draft, step)
            saved = self._writer.queue(_statement(_UPSERT_DRAFT, params))
            follower = then(saved) if then is not None else None
            try:
                await saved
            except Exception:
                if follower is not None:
                    # It depended on this write and fails with it: the caller hears this error.
                    await asyncio.gather(follower.future, return_exceptions=True)
                raise
            self._drafts.put(user_id, payload)
        if follower is not None:
            await follower
        return draft

    async def replace_draft(
        self, user_id: int, draft: dict[str, Any], step: str | None = None
    ) -> None:
        async with self._locks(user_id):
            payload, params = self._draft_params(user_id, draft, step)
            await self._writer.run(_statement(_UPSERT_DRAFT, params))
            self._drafts.put(user_id, payload)

    async def delete_draft(self, user_id: int) -> None:
        async with self._locks(user_id):
            await self._writer.run(_statement("DELETE FROM drafts WHERE user_id = ?", (user_id,)))
            self._drafts.pop(user_id)

    async def _draft_text(self, user_id: int) -> str:
        """The draft's JSON, cached or loaded from disk; the caller holds the user's lock."""
        text = self._drafts.get(user_id, None)
        if text is None:
            rows = await self._read("SELECT data FROM drafts WHERE user_id = ?", (user_id,))
            text = self._open_text(rows[0][0], "drafts.data", user_id) if rows else "{}"
            self._drafts.put(user_id, text)
        return text

    def _draft_params(
        self, user_id: int, draft: dict[str, Any], step: str | None
    ) -> tuple[str, tuple[object, ...]]:
        """The draft's JSON text and the parameters of `_UPSERT_DRAFT` that save it sealed."""
        payload = json.dumps(draft, ensure_ascii=False, separators=(",", ":"))
        params = (
            user_id,
            step,
            self._seal_text(payload, "drafts.data", user_id),
            self._now(),
            int("application" in draft),
        )
        return payload, params

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
        params = self._application_params(
            application_id=application_id,
            user_id=user_id,
            chat_id=chat_id,
            number=number,
            status=status,
            submitted_at=submitted_at,
            summary=summary,
        )
        await self._writer.run(_statement(_INSERT_APPLICATION, params))

    def _application_params(
        self,
        *,
        application_id: str,
        user_id: int,
        chat_id: int,
        number: str,
        status: str,
        submitted_at: datetime,
        summary: dict[str, Any],
    ) -> tuple[object, ...]:
        plain, personal = split_summary(summary)
        return (
            application_id,
            user_id,
            chat_id,
            number,
            status,
            json.dumps(plain, ensure_ascii=False),
            _utc(submitted_at),
            self._now(),
            self._seal_json(personal, "applications.personal", application_id),
        )

    async def list_applications(self, user_id: int) -> list[StoredApplication]:
        rows = await self._read(
            _SELECT_APPLICATION + " WHERE user_id = ? ORDER BY submitted_at", (user_id,)
        )
        return [self._application(r) for r in rows]

    async def get_application(self, application_id: str) -> StoredApplication | None:
        rows = await self._read(_SELECT_APPLICATION + " WHERE id = ?", (application_id,))
        return self._application(rows[0]) if rows else None

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
        params = (
            status,
            queue_position,
            json.dumps(status_reason, ensure_ascii=False) if status_reason else None,
            _utc(deadline) if deadline else None,
            self._now(),
            application_id,
        )

        def update(conn: sqlite3.Connection) -> Any:
            # One job: the row returned is the very one this update replaced.
            before = conn.execute(
                _SELECT_APPLICATION + " WHERE id = ?", (application_id,)
            ).fetchone()
            if before is not None:
                conn.execute(
                    "UPDATE applications SET status = ?, queue_position = ?, status_reason = ?,"
                    " deadline = ?, updated_at = ? WHERE id = ?",
                    params,
                )
            return before

        row = await self._writer.run(update)
        return self._application(row) if row is not None else None

    # --- events for the staff digest (no personal data: ids and codes only) --------------

    async def record_event(self, kind: str, **data: str | int | None) -> None:
        """Note something staff count (consent_denied, consent_expired, …) at the clock's now."""
        await self._writer.run(
            _statement(
                "INSERT INTO events (kind, at, data) VALUES (?, ?, ?)",
                (kind, self._now(), json.dumps(data, ensure_ascii=False)),
            )
        )

    async def count_events(self, since: datetime, until: datetime) -> dict[str, int]:
        rows = await self._read(
            "SELECT kind, COUNT(*) FROM events WHERE at >= ? AND at < ? GROUP BY kind",
            (_utc(since), _utc(until)),
        )
        return {kind: count for kind, count in rows}

    # --- users who blocked the bot, and small persistent values -------------------------

    async def mark_blocked(self, user_id: int) -> None:
        await self._writer.run(
            _statement("UPDATE users SET blocked_at = ? WHERE user_id = ?", (self._now(), user_id))
        )

    async def mark_unblocked(self, user_id: int) -> None:
        await self._writer.run(
            _statement("UPDATE users SET blocked_at = NULL WHERE user_id = ?", (user_id,))
        )

    async def is_blocked(self, user_id: int) -> bool:
        rows = await self._read(
            "SELECT blocked_at IS NOT NULL FROM users WHERE user_id = ?", (user_id,)
        )
        return bool(rows and rows[0][0])

    async def get_meta(self, key: str) -> str | None:
        rows = await self._read("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    async def set_meta(self, key: str, value: str) -> None:
        await self._writer.run(
            _statement(
                "INSERT INTO meta (key, value) VALUES (?, ?)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )
        )

    # --- /forget and retention ----------------------------------------------------------

    async def forget_user(self, user_id: int) -> int:
        """Delete the user's draft, applications (with their status marks) and users row.

        One transaction; `secure_delete` overwrites the freed pages. Returns how many
        applications were forgotten. The voucher service keeps its own copy (docs/security.md).
        """

        def forget(conn: sqlite3.Connection) -> int:
            ids = [
                row[0]
                for row in conn.execute("SELECT id FROM applications WHERE user_id = ?", (user_id,))
            ]
            conn.execute("DELETE FROM drafts WHERE user_id = ?", (user_id,))
            conn.execute("DELETE FROM applications WHERE user_id = ?", (user_id,))
            conn.execute("DELETE FROM users WHERE user_id = ?", (user_id,))
            # Its sealed POST body holds both IINs and the phone. A submission still on its
            # way goes too: the parent asked for everything to go, and is told that what the
            # service already has stays there.
            conn.execute("DELETE FROM submissions WHERE user_id = ?", (user_id,))
            conn.executemany(
                "DELETE FROM meta WHERE key = ?",
                [(prefix + i,) for i in ids for prefix in _APPLICATION_META_PREFIXES],
            )
            return len(ids)

        async with self._locks(user_id):
            forgotten = await self._writer.run(forget)
            self._drafts.pop(user_id)
            self._locales.pop(user_id)
        return forgotten

    async def stale_draft_users(self, before: datetime) -> list[int]:
        """Users whose draft has not changed since `before`."""
        rows = await self._read(
            "SELECT user_id FROM drafts WHERE updated_at < ? ORDER BY user_id", (_utc(before),)
        )
        return [int(row[0]) for row in rows]

    async def delete_draft_if_untouched(self, user_id: int, before: datetime) -> bool:
        """Delete the draft unless it changed since `before` (it may have, since the scan)."""
        async with self._locks(user_id):
            deleted = await self._writer.run(
                _statement(
                    "DELETE FROM drafts WHERE user_id = ? AND updated_at < ?",
                    (user_id, _utc(before)),
                )
            )
            if deleted:
                self._drafts.pop(user_id)
        return deleted > 0

    async def delete_settled_submissions(self, before: datetime) -> int:
        """Delete answered submissions (done or refused, the parent's state synced) that have
        not changed since `before`: their sealed body is a copy of the draft, no longer needed.
        """
        deleted = await self._writer.run(
            _statement(
                "DELETE FROM submissions WHERE status != 'pending' AND synced = 1"
                " AND updated_at < ?",
                (iso(before),),
            )
        )
        return max(deleted, 0)

    # --- sealing ------------------------------------------------------------------------

    def _seal_text(self, text: str, column: str, row: object) -> str | bytes:
        if self._cipher is None:
            return text
        return self._cipher.encrypt_text(text, row_context(column, row))

    def _seal_json(self, value: Any, column: str, row: object) -> str | bytes:
        return self._seal_text(
            json.dumps(value, ensure_ascii=False, separators=(",", ":")), column, row
        )

    def _open_text(self, stored: str | bytes, column: str, row: object) -> str:
        if isinstance(stored, str):
            if self._cipher is not None:
                # `_migrate` sealed every clear value at open: one now is an injected row.
                raise ValueError(f"{column}: a value in clear where a sealed one belongs")
            return stored
        if self._cipher is None:
            raise ValueError(f"{column} is encrypted: DATA_KEY is needed to read it")
        return self._cipher.decrypt_text(stored, row_context(column, row))

    def _open_json(self, stored: str | bytes, column: str, row: object) -> Any:
        return json.loads(self._open_text(stored, column, row))

    def _application(self, row: Any) -> StoredApplication:
        summary: dict[str, Any] = json.loads(row[5])
        if row[10] is not None:
            summary.update(self._open_json(row[10], "applications.personal", row[0]))
        return StoredApplication(
            id=row[0],
            user_id=row[1],
            chat_id=row[2],
            number=row[3],
            status=row[4],
            summary=summary,
            submitted_at=datetime.fromisoformat(row[6]),
            queue_position=row[7],
            status_reason=json.loads(row[8]) if row[8] else None,
            deadline=datetime.fromisoformat(row[9]) if row[9] else None,
        )

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Bring an older file up to date: new columns, clear values sealed, old keys rotated.

        A writer job run at every open, so one transaction; on an up-to-date file it only
        reads. A value sealed by a key in DATA_KEYS_OLD is sealed again with DATA_KEY, so after
        one start with the new key the old one is needed only for backups made before.
        """
        for table, column, declaration in _ADDED_COLUMNS:
            names = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
            if column not in names:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
        cipher = self._cipher
        if cipher is None:
            return
        drafts = conn.execute(
            "SELECT user_id, data FROM drafts WHERE typeof(data) != 'blob'"
            " OR substr(data, 2, 8) != ?",
            (cipher.key_id,),
        ).fetchall()
        for user_id, stored in drafts:
            draft = self._open_any(stored, "drafts.data", user_id)
            conn.execute(
                "UPDATE drafts SET data = ?, submitted = ? WHERE user_id = ?",
                (self._seal_json(draft, "drafts.data", user_id), "application" in draft, user_id),
            )
        applications = conn.execute(
            "SELECT id, summary, personal FROM applications WHERE personal IS NULL"
            " OR substr(personal, 2, 8) != ?",
            (cipher.key_id,),
        ).fetchall()
        for application_id, summary_json, stored in applications:
            summary = json.loads(summary_json)
            if stored is not None:
                summary.update(self._open_any(stored, "applications.personal", application_id))
            plain, personal = split_summary(summary)
            conn.execute(
                "UPDATE applications SET summary = ?, personal = ? WHERE id = ?",
                (
                    json.dumps(plain, ensure_ascii=False),
                    self._seal_json(personal, "applications.personal", application_id),
                    application_id,
                ),
            )
        for column in _SEALED_SUBMISSION_COLUMNS:
            rows = conn.execute(
                f"SELECT idempotency_key, {column} FROM submissions WHERE {column} IS NOT NULL"
                f" AND (typeof({column}) != 'blob' OR substr({column}, 2, 8) != ?)",
                (cipher.key_id,),
            ).fetchall()
            place = f"submissions.{column}"
            for key, stored in rows:
                value = self._open_any(stored, place, key)
                conn.execute(
                    f"UPDATE submissions SET {column} = ? WHERE idempotency_key = ?",
                    (self._seal_json(value, place, key), key),
                )

    def _open_any(self, stored: str | bytes, column: str, row: object) -> Any:
        """A value as `_migrate` finds it: clear text (older files) or sealed by a known key."""
        if isinstance(stored, str):
            return json.loads(stored)
        assert self._cipher is not None
        return self._cipher.decrypt_json(stored, row_context(column, row))

    # --- submissions: POST /applications exactly once (services/submitter.py) -------------
    # A row per Idempotency-Key: `pending` until the voucher service gives a final answer,
    # then `done` or `refused`. The request body and the session are sealed like the draft.

    async def begin_submission(
        self,
        *,
        key: str,
        user_id: int,
        chat_id: int,
        session: str,
        body: dict[str, Any],
        summary: dict[str, Any],
    ) -> tuple[Submission, bool]:
        """Submit's transaction: a `pending` row for `key` unless one is pending or done.

        One writer job, so the insert and the reads that decide which row stands are one
        transaction. Returns the row that stands for this parent's application and whether
        this call opened it. A refused row (the parent fixed something and pressed Submit
        again) opens again, same key.
        """
        now = iso(self._clock.now())
        params = (
            key,
            user_id,
            chat_id,
            self._seal_json(session, "submissions.session", key),
            self._seal_json(body, "submissions.body", key),
            self._seal_json(summary, "submissions.summary", key),
            now,
            now,
            now,
        )

        def begin(conn: sqlite3.Connection) -> tuple[Any, bool]:
            try:
                opened = conn.execute(_BEGIN_SUBMISSION, params).rowcount > 0
            except sqlite3.IntegrityError:
                # Another key of this parent is pending (`submissions_open`): that one is on
                # its way. Only this statement is undone; the job goes on.
                opened = False
            row = conn.execute(_SELECT_SUBMISSION + " WHERE idempotency_key = ?", (key,)).fetchone()
            if not opened and (row is None or row[_STATUS] == "refused"):
                row = conn.execute(
                    _SELECT_SUBMISSION + " WHERE user_id = ? AND status = 'pending'", (user_id,)
                ).fetchone()
            return row, opened

        row, opened = await self._writer.run(begin)
        if row is None:
            raise RuntimeError("a submission row vanished while it was being opened")
        return self._submission(row), opened

    async def submission(self, key: str) -> Submission | None:
        """The row of this Idempotency-Key, if any."""
        rows = await self._read(_SELECT_SUBMISSION + " WHERE idempotency_key = ?", (key,))
        return next((self._submission(r) for r in rows), None)

    async def open_submission(self, user_id: int) -> Submission | None:
        """This parent's submission still waiting for a final answer, if any."""
        rows = await self._read(
            _SELECT_SUBMISSION + " WHERE user_id = ? AND status = 'pending'", (user_id,)
        )
        return next((self._submission(r) for r in rows), None)

    async def due_submissions(self, now: datetime, limit: int) -> list[Submission]:
        """Pending rows whose next attempt is due, oldest due first."""
        rows = await self._read(
            _SELECT_SUBMISSION + " WHERE status = 'pending' AND next_attempt_at <= ?"
            " ORDER BY next_attempt_at, id LIMIT ?",
            (iso(now), limit),
        )
        return [self._submission(r) for r in rows]

    async def next_submission_due(self) -> datetime | None:
        """When the earliest pending row is due, or None when nothing is pending."""
        rows = await self._read(
            "SELECT MIN(next_attempt_at) FROM submissions WHERE status = 'pending'"
        )
        return datetime.fromisoformat(rows[0][0]) if rows and rows[0][0] else None

    async def unsynced_submissions(self) -> list[Submission]:
        """Rows with a final answer whose follow-up (the parent's state) may not have run."""
        rows = await self._read(
            _SELECT_SUBMISSION + " WHERE synced = 0 AND status != 'pending' ORDER BY id"
        )
        return [self._submission(r) for r in rows]

    async def postpone_submission(
        self, submission_id: int, *, next_attempt_at: datetime, error: str
    ) -> None:
        """No final answer this time: count the attempt and say when to try again."""
        await self._writer.run(
            _statement(
                "UPDATE submissions SET attempts = attempts + 1, next_attempt_at = ?,"
                " last_error = ?, updated_at = ? WHERE id = ? AND status = 'pending'",
                (iso(next_attempt_at), error[:200], iso(self._clock.now()), submission_id),
            )
        )

    async def rekey_submission(self, sub: Submission, new_key: str) -> Submission:
        """Give a pending row (and its draft) a new Idempotency-Key; sealed values follow it."""
        if sub.session is None or sub.body is None or sub.summary is None:
            raise ValueError("only a pending submission with its body can take a new key")
        params = (
            new_key,
            self._seal_json(sub.session, "submissions.session", new_key),
            self._seal_json(sub.body, "submissions.body", new_key),
            self._seal_json(sub.summary, "submissions.summary", new_key),
            iso(self._clock.now()),
            sub.id,
        )
        async with self._locks(sub.user_id):
            draft = _merged(await self._draft_text(sub.user_id), {"idempotency_key": new_key})
            payload, draft_params = self._draft_params(sub.user_id, draft, None)

            def rekey(conn: sqlite3.Connection) -> Any:
                # The row and the draft together: a later Submit finds the row by this key.
                conn.execute(
                    "UPDATE submissions SET idempotency_key = ?, session = ?, body = ?,"
                    " summary = ?, updated_at = ? WHERE id = ?",
                    params,
                )
                conn.execute(_UPSERT_DRAFT, draft_params)
                return conn.execute(
                    _SELECT_SUBMISSION + " WHERE idempotency_key = ?", (new_key,)
                ).fetchone()

            row = await self._writer.run(rekey)
            self._drafts.put(sub.user_id, payload)
        assert row is not None
        return self._submission(row)

    async def settle_submission(
        self,
        sub: Submission,
        *,
        outcome: dict[str, Any],
        message: Outgoing,
        draft: dict[str, Any],
        step: str | None,
    ) -> bool:
        """A final answer's transaction: the row, the parent's message, the record, the draft.

        One writer job, so all four commit together before this returns. Every statement is
        idempotent, and the row keeps `synced = 0` until `mark_submission_synced`: if the
        process dies before that, the submitter runs this again with the stored outcome, so
        anything already on disk is simply written again, never twice. False (and nothing
        written) when the row is gone: /forget took it while the POST was on its way.
        """
        application = outcome.get("application")
        now = iso(self._clock.now())
        settle_params = (
            "done" if application else "refused",
            json.dumps(outcome, ensure_ascii=False),
            now,
            sub.id,
            sub.key,
        )
        message_params = outbox_insert_params(message, now, self._cipher)
        application_params = (
            self._application_params(
                application_id=application["id"],
                user_id=sub.user_id,
                chat_id=sub.chat_id,
                number=application["number"],
                status=application.get("status", "submitted"),
                submitted_at=datetime.fromisoformat(application["submitted_at"]),
                summary=sub.summary or {},
            )
            if application
            else None
        )
        async with self._locks(sub.user_id):
            merged = _merged(await self._draft_text(sub.user_id), draft)
            payload, draft_params = self._draft_params(sub.user_id, merged, step)

            def settle(conn: sqlite3.Connection) -> bool:
                # 1. the final answer
                updated = conn.execute(
                    "UPDATE submissions SET status = ?, outcome = ?, synced = 0,"
                    " last_error = NULL, updated_at = ? WHERE id = ? AND idempotency_key = ?",
                    settle_params,
                ).rowcount
                if updated == 0:
                    return False
                # 2. the message, once for ever: a repeat with the same dedup_key stores nothing
                conn.execute(OUTBOX_INSERT, message_params)
                # 3. the application record (a replayed answer changes nothing: INSERT OR IGNORE)
                if application_params is not None:
                    conn.execute(_INSERT_APPLICATION, application_params)
                # 4. the draft
                conn.execute(_UPSERT_DRAFT, draft_params)
                return True

            recorded = await self._writer.run(settle)
            if application is not None:
                # Submitted: this draft is done with, so it leaves the cache (and is read again
                # from disk if the parent comes back to it).
                self._drafts.pop(sub.user_id)
            elif recorded:
                self._drafts.put(sub.user_id, payload)
        return recorded

    async def mark_submission_synced(self, submission_id: int) -> None:
        """The parent's state follows the answer: done; the body and session are dropped."""
        await self._writer.run(
            _statement(
                "UPDATE submissions SET synced = 1, session = NULL, body = NULL, summary = NULL,"
                " updated_at = ? WHERE id = ? AND status != 'pending'",
                (iso(self._clock.now()), submission_id),
            )
        )

    async def submission_counts(self) -> dict[str, int]:
        """For the staff digest: applications waiting to be sent, and refused ones."""
        rows = await self._read(
            "SELECT status, COUNT(*) FROM submissions WHERE status != 'done' GROUP BY status"
        )
        counts = dict(rows)
        return {"waiting": counts.get("pending", 0), "failed": counts.get("refused", 0)}

    def _submission(self, row: Any) -> Submission:
        key = row[1]

        def opened(index: int, column: str) -> Any:
            return None if row[index] is None else self._open_json(row[index], column, key)

        return Submission(
            id=row[0],
            key=key,
            user_id=row[2],
            chat_id=row[3],
            status=row[4],
            round=row[5],
            attempts=row[6],
            next_attempt_at=datetime.fromisoformat(row[7]),
            last_error=row[8],
            outcome=json.loads(row[9]) if row[9] else None,
            synced=bool(row[10]),
            session=opened(11, "submissions.session"),
            body=opened(12, "submissions.body"),
            summary=opened(13, "submissions.summary"),
        )


# Sealed columns of `submissions`, each bound to the row's Idempotency-Key.
_SEALED_SUBMISSION_COLUMNS = ("session", "body", "summary")
# Meta keys that belong to one application (services/status.py), removed with it by /forget.
_APPLICATION_META_PREFIXES = (
    "status-seen:",
    "status-deadline-reminded:",
)


def split_summary(summary: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """An application summary as (plain part, personal part): see PLAIN_SUMMARY_KEYS."""
    plain = {k: v for k, v in summary.items() if k in PLAIN_SUMMARY_KEYS}
    personal = {k: v for k, v in summary.items() if k not in PLAIN_SUMMARY_KEYS}
    # Older summaries held the child's IIN or birth date itself: the digest still gets what it
    # reads from them (the masked IIN, the birth year), and the values themselves are sealed.
    iin = personal.get("child_iin")
    if "child_iin_masked" not in plain and isinstance(iin, str) and iin:
        plain["child_iin_masked"] = mask_tail(iin)
    if "child_birth_year" not in plain:
        born = personal.get("child_birth_date")
        if isinstance(born, str) and born[:4].isdigit():
            plain["child_birth_year"] = int(born[:4])
        elif isinstance(iin, str) and is_valid_iin(iin):
            plain["child_birth_year"] = parse_iin(iin).birth_date.year
    return plain, personal


def _utc(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat()


_SELECT_APPLICATION = (
    "SELECT id, user_id, chat_id, number, status, summary, submitted_at, queue_position,"
    " status_reason, deadline, personal FROM applications"
)
_INSERT_APPLICATION = (
    "INSERT OR IGNORE INTO applications"
    " (id, user_id, chat_id, number, status, summary, submitted_at, updated_at, personal)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_UPSERT_DRAFT = (
    "INSERT INTO drafts (user_id, step, data, updated_at, submitted) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT(user_id) DO UPDATE SET data = excluded.data,"
    " step = COALESCE(excluded.step, drafts.step), updated_at = excluded.updated_at,"
    " submitted = excluded.submitted"
)


# --- submissions: the table and its row (methods in Store's "submissions" section) --------------

SUBMISSIONS_SCHEMA = """
CREATE TABLE IF NOT EXISTS submissions (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key TEXT NOT NULL UNIQUE,
    user_id         INTEGER NOT NULL,
    chat_id         INTEGER NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'done', 'refused')),
    round           INTEGER NOT NULL DEFAULT 1,  -- Submit pressed again after a refusal: +1
    attempts        INTEGER NOT NULL DEFAULT 0,  -- POSTs of this round without a final answer
    next_attempt_at TEXT NOT NULL,
    last_error      TEXT,                        -- an error code, never personal data
    outcome         TEXT,                        -- JSON: {"application": …} | {"refusal": …}
    synced          INTEGER NOT NULL DEFAULT 1,  -- 0: the parent's state may not follow yet
    session         BLOB,                        -- sealed; dropped once synced
    body            BLOB,                        -- sealed POST body, the same on every attempt
    summary         BLOB,                        -- sealed application_summary for the record
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
-- One application on its way per parent; the worker's queue; the follow-ups after a crash.
CREATE UNIQUE INDEX IF NOT EXISTS submissions_open ON submissions(user_id)
    WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS submissions_due ON submissions(next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS submissions_unsynced ON submissions(id) WHERE synced = 0;
"""

_BEGIN_SUBMISSION = """
INSERT INTO submissions (idempotency_key, user_id, chat_id, status, session, body, summary,
                         next_attempt_at, created_at, updated_at)
VALUES (?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?)
ON CONFLICT (idempotency_key) DO UPDATE SET
    status = 'pending', round = submissions.round + 1, chat_id = excluded.chat_id,
    session = excluded.session, body = excluded.body, summary = excluded.summary,
    attempts = 0, next_attempt_at = excluded.next_attempt_at, last_error = NULL,
    outcome = NULL, synced = 1, updated_at = excluded.updated_at
WHERE submissions.status = 'refused' AND submissions.user_id = excluded.user_id
"""

_SELECT_SUBMISSION = (
    "SELECT id, idempotency_key, user_id, chat_id, status, round, attempts, next_attempt_at,"
    " last_error, outcome, synced, session, body, summary FROM submissions"
)
_STATUS = 4  # the column of `status` in _SELECT_SUBMISSION


@dataclass(frozen=True, slots=True)
class Submission:
    """One application on its way to the voucher service: a row of `submissions`."""

    id: int
    key: str  # the Idempotency-Key every POST of this row carries
    user_id: int
    chat_id: int
    status: str  # pending | done | refused
    round: int
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    outcome: dict[str, Any] | None
    synced: bool
    session: str | None = None  # None once the row is settled and synced
    body: dict[str, Any] | None = None
    summary: dict[str, Any] | None = None
