"""The outbox table on a real SQLite file: dedup, what a row keeps, heads per chat, recovery."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, timedelta
from pathlib import Path

import pytest

from services.clock import FakeClock
from services.outbox import BLOCKED, INTERRUPTED, Outbox, Outgoing, RowUpdate
from services.sqlite_writer import SQLiteWriter
from services.store import Store

MARKUP = {
    "inline_keyboard": [
        [{"text": "Өтінімді көру", "callback_data": "app:open:A-1", "url": None}],
        [{"text": "ed24.kz", "url": "https://ed24.kz", "callback_data": None}],
    ]
}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "kezek.sqlite3"


@pytest.fixture
async def outbox(path: Path, clock: FakeClock) -> AsyncIterator[Outbox]:
    box = await Outbox.open(path, clock)
    yield box
    await box.close()


async def put(outbox: Outbox, chat_id: int, key: str, **kwargs: object) -> bool:
    return await outbox.enqueue(
        chat_id=chat_id, text=f"Сәлем, {key}", kind="status", dedup_key=key, **kwargs
    )


async def test_the_same_dedup_key_is_stored_once(outbox: Outbox, clock: FakeClock) -> None:
    assert await put(outbox, 1, "status:A-1:queued")
    assert not await outbox.enqueue(
        chat_id=1, text="другой текст", kind="status", dedup_key="status:A-1:queued"
    )

    assert await outbox.counts() == {
        "pending": 1,
        "sending": 0,
        "sent": 0,
        "failed": 0,
        "blocked": 0,
    }
    [message] = await outbox.due(clock.now(), 10)
    assert message.text == "Сәлем, status:A-1:queued"  # the first one stays


async def test_enqueue_many_reports_how_many_were_new(outbox: Outbox) -> None:
    await put(outbox, 1, "k1")
    added = await outbox.enqueue_many(
        Outgoing(chat_id=1, text="t", kind="digest", dedup_key=key) for key in ["k1", "k2", "k3"]
    )
    assert added == 2
    assert (await outbox.counts())["pending"] == 3


async def test_concurrent_enqueues_count_only_their_own_rows(outbox: Outbox) -> None:
    keys = [f"k{i % 25}" for i in range(50)]  # every key twice

    results = await asyncio.gather(*(put(outbox, 1, key) for key in keys))

    assert results.count(True) == 25
    assert (await outbox.counts())["pending"] == 25


async def test_markup_and_attachment_come_back_as_they_went_in(
    outbox: Outbox, clock: FakeClock
) -> None:
    csv = "ИИН;Статус\n••••5933;queued\n".encode()
    await put(outbox, 5, "with-markup", markup=MARKUP)
    await put(outbox, 6, "digest", attachment=("digest-10.09.2026.csv", csv))

    first, second = await outbox.due(clock.now(), 10)

    assert (first.chat_id, first.kind, first.markup, first.attachment) == (
        5,
        "status",
        MARKUP,
        None,
    )
    assert second.markup is None
    assert second.attachment == ("digest-10.09.2026.csv", csv)
    assert first.attempts == 0 and first.dedup_key == "with-markup"


async def test_rows_survive_a_reopen_in_the_bot_file_next_to_the_store(
    path: Path, clock: FakeClock
) -> None:
    store = await Store.open(path, clock)
    box = await Outbox.open(path, clock)
    await store.set_locale(1, "kk")
    await put(box, 1, "k")
    await box.close()
    await store.close()

    box = await Outbox.open(path, clock)
    try:
        record = await box.get("k")
        assert record is not None and record.status == "pending"
        assert record.next_attempt_at == clock.now()
    finally:
        await box.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert db.execute("SELECT locale FROM users").fetchall() == [("kk",)]
        # times are UTC text with microseconds, so that text order is time order
        [(due,)] = db.execute("SELECT due_at FROM outbox").fetchall()
        assert due == clock.now().astimezone(UTC).isoformat(timespec="microseconds")


async def test_due_gives_each_chat_its_head_in_place_order(
    outbox: Outbox, clock: FakeClock
) -> None:
    now = clock.now()
    await put(outbox, 1, "a1")
    clock.advance(1)
    await put(outbox, 2, "b1")
    await put(outbox, 1, "a2")
    await put(outbox, 3, "later", not_before=now + timedelta(hours=1))
    clock.advance(1)

    assert [m.dedup_key for m in await outbox.due(clock.now(), 10)] == ["a1", "b1"]
    assert [m.dedup_key for m in await outbox.due(clock.now(), 1)] == ["a1"]

    a1 = (await outbox.due(clock.now(), 1))[0]
    await outbox.write([RowUpdate(a1.id, "sending", attempts_delta=1)])
    # while a1 is in flight its chat waits
    assert [m.dedup_key for m in await outbox.due(clock.now(), 10)] == ["b1"]

    retry_at = clock.now() + timedelta(seconds=30)
    await outbox.write([RowUpdate(a1.id, "pending", next_attempt_at=retry_at, last_error="x")])
    # a row waiting for its retry keeps its place: a2 waits behind it
    assert [m.dedup_key for m in await outbox.due(clock.now(), 10)] == ["b1"]
    assert await outbox.next_due(clock.now()) == retry_at

    clock.set(now + timedelta(hours=1))
    assert [m.dedup_key for m in await outbox.due(clock.now(), 10)] == ["a1", "b1", "later"]


async def test_a_head_past_the_scan_cap_waits_its_turn(outbox: Outbox, clock: FakeClock) -> None:
    for i in range(5):
        await put(outbox, 1, f"busy-{i}")
    await put(outbox, 2, "other")

    assert [m.dedup_key for m in await outbox.due(clock.now(), 10, scan=3)] == ["busy-0"]
    assert [m.dedup_key for m in await outbox.due(clock.now(), 10)] == ["busy-0", "other"]


async def test_next_due_and_has_open_follow_the_rows(outbox: Outbox, clock: FakeClock) -> None:
    assert not await outbox.has_open()
    assert await outbox.next_due(clock.now()) is None
    later = clock.now() + timedelta(minutes=5)
    await put(outbox, 1, "k", not_before=later)

    assert await outbox.has_open()
    assert await outbox.next_due(clock.now()) == later
    assert await outbox.due(clock.now(), 10) == []


async def test_recover_fails_rows_left_in_flight_and_leaves_the_rest(
    outbox: Outbox, clock: FakeClock
) -> None:
    await put(outbox, 1, "in-flight")
    await put(outbox, 2, "waiting")
    [head, _] = await outbox.due(clock.now(), 10)
    await outbox.write([RowUpdate(head.id, "sending", attempts_delta=1)])

    assert await outbox.recover() == 1

    record = await outbox.get("in-flight")
    assert record is not None
    assert (record.status, record.attempts, record.last_error) == ("failed", 1, INTERRUPTED)
    waiting = await outbox.get("waiting")
    assert waiting is not None and waiting.status == "pending"
    assert await outbox.recover() == 0


async def test_blocking_a_chat_blocks_its_pending_rows_and_later_ones(
    outbox: Outbox, clock: FakeClock
) -> None:
    await put(outbox, 7, "first")
    await put(outbox, 7, "second")
    await put(outbox, 8, "other")
    [first, _] = await outbox.due(clock.now(), 10)

    await outbox.write([RowUpdate(first.id, "blocked", last_error=BLOCKED)], block_chats=[7])

    assert await outbox.is_blocked(7) and not await outbox.is_blocked(8)
    assert await outbox.counts() == {
        "pending": 1,
        "sending": 0,
        "sent": 0,
        "failed": 0,
        "blocked": 2,
    }
    assert await put(outbox, 7, "third")  # stored, but as blocked
    third = await outbox.get("third")
    assert third is not None and third.status == "blocked"

    await outbox.unblock(7)
    await put(outbox, 7, "fourth")
    fourth = await outbox.get("fourth")
    assert fourth is not None and fourth.status == "pending"


async def test_a_write_is_all_or_nothing(outbox: Outbox, clock: FakeClock) -> None:
    await put(outbox, 1, "a")
    await put(outbox, 2, "b")
    a, b = await outbox.due(clock.now(), 10)

    with pytest.raises(sqlite3.IntegrityError):
        await outbox.write(
            [
                RowUpdate(a.id, "sent", sent_at=clock.now(), message_id=10),
                RowUpdate(b.id, "lost"),  # not a status: the CHECK refuses it
            ]
        )

    record = await outbox.get("a")
    assert record is not None and record.status == "pending"  # rolled back with it
    await outbox.write([RowUpdate(a.id, "sent", sent_at=clock.now(), message_id=10)])
    record = await outbox.get("a")
    assert record is not None
    assert (record.status, record.message_id, record.sent_at) == ("sent", 10, clock.now())


async def test_enqueue_wakes_subscribers_only_when_something_was_stored(outbox: Outbox) -> None:
    woken: list[int] = []
    outbox.subscribe(lambda: woken.append(1))

    await put(outbox, 1, "k")
    await put(outbox, 1, "k")

    assert woken == [1]


# --- claims, recovery, the shared writer ----------------------------------------------------


async def test_a_claim_takes_only_rows_still_pending_and_due(
    outbox: Outbox, clock: FakeClock
) -> None:
    await put(outbox, 1, "a")
    await put(outbox, 2, "later")
    await put(outbox, 3, "forgotten")
    await put(outbox, 4, "b")
    a, later, forgotten, b = await outbox.due(clock.now(), 10)
    retry_at = clock.now() + timedelta(seconds=30)
    await outbox.write([RowUpdate(later.id, "pending", next_attempt_at=retry_at)])
    await outbox.forget_chat(3)

    # waiting for its retry, or forgotten: left out; the others are claimed together
    assert await outbox.claim([a.id, later.id, forgotten.id, b.id]) == {a.id, b.id}
    assert await outbox.claim([a.id]) == set()  # claimed already: never twice
    record = await outbox.get("a")
    assert record is not None and (record.status, record.attempts) == ("sending", 1)
    record = await outbox.get("later")
    assert record is not None and (record.status, record.attempts) == ("pending", 0)

    clock.set(retry_at)
    assert await outbox.claim([later.id]) == {later.id}


async def test_outcomes_and_claims_are_one_transaction(outbox: Outbox, clock: FakeClock) -> None:
    await put(outbox, 1, "a")
    await put(outbox, 2, "b")
    a, b = await outbox.due(clock.now(), 10)
    await outbox.claim([a.id])

    with pytest.raises(sqlite3.IntegrityError):
        await outbox.claim([b.id], updates=[RowUpdate(a.id, "lost")])  # the CHECK refuses it

    record = await outbox.get("b")
    assert record is not None and record.status == "pending"  # the claim went with it
    sent = RowUpdate(a.id, "sent", sent_at=clock.now())
    assert await outbox.claim([b.id], updates=[sent]) == {b.id}
    records = [await outbox.get(key) for key in ("a", "b")]
    assert [r.status for r in records if r is not None] == ["sent", "sending"]


async def test_recover_gives_back_the_rows_it_is_told_were_never_called(
    outbox: Outbox, clock: FakeClock
) -> None:
    for chat, key in enumerate(("called", "never-called", "waiting")):
        await put(outbox, chat, key)
    rows = {m.dedup_key: m for m in await outbox.due(clock.now(), 10)}
    await outbox.claim([rows["called"].id, rows["never-called"].id])

    assert await outbox.recover(release={rows["never-called"].id, rows["waiting"].id}) == 1

    called = await outbox.get("called")
    assert called is not None and (called.status, called.last_error) == ("failed", INTERRUPTED)
    given_back = await outbox.get("never-called")
    assert given_back is not None
    assert (given_back.status, given_back.attempts, given_back.last_error) == ("pending", 0, None)
    waiting = await outbox.get("waiting")  # never claimed: released changes nothing
    assert waiting is not None and (waiting.status, waiting.attempts) == ("pending", 0)


async def test_claims_made_together_share_one_commit_of_the_writer_given(
    path: Path, clock: FakeClock
) -> None:
    writer = await SQLiteWriter.open(path)
    try:
        box = await Outbox.open(path, clock, writer=writer)
        await box.enqueue_many(
            Outgoing(chat_id=i, text="t", kind="status", dedup_key=f"k{i}") for i in range(20)
        )
        heads = await box.due(clock.now(), 20)
        before = writer.stats.batches

        claimed = await asyncio.gather(*(box.claim([m.id]) for m in heads))

        assert claimed == [{m.id} for m in heads]
        assert writer.stats.batches - before == 1
        await box.close()
        # The writer is the caller's: the outbox leaves it open.
        assert await writer.run(lambda conn: conn.execute("SELECT 1").fetchone()[0]) == 1
    finally:
        await writer.close()
    with sqlite3.connect(path) as db:
        [(sending,)] = db.execute("SELECT COUNT(*) FROM outbox WHERE status = 'sending'")
    assert sending == 20
