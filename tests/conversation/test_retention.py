"""Drafts untouched for 30 days are deleted with their FSM rows, by the daily retention job."""

from __future__ import annotations

import sqlite3

from aiogram.fsm.storage.base import StorageKey
from apscheduler.triggers.interval import IntervalTrigger

from bot.__main__ import _job_plan
from bot.app import App
from bot.fsm.states import ApplicationForm as S
from bot.local_chat import LocalChat
from services.clock import FakeClock
from services.crypto import row_context
from services.jobs import RETENTION_JOB, Jobs
from services.outbox import RowUpdate
from services.retention import DRAFT_MAX_AGE, purge_stale_drafts


def _key(app: App, chat: LocalChat) -> StorageKey:
    return StorageKey(bot_id=app.bot.id, chat_id=chat.chat_id, user_id=chat.user_id)


async def _to_rules(chat: LocalChat) -> None:
    await chat.send("/start")
    await chat.press("Қазақша")


def _users_with(app: App, table: str) -> list[int]:
    with sqlite3.connect(app.services.settings.database_path) as conn:
        rows = conn.execute(f"SELECT DISTINCT user_id FROM {table} ORDER BY 1").fetchall()
    return [int(r[0]) for r in rows]


async def test_a_draft_left_for_30_days_goes_and_a_younger_one_stays(
    app: App, clock: FakeClock
) -> None:
    old = LocalChat(app.dp, app.bot, user_id=4001, language_code="kk")
    young = LocalChat(app.dp, app.bot, user_id=4002, language_code="kk")
    await _to_rules(old)
    await app.services.store.update_draft(old.user_id, phone="+77017771122")
    clock.advance(days=2)
    await _to_rules(young)
    assert _users_with(app, "drafts") == [4001, 4002]
    assert _users_with(app, "fsm_records") == [4001, 4002]

    clock.advance(days=29)  # the old draft is 31 days old, the young one 29
    purged = await purge_stale_drafts(app.services.store, app.storage, clock)

    assert purged.drafts == (4001,) and 4001 in purged.fsm_users
    assert _users_with(app, "drafts") == [4002]
    assert _users_with(app, "fsm_records") == [4002]
    assert await app.services.store.get_draft(old.user_id) == {}  # the cache forgot it too
    assert await app.storage.get_state(_key(app, old)) is None
    assert await app.storage.get_state(_key(app, young)) == S.rules.state
    # The language is the parent's setting, not the draft: it stays.
    assert await app.services.store.get_locale(old.user_id) == "kk"
    # Coming back after the purge is a fresh start.
    await old.send("/start")
    assert await app.storage.get_state(_key(app, old)) == S.language.state


async def test_a_parent_still_answering_in_fsm_data_keeps_an_old_draft(
    app: App, clock: FakeClock
) -> None:
    chat = LocalChat(app.dp, app.bot, user_id=4003, language_code="kk")
    await _to_rules(chat)
    clock.advance(days=31)
    await app.storage.update_data(_key(app, chat), {"otp_sent_at": "now"})  # an answer today
    purged = await purge_stale_drafts(app.services.store, app.storage, clock)
    assert purged.drafts == () and purged.fsm_users == ()
    assert _users_with(app, "drafts") == [4003]


async def test_fsm_rows_without_a_draft_go_after_30_days_too(app: App, clock: FakeClock) -> None:
    stray = StorageKey(bot_id=app.bot.id, chat_id=4004, user_id=4004)
    await app.storage.set_data(stray, {"phone": "+77017771122"})
    clock.advance(seconds=DRAFT_MAX_AGE.total_seconds() - 1)
    assert (await purge_stale_drafts(app.services.store, app.storage, clock)).fsm_users == ()
    clock.advance(seconds=2)
    assert (await purge_stale_drafts(app.services.store, app.storage, clock)).fsm_users == (4004,)
    assert await app.storage.get_data(stray) == {}


async def test_the_bot_runs_it_daily_from_its_start(app: App, clock: FakeClock) -> None:
    chat = LocalChat(app.dp, app.bot, user_id=4005, language_code="kk")
    await _to_rules(chat)
    clock.advance(days=31)
    plan = _job_plan(app)
    assert plan.retention is not None
    await plan.retention()  # what the scheduler calls
    assert _users_with(app, "drafts") == []
    job = {j.id: j for j in Jobs(plan).scheduler.get_jobs()}[RETENTION_JOB]
    assert isinstance(job.trigger, IntervalTrigger)
    assert job.trigger.interval.total_seconds() == 24 * 3600
    assert job.next_run_time is not None  # the first run is at the start


async def test_answered_submissions_go_after_30_days_and_pending_ones_stay(
    app: App, clock: FakeClock
) -> None:
    store = app.services.store
    for key, user in (("idem-done", 4006), ("idem-pending", 4007)):
        await store.begin_submission(
            key=key,
            user_id=user,
            chat_id=user,
            session="s",
            body={"parent": {"iin": "871008401427"}},
            summary={},
        )
    with sqlite3.connect(app.services.settings.database_path) as conn:
        conn.execute("UPDATE submissions SET status = 'done' WHERE idempotency_key = 'idem-done'")
    clock.advance(days=29)
    assert (await purge_stale_drafts(store, app.storage, clock)).submissions == 0
    clock.advance(days=2)
    assert (await purge_stale_drafts(store, app.storage, clock)).submissions == 1
    assert await store.submission("idem-done") is None
    pending = await store.submission("idem-pending")  # still on its way: never purged
    assert pending is not None and pending.status == "pending"


async def test_delivered_pushes_lose_their_text_after_30_days_and_open_ones_keep_it(
    app: App, clock: FakeClock
) -> None:
    outbox = app.services.outbox
    assert outbox is not None
    await outbox.enqueue(chat_id=4008, text="Санжар: KZ-1", kind="registered", dedup_key="sent-1")
    await outbox.enqueue(
        chat_id=-100, text="digest", kind="digest", dedup_key="digest-1", attachment=("d.csv", b"x")
    )
    await outbox.enqueue(chat_id=4009, text="Аружан: KZ-2", kind="registered", dedup_key="open-1")
    sent = [m for m in await outbox.due(clock.now(), 10) if m.dedup_key != "open-1"]
    await outbox.write(
        [RowUpdate(m.id, "sent", attempts_delta=1, sent_at=clock.now()) for m in sent]
    )
    clock.advance(days=31)
    plan = _job_plan(app)
    assert plan.retention is not None
    await plan.retention()

    with sqlite3.connect(app.services.settings.database_path) as conn:
        rows = dict(
            (key, (text, data))
            for key, text, data in conn.execute("SELECT dedup_key, text, file_data FROM outbox")
        )
    cipher = app.services.store.cipher
    assert cipher is not None
    for key in ("sent-1", "digest-1"):  # the rows stay (their dedup keys), emptied
        text, data = rows[key]
        assert cipher.decrypt_text(text, row_context("outbox.text", key)) == "" and data is None
    [still_open] = await outbox.due(clock.now(), 10)
    assert (still_open.dedup_key, still_open.text) == ("open-1", "Аружан: KZ-2")
    assert await outbox.scrub_finished(clock.now()) == 0  # nothing left to empty
