"""Every write to the bot's SQLite file through one connection in one thread: group commit.

Why: with `synchronous=FULL` each COMMIT is an fsync (≈ 0.2 ms on this machine), and the
connections of the store, the FSM storage and the outbox took turns on SQLite's single write
lock. In a rush, one commit per statement made the disk the queue, and a transaction spanning
several event-loop turns held the lock while a busy loop was slow to come back, so another
connection gave up with "database is locked" after its busy timeout.

Here a write is a plain function (a *job*) that runs in the writer's thread on its sqlite3
connection. Jobs that arrive while a batch commits form the next batch: one `BEGIN IMMEDIATE …
COMMIT`, one fsync, for all of them. Each job runs inside its own SAVEPOINT, so a job that
raises rolls back only its own changes and its caller gets the exception; the rest commit.

    run(job) ──▶ queue ──▶ drain task ──▶ writer thread: BEGIN IMMEDIATE
                                                         SAVEPOINT; job 1; RELEASE
                                                         SAVEPOINT; job 2; RELEASE …
                                                         COMMIT  (one fsync)
    run() returns ◀── result or exception of its own job ◀──┘

`run` returns only after the COMMIT: what a parent was told is saved is on disk. A job holds
SQLite's write lock for the few microseconds its statements take, never across an `await`.
A caller that is cancelled stops waiting, but a job already queued still runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from services.sqlite import pragmas

T = TypeVar("T")
Job = Callable[[sqlite3.Connection], T]

# Enough to share one fsync among a rush's concurrent writes, small enough that one batch
# never keeps the lock for long (each job is a statement or two).
DEFAULT_MAX_BATCH = 512


@dataclass(frozen=True, slots=True)
class _Failed:
    error: BaseException


@dataclass(slots=True)
class WriterStats:
    """How many jobs and batches (commits) the writer has done: jobs ÷ batches = sharing."""

    jobs: int = 0
    batches: int = 0


class SQLiteWriter:
    """One write connection for a whole process; open with `await SQLiteWriter.open(path)`."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        executor: ThreadPoolExecutor,
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> None:
        """Wrap an open connection; use `SQLiteWriter.open` instead of calling this directly."""
        self._conn = conn
        self._executor = executor
        self._max_batch = max_batch
        self._queue: deque[tuple[Job[Any], asyncio.Future[Any]]] = deque()
        self._drainer: asyncio.Task[None] | None = None
        self._closed = False
        self.stats = WriterStats()

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> SQLiteWriter:
        """Connect in the writer's own thread with the bot's settings (services/sqlite.py)."""
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        loop = asyncio.get_running_loop()
        try:
            conn = await loop.run_in_executor(executor, _connect, path, synchronous)
        except BaseException:
            executor.shutdown(wait=True)
            raise
        return cls(conn, executor, max_batch=max_batch)

    async def run(self, job: Job[T]) -> T:
        """Run `job` in a transaction shared with other queued jobs; return once committed."""
        if self._closed:
            raise RuntimeError("the SQLite writer is closed")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append((job, future))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain(), name="sqlite-writer")
        return await future

    async def close(self) -> None:
        """Finish every queued job, then close the connection and the thread; safe twice."""
        if self._closed:
            return
        self._closed = True
        if self._drainer is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._drainer
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._conn.close)
        finally:
            self._executor.shutdown(wait=True)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue:
            size = min(len(self._queue), self._max_batch)
            batch = [self._queue.popleft() for _ in range(size)]
            jobs = [job for job, _ in batch]
            try:
                outcomes = await loop.run_in_executor(self._executor, self._apply, jobs)
            except asyncio.CancelledError:
                # The loop is going away: whether this batch committed is unknown to us, and
                # the callers are being cancelled too.
                for _, future in (*batch, *self._queue):
                    future.cancel()
                self._queue.clear()
                raise
            except Exception as exc:  # the executor itself failed (shut down)
                outcomes = [_Failed(exc)] * len(batch)
            _settle(batch, outcomes)

    def _apply(self, jobs: list[Job[Any]]) -> list[Any]:
        """In the writer's thread: every job in one transaction, each in its own savepoint."""
        conn = self._conn
        outcomes: list[Any] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for job in jobs:
                conn.execute("SAVEPOINT job")
                try:
                    result = job(conn)
                except Exception as exc:
                    conn.execute("ROLLBACK TO job")
                    conn.execute("RELEASE job")
                    outcomes.append(_Failed(exc))
                else:
                    conn.execute("RELEASE job")
                    outcomes.append(result)
            conn.execute("COMMIT")
        except Exception as exc:
            # BEGIN or COMMIT failed (disk full, I/O error, busy past the timeout): nothing of
            # this batch is on disk, so every caller learns it.
            if conn.in_transaction:
                conn.rollback()
            return [_Failed(exc)] * len(jobs)
        self.stats.jobs += len(jobs)
        self.stats.batches += 1
        return outcomes


def _settle(batch: list[tuple[Job[Any], asyncio.Future[Any]]], outcomes: list[Any]) -> None:
    for (_, future), outcome in zip(batch, outcomes, strict=True):
        if future.done():  # the caller was cancelled: nobody waits for this outcome
            continue
        if isinstance(outcome, _Failed):
            future.set_exception(outcome.error)
        else:
            future.set_result(outcome)


def _connect(path: Path, synchronous: Literal["FULL", "NORMAL"]) -> sqlite3.Connection:
    # The same settings as services/sqlite.py's aiosqlite connections; autocommit mode so that
    # `_apply` alone decides where a transaction begins and ends.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        for pragma in pragmas(synchronous):
            conn.execute(f"PRAGMA {pragma}").fetchall()
    except BaseException:
        conn.close()
        raise
    return conn
