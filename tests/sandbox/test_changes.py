"""The changes feed and the staff side's status changes."""

from __future__ import annotations

from datetime import date

import httpx
import pytest

from services.clock import FakeClock
from services.voucher.models import ChangesPage
from tests.sandbox.helpers import (
    PARENT_IIN,
    application_body,
    error_fields,
    grant,
    group_for_age,
    login,
    make_iin,
    problem,
    submit,
)


async def _applications(client: httpx.AsyncClient, count: int) -> list[dict]:
    """`count` applications of different children, one second apart."""
    session = await login(client)
    await grant(client, session, PARENT_IIN)
    provider_id, group_id = await group_for_age(client, 8)
    created = []
    for index in range(count):
        child = make_iin(date(2018, 2, 1 + index), male=True, serial=10)
        await grant(client, session, child)
        body = application_body(provider_id, group_id, child_iin=child)
        created.append((await submit(client, session, body, f"app-{index}")).json())
    return created


async def _set(client: httpx.AsyncClient, app_id: str, **change: object) -> httpx.Response:
    return await client.post(f"/sandbox/applications/{app_id}/status", json=change)


async def _feed(client: httpx.AsyncClient, **params: object) -> ChangesPage:
    response = await client.get("/applications/changes", params=params)
    assert response.status_code == 200, response.text
    return ChangesPage.model_validate(response.json())


async def test_empty_feed_gives_a_start_cursor(client: httpx.AsyncClient) -> None:
    page = await _feed(client)
    assert page.items == [] and page.next
    again = await _feed(client, after=page.next)
    assert again.items == [] and again.next == page.next


async def test_every_change_in_order(client: httpx.AsyncClient, clock: FakeClock) -> None:
    first, second = await _applications(client, 2)
    clock.advance(60)
    await _set(client, first["id"], status="registered", queue_position=12)
    clock.advance(60)
    await _set(client, second["id"], status="rejected", reason={"kk": "Орын жоқ", "ru": "Нет мест"})
    clock.advance(60)
    await _set(client, first["id"], status="voucher_issued")

    page = await _feed(client)
    assert [(i.id, i.status) for i in page.items] == [
        (first["id"], "submitted"),
        (second["id"], "submitted"),
        (first["id"], "registered"),
        (second["id"], "rejected"),
        (first["id"], "voucher_issued"),
    ]
    assert page.items[2].queue_position == 12
    assert page.items[3].status_reason is not None and page.items[3].status_reason.ru == "Нет мест"
    issued = page.items[4]
    assert issued.queue_position == 12  # kept while the child stays in the queue
    assert issued.deadline is not None
    assert (issued.deadline - issued.changed_at).total_seconds() == 72 * 3600
    assert issued.changed_at.isoformat() == "2026-09-10T10:03:00+05:00"
    assert page.items[0].number == first["number"]
    assert page.next == page.items[-1].cursor
    assert len({i.cursor for i in page.items}) == 5


async def test_cursor_paging(client: httpx.AsyncClient) -> None:
    created = await _applications(client, 3)
    for app in created:
        await _set(client, app["id"], status="registered", queue_position=1)
    seen = []
    cursor = None
    for _ in range(10):
        params = {"limit": 2} if cursor is None else {"limit": 2, "after": cursor}
        page = await _feed(client, **params)
        if not page.items:
            assert page.next == cursor  # nothing new: the given cursor comes back
            break
        assert len(page.items) <= 2
        seen += [(i.id, i.status) for i in page.items]
        cursor = page.next
    assert len(seen) == 6 and len(set(seen)) == 6
    # A later change shows up after the last cursor.
    await _set(client, created[0]["id"], status="cancelled")
    page = await _feed(client, after=cursor)
    assert [(i.id, i.status) for i in page.items] == [(created[0]["id"], "cancelled")]


@pytest.mark.parametrize("cursor", ["garbage", "", "Y2hnOi0x", "%%%", "Y2hnOjA="])
async def test_bad_cursor(client: httpx.AsyncClient, cursor: str) -> None:
    response = await client.get("/applications/changes", params={"after": cursor})
    assert error_fields(response) == ["after"]


@pytest.mark.parametrize("limit", ["0", "1001", "many"])
async def test_bad_limit(client: httpx.AsyncClient, limit: str) -> None:
    response = await client.get("/applications/changes", params={"limit": limit})
    assert error_fields(response) == ["limit"]


async def test_changes_route_is_not_an_application_id(client: httpx.AsyncClient) -> None:
    response = await client.get("/applications/changes")
    assert response.status_code == 200 and "items" in response.json()


async def test_status_change_answers_with_the_application(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    [app] = await _applications(client, 1)
    clock.advance(3600)
    response = await _set(
        client,
        app["id"],
        status="voucher_issued",
        queue_position=3,
        deadline="2026-09-20T18:00:00+05:00",
        reason={"kk": "Жолдама берілді", "ru": "Ваучер выдан"},
    )
    assert response.status_code == 200
    assert response.json() == {
        "id": app["id"],
        "number": app["number"],
        "status": "voucher_issued",
        "queue_position": 3,
        "status_reason": {"kk": "Жолдама берілді", "ru": "Ваучер выдан"},
        "deadline": "2026-09-20T18:00:00+05:00",
        "updated_at": "2026-09-10T11:00:00+05:00",
    }
    # The reason lasts until the next change; any status may follow any other.
    response = await _set(client, app["id"], status="submitted")
    body = response.json()
    assert body["status"] == "submitted"
    assert body["status_reason"] is None and body["deadline"] is None
    assert body["queue_position"] is None
    read = (await client.get(f"/applications/{app['id']}")).json()
    assert read == body


async def test_status_change_errors(client: httpx.AsyncClient) -> None:
    [app] = await _applications(client, 1)
    problem(await _set(client, "app_nope", status="registered"), 404, "not_found")
    assert error_fields(await _set(client, app["id"], status="lost")) == ["status"]
    response = await _set(client, app["id"], status="registered", queue_position=0)
    assert error_fields(response) == ["queue_position"]
    response = await _set(client, app["id"], status="rejected", reason="no")
    assert error_fields(response) == ["reason"]
