"""services/status.py against the real sandbox over loopback and a real SQLite store.

Pushes are collected by a plain list sink here (the outbox and the wording are tested in
tests/conversation/test_status_pushes.py); time moves only through the FakeClock.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from services.application import application_summary
from services.clock import ALMATY, FakeClock
from services.status import (
    CURSOR_KEY,
    DraftReminder,
    StatusPush,
    StatusTracker,
    child_first_name,
    push_kind,
)
from services.store import Store, StoredApplication
from services.validation import age_on, iin_check_digit
from services.voucher.client import VoucherClient
from services.voucher.models import (
    ApplicationRequest,
    ChangeItem,
    ChildRef,
    Consents,
    NotificationChoice,
    ParentRef,
    StatusChange,
)
from services.voucher.sandbox import RunningSandbox, SandboxConfig, running_sandbox

PARENT_IIN = "871008401427"
PHONE = "+77012345678"
STEPS = frozenset({"ApplicationForm:phone", "ApplicationForm:queue_type"})


def child_iin(month: int, day: int = 15, year: int = 16) -> str:
    """A valid IIN of a boy born on that day of 20YY."""
    for serial in range(1, 9999):
        first11 = f"{year:02d}{month:02d}{day:02d}5{serial:04d}"
        check = iin_check_digit(first11)
        if check is not None:
            return first11 + str(check)
    raise AssertionError("no IIN")


# --- submitting real applications through the client -------------------------------------------


@dataclass
class Family:
    """A parent's verified session in the sandbox, able to submit for several children."""

    voucher: VoucherClient
    store: Store
    session: str
    parent_consent: str
    user_id: int

    async def submit(
        self, child: str, *, user_id: int | None = None, record: bool = True
    ) -> StoredApplication:
        """Submit an application for `child` and (unless told not to) record it like the review."""
        voucher = self.voucher
        consent = await voucher.create_consent(self.session, child)
        await voucher.sandbox_answer_consent(consent.consent_id, "yes")
        person = await voucher.get_person(self.session, consent.consent_id)
        provider, group = await _fitting_group(voucher, person.birth_date, date(2026, 9, 1))
        orders = await voucher.list_state_order_types()
        request = ApplicationRequest(
            parent=ParentRef(iin=PARENT_IIN, phone=PHONE),
            child=ChildRef(iin=child),
            queue_type="general",
            state_order_type=orders[0].code,
            provider_id=provider["id"],
            group_id=group["id"],
            notification=NotificationChoice(channel="telegram", language="kk"),
            consents=Consents(personal_data=True, contact_use=True, offer=True),
            telegram_chat_id=user_id or self.user_id,
        )
        created = await voucher.submit_application(self.session, str(uuid.uuid4()), request)
        draft = {
            "child": person.model_dump(mode="json"),
            "provider": provider,
            "group": group,
            "preview": {"queue": {"title": {"kk": "Жалпы кезек", "ru": "Общая очередь"}}},
        }
        owner = user_id or self.user_id
        summary = application_summary(draft, created.status)
        if not record:  # an application this bot knows nothing about
            return StoredApplication(
                created.id,
                owner,
                owner,
                created.number,
                created.status,
                summary,
                created.submitted_at,
            )
        await self.store.add_application(
            application_id=created.id,
            user_id=owner,
            chat_id=owner,
            number=created.number,
            status=created.status,
            submitted_at=created.submitted_at,
            summary=summary,
        )
        stored = await self.store.get_application(created.id)
        assert stored is not None
        return stored


async def _fitting_group(
    voucher: VoucherClient, born: date, sept_1: date
) -> tuple[dict[str, object], dict[str, object]]:
    age = age_on(born, sept_1)
    page = 1
    while True:
        listing = await voucher.list_providers(page=page, per_page=100)
        assert listing.items, "no provider has a group for this child"
        for provider in listing.items:
            for group in await voucher.list_groups(provider.id):
                if group.age_min <= age <= group.age_max and group.seats_free > 0:
                    return provider.model_dump(mode="json"), group.model_dump(mode="json")
        page += 1


async def open_family(voucher: VoucherClient, store: Store, user_id: int = 1001) -> Family:
    """Verify the phone with the code from the sandbox inbox and grant the parent's consent."""
    otp = await voucher.request_otp(PHONE)
    inbox = await voucher.sandbox_inbox(PHONE)
    code = next(m.otp_code for m in reversed(inbox) if m.otp_code)
    session = (await voucher.verify_otp(otp.otp_id, code)).session
    consent = await voucher.create_consent(session, PARENT_IIN)
    await voucher.sandbox_answer_consent(consent.consent_id, "yes")
    await store.set_locale(user_id, "kk")
    return Family(voucher, store, session, consent.consent_id, user_id)


# --- fixtures -----------------------------------------------------------------------------------


class Sink:
    """Collects what the tracker hands over for delivery."""

    def __init__(self) -> None:
        self.pushes: list[StatusPush] = []
        self.drafts: list[DraftReminder] = []

    async def push(self, push: StatusPush) -> None:
        self.pushes.append(push)

    async def draft(self, reminder: DraftReminder) -> None:
        self.drafts.append(reminder)

    def take(self) -> list[StatusPush]:
        taken, self.pushes = self.pushes, []
        return taken


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 9, 10, 10, 0, tzinfo=ALMATY))


@pytest.fixture
async def sandbox(tmp_path: Path, clock: FakeClock) -> AsyncIterator[RunningSandbox]:
    config = SandboxConfig(token="t", db_path=tmp_path / "sandbox.sqlite3")
    async with running_sandbox(config, clock=clock) as running:
        yield running


@pytest.fixture
async def voucher(sandbox: RunningSandbox) -> AsyncIterator[VoucherClient]:
    async with VoucherClient(sandbox.base_url, sandbox.token) as client:
        yield client


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "kezek.sqlite3"


@pytest.fixture
async def store(db_path: Path, clock: FakeClock) -> AsyncIterator[Store]:
    opened = await Store.open(db_path, clock)
    yield opened
    await opened.close()


@pytest.fixture
def tracker(store: Store, voucher: VoucherClient, clock: FakeClock, db_path: Path) -> StatusTracker:
    return StatusTracker(store, voucher, clock, db_path)


@pytest.fixture
async def family(voucher: VoucherClient, store: Store) -> Family:
    return await open_family(voucher, store)


@pytest.fixture
def sink() -> Sink:
    return Sink()


async def set_status(
    voucher: VoucherClient, clock: FakeClock, app_id: str, status: str, **fields: object
) -> None:
    """Move the application upstream one minute later than the last change."""
    clock.advance(minutes=1)
    await voucher.sandbox_set_status(
        app_id, StatusChange.model_validate({"status": status, **fields})
    )


# --- pure rules ---------------------------------------------------------------------------------


def _stored(
    status: str, position: int | None = None, deadline: datetime | None = None
) -> StoredApplication:
    return StoredApplication(
        id="a",
        user_id=1,
        chat_id=1,
        number="1",
        status=status,
        summary={},
        submitted_at=datetime(2026, 9, 1, tzinfo=ALMATY),
        queue_position=position,
        deadline=deadline,
    )


def _item(status: str, position: int | None = None, deadline: datetime | None = None) -> ChangeItem:
    return ChangeItem(
        id="a",
        number="1",
        status=status,  # type: ignore[arg-type]
        queue_position=position,
        status_reason=None,
        deadline=deadline,
        changed_at=datetime(2026, 9, 2, tzinfo=ALMATY),
        cursor="c",
    )


DEADLINE = datetime(2026, 9, 20, 18, 0, tzinfo=ALMATY)


@pytest.mark.parametrize(
    ("before", "after", "kind"),
    [
        (_stored("submitted"), _item("submitted"), None),
        (_stored("submitted"), _item("registered", 120), "registered"),
        (_stored("registered", 120), _item("registered", 95), "moved"),
        (_stored("registered", 120), _item("registered", 120), None),
        (_stored("registered", None), _item("registered", 40), "registered"),
        (_stored("registered", 40), _item("registered", None), None),
        (_stored("registered", 3), _item("voucher_issued", None, DEADLINE), "voucher_issued"),
        (
            _stored("voucher_issued", None, DEADLINE),
            _item("voucher_issued", None, DEADLINE + timedelta(days=1)),
            "voucher_issued",
        ),
        (_stored("voucher_issued", None, DEADLINE), _item("voucher_issued", None, DEADLINE), None),
        (_stored("voucher_issued"), _item("voucher_used"), "voucher_used"),
        (_stored("voucher_issued"), _item("voucher_expired"), "voucher_expired"),
        (_stored("submitted"), _item("rejected"), "rejected"),
        (_stored("registered", 5), _item("cancelled"), "cancelled"),
        (_stored("rejected"), _item("submitted"), "submitted"),
    ],
)
def test_what_each_change_tells_the_parent(
    before: StoredApplication, after: ChangeItem, kind: str | None
) -> None:
    assert push_kind(before, after) == kind


def test_the_childs_first_name_comes_from_the_summary() -> None:
    assert child_first_name({"child": "Серікова Айгерім Нұрланқызы"}) == "Айгерім"
    assert child_first_name({"child": "Серікова Айгерім"}) == "Айгерім"
    assert child_first_name({"child": "Айгерім"}) == "Айгерім"
    assert child_first_name({"child": "Серікова Айгерім", "child_first_name": "Әлия"}) == "Әлия"
    assert child_first_name({}) == ""


# --- the feed -----------------------------------------------------------------------------------


async def test_every_status_change_gives_its_push_once(
    family: Family,
    tracker: StatusTracker,
    voucher: VoucherClient,
    store: Store,
    clock: FakeClock,
    sink: Sink,
) -> None:
    app = await family.submit(child_iin(3))
    # Creation is in the feed too, but the parent already has the confirmation.
    assert await tracker.poll_once(sink.push) == 1
    assert sink.take() == []

    await set_status(voucher, clock, app.id, "registered", queue_position=120)
    await tracker.poll_once(sink.push)
    [registered] = sink.take()
    assert (registered.kind, registered.application.queue_position) == ("registered", 120)
    assert registered.dedup_key.startswith(f"status:{app.id}:")

    await set_status(voucher, clock, app.id, "registered", queue_position=95)
    await set_status(voucher, clock, app.id, "registered", queue_position=95)  # no move
    await tracker.poll_once(sink.push)
    [moved] = sink.take()
    assert (moved.kind, moved.previous_position, moved.application.queue_position) == (
        "moved",
        120,
        95,
    )

    await set_status(voucher, clock, app.id, "voucher_issued")
    await tracker.poll_once(sink.push)
    [issued] = sink.take()
    assert issued.kind == "voucher_issued"
    # The sandbox gives 72 h when no deadline is named.
    assert issued.application.deadline == clock.now() + timedelta(hours=72)
    stored = await store.get_application(app.id)
    assert stored is not None and stored.status == "voucher_issued"
    assert stored.deadline == issued.application.deadline

    await set_status(voucher, clock, app.id, "voucher_used")
    await tracker.poll_once(sink.push)
    assert [p.kind for p in sink.take()] == ["voucher_used"]

    # Nothing new upstream: nothing to say.
    assert await tracker.poll_once(sink.push) == 0
    assert sink.take() == []


async def test_rejection_carries_the_reason_and_the_others_their_status(
    family: Family, tracker: StatusTracker, voucher: VoucherClient, clock: FakeClock, sink: Sink
) -> None:
    rejected = await family.submit(child_iin(4))
    cancelled = await family.submit(child_iin(5))
    expired = await family.submit(child_iin(6))
    reason = {"kk": "Құжат оқылмайды", "ru": "Документ не читается"}
    await set_status(voucher, clock, rejected.id, "rejected", reason=reason)
    await set_status(voucher, clock, cancelled.id, "cancelled")
    await set_status(voucher, clock, expired.id, "voucher_issued")
    await set_status(voucher, clock, expired.id, "voucher_expired")
    await tracker.poll_once(sink.push)
    kinds = [(p.application.number, p.kind) for p in sink.take()]
    assert kinds == [
        (rejected.number, "rejected"),
        (cancelled.number, "cancelled"),
        (expired.number, "voucher_issued"),
        (expired.number, "voucher_expired"),
    ]
    stored = await family.store.get_application(rejected.id)
    assert stored is not None and stored.status_reason == reason


async def test_the_cursor_survives_a_restart_without_repeat_or_skip(
    family: Family,
    voucher: VoucherClient,
    db_path: Path,
    clock: FakeClock,
    sink: Sink,
) -> None:
    first = await family.submit(child_iin(3))
    second = await family.submit(child_iin(4))
    store = family.store
    tracker = StatusTracker(store, voucher, clock, db_path)
    await set_status(voucher, clock, first.id, "registered", queue_position=10)
    await tracker.poll_once(sink.push)
    assert [p.kind for p in sink.take()] == ["registered"]
    cursor = await store.get_meta(CURSOR_KEY)
    assert cursor is not None
    await store.close()

    # While the bot is down, more happens upstream.
    await set_status(voucher, clock, second.id, "registered", queue_position=11)
    reopened = await Store.open(db_path, clock)
    try:
        assert await reopened.get_meta(CURSOR_KEY) == cursor
        again = StatusTracker(reopened, voucher, clock, db_path)
        await again.poll_once(sink.push)
        # The first change is not repeated, the one made while down is not skipped.
        assert [(p.application.id, p.kind) for p in sink.take()] == [(second.id, "registered")]
    finally:
        await reopened.close()


async def test_a_cursor_the_service_no_longer_knows_restarts_the_feed_silently(
    family: Family,
    tracker: StatusTracker,
    voucher: VoucherClient,
    store: Store,
    clock: FakeClock,
    sink: Sink,
) -> None:
    app = await family.submit(child_iin(3))
    await set_status(voucher, clock, app.id, "registered", queue_position=5)
    await tracker.poll_once(sink.push)
    assert [p.kind for p in sink.take()] == ["registered"]
    await store.set_meta(CURSOR_KEY, "not-a-cursor-of-this-feed")
    await set_status(voucher, clock, app.id, "registered", queue_position=4)
    await tracker.poll_once(sink.push)
    # Everything is read again, and only the one change not yet applied is told.
    assert [(p.kind, p.application.queue_position) for p in sink.take()] == [("moved", 4)]
    assert await store.get_meta(CURSOR_KEY) == (await voucher.list_changes()).next


async def test_a_crash_mid_page_repeats_no_push_and_loses_none(
    family: Family, voucher: VoucherClient, db_path: Path, clock: FakeClock, sink: Sink
) -> None:
    first = await family.submit(child_iin(3))
    second = await family.submit(child_iin(4))
    tracker = StatusTracker(family.store, voucher, clock, db_path)
    await tracker.poll_once(sink.push)
    await set_status(voucher, clock, first.id, "registered", queue_position=1)
    await set_status(voucher, clock, second.id, "registered", queue_position=2)
    cursor = await family.store.get_meta(CURSOR_KEY)

    async def crash_on_second(push: StatusPush) -> None:
        if push.application.id == second.id:
            raise RuntimeError("the process died here")
        await sink.push(push)

    with pytest.raises(RuntimeError):
        await tracker.poll_once(crash_on_second)
    # The page was not finished, so the cursor did not move.
    assert await family.store.get_meta(CURSOR_KEY) == cursor
    assert [p.application.id for p in sink.take()] == [first.id]

    await StatusTracker(family.store, voucher, clock, db_path).poll_once(sink.push)
    assert [p.application.id for p in sink.take()] == [second.id]


async def test_an_older_item_never_takes_the_status_back(
    family: Family, tracker: StatusTracker, voucher: VoucherClient, clock: FakeClock, sink: Sink
) -> None:
    app = await family.submit(child_iin(3))
    await set_status(voucher, clock, app.id, "registered", queue_position=50)
    await set_status(voucher, clock, app.id, "voucher_issued")
    page = await voucher.list_changes()
    registered, issued = page.items[1], page.items[2]
    # The webhook delivers the newer change first, the older one is a late retry.
    assert await tracker.handle_item(issued, sink.push) is True
    assert await tracker.handle_item(registered, sink.push) is False
    assert await tracker.handle_item(issued, sink.push) is False  # the same change again
    assert [p.kind for p in sink.take()] == ["voucher_issued"]
    stored = await family.store.get_application(app.id)
    assert stored is not None and stored.status == "voucher_issued"


async def test_a_change_of_an_application_that_is_not_ours_is_ignored(
    family: Family,
    tracker: StatusTracker,
    voucher: VoucherClient,
    store: Store,
    clock: FakeClock,
    sink: Sink,
) -> None:
    theirs = await family.submit(child_iin(4), record=False)
    ours = await family.submit(child_iin(3))
    await set_status(voucher, clock, theirs.id, "registered", queue_position=6)
    await set_status(voucher, clock, ours.id, "registered", queue_position=7)
    assert await tracker.poll_once(sink.push) == 4
    assert [(p.application.id, p.kind) for p in sink.take()] == [(ours.id, "registered")]
    assert await store.get_application(theirs.id) is None
    # An id the service never had (a webhook from a confused sender) is no different.
    page = await voucher.list_changes()
    forged = page.items[-1].model_copy(update={"id": "app_unknown", "cursor": "x"})
    assert await tracker.handle_item(forged, sink.push) is False
    assert sink.take() == []


async def test_refresh_stores_the_status_and_the_feed_does_not_repeat_it(
    family: Family, tracker: StatusTracker, voucher: VoucherClient, clock: FakeClock, sink: Sink
) -> None:
    app = await family.submit(child_iin(3))
    await tracker.poll_once(sink.push)
    await set_status(voucher, clock, app.id, "registered", queue_position=33)
    refreshed = await tracker.refresh(app.id)
    assert refreshed is not None
    assert (refreshed.status, refreshed.queue_position) == ("registered", 33)
    stored = await family.store.get_application(app.id)
    assert stored is not None and stored.queue_position == 33
    # The parent saw it in /status: the same change from the feed adds no push.
    await tracker.poll_once(sink.push)
    assert sink.take() == []


# --- reminders ----------------------------------------------------------------------------------


async def test_deadline_reminders_at_48_and_24_hours_once_each(
    family: Family, tracker: StatusTracker, voucher: VoucherClient, clock: FakeClock, sink: Sink
) -> None:
    app = await family.submit(child_iin(3))
    await set_status(voucher, clock, app.id, "voucher_issued")  # deadline: now + 72 h
    await tracker.poll_once(sink.push)
    sink.take()

    async def reminders() -> list[str]:
        await tracker.deadline_reminders(sink.push)
        return [p.kind for p in sink.take()]

    assert await reminders() == []
    clock.advance(hours=23, minutes=59)  # 48 h 01 min left
    assert await reminders() == []
    clock.advance(minutes=2)
    assert await reminders() == ["remind_48h"]
    assert await reminders() == []
    clock.advance(hours=23)
    assert await reminders() == []
    clock.advance(hours=1)  # 23 h 59 min left
    assert await reminders() == ["remind_24h"]
    clock.advance(hours=12)
    assert await reminders() == []
    clock.advance(hours=13)  # past the deadline
    assert await reminders() == []


async def test_a_voucher_with_a_short_deadline_gets_only_the_24_hour_reminder(
    family: Family, tracker: StatusTracker, voucher: VoucherClient, clock: FakeClock, sink: Sink
) -> None:
    app = await family.submit(child_iin(3))
    deadline = clock.now() + timedelta(hours=30, minutes=1)
    await set_status(voucher, clock, app.id, "voucher_issued", deadline=deadline.isoformat())
    await tracker.poll_once(sink.push)
    assert [p.kind for p in sink.take()] == ["voucher_issued"]
    kinds: list[str] = []
    for _ in range(12):  # every 5 minutes for the first hour: the 48 h mark is already past
        clock.advance(minutes=5)
        await tracker.deadline_reminders(sink.push)
        kinds += [p.kind for p in sink.take()]
    assert kinds == []
    clock.advance(hours=6)
    await tracker.deadline_reminders(sink.push)
    [reminder] = sink.take()
    assert reminder.kind == "remind_24h"
    assert reminder.dedup_key.startswith(f"deadline:{app.id}:")
    assert reminder.dedup_key.endswith(":24")


async def test_idle_drafts_get_at_most_two_reminders(
    tracker: StatusTracker, store: Store, clock: FakeClock, sink: Sink
) -> None:
    await store.update_draft(7, step="ApplicationForm:phone", rules_accepted=True)

    async def nudges() -> list[int]:
        await tracker.draft_reminders(sink.draft, STEPS)
        taken, sink.drafts = sink.drafts, []
        return [r.n for r in taken]

    clock.advance(hours=23, minutes=55)
    assert await nudges() == []
    clock.advance(minutes=5)
    assert await nudges() == [1]
    assert await nudges() == []
    # The parent opens the draft, then leaves it again: a day after that touch, the second.
    clock.advance(hours=3)
    await store.update_draft(7, step="ApplicationForm:queue_type", phone=PHONE)
    clock.advance(hours=23)
    assert await nudges() == []
    clock.advance(hours=1)
    assert await nudges() == [2]
    for _ in range(3):
        clock.advance(hours=24)
        assert await nudges() == []


async def test_no_draft_reminder_after_cancel_or_submission_or_before_the_form(
    tracker: StatusTracker, store: Store, clock: FakeClock, sink: Sink
) -> None:
    await store.update_draft(1, step="ApplicationForm:phone", rules_accepted=True)
    await store.update_draft(2, step="ApplicationForm:queue_type", phone=PHONE)
    await store.update_draft(3, step="ApplicationForm:language")
    await store.update_draft(4, step="ApplicationForm:queue_type", phone=PHONE)
    clock.advance(hours=25)
    await store.delete_draft(1)  # /cancel
    await store.update_draft(2, application={"id": "x", "number": "1"})  # submitted
    clock.advance(hours=25)
    await tracker.draft_reminders(sink.draft, STEPS)
    assert [r.user_id for r in sink.drafts] == [4]
    assert sink.drafts[0].step == "ApplicationForm:queue_type"


async def test_a_new_draft_after_cancel_starts_its_own_count(
    tracker: StatusTracker, store: Store, clock: FakeClock, sink: Sink
) -> None:
    await store.update_draft(9, step="ApplicationForm:phone", rules_accepted=True)
    for _ in range(2):
        clock.advance(hours=24)
        await tracker.draft_reminders(sink.draft, STEPS)
    assert [r.n for r in sink.drafts] == [1, 2]
    await store.delete_draft(9)
    await tracker.draft_reminders(sink.draft, STEPS)  # the job sees the draft gone
    await store.update_draft(9, step="ApplicationForm:phone", rules_accepted=True)
    clock.advance(hours=24)
    await tracker.draft_reminders(sink.draft, STEPS)
    assert [r.n for r in sink.drafts] == [1, 2, 1]
    assert len({r.dedup_key for r in sink.drafts}) == 3


async def test_a_reminder_names_no_one_else(
    family: Family, tracker: StatusTracker, voucher: VoucherClient, clock: FakeClock, sink: Sink
) -> None:
    mine = await family.submit(child_iin(3))
    other = await family.submit(child_iin(4), user_id=5005)
    for app in (mine, other):
        await set_status(voucher, clock, app.id, "voucher_issued")
    await tracker.poll_once(sink.push)
    assert {(p.application.id, p.application.chat_id) for p in sink.take()} == {
        (mine.id, family.user_id),
        (other.id, 5005),
    }
    clock.advance(hours=25)
    await tracker.deadline_reminders(sink.push)
    assert sorted((p.application.chat_id, p.kind) for p in sink.take()) == [
        (family.user_id, "remind_48h"),
        (5005, "remind_48h"),
    ]
