"""The outbox sender on a virtual clock: limits measured on recorded send times, outcomes,
order, and exactly-once across a restart (a real SQLite file, a fake Telegram)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from services.clock import FakeClock
from services.outbox import INTERRUPTED, Outbox, OutboxMessage, Outgoing
from services.sender import (
    Blocked,
    Delivered,
    DeliveryResult,
    Permanent,
    RetryAfter,
    Sender,
    Transient,
)

SECOND = timedelta(seconds=1)


class Crash(BaseException):
    """The process dies here: nothing after this point runs."""


@dataclass(frozen=True)
class Call:
    at: datetime
    chat_id: int
    key: str
    text: str
    accepted: bool


Step = DeliveryResult | BaseException | Callable[[], Awaitable[None]]


@dataclass
class FakeTelegram:
    """Records every call with the clock's time; answers from a per-key script, else accepts."""

    clock: FakeClock
    calls: list[Call] = field(default_factory=list)
    script: dict[str, list[Step]] = field(default_factory=dict)
    crash_after_accepting: set[str] = field(default_factory=set)
    on_call: Callable[[OutboxMessage], Awaitable[None]] | None = None
    next_id: int = 0

    async def __call__(self, msg: OutboxMessage) -> DeliveryResult:
        if self.on_call is not None:
            await self.on_call(msg)
        steps = self.script.get(msg.dedup_key)
        step = steps.pop(0) if steps else None
        if isinstance(step, BaseException):
            self.calls.append(Call(self.clock.now(), msg.chat_id, msg.dedup_key, msg.text, False))
            raise step
        accepted = step is None or isinstance(step, Delivered)
        self.calls.append(Call(self.clock.now(), msg.chat_id, msg.dedup_key, msg.text, accepted))
        if msg.dedup_key in self.crash_after_accepting:
            self.crash_after_accepting.discard(msg.dedup_key)
            raise Crash  # Telegram has it; we die before reading the answer
        if step is not None:
            return step  # type: ignore[return-value]
        self.next_id += 1
        return Delivered(self.next_id)

    def delivered(self) -> list[str]:
        return [c.key for c in self.calls if c.accepted]

    def times(self) -> list[datetime]:
        return [c.at for c in self.calls]


@dataclass
class VirtualTime:
    """A FakeClock whose `sleep` advances it; records every nap."""

    clock: FakeClock = field(default_factory=FakeClock)
    naps: list[float] = field(default_factory=list)
    crash_when: Callable[[], bool] | None = None

    async def sleep(self, seconds: float) -> None:
        if self.crash_when is not None and self.crash_when():
            raise Crash
        self.naps.append(seconds)
        self.clock.advance(seconds)


@dataclass
class Env:
    path: Path
    time: VirtualTime
    telegram: FakeTelegram
    outbox: Outbox
    blocked: list[int] = field(default_factory=list)

    @property
    def clock(self) -> FakeClock:
        return self.time.clock

    def sender(self, outbox: Outbox | None = None, **kwargs: Any) -> Sender:
        async def on_blocked(chat_id: int) -> None:
            self.blocked.append(chat_id)

        kwargs.setdefault("on_blocked", on_blocked)
        return Sender(
            outbox or self.outbox, self.telegram, self.clock, sleep=self.time.sleep, **kwargs
        )

    async def enqueue(self, chat_id: int, key: str, **kwargs: Any) -> bool:
        return await self.outbox.enqueue(
            chat_id=chat_id, text=f"текст {key}", kind="push", dedup_key=key, **kwargs
        )


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    time = VirtualTime()
    path = tmp_path / "kezek.sqlite3"
    outbox = await Outbox.open(path, time.clock)
    state = Env(path=path, time=time, telegram=FakeTelegram(time.clock), outbox=outbox)
    yield state
    await state.outbox.close()


def busiest_second(times: list[datetime]) -> int:
    """The most sends in any window [t, t + 1 s)."""
    times = sorted(times)
    best, j = 0, 0
    for i, start in enumerate(times):
        while j < len(times) and times[j] < start + SECOND:
            j += 1
        best = max(best, j - i)
    return best


def chat_gaps(calls: list[Call]) -> list[timedelta]:
    """The time between consecutive calls into the same chat."""
    last: dict[int, datetime] = {}
    gaps = []
    for call in sorted(calls, key=lambda c: c.at):
        if call.chat_id in last:
            gaps.append(call.at - last[call.chat_id])
        last[call.chat_id] = call.at
    return gaps


def keys_of(calls: list[Call], chat_id: int) -> list[str]:
    return [c.key for c in calls if c.chat_id == chat_id]


# --- rates --------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [25.0, 30.0, 7.0])
async def test_never_more_than_rate_in_any_second_and_close_to_it(env: Env, rate: float) -> None:
    n = 300
    await env.outbox.enqueue_many(
        Outgoing(chat_id=1000 + i, text=f"m{i}", kind="push", dedup_key=f"k{i}") for i in range(n)
    )

    sent = await env.sender(rate=rate).drain()

    times = env.telegram.times()
    assert sent == len(times) == n
    assert busiest_second(times) == int(rate)  # the limit is used, and never passed
    span = (times[-1] - times[0]).total_seconds()
    assert (n - 1) / span >= 0.97 * rate
    assert await env.outbox.counts() == {
        "pending": 0,
        "sending": 0,
        "sent": n,
        "failed": 0,
        "blocked": 0,
    }


async def test_one_send_per_chat_per_second_in_enqueue_order_while_others_go_on(
    env: Env,
) -> None:
    busy = 7
    for i in range(6):
        await env.enqueue(busy, f"busy-{i}")
    for i in range(40):
        await env.enqueue(100 + i, f"single-{i}")

    await env.sender().drain()

    calls = env.telegram.calls
    assert keys_of(calls, busy) == [f"busy-{i}" for i in range(6)]
    assert min(chat_gaps(calls)) >= SECOND
    busy_times = [c.at for c in calls if c.chat_id == busy]
    # the chat's next row is found by the next batch query, so it may wait a little past 1 s
    assert busy_times[-1] - busy_times[0] <= timedelta(seconds=6)
    # the other chats do not wait behind the busy one: 41 sends at 25/s take 1.6 s
    singles = [c.at for c in calls if c.chat_id != busy]
    assert singles[-1] - calls[0].at <= timedelta(seconds=1.7)


async def test_per_chat_interval_is_a_parameter(env: Env) -> None:
    for i in range(4):
        await env.enqueue(5, f"k{i}")

    await env.sender(per_chat_interval=3.0).drain()

    assert chat_gaps(env.telegram.calls) == [timedelta(seconds=3)] * 3


# --- Telegram's answers -------------------------------------------------------------------


async def test_retry_after_holds_its_chat_and_the_others_go_on(env: Env) -> None:
    for i in range(30):
        await env.enqueue(200 + i, f"k{i}")
    await env.enqueue(209, "k9-later")  # the refused message's chat has a second one
    env.telegram.script["k9"] = [RetryAfter(3)]

    sender = env.sender()
    await sender.drain()

    calls = env.telegram.calls
    refused = next(c for c in calls if c.key == "k9")
    assert not refused.accepted
    after = [c for c in calls if c.at > refused.at]
    assert after[0].key == "k10"  # the next chat did not wait for the refusal
    assert after[0].at - refused.at < timedelta(milliseconds=100)
    retried = next(c for c in after if c.key == "k9")
    assert retried.at - refused.at == timedelta(seconds=3)  # its own chat did
    assert Counter(env.telegram.delivered()) == Counter([f"k{i}" for i in range(30)] + ["k9-later"])
    assert keys_of(calls, 209) == ["k9", "k9", "k9-later"]
    record = await env.outbox.get("k9")
    assert record is not None and record.status == "sent"
    assert record.attempts == 1  # the refusal was not an attempt
    assert (sender.stats.pauses, sender.stats.flood_pauses) == (1, 0)
    assert busiest_second(env.telegram.times()) <= 25


async def test_refusals_from_several_chats_within_a_second_pause_every_send(env: Env) -> None:
    for i in range(40):
        await env.enqueue(300 + i, f"k{i}")
    env.telegram.script["k3"] = [RetryAfter(2)]
    env.telegram.script["k4"] = [RetryAfter(5)]
    env.telegram.script["k5"] = [RetryAfter(1)]

    sender = env.sender()
    await sender.drain()

    calls = env.telegram.calls
    third = next(c for c in calls if c.key == "k5")
    first = next(c for c in calls if c.key == "k3")
    assert [c.key for c in calls[:6]] == [f"k{i}" for i in range(6)]
    assert third.at - first.at < SECOND
    after = [c for c in calls if c.at > third.at]
    longest_end = next(c for c in calls if c.key == "k4").at + 5 * SECOND
    assert after[0].at == longest_end  # nothing at all until the longest retry_after is over
    assert Counter(env.telegram.delivered()) == Counter(f"k{i}" for i in range(40))
    assert (sender.stats.pauses, sender.stats.flood_pauses) == (3, 1)


async def test_transient_errors_back_off_exponentially_then_succeed(env: Env) -> None:
    env.telegram.script["k"] = [Transient("timeout"), Transient("timeout"), Transient("502")]
    await env.enqueue(1, "k")
    await env.enqueue(1, "k-next")

    await env.sender(backoff_base=1.0).drain()

    times = [c.at for c in env.telegram.calls if c.key == "k"]
    gaps = [b - a for a, b in pairwise(times)]
    assert gaps == [timedelta(seconds=1), timedelta(seconds=2), timedelta(seconds=4)]
    assert keys_of(env.telegram.calls, 1) == ["k"] * 4 + ["k-next"]  # order kept meanwhile
    record = await env.outbox.get("k")
    assert record is not None
    assert (record.status, record.attempts, record.message_id) == ("sent", 4, 1)


async def test_backoff_is_capped(env: Env) -> None:
    env.telegram.script["k"] = [Transient("down")] * 5
    await env.enqueue(1, "k")

    await env.sender(backoff_base=10.0, backoff_max=25.0).drain()

    times = [c.at for c in env.telegram.calls]
    gaps = [(b - a).total_seconds() for a, b in pairwise(times)]
    assert gaps == [10.0, 20.0, 25.0, 25.0, 25.0]


async def test_transient_gives_up_after_max_attempts(env: Env) -> None:
    env.telegram.script["k"] = [Transient("server error")] * 10
    await env.enqueue(1, "k")
    await env.enqueue(1, "k-next")

    await env.sender(max_attempts=3).drain()

    assert keys_of(env.telegram.calls, 1) == ["k", "k", "k", "k-next"]
    record = await env.outbox.get("k")
    assert record is not None and record.status == "failed"
    assert record.last_error == "gave up after 3 attempts: server error"


async def test_forbidden_blocks_the_chat_and_its_pending_rows(env: Env) -> None:
    for i in range(3):
        await env.enqueue(7, f"seven-{i}")
        await env.enqueue(8, f"eight-{i}")
    env.telegram.script["seven-0"] = [Blocked()]

    await env.sender().drain()

    assert keys_of(env.telegram.calls, 7) == ["seven-0"]
    assert keys_of(env.telegram.calls, 8) == ["eight-0", "eight-1", "eight-2"]
    assert env.blocked == [7]
    assert await env.outbox.is_blocked(7)
    for i in range(3):
        record = await env.outbox.get(f"seven-{i}")
        assert record is not None and record.status == "blocked"
    # later messages to the chat are kept but not sent, until the user comes back
    assert await env.enqueue(7, "seven-later")
    await env.sender().drain()
    assert keys_of(env.telegram.calls, 7) == ["seven-0"]
    assert (await env.outbox.counts())["blocked"] == 4
    await env.outbox.unblock(7)
    await env.enqueue(7, "seven-back")
    await env.sender().drain()
    assert keys_of(env.telegram.calls, 7) == ["seven-0", "seven-back"]


async def test_permanent_error_fails_once_and_the_chat_goes_on(env: Env) -> None:
    env.telegram.script["bad"] = [Permanent("Bad Request: message is too long")]
    await env.enqueue(3, "bad")
    await env.enqueue(3, "good")

    await env.sender().drain()

    assert keys_of(env.telegram.calls, 3) == ["bad", "good"]
    record = await env.outbox.get("bad")
    assert record is not None
    assert (record.status, record.last_error) == ("failed", "Bad Request: message is too long")


async def test_an_exception_from_deliver_is_retried_and_its_text_never_logged(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    env.telegram.script["k"] = [ValueError("Айгерім Нұрланқызы, 871008401427")]
    await env.enqueue(1, "k")

    with caplog.at_level(logging.DEBUG):
        await env.sender().drain()

    assert [c.key for c in env.telegram.calls] == ["k", "k"]
    assert env.telegram.calls[1].accepted
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "ValueError" in logged
    assert "Айгерім" not in logged and "871008401427" not in logged and "текст" not in logged
    record = await env.outbox.get("k")
    assert record is not None and record.last_error == "deliver raised ValueError"


async def test_same_event_enqueued_twice_is_sent_once(env: Env) -> None:
    assert await env.enqueue(1, "status:app-1:queued")
    assert not await env.enqueue(1, "status:app-1:queued")

    await env.sender().drain()

    assert env.telegram.delivered() == ["status:app-1:queued"]


async def test_not_before_is_waited_for_and_does_not_hold_back_its_chat(env: Env) -> None:
    start = env.clock.now()
    await env.enqueue(1, "reminder", not_before=start + timedelta(hours=2))
    await env.enqueue(1, "push")

    await env.sender().drain()

    calls = env.telegram.calls
    assert [c.key for c in calls] == ["push", "reminder"]
    assert calls[1].at == start + timedelta(hours=2)


# --- concurrency, run and stop ------------------------------------------------------------


async def test_calls_overlap_up_to_the_concurrency_and_never_within_a_chat(env: Env) -> None:
    gate = asyncio.Event()
    in_flight: list[int] = []
    most = 0

    async def slow_network(msg: OutboxMessage) -> None:
        nonlocal most
        assert msg.chat_id not in in_flight
        in_flight.append(msg.chat_id)
        most = max(most, len(in_flight))
        if len(in_flight) == 3:
            gate.set()
        await gate.wait()
        in_flight.remove(msg.chat_id)

    env.telegram.on_call = slow_network
    for i in range(6):
        await env.enqueue(i % 4, f"k{i}")  # chats 0 and 1 get two messages each

    async with asyncio.timeout(10):  # a guard: a sender that never overlaps calls would hang
        await env.sender(concurrency=3).drain()

    assert most == 3
    assert Counter(env.telegram.delivered()) == Counter(f"k{i}" for i in range(6))
    assert keys_of(env.telegram.calls, 0) == ["k0", "k4"]


async def test_a_chat_waits_while_its_call_is_in_flight(env: Env) -> None:
    network = asyncio.Event()

    async def slow_for_a(msg: OutboxMessage) -> None:
        if msg.dedup_key == "a0":
            await network.wait()  # still in flight while the sender looks for more work
        else:
            network.set()

    env.telegram.on_call = slow_for_a
    env.telegram.script["a0"] = [Transient("timeout")]
    await env.enqueue(1, "a0")
    await env.enqueue(2, "b0")
    await env.enqueue(1, "a1")

    async with asyncio.timeout(10):
        await env.sender(concurrency=2).drain()

    assert keys_of(env.telegram.calls, 1) == ["a0", "a0", "a1"]


def blocking_sleep(
    time: VirtualTime, longest: float, on_block: Callable[[float], None] | None = None
) -> Callable[[float], Awaitable[None]]:
    """Virtual for short waits; a longer wait (told to `on_block`) only ends when the sender
    cancels it."""

    async def sleep(seconds: float) -> None:
        if seconds > longest:
            if on_block is not None:
                on_block(seconds)
            await asyncio.Event().wait()
        await time.sleep(seconds)

    return sleep


async def test_run_wakes_on_enqueue_and_stop_writes_everything(env: Env) -> None:
    delivered = asyncio.Event()

    async def note(msg: OutboxMessage) -> None:
        delivered.set()

    env.telegram.on_call = note
    sender = Sender(
        env.outbox,
        env.telegram,
        env.clock,
        sleep=blocking_sleep(env.time, longest=10),
        poll_interval=3600,  # only the enqueue can wake it in time
    )
    task = asyncio.create_task(sender.run())
    await env.enqueue(1, "k")
    await delivered.wait()

    await sender.stop()

    assert task.done()
    await task
    assert env.telegram.delivered() == ["k"]
    record = await env.outbox.get("k")
    assert record is not None and record.status == "sent"


async def test_stop_cuts_a_long_flood_pause_short(env: Env) -> None:
    refused = asyncio.Event()

    async def note(msg: OutboxMessage) -> None:
        refused.set()

    env.telegram.on_call = note
    for key in ("a", "b", "c"):
        env.telegram.script[key] = [RetryAfter(3600)]
    for chat_id, key in enumerate(("a", "b", "c", "other"), start=1):
        await env.enqueue(chat_id, key)
    sender = Sender(env.outbox, env.telegram, env.clock, sleep=blocking_sleep(env.time, longest=10))
    task = asyncio.create_task(sender.run())
    while len(env.telegram.calls) < 3:  # three chats refused: every send pauses for an hour
        refused.clear()
        await refused.wait()

    await sender.stop()

    await task
    assert [c.key for c in env.telegram.calls] == ["a", "b", "c"]  # "other" waits too
    for key in ("a", "b", "c"):
        record = await env.outbox.get(key)
        assert record is not None and record.status == "pending"
    record = await env.outbox.get("a")
    assert record is not None
    assert record.next_attempt_at == env.telegram.calls[0].at + timedelta(hours=1)


async def test_a_failed_database_write_does_not_stop_run_nor_repeat_a_message(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_claim = env.outbox.claim
    failures = 0

    async def flaky_claim(*args: Any, **kwargs: Any) -> set[int]:
        nonlocal failures
        if failures < 2:
            failures += 1
            raise sqlite3.OperationalError("database is locked")
        return await real_claim(*args, **kwargs)

    monkeypatch.setattr(env.outbox, "claim", flaky_claim)
    all_sent = asyncio.Event()
    keys = [f"k{i}" for i in range(5)]
    for i, key in enumerate(keys):
        await env.enqueue(i, key)
    sender = env.sender()

    async def watch(msg: OutboxMessage) -> None:
        if len(env.telegram.calls) == len(keys) - 1:
            all_sent.set()

    env.telegram.on_call = watch
    task = asyncio.create_task(sender.run())
    await all_sent.wait()
    await sender.stop()
    await task

    assert failures == 2
    assert sorted(env.telegram.delivered()) == keys
    assert sorted(c.key for c in env.telegram.calls) == keys  # none twice
    assert (await env.outbox.counts())["sent"] == len(keys)
    assert sender.stats.interrupted == 0


async def test_stop_gives_back_a_row_claimed_but_not_yet_called(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    await env.enqueue(1, "first")
    await env.enqueue(2, "second")
    second = await env.outbox.get("second")
    assert second is not None
    real_claim = env.outbox.claim
    claiming, disk = asyncio.Event(), asyncio.Event()

    async def slow_disk_for_second(row_ids: Sequence[int], **kwargs: Any) -> set[int]:
        if second.id in row_ids:
            claiming.set()
            await disk.wait()  # its commit is late: the sender waits for it to call
        return await real_claim(row_ids, **kwargs)

    monkeypatch.setattr(env.outbox, "claim", slow_disk_for_second)
    sender = env.sender()
    task = asyncio.create_task(sender.run())
    await claiming.wait()

    stopping = asyncio.create_task(sender.stop())
    disk.set()
    await stopping
    await task

    assert [c.key for c in env.telegram.calls] == ["first"]
    record = await env.outbox.get("second")
    assert record is not None and (record.status, record.attempts) == ("pending", 0)
    assert sender.stats.released == 1
    await env.sender().drain()  # a later sender sends it, once
    assert [c.key for c in env.telegram.calls] == ["first", "second"]


async def test_rows_claimed_when_the_loop_failed_are_given_back_not_interrupted(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = [f"k{i}" for i in range(100)]
    await env.outbox.enqueue_many(
        Outgoing(chat_id=i, text=key, kind="push", dedup_key=key) for i, key in enumerate(keys)
    )
    ids = {}
    for key in keys:
        record = await env.outbox.get(key)
        assert record is not None
        ids[record.id] = key
    real_claim, real_due = env.outbox.claim, env.outbox.due
    claims: Counter[str] = Counter()
    looks = 0

    async def count_claims(row_ids: Sequence[int], **kwargs: Any) -> set[int]:
        claims.update(ids[row_id] for row_id in row_ids)
        return await real_claim(row_ids, **kwargs)

    async def third_look_fails(*args: Any, **kwargs: Any) -> list[OutboxMessage]:
        nonlocal looks
        looks += 1
        if looks == 3:  # a look for answers while rows are claimed: the loop fails
            raise sqlite3.OperationalError("disk I/O error")
        return await real_due(*args, **kwargs)

    monkeypatch.setattr(env.outbox, "claim", count_claims)
    monkeypatch.setattr(env.outbox, "due", third_look_fails)
    all_sent = asyncio.Event()

    async def watch(msg: OutboxMessage) -> None:
        if len(env.telegram.calls) == len(keys) - 1:
            all_sent.set()

    env.telegram.on_call = watch
    sender = env.sender()
    task = asyncio.create_task(sender.run())
    async with asyncio.timeout(10):  # a guard: a row lost as interrupted would never come
        await all_sent.wait()
    await sender.stop()
    await task

    # The rows claimed (committed) but not called when the loop failed were given back by
    # the restarted loop, and claimed again, instead of being settled as interrupted.
    assert looks > 3
    assert [key for key, count in claims.items() if count > 1]
    assert max(claims.values()) == 2
    assert sorted(c.key for c in env.telegram.calls) == sorted(keys)  # each once
    assert sender.stats.interrupted == 0
    assert (await env.outbox.counts())["sent"] == len(keys)
    for key in keys:
        record = await env.outbox.get(key)
        assert record is not None and record.attempts == 1


async def test_every_call_finds_its_row_claimed_on_disk_first(env: Env) -> None:
    found: list[str] = []

    async def look_at_the_file(msg: OutboxMessage) -> None:
        found.append(statuses(env.path)[msg.dedup_key])  # what survives a kill right now

    env.telegram.on_call = look_at_the_file
    await env.outbox.enqueue_many(
        Outgoing(chat_id=1000 + i % 60, text=f"m{i}", kind="push", dedup_key=f"k{i}")
        for i in range(180)
    )

    await env.sender(rate=30).drain()

    assert found == ["sending"] * 180
    assert len(env.telegram.delivered()) == 180


# --- exactly once across a restart --------------------------------------------------------


def statuses(path: Path) -> dict[str, str]:
    """Every row's status as another process would read it from the file (committed only)."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        return dict(db.execute("SELECT dedup_key, status FROM outbox").fetchall())


def claimed_keys(path: Path) -> set[str]:
    return {key for key, status in statuses(path).items() if status == "sending"}


async def test_restart_in_the_middle_of_a_batch_sends_everything_exactly_once(env: Env) -> None:
    keys = {chat: [f"c{chat}-{i}" for i in range(3)] for chat in range(30)}
    every = {k for chat_keys in keys.values() for k in chat_keys}
    await env.outbox.enqueue_many(
        Outgoing(chat_id=chat, text=key, kind="push", dedup_key=key)
        for i in range(3)
        for chat, chat_keys in keys.items()
        for key in chat_keys[i : i + 1]
    )
    # The process dies while waiting for the 41st send, between two deliveries and in the
    # middle of the second round of heads.
    env.time.crash_when = lambda: len(env.telegram.calls) == 40
    with pytest.raises(Crash):
        await env.sender(batch=50, concurrency=8).drain()
    await env.outbox.close()  # what the writer had queued is on disk now, as in a kill after it
    first_run = list(env.telegram.calls)
    assert len(first_run) == 40
    delivered_first = {c.key for c in first_run if c.accepted}
    # `sending`: rows claimed and not called (at most `concurrency`), or called and their
    # outcome not yet written. Every other row is untouched: pending, or sent.
    claimed = claimed_keys(env.path)
    assert 1 <= len(claimed - delivered_first) <= 8
    found = Counter(statuses(env.path).values())
    assert found["sent"] + len(claimed) + found["pending"] == 90

    env.time.crash_when = None
    env.outbox = await Outbox.open(env.path, env.clock)
    second = env.sender(batch=50)
    await second.drain()

    calls = Counter(c.key for c in env.telegram.calls)
    assert max(calls.values()) == 1  # nothing twice
    # Claimed rows are settled as interrupted, never resent: the ones that were called
    # reached Telegram once; the others are lost, visibly. Every other row went out once.
    assert set(env.telegram.delivered()) == (every - claimed) | (claimed & delivered_first)
    assert all(calls[key] == 0 or key in delivered_first for key in claimed)
    counts = await env.outbox.counts()
    assert counts == {
        "pending": 0,
        "sending": 0,
        "sent": 90 - len(claimed),
        "failed": len(claimed),
        "blocked": 0,
    }
    assert second.stats.interrupted == len(claimed)
    for key in claimed:
        record = await env.outbox.get(key)
        assert record is not None and (record.status, record.last_error) == ("failed", INTERRUPTED)
    for chat, chat_keys in keys.items():  # order survives the restart
        assert keys_of(env.telegram.calls, chat) == [k for k in chat_keys if calls[k]]
    assert busiest_second(env.telegram.times()) <= 25
    assert min(chat_gaps(env.telegram.calls)) >= SECOND


@pytest.mark.parametrize("telegram_got_it", [True, False])
async def test_a_call_in_flight_when_the_process_died_is_never_repeated(
    env: Env, telegram_got_it: bool
) -> None:
    for i in range(10):
        await env.enqueue(i, f"k{i}")
    if telegram_got_it:
        env.telegram.crash_after_accepting.add("k4")
    else:
        env.telegram.script["k4"] = [Crash()]  # dies before the request leaves
    with pytest.raises(Crash):
        await env.sender(concurrency=4).drain()
    await env.outbox.close()
    claimed = claimed_keys(env.path)
    accepted_first = set(env.telegram.delivered())
    assert "k4" in claimed
    assert len(claimed - accepted_first) <= 4  # lost: claimed, never reached Telegram

    env.outbox = await Outbox.open(env.path, env.clock)
    await env.sender().drain()

    calls = [c.key for c in env.telegram.calls]
    assert calls.count("k4") == 1  # one call, never a second
    assert max(Counter(calls).values()) == 1
    every = {f"k{i}" for i in range(10)}
    assert set(env.telegram.delivered()) == (every - claimed) | (claimed & accepted_first)
    assert ("k4" in accepted_first) == telegram_got_it
    for key in claimed:
        record = await env.outbox.get(key)
        assert record is not None and (record.status, record.last_error) == ("failed", INTERRUPTED)
    assert (await env.outbox.counts())["sent"] == 10 - len(claimed)


async def test_a_new_sender_waits_one_window_so_limits_hold_across_restarts(env: Env) -> None:
    for i in range(30):
        await env.enqueue(i % 3, f"a{i}")
    env.time.crash_when = lambda: len(env.telegram.calls) == 25
    with pytest.raises(Crash):
        await env.sender().drain()
    died_at = env.clock.now()

    env.time.crash_when = None
    await env.sender().drain()

    after = [c.at for c in env.telegram.calls[25:]]
    assert after[0] - died_at == SECOND
    assert busiest_second(env.telegram.times()) <= 25
    assert min(chat_gaps(env.telegram.calls)) >= SECOND


async def test_an_idle_sender_waits_instead_of_polling_after_a_wake_up(env: Env) -> None:
    delivered: list[str] = []
    arrived = asyncio.Event()
    idle_naps: list[float] = []
    napping = asyncio.Event()

    async def note(msg: OutboxMessage) -> None:
        delivered.append(msg.dedup_key)
        arrived.set()

    def idle(seconds: float) -> None:  # the idle wait: only an enqueue (or stop) ends it
        idle_naps.append(seconds)
        napping.set()

    env.telegram.on_call = note
    sleep = blocking_sleep(env.time, longest=10, on_block=idle)
    sender = Sender(env.outbox, env.telegram, env.clock, sleep=sleep, poll_interval=3600)
    task = asyncio.create_task(sender.run())
    await napping.wait()  # nothing to send yet
    for key in ("a", "b"):
        arrived.clear()
        napping.clear()
        await env.enqueue(1, key)
        await arrived.wait()
        await napping.wait()
    await sender.stop()
    await task

    assert delivered == ["a", "b"]
    # One idle wait at the start and one after each message: an enqueue's wake-up does not
    # stay pending and cut every later wait short (the sender then read the database in a loop).
    assert len(idle_naps) == 3
