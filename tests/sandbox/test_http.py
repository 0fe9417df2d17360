"""HTTP-level behaviour: the token first, problem+json for 404/405/422, the access log."""

from __future__ import annotations

import logging

import httpx
import pytest

from services.voucher.sandbox import RunningSandbox
from tests.sandbox.conftest import api_client, tls_context
from tests.sandbox.helpers import PARENT_IIN, PARENT_PHONE, error_fields, login, problem

ROUTES = [
    ("GET", "/providers"),
    ("GET", "/no/such/route"),  # 401 even before 404
    ("DELETE", "/otp"),  # and before 405
    ("GET", "/sandbox/faults"),  # the sandbox needs the token too
    ("POST", "/consents"),  # and before the session
    ("GET", ""),
]


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "Basic c2FuZGJveA==", "Bearer"])
async def test_token_is_checked_before_anything(
    sandbox: RunningSandbox, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    async with httpx.AsyncClient(verify=tls_context()) as http:
        for method, path in ROUTES:
            response = await http.request(method, sandbox.base_url + path, headers=headers)
            problem(response, 401, "unauthorized")
            assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_other_token(start) -> None:  # type: ignore[no-untyped-def]
    async with start(token="s3cret") as sandbox:
        async with api_client(sandbox, "sandbox-token") as client:
            problem(await client.get("/providers"), 401, "unauthorized")
        async with api_client(sandbox) as client:
            assert sandbox.token == "s3cret"
            assert (await client.get("/providers")).status_code == 200


async def test_unknown_route_is_a_problem(client: httpx.AsyncClient) -> None:
    problem(await client.get("/no/such/route"), 404, "not_found")
    problem(await client.get("/providers/prv-001/groups/extra"), 404, "not_found")


async def test_wrong_method_is_a_problem(client: httpx.AsyncClient) -> None:
    response = await client.delete("/otp")
    problem(response, 405, "method_not_allowed")
    assert response.headers["Allow"] == "POST"


@pytest.mark.parametrize(
    ("content", "field"),
    [
        (b"", "body"),
        (b"{", "body"),
        (b"[1, 2]", "body"),
        (b'"+77011234567"', "body"),
        (b'{"phone": NaN}', "body"),
        (b"\xff\xfe", "body"),
        (b"{}", "phone"),
        (b'{"phone": "+77011234567", "x": 1}', "x"),
        (b'{"phone": 77011234567}', "phone"),
    ],
)
async def test_malformed_json_or_fields(
    client: httpx.AsyncClient, content: bytes, field: str
) -> None:
    response = await client.post(
        "/otp", content=content, headers={"Content-Type": "application/json"}
    )
    assert error_fields(response) == [field]
    assert all(error["message"] for error in response.json()["errors"])


async def test_access_log_has_one_line_per_request_without_personal_data(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="services.voucher.sandbox"):
        session = await login(client)
        await client.post("/consents", json={"iin": PARENT_IIN}, headers={"X-Session": session})
        await client.get("/no/route/77011234567")
    lines = [r.getMessage() for r in caplog.records if r.name == "services.voucher.sandbox"]
    assert len(lines) == 5
    assert lines[0].startswith("POST /api/v1/otp 201 ")
    assert lines[1].startswith("GET /api/v1/sandbox/inbox 200 ")
    assert lines[2].startswith("POST /api/v1/otp/{otp_id}/verify 200 ")
    assert lines[3].startswith("POST /api/v1/consents 201 ")
    assert lines[4].startswith("GET /api/v1/no/route/… 404 ")
    assert all(line.endswith("ms") for line in lines)
    inbox = (await client.get("/sandbox/inbox", params={"phone": PARENT_PHONE})).json()
    secrets = [PARENT_PHONE, PARENT_PHONE[1:], "%2B", PARENT_IIN, session, inbox[0]["otp_code"]]
    for line in lines:
        for secret in secrets:
            assert secret not in line


async def test_json_body_over_1_mib_is_too_large(client: httpx.AsyncClient) -> None:
    content = b'{"phone": "' + b"7" * (1024 * 1024) + b'"}'
    response = await client.post(
        "/otp", content=content, headers={"Content-Type": "application/json"}
    )
    problem(response, 413, "request_too_large")
