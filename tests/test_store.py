"""Store on the shared writer: shared commits, no transaction left open, bounded caches."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sqlite3
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiogram.fsm.storage.base import StorageKey

from bot.fsm.storage import SQLiteStorage
from services.clock import FakeClock
from services.crypto import DataCipher, generate_key
from services.outbox import Outbox, Outgoing
from services.sqlite_writer import SQLiteWriter
from services.store import Store


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def path(tmp_path: Path, clock: FakeClock) -> Path:
    # The outbox's tables too: a settled submission writes the parent's message there.
    path = tmp_path / "bot.sqlite3"
    outbox = await Outbox.open(path, clock)
    await outbox.close()
    return path


@pytest.fixture
async def writer(path: Path) -> AsyncIterator[SQLiteWriter]:
    w = await SQLiteWriter.open(path)
    yield w
    await w.close()


@pytest.fixture
async def store(path: Path, clock: FakeClock, writer: SQLiteWriter) -> AsyncIterator[Store]:
    s = await Store.open(path, clock, writer=writer)
    yield s
    await s.close()


def on_disk(path: Path, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
    """What another connection (another process, after a crash) reads from the file."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def assert_nothing_held(path: Path, *conns: Any) -> None:
    """No transaction open on `conns`, and the file's write lock is free this very moment."""
    for conn in conns:
        assert not conn.in_transaction
    # timeout=0: a lock still held by any connection of the store fails here at once.
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
    finally:
        other.close()


def _fields(user_id: int) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "chat_id": user_id,
        "session": f"session-{user_id}",
        "body": {"child": {"iin": "150101600001"}},
        "summary": {"queue": "sport", "child_name": "Әлия"},
    }


# --- (a) writes of the store and the FSM storage share commits --------------------------------


async def test_store_and_fsm_storage_writes_share_commits_and_all_land(
    path: Path, clock: FakeClock, writer: SQLiteWriter, store: Store
) -> None:
    storage = await SQLiteStorage.open(path, clock=clock, writer=writer)
    try:
        before = dataclasses.replace(writer.stats)
        users = range(1, 41)
        await asyncio.gather(
            *(store.update_draft(u, step="s", n=u) for u in users),
            *(store.set_locale(u, "kk") for u in users),
            *(storage.set_state(StorageKey(1, u, u), "Form:phone") for u in users),
        )
        jobs = writer.stats.jobs - before.jobs
        batches = writer.stats.batches - before.batches
        assert jobs == 3 * len(users)
        assert batches < jobs  # one fsync served several parents' writes
    finally:
        await storage.close()
    # Everything is on disk, and the writer is still open for the store: closing the storage
    # does not close a writer it was given.
    assert on_disk(path, "SELECT COUNT(*) FROM fsm_records WHERE state = 'Form:phone'") == [(40,)]
    assert on_disk(path, "SELECT COUNT(*) FROM users WHERE locale = 'kk'") == [(40,)]
    drafts = dict(on_disk(path, "SELECT user_id, data FROM drafts"))
    assert {u: json.loads(d) for u, d in drafts.items()} == {u: {"n": u} for u in users}
    await store.set_meta("after", "1")
    assert on_disk(path, "SELECT value FROM meta WHERE key = 'after'") == [("1",)]


async def test_a_store_without_a_writer_opens_and_closes_its_own(
    path: Path, clock: FakeClock
) -> None:
    store = await Store.open(path, clock)
    await store.set_locale(1, "ru")
    assert on_disk(path, "SELECT locale FROM users") == [("ru",)]
    await store.close()
    with pytest.raises(RuntimeError, match="closed"):
        await store._writer.run(lambda conn: None)


# --- (b) no transaction is ever left open behind a public call --------------------------------


async def test_no_transaction_or_lock_is_held_after_any_call(
    path: Path, clock: FakeClock, writer: SQLiteWriter, store: Store
) -> None:
    conns = (store._db, writer._conn)

    async def check(call: Any) -> Any:
        result = await call
        assert_nothing_held(path, *conns)
        return result

    await check(store.set_locale(1, "kk"))
    await check(store.get_locale(2))
    await check(store.update_draft(1, step="review", name="Әлия"))
    await check(store.replace_draft(2, {"x": 1}))
    await check(store.delete_draft(2))
    await check(store.record_event("consent_denied", user=1))
    await check(store.mark_blocked(1))
    await check(store.mark_unblocked(1))
    await check(store.set_meta("k", "v"))
    sub, opened = await check(store.begin_submission(key="k-1", **_fields(1)))
    assert opened
    await check(store.postpone_submission(sub.id, next_attempt_at=clock.now(), error="x"))
    sub = await check(store.rekey_submission(sub, "k-2"))
    assert (await store.get_draft(1))["idempotency_key"] == "k-2"
    application = {
        "id": "app-1",
        "number": "N-1",
        "status": "submitted",
        "submitted_at": clock.now().isoformat(),
    }
    recorded = await check(
        store.settle_submission(
            sub,
            outcome={"application": application},
            message=Outgoing(chat_id=1, text="№ N-1", kind="number", dedup_key="number:app-1"),
            draft={"application": application},
            step="submitted",
        )
    )
    assert recorded
    await check(store.mark_submission_synced(sub.id))
    before = await check(
        store.update_application_status(
            "app-1", status="issued", queue_position=3, status_reason=None, deadline=None
        )
    )
    assert before is not None and before.status == "submitted"
    assert (await store.get_application("app-1")).status == "issued"  # type: ignore[union-attr]
    await check(store.list_applications(1))
    await check(store.delete_draft_if_untouched(1, clock.now() + timedelta(days=1)))
    await check(store.delete_settled_submissions(clock.now() + timedelta(days=1)))
    assert await check(store.forget_user(1)) == 1
    assert on_disk(path, "SELECT COUNT(*) FROM applications") == [(0,)]
    assert on_disk(path, "SELECT COUNT(*) FROM outbox WHERE dedup_key = 'number:app-1'") == [(1,)]


async def test_settling_a_vanished_row_writes_nothing(store: Store, path: Path) -> None:
    sub, _ = await store.begin_submission(key="k-1", **_fields(7))
    await store.forget_user(7)  # /forget while the POST was on its way
    recorded = await store.settle_submission(
        sub,
        outcome={"refusal": {"code": "x"}},
        message=Outgoing(chat_id=7, text="refused", kind="number", dedup_key="refused:k-1"),
        draft={"refused": True},
        step="review",
    )
    assert recorded is False
    assert on_disk(path, "SELECT COUNT(*) FROM outbox") == [(0,)]
    assert on_disk(path, "SELECT COUNT(*) FROM drafts") == [(0,)]


async def test_concurrent_begin_submission_opens_one_row_per_parent(store: Store) -> None:
    results = await asyncio.gather(
        *(store.begin_submission(key=f"k-{i}", **_fields(5)) for i in range(6))
    )
    assert sum(opened for _, opened in results) == 1
    assert len({sub.id for sub, _ in results}) == 1


async def test_concurrent_draft_updates_of_one_parent_lose_nothing(
    store: Store, path: Path
) -> None:
    # Each update reads the draft, merges and writes: without the per-user lock, the writes
    # would interleave at the writer and drop fields.
    await asyncio.gather(*(store.update_draft(3, **{f"f{i}": i}) for i in range(20)))
    expected = {f"f{i}": i for i in range(20)}
    assert await store.get_draft(3) == expected
    [(data,)] = on_disk(path, "SELECT data FROM drafts WHERE user_id = 3")
    assert json.loads(data) == expected
    assert len(store._locks) == 0


# --- (c) bounded caches; drafts handed out as copies ------------------------------------------


@pytest.mark.parametrize("sealed", [False, True], ids=["clear", "sealed"])
async def test_caches_are_bounded_and_evicted_values_come_back_from_disk(
    path: Path, clock: FakeClock, sealed: bool
) -> None:
    cipher = DataCipher.from_keys(generate_key()) if sealed else None
    store = await Store.open(path, clock, cipher=cipher, cache_size=3)
    try:
        drafts = {u: {"n": u, "child": {"name": f"Бала {u}"}, "docs": [u]} for u in range(1, 8)}
        for user_id, draft in drafts.items():
            await store.replace_draft(user_id, draft)
            await store.set_locale(user_id, "kk" if user_id % 2 else "ru")
        assert len(store._drafts) == 3 and len(store._locales) == 3
        assert 1 not in store._drafts and 1 not in store._locales
        # The oldest were evicted: read again from disk, they equal what was written.
        for user_id, draft in drafts.items():
            assert await store.get_draft(user_id) == draft
            assert await store.get_locale(user_id) == ("kk" if user_id % 2 else "ru")
        assert len(store._drafts) == 3 and len(store._locales) == 3
        # A user without a language is cached as such, and still bounded.
        assert await store.get_locale(99) is None
        assert 99 in store._locales and len(store._locales) == 3
    finally:
        await store.close()


async def test_an_evicted_draft_is_read_from_disk(path: Path, clock: FakeClock) -> None:
    store = await Store.open(path, clock, cache_size=2)
    try:
        for user_id in (1, 2, 3):
            await store.replace_draft(user_id, {"n": user_id})
        with sqlite3.connect(path) as conn:
            conn.execute("UPDATE drafts SET data = '{\"n\":-1}'")
        # 1 fell out of the two-entry cache, so its read goes to disk; 3 is still cached.
        assert await store.get_draft(1) == {"n": -1}
        assert await store.get_draft(3) == {"n": 3}
    finally:
        await store.close()


async def test_drafts_are_handed_out_as_copies(store: Store) -> None:
    saved = await store.update_draft(1, documents={"birth": ["a"]})
    saved["documents"]["birth"].append("changed by the caller")
    first = await store.get_draft(1)
    first["documents"]["birth"].append("changed by another caller")
    first["extra"] = True
    assert await store.get_draft(1) == {"documents": {"birth": ["a"]}}


async def test_deleted_and_submitted_drafts_leave_the_cache(store: Store, clock: FakeClock) -> None:
    await store.update_draft(1, name="a")
    await store.delete_draft(1)
    assert 1 not in store._drafts
    assert await store.get_draft(1) == {}

    sub, _ = await store.begin_submission(key="k-2", **_fields(2))
    await store.update_draft(2, idempotency_key="k-2")
    application = {"id": "a2", "number": "N-2", "submitted_at": clock.now().isoformat()}
    assert await store.settle_submission(
        sub,
        outcome={"application": application},
        message=Outgoing(chat_id=2, text="№ N-2", kind="number", dedup_key="number:a2"),
        draft={"application": application},
        step="submitted",
    )
    assert 2 not in store._drafts
    assert await store.get_draft(2) == {"idempotency_key": "k-2", "application": application}


async def test_forget_user_drops_the_cached_values(store: Store, path: Path) -> None:
    await store.set_locale(4, "kk")
    await store.update_draft(4, name="a")
    await store.forget_user(4)
    assert await store.get_locale(4) is None
    assert await store.get_draft(4) == {}
    assert on_disk(path, "SELECT COUNT(*) FROM users") == [(0,)]


@pytest.fixture
async def fsm(path: Path, writer: SQLiteWriter) -> AsyncIterator[SQLiteStorage]:
    """The FSM storage on the store's writer, as in the bot."""
    storage = await SQLiteStorage.open(path, writer=writer)
    yield storage
    await storage.close()


def _fsm_state_on_disk(path: Path, user_id: int) -> list[tuple[Any, ...]]:
    return on_disk(path, "SELECT state FROM fsm_records WHERE user_id = ?", (user_id,))


async def test_a_step_saves_its_answers_and_moves_in_one_commit(
    path: Path, store: Store, writer: SQLiteWriter, fsm: SQLiteStorage
) -> None:
    """`StepView.move`'s pair: the draft and the next state, one commit, in that order."""
    key = StorageKey(bot_id=1, chat_id=7, user_id=7)
    await fsm.set_state(key, "Form:phone")
    before = writer.stats.batches
    async with fsm.moving(key, "Form:iin") as then:
        await store.update_draft(7, step="Form:iin", then=then, phone="+77011234567")
    assert writer.stats.batches == before + 1
    assert on_disk(path, "SELECT step FROM drafts WHERE user_id = 7") == [("Form:iin",)]
    assert _fsm_state_on_disk(path, 7) == [("Form:iin",)]
    assert await fsm.get_state(key) == "Form:iin"
    assert (await store.get_draft(7))["phone"] == "+77011234567"


async def test_a_step_whose_answers_are_refused_does_not_move(
    path: Path, store: Store, writer: SQLiteWriter, fsm: SQLiteStorage
) -> None:
    key = StorageKey(bot_id=1, chat_id=8, user_id=8)
    await fsm.set_state(key, "Form:phone")
    await store.update_draft(8, step="Form:phone", phone="+77011234567")
    # A fault injected on purpose: the disk refuses this draft's write, nothing else.
    await writer.run(
        lambda conn: conn.execute(
            "CREATE TRIGGER refuse BEFORE UPDATE ON drafts WHEN NEW.user_id = 8"
            " BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
    )
    with pytest.raises(sqlite3.IntegrityError):
        async with fsm.moving(key, "Form:iin") as then:
            await store.update_draft(8, step="Form:iin", then=then, iin="900101300123")
    assert _fsm_state_on_disk(path, 8) == [("Form:phone",)]
    assert await fsm.get_state(key) == "Form:phone"
    assert "iin" not in await store.get_draft(8)
    assert on_disk(path, "SELECT step FROM drafts WHERE user_id = 8") == [("Form:phone",)]


async def test_answers_and_a_change_of_the_fsm_data_in_one_commit(
    path: Path, store: Store, writer: SQLiteWriter, fsm: SQLiteStorage
) -> None:
    """`SQLiteStorage.moving` with a data change (as `StepView.move` uses it) and the state
    left as it is: the change sees the data as it is under the key's lock."""
    key = StorageKey(bot_id=1, chat_id=9, user_id=9)
    await fsm.set_state(key, "Form:consent")
    await fsm.set_data(key, {"consent_id": "c-1", "kept": 1})
    before = writer.stats.batches

    def forget_consent(data: dict[str, Any]) -> dict[str, Any]:
        data.pop("consent_id")
        return data

    async with fsm.moving(key, data=forget_consent) as then:
        await store.update_draft(9, then=then, parent={"name": "Әлия"})
    assert writer.stats.batches == before + 1
    assert await fsm.get_data(key) == {"kept": 1}
    assert await fsm.get_state(key) == "Form:consent"  # the state is left as it was
    assert (await store.get_draft(9))["parent"] == {"name": "Әлия"}
