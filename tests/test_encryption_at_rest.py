"""The tables seal personal data: drafts, the personal part of applications, FSM data, outbox.

Each table is checked on the real SQLite file: what lies on disk (no IIN, phone or name in it),
that a value cannot be moved to another row, that older files written in clear are sealed at
open and values of a retired key re-sealed with the current one, and the pragmas in force.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import aiosqlite
import pytest
from aiogram.fsm.storage.base import StorageKey

from bot.fsm.storage import SQLiteStorage
from services.clock import FakeClock
from services.crypto import DataCipher, DecryptionError, generate_key, key_id_of
from services.outbox import Outbox
from services.reports import open_reports
from services.store import PLAIN_SUMMARY_KEYS, Store

IIN = "871008401427"
PHONE = "+77017771122"
NAME = "Аяулым"
SURNAME = "Смағұлова"
DRAFT = {"phone": PHONE, "parent": {"iin": IIN, "first_name": NAME, "last_name": SURNAME}}
SUMMARY = {
    "child": f"{SURNAME} {NAME}",
    "child_first_name": NAME,
    "child_birth_year": 2016,
    "child_iin_masked": "••••••••1427",
    "queue_type": "general",
    "queue": {"kk": "Жалпы кезек", "ru": "Общая очередь"},
    "provider_id": "p1",
    "provider": {"kk": "Орталық", "ru": "Центр"},
    "group_id": "g1",
    "group": {"kk": "Домбыра", "ru": "Домбра"},
    "group_language": "kk",
    "status": "submitted",
}
LEGACY_SUMMARY = json.dumps(
    {"child": "Смағұлова Аяулым", "child_iin": "160315500017", "queue_type": "general"},
    ensure_ascii=False,
)
SECRETS = (IIN, PHONE, PHONE[1:], NAME, SURNAME)
KEY = StorageKey(bot_id=42, chat_id=1001, user_id=1001)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "kezek.sqlite3"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def cipher() -> DataCipher:
    return DataCipher.from_keys(generate_key())


@pytest.fixture
async def store(path: Path, clock: FakeClock, cipher: DataCipher) -> AsyncIterator[Store]:
    opened = await Store.open(path, clock, cipher=cipher)
    yield opened
    await opened.close()


def _on_disk(path: Path, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(sql, params).fetchall()


def _clear_in(value: object) -> list[str]:
    raw = value.encode() if isinstance(value, str) else bytes(value)  # type: ignore[arg-type]
    return [s for s in SECRETS if s.encode() in raw]


async def _add_application(store: Store, application_id: str = "app-1") -> None:
    await store.add_application(
        application_id=application_id,
        user_id=1001,
        chat_id=1001,
        number="KZ-0001",
        status="submitted",
        submitted_at=FakeClock().now(),
        summary=SUMMARY,
    )


# --- the Store ---------------------------------------------------------------------------


async def test_a_draft_is_sealed_on_disk_and_read_back_after_a_restart(
    store: Store, path: Path, clock: FakeClock, cipher: DataCipher
) -> None:
    await store.update_draft(1001, step="ApplicationForm:review", **DRAFT)
    [(data, submitted)] = _on_disk(path, "SELECT data, submitted FROM drafts")
    assert isinstance(data, bytes) and key_id_of(data) == cipher.key_id
    assert _clear_in(data) == [] and submitted == 0
    await store.update_draft(1001, application={"id": "app-1", "number": "KZ-0001"})
    assert _on_disk(path, "SELECT submitted FROM drafts") == [(1,)]  # plain, for the jobs

    reopened = await Store.open(path, clock, cipher=cipher)
    try:
        draft = await reopened.get_draft(1001)
        assert draft["parent"] == DRAFT["parent"] and draft["phone"] == PHONE
    finally:
        await reopened.close()


async def test_a_draft_moved_to_another_parent_does_not_open(
    store: Store, path: Path, clock: FakeClock, cipher: DataCipher
) -> None:
    await store.update_draft(1001, **DRAFT)
    await store.update_draft(2002, phone="+77010000000")
    with sqlite3.connect(path) as conn:  # someone with write access to the file swaps rows
        conn.execute(
            "UPDATE drafts SET data = (SELECT data FROM drafts WHERE user_id = 1001)"
            " WHERE user_id = 2002"
        )
    reopened = await Store.open(path, clock, cipher=cipher)
    try:
        with pytest.raises(DecryptionError):
            await reopened.get_draft(2002)
        assert (await reopened.get_draft(1001))["phone"] == PHONE
    finally:
        await reopened.close()


async def test_without_the_key_or_with_another_the_draft_is_not_readable(
    store: Store, path: Path, clock: FakeClock
) -> None:
    await store.update_draft(1001, **DRAFT)
    keyless = await Store.open(path, clock)
    try:
        with pytest.raises(ValueError, match="DATA_KEY is needed"):
            await keyless.get_draft(1001)
    finally:
        await keyless.close()
    # A wrong DATA_KEY stops the start, naming the key id it lacks, before any parent writes.
    with pytest.raises(DecryptionError, match="neither DATA_KEY nor in DATA_KEYS_OLD"):
        await Store.open(path, clock, cipher=DataCipher.from_keys(generate_key()))


async def test_an_application_keeps_staff_fields_plain_and_names_sealed(
    store: Store, path: Path
) -> None:
    await _add_application(store)
    [(summary, personal)] = _on_disk(path, "SELECT summary, personal FROM applications")
    assert _clear_in(summary) == [] and _clear_in(personal) == []
    plain_keys = _on_disk(path, "SELECT j.key FROM applications, json_each(summary) AS j")
    assert {k for (k,) in plain_keys} == set(SUMMARY) & PLAIN_SUMMARY_KEYS
    app = await store.get_application("app-1")
    assert app is not None and app.summary == SUMMARY  # the bot sees the whole summary
    assert [a.summary["child"] for a in await store.list_applications(1001)] == [SUMMARY["child"]]

    # The staff digest's SQL reads the plain part through its own read-only connection.
    async with open_reports(path) as reports:
        rows = await reports.submissions(None, FakeClock().now() + timedelta(days=1))
    assert [(r.number, r.child_iin_masked, r.child_birth_year) for r in rows] == [
        ("KZ-0001", "••••••••1427", 2016)
    ]


async def test_an_older_file_in_clear_is_sealed_at_open(
    path: Path, clock: FakeClock, cipher: DataCipher
) -> None:
    legacy = await Store.open(path, clock)  # no cipher: values in clear, as before encryption
    await legacy.update_draft(1001, step="ApplicationForm:review", **DRAFT)
    await legacy.update_draft(1002, application={"id": "a", "number": "KZ-1"})
    await legacy.close()
    # An application row as the previous version wrote it: names and a clear IIN in `summary`.
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO applications (id, user_id, chat_id, number, status, summary,"
            " submitted_at, updated_at) VALUES ('old', 1001, 1001, 'KZ-0009', 'submitted', ?,"
            " '2026-09-01T00:00:00+00:00', '2026-09-01T00:00:00+00:00')",
            (LEGACY_SUMMARY,),
        )
        conn.execute("UPDATE drafts SET submitted = 0")  # a file from before the column
    assert _clear_in(_on_disk(path, "SELECT data FROM drafts WHERE user_id = 1001")[0][0])

    sealed = await Store.open(path, clock, cipher=cipher)
    try:
        for (data,) in _on_disk(path, "SELECT data FROM drafts"):
            assert key_id_of(data) == cipher.key_id and _clear_in(data) == []
        assert _on_disk(path, "SELECT user_id, submitted FROM drafts ORDER BY 1") == [
            (1001, 0),
            (1002, 1),
        ]
        [(summary, personal)] = _on_disk(
            path, "SELECT summary, personal FROM applications WHERE id = 'old'"
        )
        assert "160315500017" not in summary and "Аяулым" not in summary
        assert key_id_of(personal) == cipher.key_id
        assert '"child_iin_masked": "••••••••0017"' in summary  # what the digest still reads
        assert '"child_birth_year": 2016' in summary
        assert (await sealed.get_draft(1001))["parent"]["iin"] == IIN
        old = await sealed.get_application("old")
        assert old is not None and old.summary["child_iin"] == "160315500017"
    finally:
        await sealed.close()


async def test_values_of_a_retired_key_are_sealed_again_with_the_new_one(
    path: Path, clock: FakeClock
) -> None:
    old_key, new_key = generate_key(), generate_key()
    before = await Store.open(path, clock, cipher=DataCipher.from_keys(old_key))
    await before.update_draft(1001, **DRAFT)
    await _add_application(before)
    await before.close()

    rotated = DataCipher.from_keys(new_key, [old_key])
    after = await Store.open(path, clock, cipher=rotated)
    await after.close()
    for (blob,) in _on_disk(
        path, "SELECT data FROM drafts UNION ALL SELECT personal FROM applications"
    ):
        assert rotated.is_current(blob)
    only_new = await Store.open(path, clock, cipher=DataCipher.from_keys(new_key))
    try:
        assert (await only_new.get_draft(1001))["phone"] == PHONE
        app = await only_new.get_application("app-1")
        assert app is not None and app.summary["child_first_name"] == NAME
    finally:
        await only_new.close()


async def test_a_submission_on_its_way_is_sealed_rotated_and_forgotten(
    path: Path, clock: FakeClock
) -> None:
    old_key, new_key = generate_key(), generate_key()
    before = await Store.open(path, clock, cipher=DataCipher.from_keys(old_key))
    body = {"parent": {"iin": IIN, "phone": PHONE}, "child": {"iin": "160315500017"}}
    await before.begin_submission(
        key="idem-1", user_id=1001, chat_id=1001, session="sess-1", body=body, summary=SUMMARY
    )
    await before.close()
    for (blob,) in _on_disk(path, "SELECT body FROM submissions"):
        assert _clear_in(blob) == [] and b"160315500017" not in blob

    rotated = DataCipher.from_keys(new_key, [old_key])
    after = await Store.open(path, clock, cipher=rotated)
    try:
        [row] = _on_disk(path, "SELECT session, body, summary FROM submissions")
        assert all(rotated.is_current(blob) for blob in row)
        submission = await after.submission("idem-1")
        assert submission is not None and submission.body == body
        await after.forget_user(1001)
        assert _on_disk(path, "SELECT COUNT(*) FROM submissions") == [(0,)]
    finally:
        await after.close()


async def test_forget_user_leaves_no_row_of_the_user(store: Store, path: Path) -> None:
    await store.set_locale(1001, "kk")
    await store.update_draft(1001, **DRAFT)
    await _add_application(store)
    await store.set_meta("status-seen:app-1", "{}")
    await store.set_locale(2002, "ru")
    await store.update_draft(2002, phone="+77010000000")

    assert await store.forget_user(1001) == 1
    assert await store.get_draft(1001) == {} and await store.get_locale(1001) is None
    assert await store.list_applications(1001) == []
    assert _on_disk(path, "SELECT user_id FROM users") == [(2002,)]
    assert _on_disk(path, "SELECT user_id FROM drafts") == [(2002,)]
    assert _on_disk(path, "SELECT COUNT(*) FROM applications") == [(0,)]
    assert await store.get_meta("status-seen:app-1") is None
    assert (await store.get_draft(2002))["phone"] == "+77010000000"


# --- the FSM storage ---------------------------------------------------------------------


async def test_fsm_data_is_sealed_and_bound_to_its_key(
    path: Path, clock: FakeClock, cipher: DataCipher
) -> None:
    storage = await SQLiteStorage.open(path, cipher=cipher, clock=clock)
    other = StorageKey(bot_id=42, chat_id=2002, user_id=2002)
    await storage.set_state(KEY, "ApplicationForm:otp")
    await storage.set_data(KEY, {"phone": PHONE, "consent_iin": IIN})
    await storage.set_data(other, {"phone": "+77010000000"})
    await storage.close()
    rows = _on_disk(path, "SELECT user_id, state, data, updated_at FROM fsm_records ORDER BY 1")
    assert [(r[0], r[1]) for r in rows] == [(1001, "ApplicationForm:otp"), (2002, None)]
    assert all(key_id_of(r[2]) == cipher.key_id and _clear_in(r[2]) == [] for r in rows)
    assert rows[0][3] == int(clock.now().timestamp())  # the injected clock, for retention

    reopened = await SQLiteStorage.open(path, cipher=cipher, clock=clock)
    try:
        assert await reopened.get_data(KEY) == {"phone": PHONE, "consent_iin": IIN}
        assert await reopened.pragmas("secure_delete", "synchronous", "journal_mode") == {
            "secure_delete": 1,
            "synchronous": 2,
            "journal_mode": "wal",
        }
    finally:
        await reopened.close()
    with sqlite3.connect(path) as conn:
        conn.execute(
            "UPDATE fsm_records SET data = (SELECT data FROM fsm_records WHERE user_id = 1001)"
            " WHERE user_id = 2002"
        )
    moved = await SQLiteStorage.open(path, cipher=cipher, clock=clock)
    try:
        with pytest.raises(DecryptionError):
            await moved.get_data(other)
    finally:
        await moved.close()


async def test_fsm_rows_in_clear_are_sealed_at_open_and_forget_user_removes_every_key(
    path: Path, clock: FakeClock, cipher: DataCipher
) -> None:
    legacy = await SQLiteStorage.open(path)
    await legacy.set_data(KEY, {"phone": PHONE})
    await legacy.set_data(StorageKey(bot_id=42, chat_id=1001, user_id=1001, destiny="x"), {"a": 1})
    await legacy.set_data(StorageKey(bot_id=42, chat_id=2002, user_id=2002), {"b": 2})
    await legacy.close()
    assert _clear_in(_on_disk(path, "SELECT data FROM fsm_records WHERE destiny = 'default'")[0][0])

    storage = await SQLiteStorage.open(path, cipher=cipher, clock=clock)
    try:
        assert all(cipher.is_current(d) for (d,) in _on_disk(path, "SELECT data FROM fsm_records"))
        assert await storage.get_data(KEY) == {"phone": PHONE}  # cached now
        assert await storage.forget_user(1001) == 2
        assert await storage.get_data(KEY) == {}  # the cache forgot it too
        assert _on_disk(path, "SELECT user_id FROM fsm_records") == [(2002,)]
    finally:
        await storage.close()


async def test_purge_untouched_goes_by_the_clock(
    path: Path, clock: FakeClock, cipher: DataCipher
) -> None:
    storage = await SQLiteStorage.open(path, cipher=cipher, clock=clock)
    try:
        await storage.set_data(KEY, {"phone": PHONE})
        clock.advance(days=10)
        fresh = StorageKey(bot_id=42, chat_id=2002, user_id=2002)
        await storage.set_state(fresh, "ApplicationForm:phone")
        since = clock.now() - timedelta(days=5)
        assert await storage.users_touched_since(since) == {2002}
        assert await storage.purge_untouched(since) == {1001}
        assert await storage.get_data(KEY) == {}
        assert await storage.get_state(fresh) == "ApplicationForm:phone"
    finally:
        await storage.close()


# --- the outbox --------------------------------------------------------------------------


async def test_outbox_text_and_file_are_sealed_and_handed_to_the_sender_in_clear(
    path: Path, clock: FakeClock, cipher: DataCipher
) -> None:
    outbox = await Outbox.open(path, clock, cipher=cipher)
    csv = f"number,child\nKZ-0001,{NAME}\n".encode()
    try:
        await outbox.enqueue(
            chat_id=1001, text=f"<b>{NAME}</b>: KZ-0001", kind="push", dedup_key="k1"
        )
        await outbox.enqueue(
            chat_id=-100, text="digest", kind="digest", dedup_key="k2", attachment=("d.csv", csv)
        )
        for text, file_data in _on_disk(path, "SELECT text, file_data FROM outbox"):
            assert key_id_of(text) == cipher.key_id and _clear_in(text) == []
            assert file_data is None or (_clear_in(file_data) == [] and csv not in file_data)
        due = {m.dedup_key: m for m in await outbox.due(clock.now(), 10)}
        assert due["k1"].text == f"<b>{NAME}</b>: KZ-0001"
        assert due["k2"].attachment == ("d.csv", csv)
        assert await outbox.forget_chat(1001) == 1
        assert [m.dedup_key for m in await outbox.due(clock.now(), 10)] == ["k2"]
    finally:
        await outbox.close()


async def test_outbox_rows_in_clear_are_sealed_at_open(
    path: Path, clock: FakeClock, cipher: DataCipher
) -> None:
    legacy = await Outbox.open(path, clock)
    await legacy.enqueue(
        chat_id=1, text=f"hi {NAME}", kind="push", dedup_key="k", attachment=("a.csv", b"x,y")
    )
    await legacy.close()
    outbox = await Outbox.open(path, clock, cipher=cipher)
    try:
        [(text, file_data)] = _on_disk(path, "SELECT text, file_data FROM outbox")
        assert cipher.is_current(text) and cipher.is_current(file_data)
        [message] = await outbox.due(clock.now(), 10)
        assert (message.text, message.attachment) == (f"hi {NAME}", ("a.csv", b"x,y"))
    finally:
        await outbox.close()


# --- pragmas on every connection the bot writes with ---------------------------------------


async def _pragmas(conn: aiosqlite.Connection) -> dict[str, object]:
    found = {}
    for name in ("journal_mode", "synchronous", "busy_timeout", "secure_delete"):
        async with conn.execute(f"PRAGMA {name}") as cur:
            row = await cur.fetchone()
        assert row is not None
        found[name] = row[0]
    return found


async def test_store_and_outbox_connections_run_wal_full_sync_busy_timeout_secure_delete(
    store: Store, path: Path, clock: FakeClock, cipher: DataCipher
) -> None:
    expected = {"journal_mode": "wal", "synchronous": 2, "busy_timeout": 5000, "secure_delete": 1}
    assert await _pragmas(store._db) == expected
    outbox = await Outbox.open(path, clock, cipher=cipher)
    try:
        assert await _pragmas(outbox._db) == expected
    finally:
        await outbox.close()
