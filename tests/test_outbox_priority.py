"""Answers to a parent who is in the chat now go before pushes, each chat keeping its order."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.clock import FakeClock
from services.outbox import (
    _INSERT,
    PRIORITY_ANSWER,
    PRIORITY_PUSH,
    Outbox,
    OutboxMessage,
    Outgoing,
    _insert_params,
    iso,
)
from services.sender import Sender
from tests.test_sender import FakeTelegram, VirtualTime

# The table as files written before the `priority` column have it.
OLD_TABLE = """
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    dedup_key       TEXT NOT NULL UNIQUE,
    chat_id         INTEGER NOT NULL,
    kind            TEXT NOT NULL,
    text            BLOB NOT NULL,
    markup          TEXT,
    file_name       TEXT,
    file_data       BLOB,
    status          TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'blocked')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    due_at          TEXT NOT NULL,
    next_attempt_at TEXT NOT NULL,
    last_error      TEXT,
    created_at      TEXT NOT NULL,
    sent_at         TEXT,
    message_id      INTEGER
);
CREATE TABLE outbox_blocked (chat_id INTEGER PRIMARY KEY, blocked_at TEXT NOT NULL);
"""


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


async def push(outbox: Outbox, chat_id: int, key: str, kind: str = "status") -> None:
    assert await outbox.enqueue(chat_id=chat_id, text=f"текст {key}", kind=kind, dedup_key=key)


async def test_the_kinds_that_answer_a_parent_get_priority_and_a_given_one_wins(
    outbox: Outbox,
) -> None:
    await push(outbox, 1, "confirmation", kind="submitted")
    await push(outbox, 2, "refusal", kind="submission_refused")
    await push(outbox, 3, "status", kind="status")
    await push(outbox, 4, "digest", kind="digest")
    await outbox.enqueue_many(
        [Outgoing(chat_id=5, text="t", kind="status", dedup_key="urgent", priority=1)]
    )

    found = {key: (await outbox.get(key)) for key in ("confirmation", "refusal", "status")}
    assert {k: r.priority for k, r in found.items() if r is not None} == {
        "confirmation": PRIORITY_ANSWER,
        "refusal": PRIORITY_ANSWER,
        "status": PRIORITY_PUSH,
    }
    for key, expected in (("digest", PRIORITY_PUSH), ("urgent", 1)):
        record = await outbox.get(key)
        assert record is not None and record.priority == expected


async def test_a_confirmation_written_in_the_store_s_own_transaction_gets_it_too(
    outbox: Outbox, path: Path, clock: FakeClock
) -> None:
    # services/store.py writes the confirmation with `_INSERT` and `_insert_params` on its own.
    message = Outgoing(chat_id=7, text="№ 000123", kind="submitted", dedup_key="submitted:k")
    with sqlite3.connect(path) as db:
        db.execute(_INSERT, _insert_params(message, iso(clock.now()), None))

    record = await outbox.get("submitted:k")
    assert record is not None
    assert (record.status, record.priority) == ("pending", PRIORITY_ANSWER)
    [head] = await outbox.due(clock.now(), 10)
    assert (head.dedup_key, head.priority, head.text) == (
        "submitted:k",
        PRIORITY_ANSWER,
        "№ 000123",
    )


async def test_due_takes_the_chats_holding_an_answer_first_each_from_its_head(
    outbox: Outbox, clock: FakeClock
) -> None:
    for chat in range(1, 6):
        await push(outbox, chat, f"push-{chat}")
    clock.advance(1)
    await push(outbox, 3, "answer-3", kind="submitted")  # behind a push of its own chat
    clock.advance(1)
    await push(outbox, 9, "answer-9", kind="submitted")

    heads = await outbox.due(clock.now(), 10)

    # Chat 3 goes first, from its own first row: its order never changes.
    assert [m.dedup_key for m in heads] == [
        "push-3",
        "answer-9",
        "push-1",
        "push-2",
        "push-4",
        "push-5",
    ]
    assert [m.priority for m in heads[:3]] == [PRIORITY_ANSWER, PRIORITY_ANSWER, PRIORITY_PUSH]
    urgent = await outbox.due(clock.now(), 10, urgent_only=True)
    assert [m.dedup_key for m in urgent] == ["push-3", "answer-9"]

    # While chat 3's head is in flight, its answer waits; chat 9 still goes first.
    assert await outbox.claim([heads[0].id]) == {heads[0].id}
    assert [m.dedup_key for m in await outbox.due(clock.now(), 10, urgent_only=True)] == [
        "answer-9"
    ]


async def test_an_answer_is_found_however_deep_the_backlog_of_pushes(
    outbox: Outbox, clock: FakeClock
) -> None:
    await outbox.enqueue_many(
        Outgoing(chat_id=100 + i, text="t", kind="status", dedup_key=f"p{i}") for i in range(50)
    )
    await push(outbox, 7, "answer", kind="submitted")

    heads = await outbox.due(clock.now(), 5, scan=10)  # the pushes' scan stops long before it

    assert [m.dedup_key for m in heads] == ["answer", "p0", "p1", "p2", "p3"]


async def test_an_older_file_gets_the_column_and_its_waiting_answers_go_first(
    path: Path, clock: FakeClock
) -> None:
    now = iso(clock.now())
    with sqlite3.connect(path) as db:
        db.executescript(OLD_TABLE)
        for key, kind, status in (
            ("old-push", "status", "pending"),
            ("old-answer", "submitted", "pending"),
            ("sent-answer", "submitted", "sent"),
        ):
            db.execute(
                "INSERT INTO outbox (dedup_key, chat_id, kind, text, status, due_at,"
                " next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (key, len(key), kind, "текст", status, now, now, now),
            )

    for _ in range(2):  # a second open finds it up to date
        box = await Outbox.open(path, clock)
        try:
            found = {k: await box.get(k) for k in ("old-push", "old-answer", "sent-answer")}
            assert {k: r.priority for k, r in found.items() if r is not None} == {
                "old-push": PRIORITY_PUSH,
                "old-answer": PRIORITY_ANSWER,
                "sent-answer": PRIORITY_PUSH,  # done: nothing to hurry
            }
            assert [m.dedup_key for m in await box.due(clock.now(), 10)] == [
                "old-answer",
                "old-push",
            ]
        finally:
            await box.close()
    with sqlite3.connect(path) as db:
        indexes = {row[1] for row in db.execute("PRAGMA index_list(outbox)")}
    assert "outbox_urgent" in indexes


async def test_answers_enqueued_behind_hundreds_of_pushes_go_before_them(
    tmp_path: Path,
) -> None:
    time = VirtualTime()
    box = await Outbox.open(tmp_path / "kezek.sqlite3", time.clock)
    telegram = FakeTelegram(time.clock)
    try:
        await box.enqueue_many(
            Outgoing(chat_id=1000 + i, text=f"p{i}", kind="status", dedup_key=f"p{i}")
            for i in range(300)
        )
        # Chat 7 has a push far down the queue; chat 8 has nothing queued.
        await box.enqueue(chat_id=7, text="p7", kind="status", dedup_key="push-7")

        async def parents_submit(msg: OutboxMessage) -> None:
            if len(telegram.calls) == 5:  # while the pushes are going out
                for chat in (7, 8):
                    await box.enqueue(
                        chat_id=chat, text="№", kind="submitted", dedup_key=f"answer-{chat}"
                    )

        telegram.on_call = parents_submit
        sender = Sender(box, telegram, time.clock, sleep=time.sleep, rate=30, concurrency=8)
        await sender.drain()
    finally:
        await box.close()

    keys = [c.key for c in telegram.calls]
    assert len(keys) == 303 and len(set(keys)) == 303
    # Found within half a second of sending (15 sends at 30/s, plus the few made while the
    # look reads), then behind the rows already claimed (at most 8): without priority they
    # would be the last two of 303.
    assert keys.index("answer-8") < 100
    # Chat 7 keeps its order: its push goes first (lifted by the answer behind it), and the
    # answer one second (30 sends) later, as the per-chat limit asks.
    assert keys.index("push-7") < 100
    assert keys.index("push-7") < keys.index("answer-7") < 100 + 30
    at = {c.key: c.at for c in telegram.calls}
    assert (at["answer-7"] - at["push-7"]).total_seconds() >= 1.0


async def test_a_crowd_of_answers_goes_out_at_the_full_rate(tmp_path: Path) -> None:
    # Every row is an answer, so the sender looks for answers every half second while it
    # sends: rows it calls while such a look reads must not come back as heads (waiting for
    # their chat's next second, they would hold every send back).
    time = VirtualTime()
    box = await Outbox.open(tmp_path / "kezek.sqlite3", time.clock)
    telegram = FakeTelegram(time.clock)
    try:
        await box.enqueue_many(
            Outgoing(chat_id=2000 + i, text="№", kind="submitted", dedup_key=f"a{i}")
            for i in range(300)
        )
        sender = Sender(box, telegram, time.clock, sleep=time.sleep, rate=25)
        await sender.drain()
    finally:
        await box.close()

    times = [c.at for c in telegram.calls]
    assert sorted(c.key for c in telegram.calls) == sorted(f"a{i}" for i in range(300))
    span = (times[-1] - times[0]).total_seconds()
    assert 299 / span >= 0.97 * 25
