"""Every write to the bot's SQLite file through one connection in one thread: group commit.

Why: with `synchronous=FULL` each COMMIT is an fsync (≈ 0.2 ms on this machine), and the
connections of the store, the FSM storage and the outbox took turns on SQLite's single write
lock. In a rush, one commit per statement made the disk the queue, and a transaction spanning
several event-loop turns held the lock while a busy loop was slow to come back, so another
connection gave up with "database is locked" after its busy timeout.

Here a write is a plain function (a *job*) that runs in the writer's own thread on its sqlite3
connection. The jobs queued during one event-loop turn are handed to the thread together; the
thread merges whatever it finds waiting when it finishes a commit into the next batch: one
`BEGIN IMMEDIATE … COMMIT`, one fsync, for all of them. Each job runs inside its own SAVEPOINT,
so a job that raises rolls back only its own changes and its caller gets the exception; the rest
commit.

    run(job) ──▶ deque ──(end of the loop turn)──▶ thread queue ──▶ writer thread:
                                                     BEGIN IMMEDIATE
                                                     SAVEPOINT; job 1; RELEASE
                                                     SAVEPOINT; job 2; RELEASE …
                                                     COMMIT  (one fsync)
    run() returns ◀── result or exception of its own job ◀── call_soon_threadsafe ◀──┘

The thread takes its next batch the moment a commit ends, without waiting for a busy event loop
to come round (it used to: an executor call per batch, scheduled by a task of the loop, made
every write wait for the loop twice more; at 2,000 paced parents that wait was most of a slow
update's time).

`run` returns only after the COMMIT: what a parent was told is saved is on disk. A job holds
SQLite's write lock for the few microseconds its statements take, never across an `await`.
A caller that is cancelled stops waiting, but a job already queued still runs.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from services.sqlite import pragmas

T = TypeVar("T")
Job = Callable[[sqlite3.Connection], T]

# Enough to share one fsync among a rush's concurrent writes, small enough that one batch
# never keeps the lock for long (each job is a statement or two).
DEFAULT_MAX_BATCH = 512


@dataclass(frozen=True, slots=True)
class _Failed:
    error: BaseException


class DependencyFailed(RuntimeError):
    """The job this one was queued `after` did not commit, so this one did not run."""


class Pending(Generic[T]):
    """A queued job: `await` it for its result once committed, or pass it as another's `after`."""

    __slots__ = ("after", "failed", "future", "job")

    def __init__(self, job: Job[T], future: asyncio.Future[T], after: Pending[Any] | None) -> None:
        """Made by `SQLiteWriter.queue`."""
        self.job = job
        self.future = future
        self.after = after
        # Set by the writer's thread only, before any job queued after this one runs.
        self.failed = False

    def __await__(self) -> Generator[Any, None, T]:
        return self.future.__await__()


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
        loop: asyncio.AbstractEventLoop,
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> None:
        """Wrap an open connection; use `SQLiteWriter.open` instead of calling this directly."""
        self._conn = conn
        self._loop = loop
        self._max_batch = max_batch
        # Jobs of the current loop turn; handed to the thread as one batch at the turn's end.
        self._turn: list[Pending[Any]] = []
        # Batches for the thread; None asks it to close the connection and end.
        self._batches: queue.SimpleQueue[list[Pending[Any]] | None] = queue.SimpleQueue()
        self._stopped: asyncio.Future[None] = loop.create_future()
        self._closed = False
        self.stats = WriterStats()
        self._thread = threading.Thread(target=self._work, name="sqlite-writer", daemon=True)

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> SQLiteWriter:
        """Connect with the bot's settings (services/sqlite.py) and start the writer's thread."""
        loop = asyncio.get_running_loop()
        # Connecting touches the disk: not on the event loop's thread.
        conn = await loop.run_in_executor(None, _connect, path, synchronous)
        writer = cls(conn, loop, max_batch=max_batch)
        writer._thread.start()
        return writer

    async def run(self, job: Job[T]) -> T:
        """Run `job` in a transaction shared with other queued jobs; return once committed."""
        return await self.queue(job)

    def queue(self, job: Job[T], *, after: Pending[Any] | None = None) -> Pending[T]:
        """Queue `job` now; await what this returns for its result once committed.

        Jobs run and commit in the order they were queued: a job queued after another shares
        its commit or comes in a later one, never an earlier one. With `after`, the job runs
        only if that one committed (else it fails with `DependencyFailed`): two writes of one
        step, queued back to back, are then one commit and never half done.
        """
        if self._closed:
            raise RuntimeError("the SQLite writer is closed")
        pending = Pending(job, self._loop.create_future(), after)
        if not self._turn:
            self._loop.call_soon(self._hand_over)
        self._turn.append(pending)
        return pending

    async def close(self) -> None:
        """Finish every queued job, then close the connection and end the thread; safe twice."""
        if not self._closed:
            self._closed = True
            self._hand_over()
            self._batches.put(None)
        await asyncio.shield(self._stopped)

    def _hand_over(self) -> None:
        if self._turn:
            self._batches.put(self._turn)
            self._turn = []

    def _work(self) -> None:
        """The writer's thread: batch after batch until `close`, then close the connection."""
        stopping = False
        while not stopping:
            first = self._batches.get()
            if first is None:
                break
            batch = first
            # Whatever queued up while the last batch committed shares this one's commit.
            while len(batch) < self._max_batch:
                try:
                    more = self._batches.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                    break
                batch = batch + more
            outcomes = self._apply(batch)
            self._reply(_settle, batch, outcomes)
        self._conn.close()
        self._reply(_stopped, self._stopped)

    def _reply(self, callback: Callable[..., None], *args: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:
            pass  # the loop is closed: nobody is left to wait for the answer

    def _apply(self, batch: list[Pending[Any]]) -> list[Any]:
        """In the writer's thread: every job in one transaction, each in its own savepoint."""
        conn = self._conn
        outcomes: list[Any] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for pending in batch:
                if pending.after is not None and pending.after.failed:
                    pending.failed = True
                    outcomes.append(_Failed(DependencyFailed("the job before it did not commit")))
                    continue
                conn.execute("SAVEPOINT job")
                try:
                    result = pending.job(conn)
                except Exception as exc:
                    conn.execute("ROLLBACK TO job")
                    conn.execute("RELEASE job")
                    pending.failed = True
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
            for pending in batch:
                pending.failed = True
            return [_Failed(exc)] * len(batch)
        self.stats.jobs += len(batch)
        self.stats.batches += 1
        return outcomes


def _stopped(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _settle(batch: list[Pending[Any]], outcomes: list[Any]) -> None:
    for pending, outcome in zip(batch, outcomes, strict=True):
        future = pending.future
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
