"""Telegram may deliver an update twice; each (bot id, update_id) is handled once.

update ──▶ claimed in this process lately? ──yes──▶ dropped (acknowledged, nothing sent)
              │ no
              ├── above every id recorded for this bot ──▶ new: no database read
              └── otherwise (a restart's redelivery, ids out of order, a reset sequence):
                  in `processed_updates`? ──yes──▶ dropped
           new: claimed in memory at once (a concurrent copy is dropped), handled, and written
           to `processed_updates` by a background writer that commits everything claimed
           meanwhile in one statement (group commit). A handler that raises releases its claim,
           so a redelivery is handled again. Rows expire after 48 h, pruned in small batches.

Why not "the highest update_id seen": ids arrive out of order (webhook connections in
parallel), and Telegram restarts the sequence at a random value after a week without updates.
Why write-behind: the hot path then costs no thread hop at all (≈ 2 µs for a new id); the
price is that ids claimed in the last few milliseconds before a SIGKILL are not on disk, and
Telegram confirms those updates as delivered anyway (polling takes the next batch at once).
One process per database: a second process would not see this one's memory; running several
would need the INSERT per update (the table's primary key already makes that correct).
Every write goes through a `SQLiteWriter`: in the bot the process's one (the ids share its
commits and never wait for SQLite's write lock against another connection), alone a writer of
its own without fsync per batch; the table's connection is used only for the rare look-ups.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiosqlite
from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, Update

from services.clock import Clock
from services.sqlite import close_on_error, open_database
from services.sqlite_writer import SQLiteWriter

log = logging.getLogger("kezek.dedup")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS processed_updates (
    bot_id     INTEGER NOT NULL,
    update_id  INTEGER NOT NULL,
    seen_at    INTEGER NOT NULL,  -- unix seconds by the bot's clock
    PRIMARY KEY (bot_id, update_id)
);
CREATE INDEX IF NOT EXISTS processed_updates_seen ON processed_updates(seen_at);
"""
# 3 parameters a row; SQLite allows at least 999 per statement.
_ROWS_PER_INSERT = 300
_PRUNE_BATCH = 1000

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]
Key = tuple[int, int]


class UpdateDedup(BaseMiddleware):
    """Outer update middleware; open with `await UpdateDedup.open(path, clock)`."""

    def __init__(
        self,
        db: aiosqlite.Connection,
        clock: Clock,
        *,
        ttl: timedelta = timedelta(hours=48),
        capacity: int = 10_000,
        prune_every: timedelta = timedelta(minutes=10),
        writer: SQLiteWriter,
        owns_writer: bool = False,
    ) -> None:
        self._db = db
        self._sqlite = writer
        self._owns_writer = owns_writer
        self._clock = clock
        self._ttl = int(ttl.total_seconds())
        self._capacity = capacity
        self._prune_every = int(prune_every.total_seconds())
        # Insertion-ordered: the oldest claims are forgotten first once over capacity.
        self._recent: dict[Key, None] = {}
        self._top: dict[int, int | None] = {}  # bot id → highest update_id ever recorded
        self._pending: list[tuple[int, int, int]] = []
        self._released: list[Key] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._last_prune: int | None = None
        self._closing = False
        self._flusher = asyncio.create_task(self._write_loop(), name="update-dedup-writer")

    @classmethod
    async def open(
        cls, path: Path, clock: Clock, *, writer: SQLiteWriter | None = None, **options: Any
    ) -> UpdateDedup:
        """Open (and create) the table in the bot's database file.

        Writes go through `writer` (the bot's shared one); without it the dedup opens its own
        (tests of the dedup alone).
        """
        # A lost row only lets a redelivered update through once: no fsync per batch.
        db = await open_database(path, schema=_SCHEMA, autocommit=True, synchronous="NORMAL")
        async with close_on_error(db):
            own = writer is None
            if writer is None:
                writer = await SQLiteWriter.open(path, synchronous="NORMAL")
        return cls(db, clock, writer=writer, owns_writer=own, **options)

    # --- the middleware ---------------------------------------------------------------------

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        """Drop a duplicate; otherwise claim the update and handle it."""
        if not isinstance(event, Update):
            return await handler(event, data)
        key = (data["bot"].id, event.update_id)
        if key in self._recent or not await self._is_new(key):
            log.info("duplicate update %s dropped", event.update_id)
            return None
        self._claim(key)
        try:
            return await handler(event, data)
        except BaseException:
            self._release(key)
            raise

    async def _is_new(self, key: Key) -> bool:
        bot_id, update_id = key
        if bot_id not in self._top:
            stored_top = await self._stored_top(bot_id)
            # Another update may have loaded it (and claimed above it) while we were reading.
            self._top.setdefault(bot_id, stored_top)
        top = self._top[bot_id]
        if top is not None and update_id <= top:
            # execute_fetchall: one hop that finishes the statement, so no read stays open
            # on this connection while the writer writes on it.
            found = await self._db.execute_fetchall(
                "SELECT 1 FROM processed_updates WHERE bot_id = ? AND update_id = ?", key
            )
            if found:
                return False
        # A copy fed meanwhile may have claimed it while we were reading.
        return key not in self._recent

    def _claim(self, key: Key) -> None:
        bot_id, update_id = key
        self._recent[key] = None
        if len(self._recent) > self._capacity:
            del self._recent[next(iter(self._recent))]
        top = self._top.get(bot_id)
        if top is None or update_id > top:
            self._top[bot_id] = update_id
        self._pending.append((bot_id, update_id, self._now()))
        self._idle.clear()
        self._wake.set()

    def _release(self, key: Key) -> None:
        self._recent.pop(key, None)
        self._released.append(key)
        self._idle.clear()
        self._wake.set()

    # --- the writer -------------------------------------------------------------------------

    async def _write_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            failed = False
            try:
                await self._write_pending()
                await self._prune_if_due()
            except Exception as exc:  # a full disk must not stop the bot; retried next time
                failed = True
                log.error("processed_updates write failed: %s", type(exc).__name__)
            if failed or (not self._pending and not self._released):
                self._idle.set()
            if self._closing and (failed or not (self._pending or self._released)):
                return
            if not failed and (self._pending or self._released):
                self._wake.set()  # claimed while we were writing: go again

    async def _write_pending(self) -> None:
        pending, released = list(self._pending), list(self._released)
        await self._sqlite.run(lambda conn: _write_rows(conn, pending, released))
        # Only what was written: ids claimed during the commit wait for the next round.
        del self._pending[: len(pending)]
        del self._released[: len(released)]

    async def _prune_if_due(self) -> None:
        now = self._now()
        if self._last_prune is not None and now - self._last_prune < self._prune_every:
            return
        self._last_prune = now
        await self.prune()

    async def prune(self) -> int:
        """Delete rows older than the expiry, a batch per statement; returns how many."""
        cutoff = self._now() - self._ttl
        total = 0
        while True:
            count = await self._sqlite.run(lambda conn: _prune_batch(conn, cutoff))
            total += count
            if count < _PRUNE_BATCH:
                break
        if total:
            # The top in memory stays: above it every id is new, below it each is looked up.
            log.info("pruned %d expired update ids", total)
        return total

    async def flush(self) -> None:
        """Wait until every claimed id is on disk (shutdown, tests)."""
        if self._flusher.done():
            return
        await self._idle.wait()

    async def close(self) -> None:
        """Write what is pending, stop the writer, close the connection."""
        if not self._flusher.done():
            self._closing = True
            self._wake.set()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        await self._db.close()
        if self._owns_writer:
            await self._sqlite.close()

    # --- helpers ----------------------------------------------------------------------------

    async def _stored_top(self, bot_id: int) -> int | None:
        rows = await self._db.execute_fetchall(
            "SELECT MAX(update_id) FROM processed_updates WHERE bot_id = ?", (bot_id,)
        )
        found = list(rows)
        return found[0][0] if found else None

    async def top(self, bot_id: int) -> int | None:
        """The highest update_id recorded for this bot (in memory or on disk), or None."""
        if bot_id not in self._top:
            self._top.setdefault(bot_id, await self._stored_top(bot_id))
        return self._top[bot_id]

    async def stored_ids(self, bot_id: int) -> list[int]:
        """The update ids on disk for one bot, ascending (tests and diagnostics)."""
        rows = await self._db.execute_fetchall(
            "SELECT update_id FROM processed_updates WHERE bot_id = ? ORDER BY update_id",
            (bot_id,),
        )
        return [row[0] for row in rows]

    def _now(self) -> int:
        return int(self._clock.now().timestamp())


def _write_rows(
    conn: sqlite3.Connection, pending: list[tuple[int, int, int]], released: list[Key]
) -> None:
    """In the writer's thread: record the claimed ids, forget the released ones."""
    for start in range(0, len(pending), _ROWS_PER_INSERT):
        batch = pending[start : start + _ROWS_PER_INSERT]
        placeholders = ",".join(["(?, ?, ?)"] * len(batch))
        conn.execute(
            "INSERT OR IGNORE INTO processed_updates (bot_id, update_id, seen_at)"
            f" VALUES {placeholders}",
            [value for row in batch for value in row],
        )
    conn.executemany("DELETE FROM processed_updates WHERE bot_id = ? AND update_id = ?", released)


def _prune_batch(conn: sqlite3.Connection, cutoff: int) -> int:
    """In the writer's thread: delete one batch of expired rows; returns how many."""
    cursor = conn.execute(
        "DELETE FROM processed_updates WHERE rowid IN (SELECT rowid FROM"
        " processed_updates WHERE seen_at < ? LIMIT ?)",
        (cutoff, _PRUNE_BATCH),
    )
    return cursor.rowcount
