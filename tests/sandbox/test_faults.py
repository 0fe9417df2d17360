"""The fault switches: injected failures and latency, intake, set at start or at run time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from types import SimpleNamespace

import httpx
import pytest

import services.voucher.sandbox.app as sandbox_app
from services.voucher.sandbox import RunningSandbox
from tests.sandbox.conftest import api_client
from tests.sandbox.helpers import PARENT_PHONE, error_fields, problem

Start = Callable[..., AbstractAsyncContextManager[RunningSandbox]]
DEFAULTS = {
    "latency_ms": 0,
    "failure_rate": 0.0,
    "retry_after": 1,
    "intake_closed": [],
    "consent_auto_answer_s": None,
}


async def test_defaults_and_partial_updates(client: httpx.AsyncClient) -> None:
    assert (await client.get("/sandbox/faults")).json() == DEFAULTS
    response = await client.post("/sandbox/faults", json={"retry_after": 7})
    assert response.json() == {**DEFAULTS, "retry_after": 7}
    response = await client.post(
        "/sandbox/faults",
        json={"intake_closed": ["special", "special"], "consent_auto_answer_s": 30},
    )
    expected = {
        **DEFAULTS,
        "retry_after": 7,
        "intake_closed": ["special"],
        "consent_auto_answer_s": 30,
    }
    assert response.json() == expected
    response = await client.post("/sandbox/faults", json={"consent_auto_answer_s": None})
    assert response.json() == {**expected, "consent_auto_answer_s": None}
    assert (await client.get("/sandbox/faults")).json() == {
        **expected,
        "consent_auto_answer_s": None,
    }


async def test_bad_switches(client: httpx.AsyncClient) -> None:
    for body, field in [
        ({"failure_rate": 1.5}, "failure_rate"),
        ({"latency_ms": -1}, "latency_ms"),
        ({"latency_ms": None}, "latency_ms"),
        ({"intake_closed": ["vip"]}, "intake_closed.0"),
        ({"chaos": True}, "chaos"),
    ]:
        assert error_fields(await client.post("/sandbox/faults", json=body)) == [field]
    assert (await client.get("/sandbox/faults")).json() == DEFAULTS


async def test_failure_rate_one_fails_every_endpoint_but_the_sandbox(
    client: httpx.AsyncClient,
) -> None:
    await client.post("/sandbox/faults", json={"failure_rate": 1.0, "retry_after": 9})
    for method, path in [
        ("POST", "/otp"),
        ("GET", "/catalog/queue-types"),
        ("GET", "/providers"),
        ("GET", "/applications/changes"),
        ("GET", "/applications/app_x"),
    ]:
        response = await client.request(method, path, json={"phone": PARENT_PHONE})
        problem(response, 503, "unavailable")
        assert response.headers["Retry-After"] == "9"
    inbox = await client.get("/sandbox/inbox", params={"phone": PARENT_PHONE})
    assert inbox.status_code == 200 and inbox.json() == []  # the OTP call never ran
    await client.post("/sandbox/faults", json={"failure_rate": 0})
    assert (await client.get("/catalog/queue-types")).status_code == 200


async def test_token_comes_before_injected_failures(client: httpx.AsyncClient) -> None:
    await client.post("/sandbox/faults", json={"failure_rate": 1.0})
    response = await client.get("/providers", headers={"Authorization": "Bearer wrong"})
    problem(response, 401, "unauthorized")


async def test_failure_rate_in_between_follows_the_rng(start: Start) -> None:
    async with start(failure_rate=0.5) as sandbox, api_client(sandbox) as client:
        statuses = [(await client.get("/catalog/queue-types")).status_code for _ in range(40)]
    assert set(statuses) == {200, 503}


async def test_switches_from_the_settings(start: Start) -> None:
    async with (
        start(failure_rate=1.0, retry_after=4, intake_closed=["general"]) as sandbox,
        api_client(sandbox) as client,
    ):
        response = await client.get("/providers")
        problem(response, 503, "unavailable")
        assert response.headers["Retry-After"] == "4"
        faults = (await client.get("/sandbox/faults")).json()
        assert faults["intake_closed"] == ["general"] and faults["failure_rate"] == 1.0


async def test_latency_delays_non_sandbox_endpoints(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The sandbox's sleeps are recorded (and still slept): "no delay" on /sandbox is then a
    # fact, not a wall-clock bound that a busy machine could break.
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        await asyncio.sleep(seconds)

    monkeypatch.setattr(sandbox_app, "asyncio", SimpleNamespace(sleep=sleep))
    await client.post("/sandbox/faults", json={"latency_ms": 150})
    started = time.perf_counter()
    assert (await client.get("/catalog/queue-types")).status_code == 200
    assert time.perf_counter() - started >= 0.15
    assert slept == [0.15]
    assert (await client.get("/sandbox/faults")).status_code == 200
    assert slept == [0.15]  # the sandbox's own endpoints are never delayed
