"""The submitter through the real app: outages, a lost answer, a crash between commit and state.

The review's own tests (test_review.py) cover what the parent sees for each answer; these follow
the submission row itself: its key, its attempts and backoff, and how a repeat of any part of
the work ends in one application and one confirmation.
"""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.app import App
from bot.config import Settings
from bot.local_chat import LocalChat
from bot.submissions import SubmissionDesk
from services.application import build_request
from services.clock import FakeClock
from services.crypto import generate_key
from services.store import Submission
from services.submitter import Submitter
from services.voucher.models import ApplicationRequest
from tests.conversation.journey import Journey
from tests.conversation.seed import PHONE
from tests.conversation.submitting import settle_chat
from tests.conversation.test_review import (
    CHILD_IIN,
    KK_CONSENTS,
    KK_SUBMIT,
    S,
    draft_of,
    seed_choice,
    shown,
    state_of,
    text_of,
    tick_all,
    to_review,
)

STAFF_GROUP = -1009000


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,
        voucher_api_url="sandbox",
        database_path=tmp_path / "kezek.sqlite3",
        consent_poll_seconds=0.02,
        staff_chat_ids=str(STAFF_GROUP),
        flood_burst=0,  # a scripted parent answers faster than any person
        data_key=generate_key(),
    )


async def submitted_once(app: App, chat: LocalChat) -> str:
    """From a seeded draft: review, three ticks, Submit; the Idempotency-Key it saved."""
    await seed_choice(app, chat)
    await to_review(chat, "Телеграм", "Қазақ тілінде")
    await tick_all(chat, KK_CONSENTS)
    saved = text_of(await chat.press(KK_SUBMIT))
    assert "Өтініш сақталды" in saved
    key: str = (await draft_of(app, chat))["idempotency_key"]
    return key


async def row(app: App, key: str) -> Submission:
    found = await app.services.store.submission(key)
    assert found is not None
    return found


async def test_hours_of_outage_then_the_phone_again_and_the_same_key(
    app: App, chat: LocalChat, clock: FakeClock
) -> None:
    voucher = app.services.voucher
    key = await submitted_once(app, chat)
    await voucher.sandbox_set_faults(failure_rate=1.0, retry_after=60)
    started = clock.now()

    # Three hours of 503s: the row stays pending, the parent is not bothered, and every wait
    # honours Retry-After and grows with jitter up to the cap.
    delays: list[float] = []
    while clock.now() - started < timedelta(hours=3):
        assert await settle_chat(app, chat) == []
        waiting = await row(app, key)
        assert waiting.status == "pending"
        delays.append((waiting.next_attempt_at - clock.now()).total_seconds())
        clock.set(waiting.next_attempt_at)
    assert (await row(app, key)).attempts == len(delays) > 20
    assert min(delays) >= 60  # Retry-After
    assert max(delays) <= 300  # backoff_max
    assert min(delays[-5:]) >= 150  # at the cap: between half of it and all of it
    assert len(set(delays)) > len(delays) // 2, "jitter: the waits are not all the same"
    assert await voucher.sandbox_list_applications() == []
    assert await state_of(app, chat) == S.submitting.state

    # The service is back, but the ed24 session ended meanwhile (it is checked before the key).
    await voucher.sandbox_set_faults(failure_rate=0.0)
    [refused] = await settle_chat(app, chat)
    assert "ed24.kz сессиясының мерзімі бітті" in refused.plain
    assert await state_of(app, chat) == S.phone.state
    draft = await draft_of(app, chat)
    assert "session" not in draft and draft["editing"] is True
    assert draft["idempotency_key"] == key
    assert await app.services.outbox_counts() == {"waiting": 0, "failed": 1}  # type: ignore[misc]

    # The parent confirms the phone and both 1414 consents again, then Submit: the same key.
    await chat.press("▶️ Жалғастыру")
    journey = Journey(app, chat, "kk", phone_number=PHONE, child_iin=CHILD_IIN)
    await journey.phone()
    await journey.parent()
    await journey.child()
    assert await state_of(app, chat) == S.review.state
    saved = text_of(await chat.press(KK_SUBMIT))
    assert "Өтініш сақталды" in saved
    [confirmed] = await settle_chat(app, chat)
    applications = await voucher.sandbox_list_applications()
    assert len(applications) == 1
    assert f"№ {applications[0].number}" in confirmed.plain
    done = await row(app, key)
    assert (done.status, done.round) == ("done", 2)
    assert (await draft_of(app, chat))["idempotency_key"] == key
    assert await state_of(app, chat) == S.submitted.state


async def test_an_answer_lost_on_the_way_is_asked_for_again(app: App, chat: LocalChat) -> None:
    key = await submitted_once(app, chat)
    pending = await row(app, key)
    assert pending.session is not None and pending.body is not None
    # The POST reached the service and created the application, but the answer never came
    # back (the process died): exactly what the submitter's next attempt repeats.
    voucher = app.services.voucher
    first = await voucher.submit_application(
        pending.session, key, ApplicationRequest.model_validate(pending.body)
    )
    [confirmed] = await settle_chat(app, chat)
    applications = await voucher.sandbox_list_applications()
    assert [a.id for a in applications] == [first.id]
    assert f"№ {first.number}" in confirmed.plain
    stored = await app.services.store.list_applications(chat.user_id)
    assert [a.id for a in stored] == [first.id]
    # The body the row kept is the very request the draft makes.
    draft = await draft_of(app, chat)
    assert pending.body == build_request(draft, chat.chat_id).model_dump(mode="json")


async def test_a_crash_after_the_commit_is_finished_once(
    app: App, chat: LocalChat, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = await submitted_once(app, chat)
    real_follow = SubmissionDesk.follow

    async def dies(self: SubmissionDesk, sub: Submission, step: str) -> None:
        raise RuntimeError("the process stopped here")

    monkeypatch.setattr(SubmissionDesk, "follow", dies)
    with pytest.raises(RuntimeError):
        await app.submitter.run_once()  # type: ignore[union-attr]
    half = await row(app, key)
    assert (half.status, half.synced) == ("done", False)
    assert await state_of(app, chat) == S.submitting.state

    monkeypatch.setattr(SubmissionDesk, "follow", real_follow)
    confirmed = await settle_chat(app, chat)  # the next pass settles it again, idempotently
    assert len(confirmed) == 1 and "тіркеуге жіберілді" in confirmed[0].plain
    assert len(await app.services.voucher.sandbox_list_applications()) == 1
    assert len(await app.services.store.list_applications(chat.user_id)) == 1
    settled = await row(app, key)
    assert (settled.status, settled.synced, settled.body, settled.session) == (
        "done",
        True,
        None,
        None,
    )
    assert await state_of(app, chat) == S.submitted.state
    assert await settle_chat(app, chat) == []  # nothing is sent twice


async def test_while_sending_nothing_changes_the_application(app: App, chat: LocalChat) -> None:
    key = await submitted_once(app, chat)
    await app.services.voucher.sandbox_set_faults(failure_rate=1.0)
    await settle_chat(app, chat)

    cancel = text_of(await chat.send("/cancel"))
    assert "тоқтату мүмкін емес" in cancel
    helped = shown(await chat.send("/help"))
    assert "өзгертуге болмайды" in helped[0].plain
    assert "Өтініш сақталды" in helped[-1].plain
    typed = shown(await chat.send("сәлем"))[-1]
    assert "Өтініш сақталды" in typed.plain
    back = text_of(await chat.press("◀️ Артқа"))
    assert "Бұл батырма ескірген" in back
    edit = text_of(await chat.press("✏️ Өзгерту"))
    assert "қайта басудың қажеті жоқ" in edit
    resumed = text_of(await chat.send("/start"))
    assert "Өтініш сақталды" in resumed
    assert await state_of(app, chat) == S.submitting.state
    assert (await draft_of(app, chat))["provider"]
    assert (await row(app, key)).status == "pending"


async def test_the_staff_digest_counts_applications_waiting_to_be_sent(
    app: App, chat: LocalChat
) -> None:
    await submitted_once(app, chat)
    await app.services.voucher.sandbox_set_faults(failure_rate=1.0)
    await settle_chat(app, chat)
    group = LocalChat(app.dp, app.bot, user_id=4004, chat_id=STAFF_GROUP, chat_type="supergroup")
    digest = next(s for s in await group.send("/digest") if s.visible)
    assert "• жіберілуін күтуде — 1" in digest.plain
    assert "• жіберу сәтсіз аяқталды — 0" in digest.plain


async def test_the_submission_row_is_opened_once_per_key(app: App, chat: LocalChat) -> None:
    store = app.services.store
    fields: dict[str, Any] = {
        "user_id": 77,
        "chat_id": 77,
        "session": "s-1",
        "body": {"a": 1},
        "summary": {"child": "Бала"},
    }
    first, opened = await store.begin_submission(key="k-1", **fields)
    assert opened and first.status == "pending" and first.body == {"a": 1}
    again, opened = await store.begin_submission(key="k-1", **fields)
    assert not opened and again.id == first.id
    # Another key of the same parent while one is on its way: that one is returned.
    other, opened = await store.begin_submission(key="k-2", **fields)
    assert not opened and other.id == first.id
    assert await store.submission("k-2") is None


def test_backoff_grows_with_equal_jitter_and_honours_retry_after(app: App) -> None:
    submitter = Submitter(
        app.services.store,
        app.services.voucher,
        SubmissionDesk(app.services, app.storage, app.dp.fsm.events_isolation, app.bot),
        app.services.clock,
        sleep=lambda _: None,  # type: ignore[arg-type,return-value]
        rng=random.Random(5),
        backoff_base=2.0,
        backoff_max=300.0,
    )
    for attempt in range(1, 15):
        ceiling = min(300.0, 2.0 * 2 ** (attempt - 1))
        assert ceiling / 2 <= submitter.delay(attempt, None) <= ceiling
    assert submitter.delay(1, 90.0) == 90.0
    assert submitter.delay(12, 1000.0) == 1000.0  # Retry-After wins over the cap


async def test_a_key_that_holds_another_body_gets_a_new_key(app: App, chat: LocalChat) -> None:
    key = await submitted_once(app, chat)
    pending = await row(app, key)
    assert pending.session is not None and pending.body is not None
    # An earlier POST of this key, with another body, created an application whose answer was
    # lost (the parent then changed the notification channel): the key now stands for it.
    earlier = ApplicationRequest.model_validate(
        {**pending.body, "notification": {"channel": "sms", "language": "kk"}}
    )
    voucher = app.services.voucher
    first = await voucher.submit_application(pending.session, key, earlier)

    [answer] = await settle_chat(app, chat)
    # A new key for this body; the service then names the application it already has.
    assert f"өтініш № {first.number}" in answer.plain
    assert [a.id for a in await voucher.sandbox_list_applications()] == [first.id]
    new_key = (await draft_of(app, chat))["idempotency_key"]
    assert new_key != key
    assert await app.services.store.submission(key) is None
    refused = await row(app, new_key)
    assert (refused.status, refused.outcome) == (
        "refused",
        {"refusal": {"code": "duplicate_application", "number": first.number}},
    )
    assert await state_of(app, chat) == S.review.state


async def test_a_settled_answer_wakes_the_outbox_sender(app: App, chat: LocalChat) -> None:
    # The notice is written by the settle's own transaction, not by Outbox.enqueue: without
    # this wake-up an idle sender would only find it at its next poll.
    await submitted_once(app, chat)
    woken: list[int] = []
    assert app.services.outbox is not None
    app.services.outbox.subscribe(lambda: woken.append(len(chat.history())))
    [answer] = await settle_chat(app, chat)
    assert "өтінішіңіз тіркеуге жіберілді" in answer.plain
    # Woken once, before the sender delivered the answer (the history had not grown yet).
    assert len(woken) == 1
    assert woken[0] < len(chat.history())
