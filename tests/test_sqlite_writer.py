"""The group-commit writer: shared commits, each job's own failure, durability before return."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from services.sqlite_writer import DependencyFailed, SQLiteWriter

SCHEMA = """
CREATE TABLE parent (id INTEGER PRIMARY KEY);
CREATE TABLE child (
    id INTEGER PRIMARY KEY,
    parent_id INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED
);
CREATE TABLE note (id INTEGER PRIMARY KEY, text TEXT NOT NULL);
"""


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    path = tmp_path / "bot.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.executescript(SCHEMA)
    return path


@pytest.fixture
async def writer(db_path: Path) -> AsyncIterator[SQLiteWriter]:
    w = await SQLiteWriter.open(db_path)
    yield w
    await w.close()


def notes(path: Path) -> list[str]:
    """What another connection (another process, after a crash) reads from the file."""
    conn = sqlite3.connect(path)
    try:
        return [row[0] for row in conn.execute("SELECT text FROM note ORDER BY id")]
    finally:
        conn.close()


def insert(text: str) -> Callable[[sqlite3.Connection], int]:
    def job(conn: sqlite3.Connection) -> int:
        return conn.execute("INSERT INTO note (text) VALUES (?)", (text,)).lastrowid

    return job


async def test_a_write_is_on_disk_when_run_returns(writer: SQLiteWriter, db_path: Path) -> None:
    row_id = await writer.run(insert("saved"))
    assert row_id == 1
    assert notes(db_path) == ["saved"]


async def test_concurrent_writes_share_commits(writer: SQLiteWriter, db_path: Path) -> None:
    ids = await asyncio.gather(*(writer.run(insert(f"n{i}")) for i in range(200)))
    assert sorted(ids) == list(range(1, 201))
    assert sorted(notes(db_path)) == sorted(f"n{i}" for i in range(200))
    assert writer.stats.jobs == 200
    # All 200 were queued before the first batch ran: far fewer commits than writes.
    assert writer.stats.batches < 10


async def test_a_failing_job_rolls_back_alone(writer: SQLiteWriter, db_path: Path) -> None:
    def half_then_fail(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO note (text) VALUES ('half')")
        raise ValueError("refused")

    results = await asyncio.gather(
        writer.run(insert("before")),
        writer.run(half_then_fail),
        writer.run(insert("after")),
        return_exceptions=True,
    )
    assert isinstance(results[1], ValueError)
    assert results[0] == 1 and isinstance(results[2], int)
    assert notes(db_path) == ["before", "after"]
    assert writer.stats.batches == 1


async def test_a_failed_commit_reaches_every_caller_and_the_writer_goes_on(
    writer: SQLiteWriter, db_path: Path
) -> None:
    def orphan(conn: sqlite3.Connection) -> None:
        # A deferred foreign key is checked only at COMMIT: the whole batch fails there.
        conn.execute("INSERT INTO child (id, parent_id) VALUES (1, 99)")

    results = await asyncio.gather(
        writer.run(insert("innocent")), writer.run(orphan), return_exceptions=True
    )
    assert all(isinstance(r, sqlite3.IntegrityError) for r in results), results
    assert notes(db_path) == []
    assert await writer.run(insert("later")) == 1
    assert notes(db_path) == ["later"]


async def test_a_cancelled_caller_does_not_undo_its_write(
    writer: SQLiteWriter, db_path: Path
) -> None:
    task = asyncio.create_task(writer.run(insert("kept")))
    await asyncio.sleep(0)  # let the task queue its job (ordering, not timing)
    task.cancel()
    await writer.run(insert("next"))
    assert task.cancelled()
    assert notes(db_path) == ["kept", "next"]


async def test_close_finishes_queued_jobs_then_refuses(db_path: Path) -> None:
    writer = await SQLiteWriter.open(db_path)
    pending = [asyncio.create_task(writer.run(insert(f"q{i}"))) for i in range(20)]
    await asyncio.sleep(0)
    await writer.close()
    assert [t.result() for t in pending] == list(range(1, 21))
    assert len(notes(db_path)) == 20
    with pytest.raises(RuntimeError):
        await writer.run(insert("too late"))
    await writer.close()  # twice is fine


async def test_settings_match_the_other_connections(writer: SQLiteWriter) -> None:
    def pragmas(conn: sqlite3.Connection) -> tuple[object, ...]:
        return tuple(
            conn.execute(f"PRAGMA {name}").fetchone()[0]
            for name in ("journal_mode", "synchronous", "busy_timeout", "secure_delete")
        )

    assert await writer.run(pragmas) == ("wal", 2, 5000, 1)


async def test_opening_a_bad_path_leaves_no_thread(tmp_path: Path) -> None:
    with pytest.raises(sqlite3.OperationalError):
        await SQLiteWriter.open(tmp_path / "missing-dir" / "bot.sqlite3")
    # tests/conftest.py fails the run on a leaked non-daemon thread.


async def test_the_thread_ends_with_close(db_path: Path) -> None:
    writer = await SQLiteWriter.open(db_path)
    thread = writer._thread
    assert thread.is_alive()
    await writer.close()
    assert not thread.is_alive()


async def test_jobs_queued_back_to_back_share_one_commit_in_order(
    writer: SQLiteWriter, db_path: Path
) -> None:
    first = writer.queue(insert("answer"))
    second = writer.queue(insert("state"), after=first)
    assert await first == 1
    assert await second == 2
    assert notes(db_path) == ["answer", "state"]
    assert writer.stats.batches == 1


async def test_a_job_after_a_failed_one_does_not_run(writer: SQLiteWriter, db_path: Path) -> None:
    def refuse(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO note (text) VALUES ('half')")
        raise ValueError("refused")

    first = writer.queue(refuse)
    second = writer.queue(insert("state"), after=first)
    unrelated = writer.queue(insert("other parent"))
    with pytest.raises(ValueError):
        await first
    with pytest.raises(DependencyFailed):
        await second
    assert await unrelated == 1
    assert notes(db_path) == ["other parent"]


async def test_a_job_after_one_of_a_failed_commit_does_not_run(
    writer: SQLiteWriter, db_path: Path
) -> None:
    def orphan(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO child (id, parent_id) VALUES (1, 99)")  # fails at COMMIT

    first = writer.queue(orphan)
    # Awaited first: the dependent job is queued only after that batch failed, so it runs in
    # a batch of its own and must look at the outcome of the earlier one.
    with pytest.raises(sqlite3.IntegrityError):
        await first
    second = writer.queue(insert("state"), after=first)
    with pytest.raises(DependencyFailed):
        await second
    assert notes(db_path) == []
