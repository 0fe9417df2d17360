"""The bot's own OTP limits (services/otp_guard.py): a real SQLite file, a fake clock."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import sqlite3
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from services.clock import FakeClock
from services.otp_guard import MAX_WRONG, OtpGuard, Refusal
from services.sqlite_writer import SQLiteWriter

PHONE = "+77012345678"
OTHER_PHONE = "+77019998877"
ALICE, BOB = 1001, 2002


def phone_key(phone: str) -> str:
    return hmac.new(b"test-key", phone.encode(), hashlib.sha256).hexdigest()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "kezek.sqlite3"


@pytest.fixture
async def guard(db: Path, clock: FakeClock) -> AsyncIterator[OtpGuard]:
    opened = await OtpGuard.open(db, clock, phone_key=phone_key)
    yield opened
    await opened.close()


async def exhaust(guard: OtpGuard, user: int, phone: str, otp_id: str) -> Refusal:
    await guard.requested(user, phone, otp_id)
    for _ in range(MAX_WRONG - 1):
        assert (await guard.wrong(user, phone, otp_id)).refusal is None
    last = await guard.wrong(user, phone, otp_id)
    assert last.left == 0 and last.refusal is not None
    return last.refusal


async def test_a_new_code_waits_out_the_cooldown(guard: OtpGuard, clock: FakeClock) -> None:
    assert await guard.may_request(ALICE, PHONE) is None
    await guard.requested(ALICE, PHONE, "otp-1")
    clock.advance(seconds=30)
    refusal = await guard.may_request(ALICE, PHONE)
    assert refusal is not None and refusal.reason == "cooldown"
    assert refusal.until == clock.now() + timedelta(seconds=30)
    clock.advance(seconds=30)
    assert await guard.may_request(ALICE, PHONE) is None


async def test_the_cooldown_holds_per_phone_across_users_and_per_user_across_phones(
    guard: OtpGuard,
) -> None:
    await guard.requested(ALICE, PHONE, "otp-1")
    by_phone = await guard.may_request(BOB, PHONE)
    by_user = await guard.may_request(ALICE, OTHER_PHONE)
    assert by_phone is not None and by_phone.reason == "cooldown"
    assert by_user is not None and by_user.reason == "cooldown"
    assert await guard.may_request(BOB, OTHER_PHONE) is None


async def test_wrong_codes_count_down_and_the_fifth_exhausts_the_code(
    guard: OtpGuard, clock: FakeClock
) -> None:
    await guard.requested(ALICE, PHONE, "otp-1")
    lefts = [(await guard.wrong(ALICE, PHONE, "otp-1")).left for _ in range(4)]
    assert lefts == [4, 3, 2, 1]
    assert await guard.may_verify(ALICE, PHONE, "otp-1") is None
    fifth = await guard.wrong(ALICE, PHONE, "otp-1")
    assert fifth.refusal == Refusal("exhausted", clock.now() + timedelta(minutes=5))
    # No sixth try reaches the service, whoever types it.
    assert (await guard.may_verify(ALICE, PHONE, "otp-1")) == fifth.refusal
    locked = await guard.may_request(ALICE, PHONE)
    assert locked == Refusal("locked", clock.now() + timedelta(minutes=5))
    assert (await guard.may_request(BOB, PHONE)) == locked  # the phone is locked too


async def test_the_lockout_doubles_and_starts_over_after_a_day(
    guard: OtpGuard, clock: FakeClock
) -> None:
    minutes = []
    for n in range(4):
        refusal = await exhaust(guard, ALICE, PHONE, f"otp-{n}")
        minutes.append(round((refusal.until - clock.now()).total_seconds() / 60))
        clock.set(refusal.until)
    assert minutes == [5, 10, 20, 40]
    clock.advance(days=1)
    refusal = await exhaust(guard, ALICE, PHONE, "otp-next-day")
    assert refusal.until - clock.now() == timedelta(minutes=5)


async def test_the_lockout_never_exceeds_a_day(guard: OtpGuard, clock: FakeClock) -> None:
    locks = []
    for n in range(12):
        refusal = await exhaust(guard, ALICE, PHONE, f"otp-{n}")
        locks.append(refusal.until - clock.now())
        clock.set(refusal.until)
    assert max(locks) == locks[-1] == locks[-2] == timedelta(days=1)  # capped, not reset


async def test_the_right_code_clears_the_tries_of_that_code(guard: OtpGuard) -> None:
    await guard.requested(ALICE, PHONE, "otp-1")
    for _ in range(3):
        await guard.wrong(ALICE, PHONE, "otp-1")
    await guard.verified(ALICE, PHONE)
    assert await guard.may_verify(ALICE, PHONE, "otp-1") is None


async def test_a_code_the_service_locked_is_exhausted_here_too(
    guard: OtpGuard, clock: FakeClock
) -> None:
    await guard.requested(ALICE, PHONE, "otp-1")
    await guard.wrong(ALICE, PHONE, "otp-1")
    refusal = await guard.exhaust(ALICE, PHONE, "otp-1")
    assert refusal == Refusal("exhausted", clock.now() + timedelta(minutes=5))
    assert await guard.may_verify(ALICE, PHONE, "otp-1") == refusal
    # Told twice, counted once: the lockout does not double by itself.
    assert await guard.exhaust(ALICE, PHONE, "otp-1") == refusal


async def test_tries_of_a_superseded_code_count_against_the_user_only(
    guard: OtpGuard, clock: FakeClock
) -> None:
    await guard.requested(ALICE, PHONE, "otp-alice")
    clock.advance(seconds=61)
    await guard.requested(BOB, PHONE, "otp-bob")  # Bob asked anew for the same phone
    for _ in range(MAX_WRONG):
        await guard.wrong(ALICE, PHONE, "otp-alice")
    assert await guard.may_verify(ALICE, PHONE, "otp-alice") is not None
    assert await guard.may_verify(BOB, PHONE, "otp-bob") is None


async def test_limits_survive_a_restart_and_the_phone_is_never_stored(
    db: Path, clock: FakeClock
) -> None:
    first = await OtpGuard.open(db, clock, phone_key=phone_key)
    await exhaust(first, ALICE, PHONE, "otp-1")
    await first.close()
    second = await OtpGuard.open(db, clock, phone_key=phone_key)
    try:
        refusal = await second.may_request(ALICE, PHONE)
        assert refusal is not None and refusal.reason == "locked"
    finally:
        await second.close()
    with sqlite3.connect(db) as conn:
        dump = "\n".join(conn.iterdump())
    assert PHONE[1:] not in dump and PHONE[-4:] not in dump.replace(phone_key(PHONE), "")


async def test_rows_are_deleted_a_day_after_they_stop_mattering(
    guard: OtpGuard, clock: FakeClock
) -> None:
    refusal = await exhaust(guard, ALICE, PHONE, "otp-1")
    clock.set(refusal.until + timedelta(hours=23))
    assert await guard.prune() == 0  # the strikes still count for the next lockout
    clock.advance(hours=2)
    await guard.requested(BOB, OTHER_PHONE, "otp-2")  # prunes by itself, at most hourly
    assert await guard.prune() == 0  # Alice's two rows went in the call above; Bob's stay
    again = await exhaust(guard, ALICE, PHONE, "otp-3")
    assert again.until - clock.now() == timedelta(minutes=5)  # a fresh start
    assert await guard.may_request(BOB, OTHER_PHONE) is not None


async def test_concurrent_wrong_codes_are_all_counted(guard: OtpGuard) -> None:
    # Each count is one read-modify-write job of the writer: none may overwrite another.
    await guard.requested(ALICE, PHONE, "otp-1")
    results = await asyncio.gather(*(guard.wrong(ALICE, PHONE, "otp-1") for _ in range(MAX_WRONG)))
    assert sorted(r.left for r in results) == list(range(MAX_WRONG))
    assert sum(r.refusal is not None for r in results) == 1
    refusal = await guard.may_verify(ALICE, PHONE, "otp-1")
    assert refusal is not None and refusal.reason == "exhausted"


async def test_a_shared_writer_commits_the_guard_with_others(db: Path, clock: FakeClock) -> None:
    writer = await SQLiteWriter.open(db)
    guard = await OtpGuard.open(db, clock, phone_key=phone_key, writer=writer)
    try:
        await asyncio.gather(
            *(guard.requested(user, f"+7701000{user:04d}", f"otp-{user}") for user in range(50))
        )
        assert writer.stats.jobs >= 50
        assert writer.stats.batches < writer.stats.jobs
    finally:
        await guard.close()
        await writer.run(lambda conn: None)  # the guard left the shared writer open
        await writer.close()
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM otp_limits").fetchone()[0] == 100
