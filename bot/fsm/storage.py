"""aiogram FSM storage on SQLite (aiosqlite) with an in-process write-through cache.

Why it is shaped like this (the design notes' "Performance facts"):
- state and data live in one row per key, so `set_state` and `set_data` are one UPSERT each;
- every write is one job of the process's `SQLiteWriter` (services/sqlite_writer.py): it
  shares its commit with the other parts' writes of the moment, holds SQLite's write lock only
  while its statement runs (never across an `await`) and returns once committed
  (`synchronous=FULL`): what the parent was told is saved survives a crash;
- reads are served from memory after the first load; a miss is one statement on the storage's
  own autocommit connection (one thread hop, no read snapshot kept).

Concurrency: the storage keeps its own asyncio lock per key instead of relying on aiogram's
event isolation. Background jobs (/forget, staff tools) touch FSM rows outside update handling,
and `update_data` must stay atomic even with `DisabledEventIsolation` (aiogram's default).
Different keys never wait for each other; the writer serialises the disk writes.

Personal data: FSM data (a phone, an IIN waiting for its consent…) is sealed with the
`DataCipher` given to `open` (AES-GCM bound to the row's key, services/crypto.py). The cache
holds the clear JSON, so each record is decrypted once on load and encrypted on each write.
States are step names, not personal data, and stay plain for the staff figures.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aiosqlite
from aiogram.exceptions import DataNotDictLikeError
from aiogram.fsm.state import State
from aiogram.fsm.storage.base import BaseStorage, StateType, StorageKey

from services.clock import Clock, SystemClock
from services.crypto import DataCipher, row_context
from services.keyed_locks import KeyedLocks
from services.sqlite import close_on_error, open_database
from services.sqlite_writer import Job, Pending, SQLiteWriter

_SCHEMA = """
CREATE TABLE IF NOT EXISTS fsm_records (
    bot_id                 INTEGER NOT NULL,
    chat_id                INTEGER NOT NULL,
    user_id                INTEGER NOT NULL,
    thread_id              INTEGER NOT NULL,  -- None stored as 0 (Telegram never uses 0)
    business_connection_id TEXT    NOT NULL,  -- None stored as ''
    destiny                TEXT    NOT NULL,
    state                  TEXT,
    data                   BLOB    NOT NULL,  -- a JSON object, sealed (clear without a cipher)
    updated_at             INTEGER NOT NULL,  -- unix seconds (the clock's), for the retention job
    PRIMARY KEY (bot_id, chat_id, user_id, thread_id, business_connection_id, destiny)
) WITHOUT ROWID
"""
_KEY_WHERE = (
    "bot_id = ? AND chat_id = ? AND user_id = ? AND thread_id = ?"
    " AND business_connection_id = ? AND destiny = ?"
)
_SELECT = f"SELECT state, data FROM fsm_records WHERE {_KEY_WHERE}"
_DELETE = f"DELETE FROM fsm_records WHERE {_KEY_WHERE}"
_UPSERT = """
INSERT INTO fsm_records (bot_id, chat_id, user_id, thread_id, business_connection_id, destiny,
                         state, data, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (bot_id, chat_id, user_id, thread_id, business_connection_id, destiny)
DO UPDATE SET state = excluded.state, data = excluded.data, updated_at = excluded.updated_at
"""
_COUNT_BY_STATE = "SELECT state, COUNT(*) FROM fsm_records WHERE state IS NOT NULL GROUP BY state"
_EMPTY_DATA = "{}"
_DATA_COLUMN = "fsm_records.data"


def _unix(ts: datetime) -> int:
    return int(ts.timestamp())


@dataclass(frozen=True, slots=True)
class _Record:
    """What the database holds for one key; data kept as JSON so every read gets fresh objects."""

    state: str | None
    data_json: str

    @property
    def empty(self) -> bool:
        return self.state is None and self.data_json == _EMPTY_DATA


_ABSENT = _Record(None, _EMPTY_DATA)


class Keep:
    """`moving`'s default state: leave it as it is."""


KEEP = Keep()


def _key_params(key: StorageKey) -> tuple[int, int, int, int, str, str]:
    # NULLs cannot take part in a primary key's uniqueness, hence 0 and ''.
    return (
        key.bot_id,
        key.chat_id,
        key.user_id,
        key.thread_id or 0,
        key.business_connection_id or "",
        key.destiny,
    )


def _ensure_plain_json(value: Any, path: str) -> None:
    # json.dumps quietly turns tuples into lists and int keys into strings; reject both so that
    # what a handler stores is exactly what it reads back after a restart.
    if value is None or isinstance(value, str | bool | int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(f"FSM data must be plain JSON: {path} is {value!r}")
        return
    if isinstance(value, list):
        for index, item in enumerate(value):
            _ensure_plain_json(item, f"{path}[{index}]")
        return
    if isinstance(value, dict):
        for name, item in value.items():
            if not isinstance(name, str):
                raise TypeError(
                    f"FSM data must be plain JSON: {path} has a {type(name).__name__} key {name!r}"
                )
            _ensure_plain_json(item, f"{path}[{name!r}]")
        return
    raise TypeError(f"FSM data must be plain JSON: {path} is a {type(value).__name__}")


def _dump_data(data: Mapping[str, Any]) -> str:
    """Serialise FSM data, raising TypeError for anything that is not plain JSON."""
    if not isinstance(data, Mapping):
        raise DataNotDictLikeError(f"Data must be a dict or dict-like object, got {type(data)}")
    plain = dict(data)
    _ensure_plain_json(plain, "data")
    return json.dumps(plain, ensure_ascii=False, separators=(",", ":"))


def _state_name(state: StateType) -> str | None:
    return state.state if isinstance(state, State) else state


def _statement(sql: str, params: tuple[object, ...]) -> Job[int]:
    """A writer job running one statement; its result is the row count."""

    def job(conn: sqlite3.Connection) -> int:
        return conn.execute(sql, params).rowcount

    return job


def _returning(sql: str, params: tuple[object, ...]) -> Job[list[tuple[Any, ...]]]:
    """A writer job running one `… RETURNING` statement to its end; its result is the rows."""

    def job(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
        return conn.execute(sql, params).fetchall()

    return job


class SQLiteStorage(BaseStorage):
    """FSM storage: one SQLite row per StorageKey, cached in memory, written through on change."""

    def __init__(
        self,
        conn: aiosqlite.Connection,
        writer: SQLiteWriter,
        *,
        owns_writer: bool = False,
        cache_size: int = 10_000,
        cipher: DataCipher | None = None,
        clock: Clock | None = None,
    ) -> None:
        """Wrap open connections; use `SQLiteStorage.open` instead of calling this directly."""
        self._conn = conn  # reads only
        self._writer = writer
        self._owns_writer = owns_writer
        self._cache_size = cache_size
        self._cipher = cipher
        self._clock: Clock = clock or SystemClock()
        # LRU: the database is always current, so evicting a record only costs a later read.
        self._cache: OrderedDict[StorageKey, _Record] = OrderedDict()
        self._locks: KeyedLocks[StorageKey] = KeyedLocks()
        # Bumped by every delete of many keys at once (forget_user, purge_untouched), which
        # takes no key lock: a load that saw one happen meanwhile must not cache its row.
        self._purges = 0

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        cache_size: int = 10_000,
        cipher: DataCipher | None = None,
        clock: Clock | None = None,
        writer: SQLiteWriter | None = None,
    ) -> SQLiteStorage:
        """Open (creating if needed) the storage in the SQLite file at `path`.

        Without `cipher` the data stays in clear: for tests of the storage alone; the bot
        always passes one (`bot.app.open_app`). `writer` is the process's shared writer of this
        file; without one the storage opens (and closes) its own.
        """
        # Autocommit: a read never leaves a transaction (a snapshot) open behind it.
        conn = await open_database(path, schema=_SCHEMA, autocommit=True)
        async with close_on_error(conn):
            owns_writer = writer is None
            if writer is None:
                writer = await SQLiteWriter.open(path)
            storage = cls(
                conn,
                writer,
                owns_writer=owns_writer,
                cache_size=cache_size,
                cipher=cipher,
                clock=clock,
            )
            try:
                await storage._seal_old_rows()
            except BaseException:
                if owns_writer:
                    await writer.close()
                raise
        return storage

    async def close(self) -> None:
        """Close the database connection (and the writer if it is the storage's own); safe twice."""
        if self._owns_writer:
            await self._writer.close()
        await self._conn.close()
        self._cache.clear()

    async def pragmas(self, *names: str) -> dict[str, int | str]:
        """The connection's effective pragmas: `names`, or journal_mode, synchronous,
        busy_timeout and foreign_keys."""
        result: dict[str, int | str] = {}
        for name in names or ("journal_mode", "synchronous", "busy_timeout", "foreign_keys"):
            rows = list(await self._conn.execute_fetchall(f"PRAGMA {name}"))
            result[name] = rows[0][0]
        return result

    # --- aiogram BaseStorage -------------------------------------------------------------

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        """Set the state (None clears it) and persist it before returning."""
        name = _state_name(state)
        async with self._locks(key):
            current = await self._load(key)
            await self._write(key, _Record(name, current.data_json))

    async def get_state(self, key: StorageKey) -> str | None:
        """Return the current state name, or None."""
        return (await self._read(key)).state

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        """Replace the data (plain JSON only) and persist it before returning."""
        data_json = _dump_data(data)
        async with self._locks(key):
            current = await self._load(key)
            await self._write(key, _Record(current.state, data_json))

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        """Return a fresh copy of the data."""
        data: dict[str, Any] = json.loads((await self._read(key)).data_json)
        return data

    async def update_data(self, key: StorageKey, data: Mapping[str, Any]) -> dict[str, Any]:
        """Merge `data` into the stored data atomically (one lock, one statement)."""
        if not isinstance(data, Mapping):
            raise DataNotDictLikeError(f"Data must be a dict or dict-like object, got {type(data)}")
        patch = dict(data)
        async with self._locks(key):
            current = await self._load(key)
            merged: dict[str, Any] = json.loads(current.data_json)
            merged.update(patch)
            await self._write(key, _Record(current.state, _dump_data(merged)))
        return merged

    # --- Kezek extras --------------------------------------------------------------------

    @asynccontextmanager
    async def moving(
        self,
        key: StorageKey,
        state: StateType | Keep = KEEP,
        *,
        data: Callable[[dict[str, Any]], Mapping[str, Any]] | None = None,
    ) -> AsyncIterator[Callable[[Pending[Any]], Pending[Any]]]:
        """`set_state` and/or a change of the data in two halves, for a write that must come with
        another one. `data` gets the current data (a copy) and returns the new data, under the
        key's lock like `update_data`.

        Inside the block the key is locked and its record loaded; the function it yields queues
        the new record's write `after` the given one (so both share a commit, and the record
        changes only if that one committed). The cache follows once the block has awaited it.
        """
        async with self._locks(key):
            current = await self._load(key)
            data_json = current.data_json
            if data is not None:
                data_json = _dump_data(data(json.loads(current.data_json)))
            record = _Record(
                current.state if isinstance(state, Keep) else _state_name(state), data_json
            )
            # Built (and sealed) before the block runs: queueing it then cannot fail half-way,
            # after the other write was queued but before the caller awaits it.
            job = self._job(key, record)
            queued: list[Pending[Any]] = []

            def queue(after: Pending[Any]) -> Pending[Any]:
                pending = self._writer.queue(job, after=after)
                queued.append(pending)
                return pending

            yield queue
            for pending in queued:
                await pending
                self._remember(key, record)

    async def delete(self, key: StorageKey) -> None:
        """Remove everything stored for `key` (used by /forget)."""
        async with self._locks(key):
            await self._write(key, _ABSENT)

    async def forget_user(self, user_id: int) -> int:
        """Remove every key of this user (all chats, threads, destinies): /forget and retention."""
        for key in [k for k in self._cache if k.user_id == user_id]:
            del self._cache[key]
        rows = await self._writer.run(
            _returning("DELETE FROM fsm_records WHERE user_id = ? RETURNING 1", (user_id,))
        )
        self._purges += 1
        # Evicted again: a write may have cached one of these keys meanwhile.
        for key in [k for k in self._cache if k.user_id == user_id]:
            del self._cache[key]
        return len(rows)

    async def users_touched_since(self, since: datetime) -> set[int]:
        """Users with a key written at or after `since` (they are still at it)."""
        rows = await self._conn.execute_fetchall(
            "SELECT DISTINCT user_id FROM fsm_records WHERE updated_at >= ?",
            (_unix(since),),
        )
        return {int(row[0]) for row in rows}

    async def purge_untouched(self, before: datetime) -> set[int]:
        """Delete every key not written since `before`; returns the users they belonged to."""
        rows = await self._writer.run(
            _returning(
                "DELETE FROM fsm_records WHERE updated_at < ? RETURNING user_id", (_unix(before),)
            )
        )
        self._purges += 1
        users = {int(row[0]) for row in rows}
        for key in [k for k in self._cache if k.user_id in users]:
            del self._cache[key]
        return users

    async def keys_in_state(self) -> dict[str, int]:
        """Count the keys currently in each state (for staff digests)."""
        rows = await self._conn.execute_fetchall(_COUNT_BY_STATE)
        return {state: count for state, count in rows}

    # --- internals -----------------------------------------------------------------------

    async def _read(self, key: StorageKey) -> _Record:
        record = self._cache.get(key)
        if record is not None:
            self._cache.move_to_end(key)
            return record
        # Load under the lock so a cold read can never cache a row older than a concurrent
        # write: reads and writes run on different connections and threads, nothing else
        # orders them.
        async with self._locks(key):
            return await self._load(key)

    async def _load(self, key: StorageKey) -> _Record:
        """Return the cached record, loading it from disk on a miss; caller holds the key lock."""
        record = self._cache.get(key)
        if record is None:
            params = _key_params(key)
            purges = self._purges
            rows = list(await self._conn.execute_fetchall(_SELECT, params))
            record = _Record(rows[0][0], self._open(rows[0][1], params)) if rows else _ABSENT
            if purges == self._purges:
                self._remember(key, record)
        return record

    async def _write(self, key: StorageKey, record: _Record) -> None:
        """Persist `record` in one statement, then cache it; caller holds the key lock."""
        await self._writer.run(self._job(key, record))
        # Only after the statement succeeded, so a failed write never poisons the cache.
        self._remember(key, record)

    def _job(self, key: StorageKey, record: _Record) -> Job[int]:
        """The one statement that stores `record` for `key`."""
        params = _key_params(key)
        if record.empty:
            # A cleared key (state None, data {}) needs no row: keeps the table to live drafts.
            return _statement(_DELETE, params)
        return _statement(
            _UPSERT,
            (*params, record.state, self._seal(record.data_json, params), _unix(self._clock.now())),
        )

    def _seal(self, data_json: str, params: tuple[object, ...]) -> str | bytes:
        if self._cipher is None:
            return data_json
        return self._cipher.encrypt_text(data_json, row_context(_DATA_COLUMN, *params))

    def _open(self, stored: str | bytes, params: tuple[object, ...]) -> str:
        if isinstance(stored, str):
            if self._cipher is not None:
                # `_seal_old_rows` sealed every clear row at open: one now was injected.
                raise ValueError(f"{_DATA_COLUMN}: a value in clear where a sealed one belongs")
            return stored
        if self._cipher is None:
            raise ValueError(f"{_DATA_COLUMN} is encrypted: DATA_KEY is needed to read it")
        return self._cipher.decrypt_text(stored, row_context(_DATA_COLUMN, *params))

    async def _seal_old_rows(self) -> None:
        """At open: seal rows written in clear (older files) or with a retired key."""
        cipher = self._cipher
        if cipher is None:
            return

        def seal_old_rows(conn: sqlite3.Connection) -> None:
            # One job: the scan and the updates see the same rows, and commit together.
            rows = conn.execute(
                "SELECT bot_id, chat_id, user_id, thread_id, business_connection_id, destiny,"
                " data FROM fsm_records WHERE typeof(data) != 'blob' OR substr(data, 2, 8) != ?",
                (cipher.key_id,),
            ).fetchall()
            updates = []
            for *params, stored in rows:
                # Clear data is always stored as text; a blob opens with a known key or stops.
                clear = (
                    stored
                    if isinstance(stored, str)
                    else cipher.decrypt_text(stored, row_context(_DATA_COLUMN, *params))
                )
                updates.append((self._seal(clear, tuple(params)), *params))
            conn.executemany(f"UPDATE fsm_records SET data = ? WHERE {_KEY_WHERE}", updates)

        await self._writer.run(seal_old_rows)

    def _remember(self, key: StorageKey, record: _Record) -> None:
        self._cache[key] = record
        self._cache.move_to_end(key)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
