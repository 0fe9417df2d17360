"""SQLiteStorage: round trips, key separation, durability, cache coherence, concurrency."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from aiogram.exceptions import DataNotDictLikeError
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.fsm.storage.base import StorageKey

from bot.fsm.storage import SQLiteStorage

KEY = StorageKey(bot_id=1, chat_id=100, user_id=100)


class Form(StatesGroup):
    phone = State()
    iin = State()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "fsm.sqlite3"


@pytest.fixture
async def storage(db_path: Path) -> AsyncIterator[SQLiteStorage]:
    store = await SQLiteStorage.open(db_path)
    yield store
    await store.close()


def _rows_on_disk(db_path: Path) -> list[tuple[Any, ...]]:
    """Read the table through an independent connection: what another process would see."""
    with sqlite3.connect(db_path) as conn:
        return conn.execute(
            "SELECT chat_id, user_id, thread_id, business_connection_id, destiny, state, data"
            " FROM fsm_records ORDER BY chat_id, user_id, thread_id, destiny"
        ).fetchall()


async def test_state_and_data_round_trip(storage: SQLiteStorage) -> None:
    assert await storage.get_state(KEY) is None
    assert await storage.get_data(KEY) == {}

    await storage.set_state(KEY, Form.phone)
    assert await storage.get_state(KEY) == "Form:phone"
    await storage.set_state(KEY, "Form:iin")
    assert await storage.get_state(KEY) == "Form:iin"

    payload = {"child": {"name": "Әлия", "age": 7}, "docs": [1, 2.5, None, True], "ok": False}
    await storage.set_data(KEY, payload)
    assert await storage.get_data(KEY) == payload
    assert await storage.get_value(KEY, "ok") is False
    assert await storage.get_value(KEY, "missing", "dflt") == "dflt"
    # set_data does not touch the state and vice versa: both live in one row.
    assert await storage.get_state(KEY) == "Form:iin"


async def test_get_data_returns_a_copy(storage: SQLiteStorage) -> None:
    await storage.set_data(KEY, {"docs": ["a"]})
    first = await storage.get_data(KEY)
    first["docs"].append("b")
    first["new"] = 1
    assert await storage.get_data(KEY) == {"docs": ["a"]}


@pytest.mark.parametrize(
    "change",
    [
        {"bot_id": 2},
        {"chat_id": 101},
        {"user_id": 101},
        {"thread_id": 7},
        {"business_connection_id": "biz-1"},
        {"destiny": "staff"},
    ],
    ids=lambda change: next(iter(change)),
)
async def test_every_key_part_separates_records(db_path: Path, change: dict[str, Any]) -> None:
    other = dataclasses.replace(KEY, **change)
    storage = await SQLiteStorage.open(db_path)
    await storage.set_state(KEY, Form.phone)
    await storage.set_data(KEY, {"who": "base"})
    await storage.set_state(other, Form.iin)
    await storage.set_data(other, {"who": "other"})
    await storage.close()

    # A fresh storage reads from disk, so this checks the primary key, not just the cache.
    reopened = await SQLiteStorage.open(db_path)
    try:
        assert await reopened.get_state(KEY) == "Form:phone"
        assert await reopened.get_data(KEY) == {"who": "base"}
        assert await reopened.get_state(other) == "Form:iin"
        assert await reopened.get_data(other) == {"who": "other"}
    finally:
        await reopened.close()
    assert len(_rows_on_disk(db_path)) == 2


async def test_survives_close_and_reopen(db_path: Path) -> None:
    first = await SQLiteStorage.open(db_path)
    await first.set_state(KEY, Form.iin)
    await first.set_data(KEY, {"phone": "+77011234567"})
    await first.close()

    second = await SQLiteStorage.open(db_path)
    try:
        assert await second.get_state(KEY) == "Form:iin"
        assert await second.get_data(KEY) == {"phone": "+77011234567"}
    finally:
        await second.close()


async def test_writes_are_on_disk_when_the_call_returns(
    storage: SQLiteStorage, db_path: Path
) -> None:
    await storage.set_state(KEY, Form.phone)
    await storage.update_data(KEY, {"n": 1})
    # The storage is still open: another connection must already see the committed row.
    assert _rows_on_disk(db_path) == [(100, 100, 0, "", "default", "Form:phone", '{"n":1}')]


async def test_reads_are_served_from_the_cache(storage: SQLiteStorage, db_path: Path) -> None:
    await storage.set_state(KEY, Form.phone)
    with sqlite3.connect(db_path) as conn:
        conn.execute("UPDATE fsm_records SET state = 'changed:behind:its:back'")
    # The storage owns its rows; after the first load it must not go back to the database.
    assert await storage.get_state(KEY) == "Form:phone"


async def test_evicted_keys_are_reloaded_from_disk(db_path: Path) -> None:
    storage = await SQLiteStorage.open(db_path, cache_size=2)
    try:
        keys = [dataclasses.replace(KEY, user_id=uid) for uid in (1, 2, 3)]
        for uid, key in enumerate(keys, start=1):
            await storage.set_data(key, {"uid": uid})
        with sqlite3.connect(db_path) as conn:
            conn.execute("UPDATE fsm_records SET data = '{\"uid\":-1}' WHERE user_id = 1")
        # Key 1 fell out of the two-entry cache, so its read goes to disk; 3 is still cached.
        assert await storage.get_data(keys[0]) == {"uid": -1}
        assert await storage.get_data(keys[2]) == {"uid": 3}
    finally:
        await storage.close()


async def test_update_data_keeps_cache_and_disk_coherent(
    storage: SQLiteStorage, db_path: Path
) -> None:
    await storage.set_state(KEY, Form.phone)
    await storage.set_data(KEY, {"a": 1, "b": 2})
    merged = await storage.update_data(KEY, {"b": 3, "c": [4]})
    assert merged == {"a": 1, "b": 3, "c": [4]}
    merged["c"].append(5)  # the caller's copy is its own
    assert await storage.get_data(KEY) == {"a": 1, "b": 3, "c": [4]}
    assert await storage.get_state(KEY) == "Form:phone"

    reopened = await SQLiteStorage.open(db_path)
    try:
        assert await reopened.get_data(KEY) == {"a": 1, "b": 3, "c": [4]}
    finally:
        await reopened.close()


@pytest.mark.parametrize(
    "bad",
    [
        {"when": date(2026, 9, 1)},
        {"tags": {"a", "b"}},
        {"pair": (1, 2)},
        {"nested": {1: "int key"}},
        {"ratio": math.nan},
        {"deep": [{"x": object()}]},
    ],
    ids=["date", "set", "tuple", "int-key", "nan", "object"],
)
async def test_non_json_data_is_rejected(
    storage: SQLiteStorage, db_path: Path, bad: dict[str, Any]
) -> None:
    await storage.set_data(KEY, {"kept": True})
    with pytest.raises(TypeError, match="plain JSON"):
        await storage.set_data(KEY, bad)
    with pytest.raises(TypeError, match="plain JSON"):
        await storage.update_data(KEY, bad)
    # A rejected write changes nothing, neither in memory nor on disk.
    assert await storage.get_data(KEY) == {"kept": True}
    assert [row[-1] for row in _rows_on_disk(db_path)] == ['{"kept":true}']


async def test_non_mapping_data_is_rejected(storage: SQLiteStorage) -> None:
    with pytest.raises(DataNotDictLikeError):
        await storage.set_data(KEY, ["not", "a", "dict"])  # type: ignore[arg-type]


async def test_state_none_clears_and_empty_rows_disappear(
    storage: SQLiteStorage, db_path: Path
) -> None:
    await storage.set_state(KEY, Form.phone)
    await storage.set_data(KEY, {"a": 1})
    await storage.set_state(KEY, None)
    assert await storage.get_state(KEY) is None
    assert await storage.get_data(KEY) == {"a": 1}
    assert await storage.keys_in_state() == {}

    await storage.set_data(KEY, {})
    assert _rows_on_disk(db_path) == []
    assert await storage.get_data(KEY) == {}


async def test_fsm_context_clear(storage: SQLiteStorage, db_path: Path) -> None:
    context = FSMContext(storage=storage, key=KEY)
    await context.set_state(Form.iin)
    await context.update_data(iin_attempts=2)
    assert await context.get_state() == "Form:iin"
    assert await context.get_data() == {"iin_attempts": 2}
    await context.clear()
    assert await context.get_state() is None
    assert await context.get_data() == {}
    assert _rows_on_disk(db_path) == []


async def test_delete_removes_the_row(storage: SQLiteStorage, db_path: Path) -> None:
    other = dataclasses.replace(KEY, user_id=200)
    await storage.set_state(KEY, Form.phone)
    await storage.set_data(KEY, {"phone": "+77011234567"})
    await storage.set_state(other, Form.phone)

    await storage.delete(KEY)
    assert await storage.get_state(KEY) is None
    assert await storage.get_data(KEY) == {}
    assert [row[1] for row in _rows_on_disk(db_path)] == [200]


async def test_keys_in_state_counts_per_state(storage: SQLiteStorage) -> None:
    for uid in range(3):
        await storage.set_state(dataclasses.replace(KEY, user_id=uid), Form.phone)
    await storage.set_state(dataclasses.replace(KEY, user_id=10), Form.iin)
    await storage.set_data(dataclasses.replace(KEY, user_id=11), {"draft": True})  # no state
    assert await storage.keys_in_state() == {"Form:phone": 3, "Form:iin": 1}


async def test_pragmas_are_in_force(storage: SQLiteStorage, db_path: Path) -> None:
    assert await storage.pragmas() == {
        "journal_mode": "wal",
        "synchronous": 2,  # FULL
        "busy_timeout": 5000,
        "foreign_keys": 1,
    }
    with sqlite3.connect(db_path) as conn:  # WAL is a property of the file itself
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_concurrent_writers_for_different_keys(db_path: Path) -> None:
    storage = await SQLiteStorage.open(db_path)
    keys = [dataclasses.replace(KEY, chat_id=1000 + i, user_id=1000 + i) for i in range(40)]

    async def converse(key: StorageKey) -> None:
        await storage.set_state(key, Form.phone)
        for step in range(5):
            await storage.update_data(key, {f"step{step}": key.user_id})
        await storage.set_state(key, Form.iin)

    await asyncio.gather(*(converse(key) for key in keys))
    await storage.close()

    reopened = await SQLiteStorage.open(db_path)
    try:
        for key in keys:
            assert await reopened.get_state(key) == "Form:iin"
            assert await reopened.get_data(key) == {f"step{s}": key.user_id for s in range(5)}
    finally:
        await reopened.close()


async def test_concurrent_update_data_on_one_key_loses_nothing(
    storage: SQLiteStorage, db_path: Path
) -> None:
    await storage.set_data(KEY, {})
    # Without the per-key lock, read-modify-write interleaves at the disk write and drops keys.
    await asyncio.gather(*(storage.update_data(KEY, {f"k{i}": i}) for i in range(30)))
    expected = {f"k{i}": i for i in range(30)}
    assert await storage.get_data(KEY) == expected

    reopened = await SQLiteStorage.open(db_path)
    try:
        assert await reopened.get_data(KEY) == expected
    finally:
        await reopened.close()


async def test_lock_table_is_emptied_after_use(storage: SQLiteStorage) -> None:
    keys = [dataclasses.replace(KEY, user_id=uid) for uid in range(10)]
    await asyncio.gather(*(storage.update_data(key, {"x": 1}) for key in keys))
    assert len(storage._locks) == 0


async def test_no_transaction_or_lock_is_held_after_any_call(
    storage: SQLiteStorage, db_path: Path
) -> None:
    def nothing_held() -> None:
        assert not storage._conn.in_transaction
        assert not storage._writer._conn.in_transaction
        # timeout=0: a write lock still held by the storage would fail here at once.
        other = sqlite3.connect(db_path, timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
        finally:
            other.close()

    other_key = dataclasses.replace(KEY, user_id=200)
    calls = [
        storage.set_state(KEY, Form.phone),
        storage.set_data(KEY, {"a": 1}),
        storage.update_data(KEY, {"b": 2}),
        storage.get_data(other_key),
        storage.set_state(other_key, Form.iin),
        storage.keys_in_state(),
        storage.users_touched_since(datetime(2000, 1, 1, tzinfo=UTC)),
        storage.delete(KEY),
        storage.forget_user(200),
        storage.purge_untouched(datetime(2100, 1, 1, tzinfo=UTC)),
    ]
    for call in calls:
        await call
        nothing_held()
    assert _rows_on_disk(db_path) == []


async def test_writes_of_concurrent_keys_share_commits(storage: SQLiteStorage) -> None:
    keys = [dataclasses.replace(KEY, user_id=uid) for uid in range(30)]
    before = dataclasses.replace(storage._writer.stats)
    await asyncio.gather(*(storage.set_state(key, Form.phone) for key in keys))
    assert storage._writer.stats.jobs - before.jobs == 30
    assert storage._writer.stats.batches - before.batches < 30


async def test_forget_user_while_a_cold_read_loads_keeps_nothing_cached(
    storage: SQLiteStorage, db_path: Path
) -> None:
    await storage.set_data(KEY, {"phone": "+77011234567"})
    storage._cache.clear()
    # The read loads from disk while the delete is on its way: neither may leave the row
    # in memory once forget_user has returned.
    _, forgotten = await asyncio.gather(storage.get_data(KEY), storage.forget_user(KEY.user_id))
    assert forgotten == 1
    assert await storage.get_data(KEY) == {}
    assert _rows_on_disk(db_path) == []
