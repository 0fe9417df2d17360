"""A restart on the same SQLite file keeps every piece of state."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from services.clock import FakeClock
from services.voucher.sandbox import RunningSandbox
from tests.sandbox.conftest import api_client
from tests.sandbox.helpers import (
    CHILD_IIN,
    OTHER_PHONE,
    PARENT_IIN,
    PARENT_PHONE,
    PDF,
    application_body,
    grant,
    group_for_age,
    inbox,
    last_code,
    login,
    problem,
    submit,
    upload,
)

Start = Callable[..., AbstractAsyncContextManager[RunningSandbox]]


async def test_state_survives_a_restart(start: Start, clock: FakeClock) -> None:
    async with start() as sandbox, api_client(sandbox) as client:
        session = await login(client)
        consent_id = await grant(client, session, PARENT_IIN)
        await grant(client, session, CHILD_IIN)
        document = (await upload(client, session, PDF)).json()["document_id"]
        provider_id, group_id = await group_for_age(client, 8)
        body = application_body(provider_id, group_id, queue_type="special", documents=[document])
        created = (await submit(client, session, body, "before-restart")).json()
        await client.post(
            f"/sandbox/applications/{created['id']}/status",
            json={"status": "registered", "queue_position": 4},
        )
        pending = (await client.post("/otp", json={"phone": OTHER_PHONE})).json()["otp_id"]
        code = await last_code(client, OTHER_PHONE)
        feed = (await client.get("/applications/changes")).json()
        messages = await inbox(client, PARENT_PHONE)

    clock.advance(30)
    async with start() as sandbox, api_client(sandbox) as client:
        headers = {"X-Session": session}
        # Session and consents.
        response = await client.get(f"/consents/{consent_id}/person", headers=headers)
        assert response.status_code == 200 and response.json()["iin"] == PARENT_IIN
        # The pending OTP verifies, and its resend cooldown is still running.
        problem(await client.post("/otp", json={"phone": OTHER_PHONE}), 429, "too_many_requests")
        verified = await client.post(f"/otp/{pending}/verify", json={"code": code})
        assert verified.status_code == 200
        # Inbox, applications, changes feed and its cursors.
        assert await inbox(client, PARENT_PHONE) == messages
        assert (await client.get("/applications/changes")).json() == feed
        after = await client.get("/applications/changes", params={"after": feed["next"]})
        assert after.json() == {"items": [], "next": feed["next"]}
        application = (await client.get(f"/applications/{created['id']}")).json()
        assert application["status"] == "registered" and application["queue_position"] == 4
        # The idempotency key and the duplicate rule; documents still belong to the phone.
        replay = await submit(client, session, body, "before-restart")
        assert replay.status_code == 200 and replay.json() == created
        problem(await submit(client, session, body, "after-restart"), 409, "duplicate_application")
        # The number sequence goes on.
        general = application_body(provider_id, group_id)
        response = await submit(client, session, general, "general")
        assert response.json()["number"] == str(int(created["number"]) + 1)
