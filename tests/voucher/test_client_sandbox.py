"""The client against the real sandbox over loopback: every endpoint and every problem code.

The test plays the parent's phone through the sandbox helpers (inbox for OTP codes and 1414
SMS, `sandbox_answer_consent` to grant) and moves the FakeClock for expiry. The clock starts on
2026-09-10 (Asia/Almaty), so the academic year is 2026-2027 and ages count on 2026-09-01.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

import pytest

from services.clock import ALMATY, FakeClock
from services.validation import age_on, parse_iin
from services.voucher.client import VoucherClient
from services.voucher.errors import (
    AgeOutOfRange,
    ConsentMissing,
    ConsentNotPending,
    ConsentRequired,
    DocumentRequired,
    DuplicateApplication,
    FileTooLarge,
    IdempotencyKeyReused,
    IinInvalid,
    IntakeClosed,
    NotFound,
    OtpExpired,
    OtpInvalid,
    OtpLocked,
    PersonNotFound,
    PhoneInvalid,
    PhoneNotRegistered,
    ServiceUnavailable,
    SessionInvalid,
    TooManyRequests,
    Unauthorized,
    UnsupportedType,
    ValidationFailed,
    VoucherError,
)
from services.voucher.models import (
    ApplicationRequest,
    ChildRef,
    Consent,
    Consents,
    Faults,
    Group,
    Localized,
    NotificationChoice,
    ParentRef,
    PreviewRequest,
    Provider,
    StatusChange,
)
from services.voucher.sandbox import RunningSandbox
from tests.voucher.conftest import UNKNOWN_IIN, RecordedSleep, make_iin

E = TypeVar("E", bound=VoucherError)

PHONE = "+77011234567"
OTHER_PHONE = "+77029876543"
UNREGISTERED_PHONE = "+77011230000"  # numbers ending in 0000 are not registered
PARENT_IIN = make_iin(date(1990, 3, 12), male=True)
CHILD_IIN = make_iin(date(2016, 5, 15), male=False)  # 10 on 2026-09-01
SECOND_CHILD_IIN = make_iin(date(2019, 11, 2), male=True)  # 6 on 2026-09-01
SEPT_1 = date(2026, 9, 1)
CHILD_AGE = 10  # CHILD_IIN's age on SEPT_1
MIB_10 = 10 * 1024 * 1024
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"


async def expect(error: type[E], call: Awaitable[object], status: int) -> E:
    """Await `call` and check it raised exactly `error` with this HTTP status."""
    with pytest.raises(error) as caught:
        await call
    assert type(caught.value) is error
    assert caught.value.status == status
    return caught.value


# --- playing the parent's phone --------------------------------------------------------------


async def otp_codes(client: VoucherClient, phone: str) -> list[str]:
    return [m.otp_code for m in await client.sandbox_inbox(phone) if m.otp_code is not None]


async def login(client: VoucherClient, phone: str = PHONE) -> str:
    """Ask for a code, read it from the phone's ed24 app, and trade it for a session."""
    otp = await client.request_otp(phone)
    code = (await otp_codes(client, phone))[-1]
    return (await client.verify_otp(otp.otp_id, code)).session


async def grant(client: VoucherClient, session: str, iin: str) -> str:
    """Ask for a consent and answer the 1414 SMS with yes."""
    created = await client.create_consent(session, iin)
    await client.sandbox_answer_consent(created.consent_id, "yes")
    return created.consent_id


async def all_providers(client: VoucherClient) -> list[Provider]:
    providers: list[Provider] = []
    page = 1
    while items := (await client.list_providers(page=page, per_page=100)).items:
        providers += items
        page += 1
    return providers


async def find_group(client: VoucherClient, age: int, *, fits: bool = True) -> tuple[str, Group]:
    """A provider id and one of its groups whose age range includes (or excludes) `age`."""
    for provider in await all_providers(client):
        for group in await client.list_groups(provider.id):
            if (group.age_min <= age <= group.age_max) == fits:
                return provider.id, group
    raise AssertionError(f"the catalogue has no group that {'fits' if fits else 'excludes'} {age}")


async def state_order(client: VoucherClient) -> str:
    return (await client.list_state_order_types())[0].code


@dataclass(frozen=True)
class Parent:
    """A parent ready to submit: a session, both consents granted, a fitting group."""

    session: str
    request: ApplicationRequest


async def ready_parent(client: VoucherClient, phone: str = PHONE) -> Parent:
    session = await login(client, phone)
    await grant(client, session, PARENT_IIN)
    await grant(client, session, CHILD_IIN)
    provider_id, group = await find_group(client, CHILD_AGE)
    request = ApplicationRequest(
        parent=ParentRef(iin=PARENT_IIN, phone=phone),
        child=ChildRef(iin=CHILD_IIN),
        queue_type="general",
        state_order_type=await state_order(client),
        provider_id=provider_id,
        group_id=group.id,
        notification=NotificationChoice(channel="telegram", language="kk"),
        consents=Consents(personal_data=True, contact_use=True, offer=True),
        telegram_chat_id=1001,
    )
    return Parent(session, request)


def changed(request: ApplicationRequest, **fields: Any) -> ApplicationRequest:
    """The request with some fields replaced, validated again."""
    return ApplicationRequest.model_validate(request.model_dump() | fields)


def changed_preview(request: PreviewRequest, **fields: Any) -> PreviewRequest:
    return PreviewRequest.model_validate(request.model_dump() | fields)


def fields_of(error: ValidationFailed) -> set[str]:
    return {e["field"] for e in error.errors}


# --- the token and the session ----------------------------------------------------------------


async def test_every_endpoint_checks_the_token_first(
    sandbox: RunningSandbox, recorded_sleep: RecordedSleep
) -> None:
    # Unknown ids and a bogus session too: the token is checked before either.
    preview = PreviewRequest(
        child_iin=CHILD_IIN, queue_type="general", state_order_type="x", group_id="x"
    )
    request = offline_request()
    async with VoucherClient(sandbox.base_url, "wrong-token", sleep=recorded_sleep) as intruder:
        calls: list[Awaitable[object]] = [
            intruder.request_otp(PHONE),
            intruder.verify_otp("no-such-otp", "1234"),
            intruder.create_consent("bogus", CHILD_IIN),
            intruder.get_consent("bogus", "no-such-consent"),
            intruder.get_person("bogus", "no-such-consent"),
            intruder.list_queue_types(),
            intruder.list_state_order_types(),
            intruder.list_providers(),
            intruder.list_groups("no-such-provider"),
            intruder.upload_document("bogus", "disability", PDF),
            intruder.preview_queue("bogus", preview),
            intruder.submit_application("bogus", "key", request),
            intruder.get_application("no-such-application"),
            intruder.list_changes(),
            intruder.sandbox_inbox(PHONE),
            intruder.sandbox_answer_consent("no-such-consent", "yes"),
            intruder.sandbox_list_applications(),
            intruder.sandbox_set_status("no-such-application", StatusChange(status="cancelled")),
            intruder.sandbox_get_faults(),
            intruder.sandbox_set_faults(failure_rate=1.0),
        ]
        for call in calls:
            await expect(Unauthorized, call, 401)
    assert recorded_sleep.delays == []  # a 401 is final, even for a GET


def offline_request() -> ApplicationRequest:
    """A well-formed body whose ids are not the sandbox's, for calls refused before the body."""
    return ApplicationRequest(
        parent=ParentRef(iin=PARENT_IIN, phone=PHONE),
        child=ChildRef(iin=CHILD_IIN),
        queue_type="general",
        state_order_type="x",
        provider_id="x",
        group_id="x",
        notification=NotificationChoice(channel="sms", language="ru"),
        consents=Consents(personal_data=True, contact_use=True, offer=True),
    )


async def test_parent_calls_need_a_live_session(client: VoucherClient, clock: FakeClock) -> None:
    preview = PreviewRequest(
        child_iin=CHILD_IIN, queue_type="general", state_order_type="x", group_id="x"
    )
    for call in [
        client.create_consent("bogus", CHILD_IIN),
        client.create_consent("", CHILD_IIN),  # an empty header is a missing session
        client.get_consent("bogus", "no-such-consent"),
        client.get_person("bogus", "no-such-consent"),
        client.upload_document("bogus", "disability", PDF),
        client.preview_queue("bogus", preview),
        client.submit_application("bogus", "key", offline_request()),
    ]:
        await expect(SessionInvalid, call, 401)

    session = await login(client)
    clock.advance(3599)
    consent = await client.create_consent(session, CHILD_IIN)
    clock.advance(2)  # 3601 s after verification: the session has ended
    await expect(SessionInvalid, client.get_consent(session, consent.consent_id), 401)
    # What follows an application needs only the token.
    assert len(await client.list_queue_types()) == 2
    assert (await client.list_changes()).items == []


# --- step 1: phone and one-time code ----------------------------------------------------------


async def test_a_code_goes_to_the_ed24_app_and_becomes_a_session(client: VoucherClient) -> None:
    otp = await client.request_otp(PHONE)
    assert (otp.expires_in, otp.resend_after) == (300, 60)

    inbox = await client.sandbox_inbox(PHONE)  # the "+" must have travelled as %2B
    assert [m.channel for m in inbox] == ["ed24_app"]
    code = inbox[0].otp_code
    assert code is not None and len(code) == 4 and code.isascii() and code.isdigit()
    assert inbox[0].text.kk and inbox[0].text.ru
    assert inbox[0].at.utcoffset() == timedelta(hours=5)
    assert await client.sandbox_inbox(OTHER_PHONE) == []

    verified = await client.verify_otp(otp.otp_id, code)
    assert verified.session and verified.expires_in == 3600
    await expect(OtpExpired, client.verify_otp(otp.otp_id, code), 410)  # used already


async def test_wrong_codes_count_down_then_lock_for_good(
    client: VoucherClient, clock: FakeClock
) -> None:
    otp = await client.request_otp(PHONE)
    [code] = await otp_codes(client, PHONE)
    wrong = "0000" if code != "0000" else "1111"

    # Anything but exactly 4 ASCII digits is a wrong code too, not a validation error.
    left = []
    for attempt in (wrong, "12a4", "１２３４", "12345"):
        error = await expect(OtpInvalid, client.verify_otp(otp.otp_id, attempt), 422)
        left.append(error.attempts_left)
    assert left == [4, 3, 2, 1]

    await expect(OtpLocked, client.verify_otp(otp.otp_id, wrong), 423)
    await expect(OtpLocked, client.verify_otp(otp.otp_id, code), 423)
    clock.advance(301)
    await expect(OtpLocked, client.verify_otp(otp.otp_id, code), 423)  # the lock comes first


async def test_codes_expire_and_a_new_code_replaces_the_old(
    client: VoucherClient, clock: FakeClock
) -> None:
    stale = await client.request_otp(PHONE)
    clock.advance(301)
    await expect(
        OtpExpired, client.verify_otp(stale.otp_id, (await otp_codes(client, PHONE))[0]), 410
    )

    replaced = await client.request_otp(PHONE)
    clock.advance(61)
    latest = await client.request_otp(PHONE)
    codes = await otp_codes(client, PHONE)
    assert len(codes) == 3
    await expect(OtpExpired, client.verify_otp(replaced.otp_id, codes[1]), 410)
    assert (await client.verify_otp(latest.otp_id, codes[2])).session


async def test_codes_are_rate_limited_and_retry_after_is_honest(
    client: VoucherClient, clock: FakeClock
) -> None:
    await client.request_otp(PHONE)
    too_soon = await expect(TooManyRequests, client.request_otp(PHONE), 429)
    assert too_soon.retry_after is not None and 0 < too_soon.retry_after <= 60
    assert (await client.request_otp(OTHER_PHONE)).otp_id  # the limit is per phone

    clock.advance(too_soon.retry_after)
    await client.request_otp(PHONE)
    clock.advance(60)
    await client.request_otp(PHONE)
    clock.advance(60)
    fourth = await expect(TooManyRequests, client.request_otp(PHONE), 429)  # 4th in an hour
    assert fourth.retry_after is not None and fourth.retry_after > 60

    clock.advance(fourth.retry_after)
    assert (await client.request_otp(PHONE)).otp_id
    assert len(await otp_codes(client, PHONE)) == 4


async def test_phone_and_otp_errors(client: VoucherClient) -> None:
    for phone in ("87011234567", "+7701123456", "+7 701 123 4567", "+770112345678"):
        await expect(PhoneInvalid, client.request_otp(phone), 422)
    await expect(PhoneNotRegistered, client.request_otp(UNREGISTERED_PHONE), 404)
    await expect(NotFound, client.verify_otp("no-such-otp", "1234"), 404)
    assert await client.sandbox_inbox(UNREGISTERED_PHONE) == []
    error = await expect(ValidationFailed, client.sandbox_inbox("87011234567"), 422)
    assert "phone" in fields_of(error)


# --- step 2: consents and state data ----------------------------------------------------------


async def test_each_iin_gets_its_sms_and_a_granted_consent_opens_the_data(
    client: VoucherClient, clock: FakeClock
) -> None:
    session = await login(client)
    parent = await client.create_consent(session, PARENT_IIN)
    child = await client.create_consent(session, CHILD_IIN)
    assert (child.status, child.expires_in) == ("pending", 600)

    sms = [m for m in await client.sandbox_inbox(PHONE) if m.channel == "sms_1414"]
    assert [m.consent_id for m in sms] == [parent.consent_id, child.consent_id]
    assert all(m.text.kk and m.text.ru for m in sms)

    pending = Consent(consent_id=child.consent_id, iin=CHILD_IIN, status="pending")
    assert await client.get_consent(session, child.consent_id) == pending
    await expect(ConsentRequired, client.get_person(session, child.consent_id), 403)

    answered = await client.sandbox_answer_consent(child.consent_id, "yes")
    assert (answered.consent_id, answered.status) == (child.consent_id, "granted")
    await client.sandbox_answer_consent(parent.consent_id, "yes")

    kid = await client.get_person(session, child.consent_id)
    adult = await client.get_person(session, parent.consent_id)
    for person, iin in ((kid, CHILD_IIN), (adult, PARENT_IIN)):
        info = parse_iin(iin)
        assert (person.iin, person.birth_date, person.gender) == (iin, info.birth_date, info.gender)
        assert person.last_name and person.first_name
    assert kid.birth_certificate is not None  # under 18
    assert adult.birth_certificate is None
    assert await client.get_person(session, child.consent_id) == kid  # deterministic

    clock.advance(601)  # expires_in limits only the pending state
    assert (await client.get_consent(session, child.consent_id)).status == "granted"
    assert await client.get_person(session, child.consent_id) == kid
    await expect(ConsentNotPending, client.sandbox_answer_consent(child.consent_id, "no"), 409)


async def test_denied_and_expired_consents_keep_the_data_closed(
    client: VoucherClient, clock: FakeClock
) -> None:
    session = await login(client)
    denied = await client.create_consent(session, CHILD_IIN)
    assert (await client.sandbox_answer_consent(denied.consent_id, "no")).status == "denied"
    await expect(ConsentRequired, client.get_person(session, denied.consent_id), 403)

    late = await client.create_consent(session, PARENT_IIN)
    clock.advance(601)
    assert (await client.get_consent(session, late.consent_id)).status == "expired"
    await expect(ConsentRequired, client.get_person(session, late.consent_id), 403)
    await expect(ConsentNotPending, client.sandbox_answer_consent(late.consent_id, "yes"), 409)


async def test_a_consent_can_answer_itself_after_the_set_delay(
    client: VoucherClient, clock: FakeClock
) -> None:
    await client.sandbox_set_faults(consent_auto_answer_s=5)
    session = await login(client)
    consent = await client.create_consent(session, CHILD_IIN)
    assert (await client.get_consent(session, consent.consent_id)).status == "pending"

    clock.advance(5)
    assert (await client.get_consent(session, consent.consent_id)).status == "granted"
    assert (await client.get_person(session, consent.consent_id)).iin == CHILD_IIN


async def test_consents_belong_to_the_phone_that_asked(client: VoucherClient) -> None:
    mine = await login(client, PHONE)
    theirs = await login(client, OTHER_PHONE)
    consent = await client.create_consent(mine, CHILD_IIN)

    await expect(NotFound, client.get_consent(theirs, consent.consent_id), 404)
    await expect(NotFound, client.get_person(theirs, consent.consent_id), 404)
    await expect(NotFound, client.get_consent(mine, "no-such-consent"), 404)
    await expect(NotFound, client.sandbox_answer_consent("no-such-consent", "yes"), 404)
    assert [m.channel for m in await client.sandbox_inbox(OTHER_PHONE)] == ["ed24_app"]


async def test_iin_errors(client: VoucherClient) -> None:
    session = await login(client)
    bad_check = CHILD_IIN[:11] + str((int(CHILD_IIN[11]) + 1) % 10)
    for iin in ("123", "16051560001x", "161315600011", bad_check):
        await expect(IinInvalid, client.create_consent(session, iin), 422)
    await expect(PersonNotFound, client.create_consent(session, UNKNOWN_IIN), 404)


# --- step 3: catalogue, documents, preview ----------------------------------------------------


async def test_catalogue(client: VoucherClient) -> None:
    queue_types = await client.list_queue_types()
    assert {t.code for t in queue_types} == {"general", "special"}
    assert all(t.title.kk and t.title.ru and t.description.ru for t in queue_types)
    orders = await client.list_state_order_types()
    assert orders and len({o.code for o in orders}) == len(orders)

    first = await client.list_providers()
    assert len(first.items) == 10 and first.total >= 30
    everything = await all_providers(client)
    assert len(everything) == first.total == len({p.id for p in everything})
    assert everything[:10] == first.items
    paged: list[Provider] = []
    for page in range(1, first.total // 7 + 2):
        paged += (await client.list_providers(page=page, per_page=7)).items
    assert paged == everything  # a stable order
    past = await client.list_providers(page=first.total // 7 + 2, per_page=7)
    assert (past.items, past.total) == ([], first.total)

    groups_seen = 0
    for provider in everything:
        assert provider.name.kk and provider.name.ru and provider.address
        for group in await client.list_groups(provider.id):
            assert 0 <= group.age_min <= group.age_max and group.seats_free >= 0
            groups_seen += 1
    assert groups_seen >= 30
    await expect(NotFound, client.list_groups("no-such-provider"), 404)


async def test_provider_search(client: VoucherClient) -> None:
    everything = await all_providers(client)
    target = everything[len(everything) // 2]
    for needle in (target.name.ru[1:5], target.name.kk[1:5]):
        found = await client.list_providers(q=f"  {needle.upper()} ", per_page=100)
        assert target in found.items
        assert found.total == len(found.items)
        assert all(
            needle.lower() in p.name.ru.lower() or needle.lower() in p.name.kk.lower()
            for p in found.items
        )
        order = [p.id for p in everything]
        positions = [order.index(p.id) for p in found.items]
        assert positions == sorted(positions)  # the same order as without q
    nothing = await client.list_providers(q="zzz-no-such-provider")
    assert (nothing.items, nothing.total) == ([], 0)
    assert (await client.list_providers(q="   ")).total == len(everything)

    for knobs, name in (
        ({"page": 0}, "page"),
        ({"per_page": 0}, "per_page"),
        ({"per_page": 101}, "per_page"),
    ):
        error = await expect(ValidationFailed, client.list_providers(**knobs), 422)
        assert name in fields_of(error)


async def test_documents_are_typed_by_their_bytes(client: VoucherClient) -> None:
    session = await login(client)
    ids = set()
    for content, content_type in (
        (PDF, "application/pdf"),
        (JPEG, "image/jpeg"),
        (PNG, "image/png"),
    ):
        doc = await client.upload_document(session, "disability", content, "whatever.txt")
        assert (doc.content_type, doc.size) == (content_type, len(content))
        assert doc.sha256 == hashlib.sha256(content).hexdigest()
        ids.add(doc.document_id)
    assert len(ids) == 3

    await expect(UnsupportedType, client.upload_document(session, "benefit", b"GIF89a...."), 415)
    await expect(
        UnsupportedType, client.upload_document(session, "benefit", b"hello", "scan.pdf"), 415
    )
    largest = PDF + b"\0" * (MIB_10 - len(PDF))
    assert (await client.upload_document(session, "benefit", largest)).size == MIB_10
    await expect(FileTooLarge, client.upload_document(session, "benefit", largest + b"\0"), 413)
    await expect(FileTooLarge, client.upload_document(session, "benefit", b"x" * (MIB_10 + 1)), 413)
    error = await expect(ValidationFailed, client.upload_document(session, "passport", PDF), 422)
    assert "kind" in fields_of(error)


async def test_preview_names_the_queue_and_checks_age_and_documents(client: VoucherClient) -> None:
    session = await login(client)
    assert age_on(parse_iin(CHILD_IIN).birth_date, SEPT_1) == CHILD_AGE
    _, group = await find_group(client, CHILD_AGE)
    order = await state_order(client)

    def preview(
        queue_type: str, group_id: str = group.id, docs: tuple[str, ...] = ()
    ) -> PreviewRequest:
        return PreviewRequest(
            child_iin=CHILD_IIN,
            queue_type=queue_type,
            state_order_type=order,
            group_id=group_id,
            documents=list(docs),
        )

    general = await client.preview_queue(session, preview("general"))
    assert (general.age_on_sept_1, general.academic_year) == (10, "2026-2027")
    assert general.queue.code == "general-7-10"  # the default bands: 3-6, 7-10, 11-14, 15-18
    assert general.queue.title.kk and general.queue.title.ru

    benefit = (await client.upload_document(session, "benefit", PDF)).document_id
    disability = (await client.upload_document(session, "disability", PNG)).document_id
    await expect(DocumentRequired, client.preview_queue(session, preview("special")), 422)
    await expect(
        DocumentRequired, client.preview_queue(session, preview("special", docs=(benefit,))), 422
    )
    special = await client.preview_queue(session, preview("special", docs=(benefit, disability)))
    assert special.queue.code == "special-7-10"

    _, misfit = await find_group(client, CHILD_AGE, fits=False)
    await expect(AgeOutOfRange, client.preview_queue(session, preview("general", misfit.id)), 422)
    for field, bad in (
        ("group_id", preview("general", "no-such-group")),
        ("queue_type", preview("vip")),
        ("child_iin", changed_preview(preview("general"), child_iin="123456789012")),
        ("state_order_type", changed_preview(preview("general"), state_order_type="nope")),
    ):
        error = await expect(ValidationFailed, client.preview_queue(session, bad), 422)
        assert field in fields_of(error)


async def test_preview_does_not_count_a_document_of_another_phone(client: VoucherClient) -> None:
    # docs/voucher-api.yaml: in a preview a document id that is not this session's "simply
    # does not count (a special queue then answers document_required)".
    session = await login(client)
    stranger = await login(client, OTHER_PHONE)
    theirs = (await client.upload_document(stranger, "disability", PDF)).document_id
    _, group = await find_group(client, CHILD_AGE)
    request = PreviewRequest(
        child_iin=CHILD_IIN,
        queue_type="special",
        state_order_type=await state_order(client),
        group_id=group.id,
        documents=[theirs],
    )
    await expect(DocumentRequired, client.preview_queue(session, request), 422)
    general = await client.preview_queue(session, changed_preview(request, queue_type="general"))
    assert general.queue.code == "general-7-10"


async def test_the_academic_year_turns_on_1_june(client: VoucherClient, clock: FakeClock) -> None:
    order = await state_order(client)
    born = parse_iin(CHILD_IIN).birth_date
    for now, year, sept_1 in (
        (datetime(2027, 5, 31, 23, 0, tzinfo=ALMATY), "2026-2027", date(2026, 9, 1)),
        (datetime(2027, 6, 1, 0, 30, tzinfo=ALMATY), "2027-2028", date(2027, 9, 1)),
    ):
        clock.set(now)
        session = await login(client)
        age = age_on(born, sept_1)
        _, group = await find_group(client, age)
        request = PreviewRequest(
            child_iin=CHILD_IIN, queue_type="general", state_order_type=order, group_id=group.id
        )
        result = await client.preview_queue(session, request)
        assert (result.academic_year, result.age_on_sept_1) == (year, age)


# --- step 5: the application ------------------------------------------------------------------


async def test_submit_replays_and_refuses_a_reused_key_or_a_duplicate(
    client: VoucherClient, clock: FakeClock
) -> None:
    parent = await ready_parent(client)

    created = await client.submit_application(parent.session, "key-1", parent.request)
    assert created.status == "submitted" and created.number.isdigit()
    assert created.submitted_at == clock.now()
    assert created.submitted_at.utcoffset() == timedelta(hours=5)

    clock.advance(30)
    assert await client.submit_application(parent.session, "key-1", parent.request) == created
    other_body = changed(parent.request, telegram_chat_id=7)
    await expect(
        IdempotencyKeyReused, client.submit_application(parent.session, "key-1", other_body), 422
    )
    duplicate = await expect(
        DuplicateApplication,
        client.submit_application(parent.session, "key-2", parent.request),
        409,
    )
    assert duplicate.number == created.number

    [stored] = await client.sandbox_list_applications()
    assert (stored.id, stored.number, stored.status) == (created.id, created.number, "submitted")
    assert stored.submitted_at == created.submitted_at
    assert stored.body == parent.request.model_dump(mode="json")


async def test_an_application_is_followed_without_a_session(
    client: VoucherClient, clock: FakeClock
) -> None:
    parent = await ready_parent(client)
    created = await client.submit_application(parent.session, "key-1", parent.request)
    clock.advance(3601)  # the parent's session is over; following needs only the token

    app = await client.get_application(created.id)
    assert (app.id, app.number, app.status) == (created.id, created.number, "submitted")
    assert (app.queue_position, app.status_reason, app.deadline) == (None, None, None)

    registered = await client.sandbox_set_status(
        created.id, StatusChange(status="registered", queue_position=12)
    )
    assert (registered.status, registered.queue_position) == ("registered", 12)
    issued = await client.sandbox_set_status(created.id, StatusChange(status="voucher_issued"))
    assert issued.deadline == clock.now() + timedelta(hours=72)
    deadline = datetime(2026, 9, 20, 18, 0, tzinfo=ALMATY)
    reissued = await client.sandbox_set_status(
        created.id, StatusChange(status="voucher_issued", deadline=deadline)
    )
    assert reissued.deadline == deadline
    reason = Localized(kk="Құжаттар толық емес", ru="Документы неполные")
    rejected = await client.sandbox_set_status(
        created.id, StatusChange(status="rejected", reason=reason)
    )
    assert rejected.status_reason == reason
    cancelled = await client.sandbox_set_status(created.id, StatusChange(status="cancelled"))
    assert cancelled.status_reason is None  # a reason lasts until the next change
    assert await client.get_application(created.id) == cancelled

    await expect(NotFound, client.get_application("no-such-application"), 404)
    await expect(
        NotFound,
        client.sandbox_set_status("no-such-application", StatusChange(status="cancelled")),
        404,
    )


async def test_the_changes_feed_pages_with_cursors(client: VoucherClient) -> None:
    start = await client.list_changes()
    assert start.items == []
    assert (await client.list_changes(after=start.next)).next == start.next

    parent = await ready_parent(client)
    created = await client.submit_application(parent.session, "key-1", parent.request)
    for status in ("registered", "voucher_issued", "voucher_used"):
        await client.sandbox_set_status(created.id, StatusChange(status=status, queue_position=3))

    feed = await client.list_changes()
    statuses = [item.status for item in feed.items]
    assert statuses == ["submitted", "registered", "voucher_issued", "voucher_used"]
    assert {item.id for item in feed.items} == {created.id}
    assert feed.next == feed.items[-1].cursor
    assert [item.queue_position for item in feed.items[1:]] == [3, 3, 3]
    assert feed.items[2].deadline is not None

    paged, cursor = [], None
    while (page := await client.list_changes(after=cursor, limit=3)).items:
        assert len(page.items) <= 3
        paged += page.items
        cursor = page.next
    assert paged == feed.items
    assert page.next == cursor == feed.next  # an empty page hands the cursor back

    await expect(ValidationFailed, client.list_changes(after="not-a-cursor"), 422)
    await expect(ValidationFailed, client.list_changes(limit=0), 422)
    await expect(ValidationFailed, client.list_changes(limit=1001), 422)


async def test_submit_checks_come_in_the_contract_order(client: VoucherClient) -> None:
    parent = await ready_parent(client)
    request, session = parent.request, parent.session
    no_offer = Consents(personal_data=True, contact_use=True, offer=False)

    # consent_missing comes before every validation_error (here the phone is wrong too).
    await expect(
        ConsentMissing,
        client.submit_application(
            session,
            "fix-me",
            changed(request, consents=no_offer, parent={"iin": PARENT_IIN, "phone": OTHER_PHONE}),
        ),
        422,
    )

    stranger = await login(client, OTHER_PHONE)
    theirs = (await client.upload_document(stranger, "disability", PDF)).document_id
    other_provider_group = await _group_of_another_provider(client, request.provider_id)
    invalid = {
        "parent.phone": changed(request, parent={"iin": PARENT_IIN, "phone": OTHER_PHONE}),
        "child without consent": changed(request, child={"iin": SECOND_CHILD_IIN}),
        "provider": changed(request, provider_id="no-such-provider"),
        "group": changed(request, group_id="no-such-group"),
        "group of another provider": changed(request, group_id=other_provider_group),
        "document": changed(request, documents=[theirs]),
    }
    for number, (case, body) in enumerate(invalid.items()):
        error = await expect(
            ValidationFailed, client.submit_application(session, f"bad-{number}", body), 422
        )
        assert error.errors, case

    misfit_provider, misfit = await find_group(client, CHILD_AGE, fits=False)
    too_young_or_old = changed(request, provider_id=misfit_provider, group_id=misfit.id)
    await expect(AgeOutOfRange, client.submit_application(session, "age", too_young_or_old), 422)
    special = changed(request, queue_type="special")
    await expect(DocumentRequired, client.submit_application(session, "docs", special), 422)

    await client.sandbox_set_faults(intake_closed=["general"])
    await expect(IntakeClosed, client.submit_application(session, "closed", request), 409)
    disability = (await client.upload_document(session, "disability", PDF)).document_id
    special_ok = changed(special, documents=[disability])
    assert (await client.submit_application(session, "special", special_ok)).status == "submitted"

    await client.sandbox_set_faults(intake_closed=[])
    # Only 201s are remembered: the key of the failed attempt works once the cause is fixed...
    created = await client.submit_application(session, "fix-me", request)
    assert created.status == "submitted"
    # ...and the key is checked before the body, so a now-invalid body is a reused key.
    await expect(
        IdempotencyKeyReused,
        client.submit_application(session, "fix-me", changed(request, consents=no_offer)),
        422,
    )
    for key in ("", "k" * 256):
        await expect(ValidationFailed, client.submit_application(session, key, request), 422)
    assert len(await client.sandbox_list_applications()) == 2


async def _group_of_another_provider(client: VoucherClient, provider_id: str) -> str:
    for provider in await all_providers(client):
        if provider.id != provider_id and (groups := await client.list_groups(provider.id)):
            return groups[0].id
    raise AssertionError("only one provider has groups")


async def test_a_child_may_apply_again_once_the_last_application_ended(
    client: VoucherClient,
) -> None:
    parent = await ready_parent(client)
    first = await client.submit_application(parent.session, "first", parent.request)
    await client.sandbox_set_status(first.id, StatusChange(status="voucher_issued"))
    await expect(
        DuplicateApplication,
        client.submit_application(parent.session, "second", parent.request),
        409,
    )
    await client.sandbox_set_status(first.id, StatusChange(status="rejected"))
    second = await client.submit_application(parent.session, "second", parent.request)
    assert second.number != first.number


# --- the sandbox's fault switches -------------------------------------------------------------


async def test_injected_failures_are_retried_where_safe_and_fail_fast_elsewhere(
    client: VoucherClient, recorded_sleep: RecordedSleep
) -> None:
    assert await client.sandbox_get_faults() == Faults()
    parent = await ready_parent(client)

    switched = await client.sandbox_set_faults(failure_rate=1.0, retry_after=2)
    assert switched == Faults(failure_rate=1.0, retry_after=2)

    unavailable = await expect(ServiceUnavailable, client.list_queue_types(), 503)
    assert unavailable.retry_after == 2.0
    assert recorded_sleep.delays == [2.0, 2.0, 2.0]  # 4 attempts, each after Retry-After

    await expect(
        ServiceUnavailable, client.submit_application(parent.session, "k", parent.request), 503
    )
    assert len(recorded_sleep.delays) == 6
    codes_before = await otp_codes(client, PHONE)
    await expect(ServiceUnavailable, client.request_otp(PHONE), 503)
    assert len(recorded_sleep.delays) == 6  # an OTP request is never repeated
    assert await otp_codes(client, PHONE) == codes_before  # nor sent
    assert await client.sandbox_list_applications() == []  # sandbox endpoints are never failed

    restored = await client.sandbox_set_faults(failure_rate=0.0)
    assert restored == Faults(retry_after=2)
    created = await client.submit_application(parent.session, "k", parent.request)
    assert created.status == "submitted"


async def test_fault_switches_change_only_what_is_named(client: VoucherClient) -> None:
    first = await client.sandbox_set_faults(intake_closed=["special"], consent_auto_answer_s=30)
    assert first == Faults(intake_closed=["special"], consent_auto_answer_s=30)
    second = await client.sandbox_set_faults(latency_ms=0, retry_after=5)
    assert second == Faults(intake_closed=["special"], consent_auto_answer_s=30, retry_after=5)
    third = await client.sandbox_set_faults(consent_auto_answer_s=None)
    assert third == Faults(intake_closed=["special"], retry_after=5)
    assert await client.sandbox_get_faults() == third


async def test_a_whole_walk_logs_no_personal_data(
    client: VoucherClient, caplog: pytest.LogCaptureFixture
) -> None:
    # INFO, the production level, on every logger: the client's, httpx's and the sandbox's.
    caplog.set_level(logging.INFO)
    parent = await ready_parent(client)
    await client.submit_application(parent.session, "key-1", parent.request)
    await client.sandbox_inbox(PHONE)
    with pytest.raises(IinInvalid):
        await client.create_consent(parent.session, PARENT_IIN[:11] + "x")

    assert any(r.name == "kezek.voucher" for r in caplog.records)
    # (4-digit OTP codes are checked in the fault tests: here they could match a port.)
    for secret in (PHONE, PHONE[2:], PARENT_IIN, CHILD_IIN, parent.session):
        assert secret not in caplog.text
