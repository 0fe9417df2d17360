"""The bot's own limits on one-time codes, per Telegram user and per phone.

ask for a code ──▶ locked out (after an exhausted code)? ──yes──▶ refused until the lock ends
                   within 60 s of the last code asked for? ──yes──▶ refused until then
                   otherwise allowed; `requested()` starts a new code with no wrong tries
type the code  ──▶ this code already had 5 wrong tries? ──yes──▶ refused, no call to the service
wrong code     ──▶ +1 try; the 5th exhausts the code and locks out asking for a new one:
                   5 min, doubling with each exhausted code (10, 20, … at most a day); the
                   doubling starts over after a whole day without one once the lockout ended
right code     ──▶ the code's tries are cleared

Each rule holds for the Telegram user and for the phone separately (the stricter one wins), so
neither many phones from one account nor many accounts against one phone get more tries. The
phone is kept only as a keyed hash (`phone_key`), never in clear. One small table in the bot's
database, rows deleted a day after they stop mattering; the service's own limits (5 tries per
code, 60 s, 3 codes an hour) apply on top.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import aiosqlite

from services.clock import Clock
from services.sqlite import close_on_error, open_database
from services.sqlite_writer import SQLiteWriter

MAX_WRONG = 5
COOLDOWN = timedelta(seconds=60)
FIRST_LOCK = timedelta(minutes=5)
MAX_LOCK = timedelta(days=1)
STRIKES_FORGOTTEN = timedelta(days=1)
PRUNE_EVERY = timedelta(hours=1)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS otp_limits (
    subject       TEXT PRIMARY KEY,   -- 'user:<telegram id>' or 'phone:<keyed hash>'
    otp_id        TEXT,               -- the service's id of the latest code asked for
    wrong         INTEGER NOT NULL,   -- wrong tries of that code
    sent_at       INTEGER,            -- unix seconds: when that code was asked for
    strikes       INTEGER NOT NULL,   -- exhausted codes in a row (reset a clean day later)
    strike_at     INTEGER,
    locked_until  INTEGER
)
"""
_COLUMNS = "otp_id, wrong, sent_at, strikes, strike_at, locked_until"

Reason = Literal["cooldown", "locked", "exhausted"]


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why the bot will not do it now, and from when the parent may try again."""

    reason: Reason
    until: datetime


@dataclass(frozen=True, slots=True)
class WrongCode:
    """After a wrong code: tries left for this code; `refusal` once it is exhausted."""

    left: int
    refusal: Refusal | None = None


@dataclass(slots=True)
class _Row:
    otp_id: str | None = None
    wrong: int = 0
    sent_at: int | None = None
    strikes: int = 0
    strike_at: int | None = None
    locked_until: int | None = None


class OtpGuard:
    """Open with `await OtpGuard.open(path, clock, phone_key=...)`."""

    def __init__(
        self,
        db: aiosqlite.Connection,
        clock: Clock,
        phone_key: Callable[[str], str],
        writer: SQLiteWriter,
        *,
        owns_writer: bool = False,
    ) -> None:
        self._db = db
        self._clock = clock
        self._phone_key = phone_key
        # Every read-modify-write of the rows is one job of the writer: atomic without a lock
        # of our own, and never holding SQLite's write lock across an await.
        self._writer = writer
        self._owns_writer = owns_writer
        self._last_prune: int | None = None

    @classmethod
    async def open(
        cls,
        path: Path,
        clock: Clock,
        *,
        phone_key: Callable[[str], str],
        writer: SQLiteWriter | None = None,
    ) -> OtpGuard:
        """Open (and create) the table; `phone_key` turns a phone into its keyed hash.

        Without `writer` the guard opens its own (tests of the guard alone); the bot shares one.
        """
        db = await open_database(path, schema=_SCHEMA, autocommit=True)
        async with close_on_error(db):
            own = writer is None
            if writer is None:
                writer = await SQLiteWriter.open(path)
        return cls(db, clock, phone_key, writer, owns_writer=own)

    async def close(self) -> None:
        await self._db.close()
        if self._owns_writer:
            await self._writer.close()

    # --- asking for a code -------------------------------------------------------------------

    async def may_request(self, user_id: int, phone: str) -> Refusal | None:
        """None when a new code may be asked for now; otherwise why not and until when."""
        now = self._now()
        refusals: list[Refusal] = []
        for row in await self._rows(user_id, phone):
            if row.locked_until is not None and row.locked_until > now:
                refusals.append(Refusal("locked", _at(row.locked_until)))
            elif row.sent_at is not None and row.sent_at + _s(COOLDOWN) > now:
                refusals.append(Refusal("cooldown", _at(row.sent_at + _s(COOLDOWN))))
        return _strictest(refusals)

    async def requested(self, user_id: int, phone: str, otp_id: str) -> None:
        """A new code was sent: its tries start at zero and the cooldown starts now."""
        subjects, now = self._subjects(user_id, phone), self._now()

        def job(conn: sqlite3.Connection) -> None:
            for subject, row in _load(conn, subjects):
                row.otp_id, row.wrong, row.sent_at = otp_id, 0, now
                _save(conn, subject, row)

        await self._writer.run(job)
        await self._prune_if_due()

    # --- typing the code ---------------------------------------------------------------------

    async def may_verify(self, user_id: int, phone: str, otp_id: str) -> Refusal | None:
        """None when this code may be checked with the service; otherwise it is exhausted."""
        rows = await self._rows(user_id, phone)
        if any(row.otp_id == otp_id and row.wrong >= MAX_WRONG for row in rows):
            return Refusal("exhausted", self._retry_at(rows))
        return None

    async def wrong(self, user_id: int, phone: str, otp_id: str) -> WrongCode:
        """Count a wrong code; the last allowed one exhausts the code and locks out."""
        subjects, now = self._subjects(user_id, phone), self._now()

        def job(conn: sqlite3.Connection) -> tuple[list[tuple[str, _Row]], int, bool]:
            loaded = _load(conn, subjects)
            left = MAX_WRONG
            exhausted = False
            for subject, row in loaded:
                if row.otp_id != otp_id:
                    # Another code superseded this one for the phone (someone asked anew):
                    # the tries of the old code count against the user only.
                    if subject.startswith("phone:"):
                        continue
                    row.otp_id, row.wrong = otp_id, 0
                row.wrong += 1
                left = min(left, max(0, MAX_WRONG - row.wrong))
                if row.wrong == MAX_WRONG:
                    exhausted = True
                    _strike(row, now)
                _save(conn, subject, row)
            return loaded, left, exhausted

        loaded, left, exhausted = await self._writer.run(job)
        if not exhausted and left > 0:
            return WrongCode(left)
        rows = [row for _, row in loaded]
        return WrongCode(0, Refusal("exhausted", self._retry_at(rows)))

    async def exhaust(self, user_id: int, phone: str, otp_id: str) -> Refusal:
        """The service locked this code (its own count ran out first): the same as the 5th."""
        subjects, now = self._subjects(user_id, phone), self._now()

        def job(conn: sqlite3.Connection) -> list[tuple[str, _Row]]:
            loaded = _load(conn, subjects)
            for subject, row in loaded:
                if row.otp_id != otp_id and subject.startswith("phone:"):
                    continue
                if row.otp_id != otp_id or row.wrong < MAX_WRONG:
                    row.otp_id, row.wrong = otp_id, MAX_WRONG
                    _strike(row, now)
                    _save(conn, subject, row)
            return loaded

        loaded = await self._writer.run(job)
        return Refusal("exhausted", self._retry_at([row for _, row in loaded]))

    async def verified(self, user_id: int, phone: str) -> None:
        """The right code: nothing left to count for it (lockout history stays)."""
        subjects = self._subjects(user_id, phone)

        def job(conn: sqlite3.Connection) -> None:
            for subject, row in _load(conn, subjects):
                row.otp_id, row.wrong = None, 0
                _save(conn, subject, row)

        await self._writer.run(job)

    async def prune(self) -> int:
        """Delete rows with nothing left to enforce: no code, cooldown or lockout in the last
        day (strikes are forgotten a day after the lockout anyway); returns how many."""
        cutoff = self._now() - _s(STRIKES_FORGOTTEN)

        def job(conn: sqlite3.Connection) -> int:
            return conn.execute(
                "DELETE FROM otp_limits WHERE COALESCE(sent_at, 0) < ?"
                " AND COALESCE(locked_until, 0) < ? AND COALESCE(strike_at, 0) < ?",
                (cutoff, cutoff, cutoff),
            ).rowcount

        return await self._writer.run(job)

    async def _prune_if_due(self) -> None:
        now = self._now()
        if self._last_prune is None or now - self._last_prune >= _s(PRUNE_EVERY):
            self._last_prune = now
            await self.prune()

    # --- helpers -----------------------------------------------------------------------------

    def _retry_at(self, rows: list[_Row]) -> datetime:
        """When a new code may be asked for, by every subject's rules."""
        now = self._now()
        times = [now]
        for row in rows:
            if row.locked_until is not None:
                times.append(row.locked_until)
            if row.sent_at is not None:
                times.append(row.sent_at + _s(COOLDOWN))
        return _at(max(times))

    def _subjects(self, user_id: int, phone: str) -> tuple[str, str]:
        return f"user:{user_id}", "phone:" + self._phone_key(phone)

    async def _rows(self, user_id: int, phone: str) -> list[_Row]:
        return [row for _, row in await self._load(user_id, phone)]

    async def _load(self, user_id: int, phone: str) -> list[tuple[str, _Row]]:
        subjects = self._subjects(user_id, phone)
        # One thread hop that finishes the statement: a SELECT left open while another
        # coroutine writes would pin a stale snapshot ("database is locked").
        rows = await self._db.execute_fetchall(_SELECT, subjects)
        return _rows_of(subjects, rows)

    def _now(self) -> int:
        return int(self._clock.now().timestamp())


def _s(delta: timedelta) -> int:
    return int(delta.total_seconds())


def _at(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _strictest(refusals: list[Refusal]) -> Refusal | None:
    """The refusal that lasts longest (a lockout over a cooldown that ends first)."""
    return max(refusals, key=lambda r: r.until, default=None)


_SELECT = f"SELECT subject, {_COLUMNS} FROM otp_limits WHERE subject IN (?, ?)"
_UPSERT = (
    f"INSERT INTO otp_limits (subject, {_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT(subject) DO UPDATE SET otp_id = excluded.otp_id,"
    " wrong = excluded.wrong, sent_at = excluded.sent_at, strikes = excluded.strikes,"
    " strike_at = excluded.strike_at, locked_until = excluded.locked_until"
)


def _rows_of(subjects: tuple[str, str], rows: Iterable[Sequence[Any]]) -> list[tuple[str, _Row]]:
    found = {row[0]: _Row(*row[1:]) for row in rows}
    return [(subject, found.get(subject) or _Row()) for subject in subjects]


def _load(conn: sqlite3.Connection, subjects: tuple[str, str]) -> list[tuple[str, _Row]]:
    """In the writer's thread: the rows of both subjects, read in the job's own transaction."""
    return _rows_of(subjects, conn.execute(_SELECT, subjects).fetchall())


def _save(conn: sqlite3.Connection, subject: str, row: _Row) -> None:
    conn.execute(
        _UPSERT,
        (subject, row.otp_id, row.wrong, row.sent_at, row.strikes, row.strike_at, row.locked_until),
    )


def _strike(row: _Row, now: int) -> None:
    """An exhausted code: lock out, twice as long as the last time within a day."""
    # Measured from the end of the last lockout, so a day-long one does not reset itself.
    recent = row.locked_until is not None and now - row.locked_until < _s(STRIKES_FORGOTTEN)
    row.strikes = row.strikes + 1 if recent else 1
    row.strike_at = now
    lock = min(FIRST_LOCK * 2 ** min(row.strikes - 1, 16), MAX_LOCK)
    row.locked_until = max(row.locked_until or 0, now + _s(lock))
