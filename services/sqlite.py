"""Opening the bot's SQLite file: the same settings on every connection, nothing leaked.

Each part of the bot (store, FSM storage, outbox, update dedup, OTP limits) keeps its own
connection to the one file. They all need WAL (readers never wait for the writer), a busy
timeout (writers queue instead of failing), `secure_delete` (deleted personal data is
overwritten, not left in free pages) and foreign keys. An aiosqlite connection runs in a
non-daemon thread: one left open after a failed start keeps the process from ever exiting,
so whatever goes wrong while opening closes the connection again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Literal

import aiosqlite


def pragmas(synchronous: Literal["FULL", "NORMAL"] = "FULL") -> tuple[str, ...]:
    """The settings every connection to the bot's file gets (see the module's docstring)."""
    return (
        "journal_mode = WAL",
        f"synchronous = {synchronous}",
        "busy_timeout = 5000",
        "secure_delete = ON",
        "foreign_keys = ON",
    )


async def open_database(
    path: Path,
    *,
    schema: str,
    autocommit: bool = False,
    synchronous: Literal["FULL", "NORMAL"] = "FULL",
) -> aiosqlite.Connection:
    """Connect, apply the shared settings and create `schema`; closed again on any failure.

    `synchronous=FULL` is for what a parent was told is saved; NORMAL only where a lost row
    costs nothing but a repeat (the update dedup). `autocommit` makes each statement its own
    transaction (one thread hop per write instead of two).
    """
    options = {"isolation_level": None} if autocommit else {}
    db = await aiosqlite.connect(path, **options)
    async with close_on_error(db):
        for pragma in pragmas(synchronous):
            await db.execute_fetchall(f"PRAGMA {pragma}")
        await db.executescript(schema)
        if not autocommit:
            await db.commit()
    return db


@asynccontextmanager
async def close_on_error(db: aiosqlite.Connection) -> AsyncIterator[aiosqlite.Connection]:
    """Close `db` if the block raises: for the rest of an `open()` after the connection."""
    try:
        yield db
    except BaseException:
        await db.close()
        raise
