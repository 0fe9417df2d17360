"""Step 5: submitting an application — check order, idempotency, duplicates, intake."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import date
from typing import Any

import httpx
import pytest

from services.clock import FakeClock
from services.voucher.models import Application, SandboxApplication
from tests.sandbox.helpers import (
    CHILD_IIN,
    OTHER_PHONE,
    PARENT_IIN,
    PARENT_PHONE,
    PDF,
    application_body,
    ask_consent,
    error_fields,
    grant,
    group_excluding_age,
    group_for_age,
    login,
    make_iin,
    problem,
    submit,
    upload,
)


@dataclass
class Ready:
    """A parent who has verified the phone and granted both consents."""

    session: str
    provider_id: str
    group_id: str

    def body(self, **overrides: Any) -> dict[str, Any]:
        choice = {"provider_id": self.provider_id, "group_id": self.group_id, **overrides}
        return application_body(**choice)


@pytest.fixture
async def ready(client: httpx.AsyncClient) -> Ready:
    session = await login(client)
    await grant(client, session, PARENT_IIN)
    await grant(client, session, CHILD_IIN)
    provider_id, group_id = await group_for_age(client, 8)
    return Ready(session, provider_id, group_id)


async def test_submit_and_read_back(client: httpx.AsyncClient, ready: Ready) -> None:
    response = await submit(client, ready.session, ready.body(), "key-1")
    assert response.status_code == 201, response.text
    created = response.json()
    assert set(created) == {"id", "number", "status", "submitted_at"}
    assert created["number"] == "21792" and created["status"] == "submitted"
    assert created["submitted_at"] == "2026-09-10T10:00:00+05:00"

    # Read without a session: the bot follows applications long after it ends.
    response = await client.get(f"/applications/{created['id']}")
    application = Application.model_validate(response.json())
    assert response.json() == {
        "id": created["id"],
        "number": "21792",
        "status": "submitted",
        "queue_position": None,
        "status_reason": None,
        "deadline": None,
        "updated_at": "2026-09-10T10:00:00+05:00",
    }
    assert application.number == "21792"
    problem(await client.get("/applications/app_nope"), 404, "not_found")

    stored = (await client.get("/sandbox/applications")).json()
    assert [SandboxApplication.model_validate(item).id for item in stored] == [created["id"]]
    assert stored[0]["body"] == ready.body()
    assert stored[0]["submitted_at"] == created["submitted_at"]


async def test_numbers_follow_a_sequence(
    client: httpx.AsyncClient, ready: Ready, clock: FakeClock
) -> None:
    numbers = []
    for index in range(3):
        child = make_iin(date(2018, 1, 10 + index), male=bool(index % 2), serial=50)
        await grant(client, ready.session, child)
        response = await submit(client, ready.session, ready.body(child_iin=child), f"k{index}")
        numbers.append(response.json()["number"])
        clock.advance(1)
    assert numbers == ["21792", "21793", "21794"]


async def test_same_key_same_body_replays_the_answer(
    client: httpx.AsyncClient, ready: Ready
) -> None:
    first = await submit(client, ready.session, ready.body(), "replay")
    # The same JSON with keys in another order and other whitespace is the same body.
    reordered = dict(reversed(list(ready.body().items())))
    again = await client.post(
        "/applications",
        content=httpx.Request("POST", "/", json=reordered).content.replace(b",", b" , "),
        headers={
            "X-Session": ready.session,
            "Idempotency-Key": "replay",
            "Content-Type": "application/json",
        },
    )
    assert again.status_code == 200
    assert again.json() == first.json()
    assert len((await client.get("/sandbox/applications")).json()) == 1


async def test_same_key_other_body_is_a_reuse(client: httpx.AsyncClient, ready: Ready) -> None:
    await submit(client, ready.session, ready.body(), "reuse")
    other = ready.body(notification={"channel": "sms", "language": "ru"})
    problem(await submit(client, ready.session, other, "reuse"), 422, "idempotency_key_reused")
    # `true` and `1` are different JSON.
    odd = ready.body(consents={"personal_data": 1, "contact_use": True, "offer": True})
    problem(await submit(client, ready.session, odd, "reuse"), 422, "idempotency_key_reused")


async def test_key_is_checked_before_the_body(client: httpx.AsyncClient, ready: Ready) -> None:
    await submit(client, ready.session, ready.body(), "first")
    response = await client.post(
        "/applications",
        content=b"{not json",
        headers={"X-Session": ready.session, "Idempotency-Key": "first"},
    )
    problem(response, 422, "idempotency_key_reused")
    response = await client.post(
        "/applications",
        content=b"{not json",
        headers={"X-Session": ready.session, "Idempotency-Key": "fresh"},
    )
    assert error_fields(response) == ["body"]


async def test_key_is_required_and_short(client: httpx.AsyncClient, ready: Ready) -> None:
    response = await client.post(
        "/applications", json=ready.body(), headers={"X-Session": ready.session}
    )
    assert error_fields(response) == ["Idempotency-Key"]
    response = await submit(client, ready.session, ready.body(), "k" * 256)
    assert error_fields(response) == ["Idempotency-Key"]
    response = await submit(client, ready.session, ready.body(), "k" * 255)
    assert response.status_code == 201


async def test_only_201_is_remembered(client: httpx.AsyncClient, ready: Ready) -> None:
    refused = ready.body(consents={"personal_data": True, "contact_use": True, "offer": False})
    problem(await submit(client, ready.session, refused, "retry"), 422, "consent_missing")
    response = await submit(client, ready.session, ready.body(), "retry")
    assert response.status_code == 201


async def test_key_is_kept_24_hours(
    client: httpx.AsyncClient, ready: Ready, clock: FakeClock
) -> None:
    created = (await submit(client, ready.session, ready.body(), "day")).json()
    # A new application of the same child would be a duplicate; cancel it first.
    await client.post(f"/sandbox/applications/{created['id']}/status", json={"status": "cancelled"})
    clock.advance(hours=24)
    session = await login(client)
    await grant(client, session, PARENT_IIN)
    await grant(client, session, CHILD_IIN)
    response = await submit(client, session, ready.body(), "day")
    assert response.status_code == 201
    assert response.json()["id"] != created["id"]


async def test_concurrent_requests_with_one_key_make_one_application(
    client: httpx.AsyncClient, ready: Ready
) -> None:
    responses = await asyncio.gather(
        *(submit(client, ready.session, ready.body(), "race") for _ in range(8))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 7 + [201]
    assert len({r.json()["id"] for r in responses}) == 1
    assert len((await client.get("/sandbox/applications")).json()) == 1


async def test_needs_a_session(client: httpx.AsyncClient, ready: Ready) -> None:
    response = await client.post(
        "/applications", json=ready.body(), headers={"Idempotency-Key": "x"}
    )
    problem(response, 401, "session_invalid")


async def test_consent_missing_comes_first(client: httpx.AsyncClient, ready: Ready) -> None:
    body = ready.body(
        consents={"personal_data": True, "contact_use": False, "offer": True},
        phone=OTHER_PHONE,
        group_id="grp-nope",
    )
    problem(await submit(client, ready.session, body, "c1"), 422, "consent_missing")


async def test_references_must_belong_to_the_session(
    client: httpx.AsyncClient, ready: Ready
) -> None:
    other_session = await login(client, OTHER_PHONE)
    foreign = (await upload(client, other_session, PDF)).json()["document_id"]
    ungranted = make_iin(date(2017, 6, 1), male=False)
    await ask_consent(client, ready.session, ungranted)  # asked, never answered
    cases = [
        (ready.body(phone=OTHER_PHONE), ["parent.phone"]),
        (ready.body(child_iin=ungranted), ["child.iin"]),
        (ready.body(provider_id="prv-999"), ["provider_id", "group_id"]),
        (ready.body(group_id="grp-nope"), ["group_id"]),
        (ready.body(documents=[foreign]), ["documents.0"]),
        (ready.body(state_order_type="gift"), ["state_order_type"]),
    ]
    for index, (body, fields) in enumerate(cases):
        assert error_fields(await submit(client, ready.session, body, f"ref{index}")) == fields
    provider_ids = [
        p["id"] for p in (await client.get("/providers", params={"per_page": 100})).json()["items"]
    ]
    elsewhere = next(pid for pid in provider_ids if pid != ready.provider_id)
    response = await submit(client, ready.session, ready.body(provider_id=elsewhere), "ref-x")
    assert error_fields(response) == ["group_id"]


async def test_a_consent_of_another_session_does_not_count(
    client: httpx.AsyncClient, ready: Ready, clock: FakeClock
) -> None:
    clock.advance(60)  # a new code for the same phone
    fresh = await login(client)
    await grant(client, fresh, PARENT_IIN)
    response = await submit(client, fresh, ready.body(), "other-session")
    assert error_fields(response) == ["child.iin"]


async def test_malformed_body(client: httpx.AsyncClient, ready: Ready) -> None:
    body = ready.body(telegram_chat_id="123", surprise=True)
    del body["notification"]
    fields = error_fields(await submit(client, ready.session, body, "bad"))
    assert set(fields) == {"notification", "telegram_chat_id", "surprise"}


async def test_preview_checks_again(client: httpx.AsyncClient, ready: Ready) -> None:
    provider_id, group_id = await group_excluding_age(client, 8)
    body = ready.body(provider_id=provider_id, group_id=group_id, queue_type="special")
    problem(await submit(client, ready.session, body, "age"), 422, "age_out_of_range")
    problem(
        await submit(client, ready.session, ready.body(queue_type="special"), "doc"),
        422,
        "document_required",
    )
    document = (await upload(client, ready.session, PDF)).json()["document_id"]
    body = ready.body(queue_type="special", documents=[document])
    assert (await submit(client, ready.session, body, "doc-ok")).status_code == 201


async def test_intake_closed(client: httpx.AsyncClient, ready: Ready) -> None:
    await client.post("/sandbox/faults", json={"intake_closed": ["general"]})
    problem(await submit(client, ready.session, ready.body(), "closed"), 409, "intake_closed")
    document = (await upload(client, ready.session, PDF)).json()["document_id"]
    body = ready.body(queue_type="special", documents=[document])
    assert (await submit(client, ready.session, body, "open")).status_code == 201


async def test_duplicate_until_rejected(client: httpx.AsyncClient, ready: Ready) -> None:
    created = (await submit(client, ready.session, ready.body(), "dup-1")).json()
    body = problem(
        await submit(client, ready.session, ready.body(), "dup-2"), 409, "duplicate_application"
    )
    assert body["number"] == created["number"]
    for status in ("registered", "voucher_issued"):
        await client.post(f"/sandbox/applications/{created['id']}/status", json={"status": status})
        response = await submit(client, ready.session, ready.body(), f"dup-{status}")
        problem(response, 409, "duplicate_application")
    # Another queue type is another queue.
    document = (await upload(client, ready.session, PDF)).json()["document_id"]
    special = ready.body(queue_type="special", documents=[document])
    assert (await submit(client, ready.session, special, "dup-special")).status_code == 201
    await client.post(
        f"/sandbox/applications/{created['id']}/status",
        json={"status": "rejected", "reason": {"kk": "Орын жоқ", "ru": "Нет мест"}},
    )
    again = await submit(client, ready.session, ready.body(), "dup-3")
    assert again.status_code == 201
    assert again.json()["number"] != created["number"]


async def test_intake_is_checked_before_duplicates(client: httpx.AsyncClient, ready: Ready) -> None:
    await submit(client, ready.session, ready.body(), "i-1")
    await client.post("/sandbox/faults", json={"intake_closed": ["general"]})
    problem(await submit(client, ready.session, ready.body(), "i-2"), 409, "intake_closed")


async def test_a_new_academic_year_is_not_a_duplicate(
    client: httpx.AsyncClient, ready: Ready, clock: FakeClock
) -> None:
    await submit(client, ready.session, ready.body(), "y-1")
    clock.advance(days=280)  # 17 June 2027: academic year 2027-2028
    session = await login(client, PARENT_PHONE)
    await grant(client, session, PARENT_IIN)
    await grant(client, session, CHILD_IIN)
    provider_id, group_id = await group_for_age(client, 9)
    body = application_body(provider_id, group_id)
    assert (await submit(client, session, body, "y-2")).status_code == 201


async def test_checks_run_in_the_contracts_order(client: httpx.AsyncClient, ready: Ready) -> None:
    document = (await upload(client, ready.session, PDF)).json()["document_id"]
    special = ready.body(queue_type="special", documents=[document])
    first = (await submit(client, ready.session, special, "order-0")).json()
    await client.post("/sandbox/faults", json={"intake_closed": ["special"]})
    provider_id, group_id = await group_excluding_age(client, 8)
    body = ready.body(
        queue_type="special",
        phone=OTHER_PHONE,
        provider_id=provider_id,
        group_id=group_id,
        consents={"personal_data": True, "contact_use": True, "offer": False},
    )
    steps: list[tuple[str, int, str]] = []

    async def attempt(key: str) -> None:
        response = await submit(client, ready.session, body, key)
        steps.append((key, response.status_code, response.json()["code"]))

    await attempt("consents")
    body["consents"]["offer"] = True
    await attempt("phone")
    body["parent"]["phone"] = PARENT_PHONE
    await attempt("age")
    body["provider_id"], body["group_id"] = ready.provider_id, ready.group_id
    await attempt("document")
    body["documents"] = [document]
    await attempt("intake")
    await client.post("/sandbox/faults", json={"intake_closed": []})
    await attempt("duplicate")
    assert steps == [
        ("consents", 422, "consent_missing"),
        ("phone", 422, "validation_error"),
        ("age", 422, "age_out_of_range"),
        ("document", 422, "document_required"),
        ("intake", 409, "intake_closed"),
        ("duplicate", 409, "duplicate_application"),
    ]
    assert body == special | {"documents": [document]}
    assert first["number"] == "21792"
