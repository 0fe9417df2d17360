"""Step 3: the queue preview — academic year, age bands, the group's ages, documents."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import date, datetime
from typing import Any

import httpx
import pytest

from services.clock import ALMATY, FakeClock
from services.voucher.sandbox import RunningSandbox
from tests.sandbox.conftest import api_client
from tests.sandbox.helpers import (
    CHILD_IIN,
    OTHER_PHONE,
    PDF,
    error_fields,
    group_excluding_age,
    group_for_age,
    login,
    make_iin,
    problem,
    upload,
)

Start = Callable[..., AbstractAsyncContextManager[RunningSandbox]]


async def _preview(client: httpx.AsyncClient, session: str, **fields: Any) -> httpx.Response:
    body = {
        "child_iin": CHILD_IIN,
        "queue_type": "general",
        "state_order_type": "full",
        "documents": [],
        **fields,
    }
    return await client.post("/queue/preview", json=body, headers={"X-Session": session})


async def test_general_queue_for_an_eight_year_old(client: httpx.AsyncClient) -> None:
    session = await login(client)
    _, group_id = await group_for_age(client, 8)
    response = await _preview(client, session, group_id=group_id)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "queue": {
            "code": "general-7-10",
            "title": {"kk": "Жалпы кезек, 7–10 жас", "ru": "Общая очередь, 7–10 лет"},
        },
        "age_on_sept_1": 8,
        "academic_year": "2026-2027",
    }


@pytest.mark.parametrize(
    ("today", "year", "age"),
    [
        # The child was born on 15 March 2018.
        (datetime(2026, 5, 31, 23, 59, tzinfo=ALMATY), "2025-2026", 7),
        (datetime(2026, 6, 1, 0, 0, tzinfo=ALMATY), "2026-2027", 8),
        (datetime(2027, 1, 15, 12, 0, tzinfo=ALMATY), "2026-2027", 8),
    ],
)
async def test_academic_year_turns_on_1_june(
    client: httpx.AsyncClient, clock: FakeClock, today: datetime, year: str, age: int
) -> None:
    clock.set(today)
    session = await login(client)
    _, group_id = await group_for_age(client, age)
    response = await _preview(client, session, group_id=group_id)
    assert response.json()["academic_year"] == year
    assert response.json()["age_on_sept_1"] == age


async def test_bands_from_the_settings(start: Start) -> None:
    async with start(age_bands=[(3, 8), (9, 18)]) as sandbox, api_client(sandbox) as client:
        session = await login(client)
        _, group_id = await group_for_age(client, 8)
        response = await _preview(client, session, group_id=group_id, queue_type="special")
        problem(response, 422, "document_required")
        document = (await upload(client, session, PDF, "disability")).json()["document_id"]
        response = await _preview(
            client, session, group_id=group_id, queue_type="special", documents=[document]
        )
        assert response.json()["queue"] == {
            "code": "special-3-8",
            "title": {"kk": "Арнайы кезек, 3–8 жас", "ru": "Специальная очередь, 3–8 лет"},
        }


async def test_age_in_no_band(start: Start) -> None:
    async with start(age_bands=[(3, 6), (9, 18)]) as sandbox, api_client(sandbox) as client:
        session = await login(client)
        _, group_id = await group_for_age(client, 8)
        problem(await _preview(client, session, group_id=group_id), 422, "age_out_of_range")


async def test_group_that_does_not_take_the_childs_age(client: httpx.AsyncClient) -> None:
    session = await login(client)
    _, group_id = await group_excluding_age(client, 8)
    problem(await _preview(client, session, group_id=group_id), 422, "age_out_of_range")


async def test_age_out_of_range_comes_before_document_required(
    client: httpx.AsyncClient,
) -> None:
    session = await login(client)
    toddler = make_iin(date(2024, 5, 1), male=False)  # 2 on 1 September 2026
    _, group_id = await group_for_age(client, 8)
    response = await _preview(
        client, session, child_iin=toddler, group_id=group_id, queue_type="special"
    )
    problem(response, 422, "age_out_of_range")


async def test_special_queue_needs_a_disability_document_of_this_phone(
    client: httpx.AsyncClient,
) -> None:
    session = await login(client)
    other = await login(client, OTHER_PHONE)
    _, group_id = await group_for_age(client, 8)
    benefit = (await upload(client, session, PDF, "benefit")).json()["document_id"]
    foreign = (await upload(client, other, PDF, "disability")).json()["document_id"]
    for documents in ([], [benefit], [foreign]):
        response = await _preview(
            client, session, group_id=group_id, queue_type="special", documents=documents
        )
        problem(response, 422, "document_required")
    mine = (await upload(client, session, PDF, "disability")).json()["document_id"]
    response = await _preview(
        client, session, group_id=group_id, queue_type="special", documents=[benefit, mine]
    )
    assert response.json()["queue"]["code"] == "special-7-10"


async def test_malformed_fields(client: httpx.AsyncClient) -> None:
    session = await login(client)
    _, group_id = await group_for_age(client, 8)
    assert error_fields(await _preview(client, session, group_id="grp-nope")) == ["group_id"]
    response = await _preview(client, session, group_id=group_id, child_iin="123")
    assert error_fields(response) == ["child_iin"]
    response = await _preview(client, session, group_id=group_id, queue_type="vip")
    assert error_fields(response) == ["queue_type"]
    response = await _preview(client, session, group_id=group_id, state_order_type="gift")
    assert error_fields(response) == ["state_order_type"]
    response = await _preview(client, session, group_id=group_id, extra=1)
    assert error_fields(response) == ["extra"]
    response = await client.post(
        "/queue/preview", json={"child_iin": CHILD_IIN}, headers={"X-Session": session}
    )
    assert set(error_fields(response)) == {"queue_type", "state_order_type", "group_id"}


async def test_preview_needs_a_session(client: httpx.AsyncClient) -> None:
    problem(await client.post("/queue/preview", json={}), 401, "session_invalid")
