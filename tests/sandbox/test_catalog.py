"""Step 3: queue types, state order types, providers and groups."""

from __future__ import annotations

import httpx
import pytest

from services.voucher.models import Group, ProviderPage, QueueType, StateOrderType
from tests.sandbox.helpers import error_fields, problem


async def _all_providers(client: httpx.AsyncClient, **params: object) -> ProviderPage:
    response = await client.get("/providers", params={"per_page": 100, **params})
    assert response.status_code == 200, response.text
    return ProviderPage.model_validate(response.json())


async def test_queue_types(client: httpx.AsyncClient) -> None:
    response = await client.get("/catalog/queue-types")
    types = [QueueType.model_validate(item) for item in response.json()]
    assert [t.code for t in types] == ["general", "special"]
    assert types[0].title.kk == "Жалпы кезек" and types[0].title.ru == "Общая очередь"
    assert all(t.description.kk and t.description.ru for t in types)


async def test_state_order_types(client: httpx.AsyncClient) -> None:
    response = await client.get("/catalog/state-order-types")
    types = [StateOrderType.model_validate(item) for item in response.json()]
    assert len(types) >= 2
    assert len({t.code for t in types}) == len(types)
    assert all(t.title.kk and t.title.ru and t.title.kk != t.title.ru for t in types)


async def test_at_least_30_providers_with_2_to_6_groups(client: httpx.AsyncClient) -> None:
    page = await _all_providers(client)
    assert page.total >= 30 and len(page.items) == page.total
    assert [p.id for p in page.items] == sorted(p.id for p in page.items)
    names = set()
    for provider in page.items:
        assert provider.name.kk and provider.name.ru and provider.address
        response = await client.get(f"/providers/{provider.id}/groups")
        groups = [Group.model_validate(item) for item in response.json()]
        assert 2 <= len(groups) <= 6
        for group in groups:
            assert 3 <= group.age_min <= group.age_max <= 18
            assert group.seats_free >= 0
            names.add(group.name.ru)
    assert {"Домбра", "Шахматы", "Бокс", "Робототехника"} <= names


async def test_some_groups_are_full_and_both_languages_are_taught(
    client: httpx.AsyncClient,
) -> None:
    page = await _all_providers(client)
    groups = []
    for provider in page.items:
        groups += (await client.get(f"/providers/{provider.id}/groups")).json()
    assert any(g["seats_free"] == 0 for g in groups)
    assert {g["language"] for g in groups} == {"kk", "ru"}


async def test_paging_is_stable_and_a_page_past_the_end_is_empty(
    client: httpx.AsyncClient,
) -> None:
    everything = await _all_providers(client)
    first = (await client.get("/providers", params={"page": 1, "per_page": 7})).json()
    second = (await client.get("/providers", params={"page": 2, "per_page": 7})).json()
    assert [p["id"] for p in first["items"] + second["items"]] == [
        p.id for p in everything.items[:14]
    ]
    assert first["total"] == everything.total
    default = (await client.get("/providers")).json()
    assert len(default["items"]) == 10
    past = (await client.get("/providers", params={"page": 99, "per_page": 10})).json()
    assert past == {"items": [], "total": everything.total}


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("шахмат", "Шахматный клуб «Ак тура»"),  # ru, lower case
        ("ШАХМАТ КЛУБЫ", "Шахматный клуб «Ак тура»"),  # kk, upper case
        ("  музыка мектебі ", "Детская музыкальная школа №5"),  # trimmed kk
        ("дворец школьников", "Дворец школьников «Жас дарын»"),
        ("robolab", "Клуб робототехники «RoboLab»"),
    ],
)
async def test_search_in_either_language(client: httpx.AsyncClient, q: str, expected: str) -> None:
    found = await _all_providers(client, q=q)
    assert expected in [p.name.ru for p in found.items]
    assert found.total == len(found.items)
    folded = q.strip().casefold()
    for provider in found.items:
        assert folded in provider.name.kk.casefold() or folded in provider.name.ru.casefold()


async def test_search_keeps_the_order_and_counts_all_matches(client: httpx.AsyncClient) -> None:
    everything = await _all_providers(client)
    found = await _all_providers(client, q="№")
    assert [p.id for p in found.items] == [p.id for p in everything.items if "№" in p.name.ru]
    one = (await client.get("/providers", params={"q": "№", "per_page": 1})).json()
    assert one["total"] == found.total > 1 and len(one["items"]) == 1
    nothing = (await client.get("/providers", params={"q": "zzzz"})).json()
    assert nothing == {"items": [], "total": 0}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"page": 0}, "page"),
        ({"page": "x"}, "page"),
        ({"per_page": 0}, "per_page"),
        ({"per_page": 101}, "per_page"),
        ({"per_page": "1.5"}, "per_page"),
    ],
)
async def test_bad_paging_is_a_validation_error(
    client: httpx.AsyncClient, params: dict, field: str
) -> None:
    assert error_fields(await client.get("/providers", params=params)) == [field]


async def test_groups_of_an_unknown_provider(client: httpx.AsyncClient) -> None:
    problem(await client.get("/providers/prv-999/groups"), 404, "not_found")
