"""Test helpers: valid IINs on demand and the contract's steps as one-line calls."""

from __future__ import annotations

from datetime import date
from typing import Any

import httpx

from services.validation import iin_check_digit

PARENT_PHONE = "+77011234567"
OTHER_PHONE = "+77027654321"
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"


def make_iin(born: date, *, male: bool, serial: int = 1) -> str:
    """A valid IIN for this birth date and sex (the serial is moved past invalid ones)."""
    century = {18: 1, 19: 3, 20: 5}[born.year // 100] + (0 if male else 1)
    for candidate in range(serial, serial + 100):
        first11 = f"{born:%y%m%d}{century}{candidate:04d}"
        check = iin_check_digit(first11)
        if check is not None:
            return first11 + str(check)
    raise AssertionError("no valid IIN near this serial")


PARENT_IIN = make_iin(date(1988, 4, 12), male=False, serial=5933)
CHILD_IIN = make_iin(date(2018, 3, 15), male=True, serial=711)  # 8 on 1 September 2026


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Assert a problem+json answer with this status and code; return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["type"] == "about:blank"
    assert body["status"] == status
    assert body["code"] == code
    assert body["title"] and body["detail"]
    return body


def error_fields(response: httpx.Response) -> list[str]:
    """The `field`s of a 422 validation_error."""
    body = problem(response, 422, "validation_error")
    return [error["field"] for error in body["errors"]]


async def inbox(client: httpx.AsyncClient, phone: str) -> list[dict[str, Any]]:
    response = await client.get("/sandbox/inbox", params={"phone": phone})
    assert response.status_code == 200, response.text
    return response.json()


async def last_code(client: httpx.AsyncClient, phone: str) -> str:
    messages = [m for m in await inbox(client, phone) if m["channel"] == "ed24_app"]
    return messages[-1]["otp_code"]


async def login(client: httpx.AsyncClient, phone: str = PARENT_PHONE) -> str:
    """Steps of /otp and /otp/{id}/verify; the session."""
    response = await client.post("/otp", json={"phone": phone})
    assert response.status_code == 201, response.text
    otp_id = response.json()["otp_id"]
    code = await last_code(client, phone)
    response = await client.post(f"/otp/{otp_id}/verify", json={"code": code})
    assert response.status_code == 200, response.text
    return response.json()["session"]


async def ask_consent(client: httpx.AsyncClient, session: str, iin: str) -> str:
    response = await client.post("/consents", json={"iin": iin}, headers={"X-Session": session})
    assert response.status_code == 201, response.text
    return response.json()["consent_id"]


async def grant(client: httpx.AsyncClient, session: str, iin: str) -> str:
    """A granted consent for this IIN in this session."""
    consent_id = await ask_consent(client, session, iin)
    response = await client.post(f"/sandbox/consents/{consent_id}", json={"answer": "yes"})
    assert response.status_code == 200, response.text
    return consent_id


async def upload(
    client: httpx.AsyncClient, session: str, content: bytes, kind: str = "disability"
) -> httpx.Response:
    return await client.post(
        "/documents",
        files={"file": ("scan.pdf", content, "application/octet-stream")},
        data={"kind": kind},
        headers={"X-Session": session},
    )


# The catalogue is fixed, so one walk through it serves every test of the run.
_CATALOGUE: list[tuple[str, dict[str, Any]]] = []


async def all_groups(client: httpx.AsyncClient) -> list[tuple[str, dict[str, Any]]]:
    """(provider_id, group) for every group of the catalogue, read over HTTP once."""
    if not _CATALOGUE:
        response = await client.get("/providers", params={"per_page": 100})
        for provider in response.json()["items"]:
            groups = (await client.get(f"/providers/{provider['id']}/groups")).json()
            _CATALOGUE.extend((provider["id"], group) for group in groups)
    return _CATALOGUE


async def group_for_age(client: httpx.AsyncClient, age: int) -> tuple[str, str]:
    """(provider_id, group_id) of some group taking children of this age."""
    for provider_id, group in await all_groups(client):
        if group["age_min"] <= age <= group["age_max"]:
            return provider_id, group["id"]
    raise AssertionError(f"no group for age {age}")


async def group_excluding_age(client: httpx.AsyncClient, age: int) -> tuple[str, str]:
    """(provider_id, group_id) of some group whose age range leaves this age out."""
    for provider_id, group in await all_groups(client):
        if not group["age_min"] <= age <= group["age_max"]:
            return provider_id, group["id"]
    raise AssertionError(f"every group takes age {age}")


def application_body(
    provider_id: str,
    group_id: str,
    *,
    parent_iin: str = PARENT_IIN,
    child_iin: str = CHILD_IIN,
    phone: str = PARENT_PHONE,
    queue_type: str = "general",
    documents: list[str] | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "parent": {"iin": parent_iin, "phone": phone},
        "child": {"iin": child_iin},
        "queue_type": queue_type,
        "state_order_type": "full",
        "provider_id": provider_id,
        "group_id": group_id,
        "documents": documents or [],
        "notification": {"channel": "telegram", "language": "kk"},
        "consents": {"personal_data": True, "contact_use": True, "offer": True},
        "telegram_chat_id": 123456789,
    }
    body.update(overrides)
    return body


async def submit(
    client: httpx.AsyncClient, session: str, body: dict[str, Any], key: str
) -> httpx.Response:
    return await client.post(
        "/applications", json=body, headers={"X-Session": session, "Idempotency-Key": key}
    )
