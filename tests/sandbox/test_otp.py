"""Step 1: one-time codes and sessions."""

from __future__ import annotations

import httpx
import pytest

from services.clock import FakeClock
from tests.sandbox.helpers import (
    OTHER_PHONE,
    PARENT_IIN,
    PARENT_PHONE,
    inbox,
    last_code,
    login,
    problem,
)


async def _otp(client: httpx.AsyncClient, phone: str = PARENT_PHONE) -> str:
    response = await client.post("/otp", json={"phone": phone})
    assert response.status_code == 201, response.text
    return response.json()["otp_id"]


async def _verify(client: httpx.AsyncClient, otp_id: str, code: object) -> httpx.Response:
    return await client.post(f"/otp/{otp_id}/verify", json={"code": code})


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10_000:04d}"


async def test_code_arrives_in_the_app_and_verifies(client: httpx.AsyncClient) -> None:
    response = await client.post("/otp", json={"phone": PARENT_PHONE})
    assert response.status_code == 201
    created = response.json()
    assert created["expires_in"] == 300 and created["resend_after"] == 60
    [message] = await inbox(client, PARENT_PHONE)
    assert message["channel"] == "ed24_app"
    code = message["otp_code"]
    assert len(code) == 4 and code.isdigit()
    assert message["at"] == "2026-09-10T10:00:00+05:00"
    assert message["text"]["kk"] == f"ed24.kz: растау коды {code}. Кодты ешкімге бермеңіз."
    assert message["text"]["ru"] == f"ed24.kz: код подтверждения {code}. Никому не сообщайте код."
    assert "consent_id" not in message

    response = await _verify(client, created["otp_id"], code)
    assert response.status_code == 200
    assert response.json()["expires_in"] == 3600
    assert len(response.json()["session"]) >= 32
    # The same code a second time: already used.
    problem(await _verify(client, created["otp_id"], code), 410, "otp_expired")


@pytest.mark.parametrize("phone", ["87011234567", "+7701123456", "+770112345678", "+7701123456a"])
async def test_malformed_phone_is_phone_invalid(client: httpx.AsyncClient, phone: str) -> None:
    problem(await client.post("/otp", json={"phone": phone}), 422, "phone_invalid")


async def test_unicode_digits_are_not_a_phone(client: httpx.AsyncClient) -> None:
    phone = "+7701123456\u0661"  # ARABIC-INDIC DIGIT ONE
    problem(await client.post("/otp", json={"phone": phone}), 422, "phone_invalid")


async def test_numbers_ending_in_0000_are_not_registered(client: httpx.AsyncClient) -> None:
    response = await client.post("/otp", json={"phone": "+77010000000"})
    problem(response, 404, "phone_not_registered")
    assert await inbox(client, "+77010000000") == []


async def test_wrong_codes_count_down_then_lock(client: httpx.AsyncClient) -> None:
    otp_id = await _otp(client)
    code = await last_code(client, PARENT_PHONE)
    for left in (4, 3, 2, 1):
        body = problem(await _verify(client, otp_id, _wrong(code)), 422, "otp_invalid")
        assert body["attempts_left"] == left
    problem(await _verify(client, otp_id, _wrong(code)), 423, "otp_locked")
    # Locked for good, even with the right code.
    problem(await _verify(client, otp_id, code), 423, "otp_locked")


@pytest.mark.parametrize("code", ["12", "12345", "12a4", "١٢٣٤", " 123", ""])
async def test_anything_but_four_ascii_digits_is_a_wrong_code(
    client: httpx.AsyncClient, code: str
) -> None:
    otp_id = await _otp(client)
    body = problem(await _verify(client, otp_id, code), 422, "otp_invalid")
    assert body["attempts_left"] == 4


async def test_a_code_that_is_not_a_string_is_a_validation_error(
    client: httpx.AsyncClient,
) -> None:
    otp_id = await _otp(client)
    response = await _verify(client, otp_id, 1234)
    problem(response, 422, "validation_error")
    assert response.json()["errors"][0]["field"] == "code"


async def test_unknown_otp_is_not_found(client: httpx.AsyncClient) -> None:
    problem(await _verify(client, "otp_nope", "1234"), 404, "not_found")


async def test_code_expires_after_300_seconds(client: httpx.AsyncClient, clock: FakeClock) -> None:
    otp_id = await _otp(client)
    code = await last_code(client, PARENT_PHONE)
    clock.advance(300)
    problem(await _verify(client, otp_id, code), 410, "otp_expired")


async def test_lock_is_checked_before_expiry(client: httpx.AsyncClient, clock: FakeClock) -> None:
    otp_id = await _otp(client)
    code = await last_code(client, PARENT_PHONE)
    for _ in range(5):
        await _verify(client, otp_id, _wrong(code))
    clock.advance(301)
    problem(await _verify(client, otp_id, code), 423, "otp_locked")


async def test_resend_waits_60_seconds(client: httpx.AsyncClient, clock: FakeClock) -> None:
    await _otp(client)
    clock.advance(20)
    response = await client.post("/otp", json={"phone": PARENT_PHONE})
    problem(response, 429, "too_many_requests")
    assert response.headers["Retry-After"] == "40"
    clock.advance(40)
    await _otp(client)
    # Another phone is not affected.
    await _otp(client, OTHER_PHONE)


async def test_a_fourth_code_within_an_hour_is_refused(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    for _ in range(3):
        await _otp(client)
        clock.advance(100)
    # Codes at 0, 100 and 200 s; now 300 s: the first leaves the hour at 3600 s.
    response = await client.post("/otp", json={"phone": PARENT_PHONE})
    problem(response, 429, "too_many_requests")
    assert response.headers["Retry-After"] == "3300"
    clock.advance(3299)
    problem(await client.post("/otp", json={"phone": PARENT_PHONE}), 429, "too_many_requests")
    clock.advance(1)
    await _otp(client)
    assert len(await inbox(client, PARENT_PHONE)) == 4


async def test_a_new_code_replaces_the_old_one(client: httpx.AsyncClient, clock: FakeClock) -> None:
    first = await _otp(client)
    first_code = await last_code(client, PARENT_PHONE)
    clock.advance(60)
    second = await _otp(client)
    second_code = await last_code(client, PARENT_PHONE)
    problem(await _verify(client, first, first_code), 410, "otp_expired")
    assert (await _verify(client, second, second_code)).status_code == 200


async def test_session_lasts_an_hour(client: httpx.AsyncClient, clock: FakeClock) -> None:
    session = await login(client)
    headers = {"X-Session": session}
    clock.advance(3599)
    response = await client.post("/consents", json={"iin": PARENT_IIN}, headers=headers)
    assert response.status_code == 201
    clock.advance(1)
    response = await client.post("/consents", json={"iin": PARENT_IIN}, headers=headers)
    problem(response, 401, "session_invalid")


@pytest.mark.parametrize("headers", [{}, {"X-Session": ""}, {"X-Session": "made-up"}])
async def test_missing_or_unknown_session(client: httpx.AsyncClient, headers: dict) -> None:
    response = await client.post("/consents", json={"iin": PARENT_IIN}, headers=headers)
    problem(response, 401, "session_invalid")


async def test_session_is_checked_before_the_body(client: httpx.AsyncClient) -> None:
    response = await client.post("/consents", content=b"not json", headers={"X-Session": "x"})
    problem(response, 401, "session_invalid")


@pytest.mark.parametrize("params", [{}, {"phone": "87011234567"}, {"phone": " 77011234567"}])
async def test_inbox_needs_a_phone(client: httpx.AsyncClient, params: dict) -> None:
    response = await client.get("/sandbox/inbox", params=params)
    body = problem(response, 422, "validation_error")
    assert [error["field"] for error in body["errors"]] == ["phone"]
