"""The catalogue cache: queue types, state order types, providers and groups, read by every
parent, are asked of the service once per TTL; requests are counted on the scripted server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import ValidationError

from services.voucher.catalog_cache import TtlCache
from services.voucher.errors import NotFound, ServiceUnavailable
from tests.voucher.conftest import MakeClient
from tests.voucher.scripted_server import FaultServer, Reply, problem, unavailable

TITLE = {"kk": "Жалпы", "ru": "Общая"}
QUEUE_TYPES = [{"code": "general", "title": TITLE, "description": TITLE}]
ORDER_TYPES = [{"code": "sport", "title": TITLE}]
GROUPS = [
    {
        "id": "g-1",
        "name": TITLE,
        "language": "kk",
        "age_min": 7,
        "age_max": 10,
        "seats_free": 3,
    }
]
PROVIDERS = {"items": [{"id": "p-1", "name": TITLE, "address": "Абай 1"}], "total": 1}


class Ticks:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ticks() -> Ticks:
    return Ticks()


# --- through the client, counted on the server -------------------------------------------------


async def test_a_hit_sends_no_request(
    server: FaultServer, make_client: MakeClient, ticks: Ticks
) -> None:
    voucher = make_client(monotonic=ticks)
    server.script(Reply(200, QUEUE_TYPES))
    first = await voucher.list_queue_types()
    server.script(Reply(200, ORDER_TYPES))
    orders = await voucher.list_state_order_types()
    server.script(Reply(200, PROVIDERS))
    page = await voucher.list_providers(None, 1, 10)
    server.script(Reply(200, GROUPS))
    groups = await voucher.list_groups("p-1")
    assert len(server.seen) == 4

    ticks.now += 59  # within both TTLs
    assert await voucher.list_queue_types() == first
    assert await voucher.list_state_order_types() == orders
    assert await voucher.list_providers(None, 1, 10) == page
    assert await voucher.list_groups("p-1") == groups
    assert len(server.seen) == 4


async def test_entries_are_kept_per_arguments(server: FaultServer, make_client: MakeClient) -> None:
    voucher = make_client()
    calls = [
        lambda: voucher.list_providers(None, 1, 10),
        lambda: voucher.list_providers(None, 2, 10),
        lambda: voucher.list_providers(None, 1, 50),
        lambda: voucher.list_providers("дом", 1, 10),
    ]
    server.script(Reply(200, PROVIDERS))
    for call in calls:
        await call()
    server.script(Reply(200, GROUPS))
    await voucher.list_groups("p-1")
    await voucher.list_groups("p-2")
    assert len(server.seen) == 6
    for call in calls:
        await call()
    await voucher.list_groups("p-2")
    assert len(server.seen) == 6
    assert server.seen[3].raw_path.endswith("&q=%D0%B4%D0%BE%D0%BC")


async def test_entries_expire_after_their_ttl(
    server: FaultServer, make_client: MakeClient, ticks: Ticks
) -> None:
    voucher = make_client(monotonic=ticks, catalog_ttl=600, listing_ttl=60)
    server.script(Reply(200, QUEUE_TYPES))
    await voucher.list_queue_types()
    server.script(Reply(200, GROUPS))
    await voucher.list_groups("p-1")
    assert len(server.seen) == 2

    ticks.now += 60  # the listing's TTL is over, the catalogue's is not
    await voucher.list_groups("p-1")
    await voucher.list_queue_types()
    assert [s.raw_path for s in server.seen[2:]] == ["/api/v1/providers/p-1/groups"]

    ticks.now += 540  # 600 s after the first read
    server.script(Reply(200, QUEUE_TYPES))
    await voucher.list_queue_types()
    await voucher.list_queue_types()
    assert [s.raw_path for s in server.seen[3:]] == ["/api/v1/catalog/queue-types"]


async def test_concurrent_misses_share_one_request(
    server: FaultServer, make_client: MakeClient
) -> None:
    server.script(Reply(200, GROUPS, hang=True))
    voucher = make_client()
    parents = [asyncio.create_task(voucher.list_groups("p-1")) for _ in range(20)]
    await asyncio.wait_for(server.hanging.wait(), 5)  # every parent is waiting by now
    server.release()

    answers = await asyncio.gather(*parents)

    assert len(server.seen) == 1
    assert all(len(groups) == 1 and groups[0].id == "g-1" for groups in answers)


async def test_errors_are_not_cached(server: FaultServer, make_client: MakeClient) -> None:
    voucher = make_client(max_attempts=1)
    server.script(problem(404, "not_found"), unavailable("1"), Reply(200, GROUPS))
    with pytest.raises(NotFound):
        await voucher.list_groups("p-1")
    with pytest.raises(ServiceUnavailable):
        await voucher.list_groups("p-1")

    assert len(await voucher.list_groups("p-1")) == 1
    assert len(await voucher.list_groups("p-1")) == 1  # the success, though, is kept
    assert len(server.seen) == 3


async def test_a_shared_failure_reaches_every_waiter_and_is_not_kept(
    server: FaultServer, make_client: MakeClient
) -> None:
    server.script(Reply(404, problem(404, "not_found").body, hang=True), Reply(200, GROUPS))
    voucher = make_client()
    parents = [asyncio.create_task(voucher.list_groups("p-1")) for _ in range(5)]
    await asyncio.wait_for(server.hanging.wait(), 5)
    server.release()

    outcomes = await asyncio.gather(*parents, return_exceptions=True)

    assert len(server.seen) == 1
    assert all(isinstance(outcome, NotFound) for outcome in outcomes)
    assert len(await voucher.list_groups("p-1")) == 1
    assert len(server.seen) == 2


async def test_a_cancelled_caller_does_not_cancel_the_others_request(
    server: FaultServer, make_client: MakeClient
) -> None:
    server.script(Reply(200, QUEUE_TYPES, hang=True))
    voucher = make_client()
    first = asyncio.create_task(voucher.list_queue_types())  # the one whose miss sends it
    second = asyncio.create_task(voucher.list_queue_types())
    await asyncio.wait_for(server.hanging.wait(), 5)
    first.cancel()
    server.release()

    assert len(await second) == 1
    with pytest.raises(asyncio.CancelledError):
        await first
    assert len(server.seen) == 1


async def test_callers_get_values_of_their_own(
    server: FaultServer, make_client: MakeClient
) -> None:
    voucher = make_client()
    server.script(Reply(200, QUEUE_TYPES))
    mine = await voucher.list_queue_types()
    mine.clear()  # a caller may do what it likes with its list...
    server.script(Reply(200, PROVIDERS))
    page = await voucher.list_providers()
    page.items.clear()
    # ...and the models in it are frozen, so the shared ones cannot change at all.
    server.script(Reply(200, GROUPS))
    group = (await voucher.list_groups("p-1"))[0]
    with pytest.raises(ValidationError):
        group.seats_free = 0  # type: ignore[misc]

    assert len(await voucher.list_queue_types()) == 1
    assert len((await voucher.list_providers()).items) == 1
    assert (await voucher.list_groups("p-1"))[0].seats_free == 3
    assert len(server.seen) == 3


async def test_the_least_recently_used_entry_goes_first(
    server: FaultServer, make_client: MakeClient
) -> None:
    server.script(Reply(200, GROUPS))
    voucher = make_client(cache_entries=2)
    for provider in ("p-1", "p-2", "p-1", "p-3"):  # p-2 is the least recently used at p-3
        await voucher.list_groups(provider)
    assert len(server.seen) == 3
    await voucher.list_groups("p-1")
    await voucher.list_groups("p-3")
    assert len(server.seen) == 3
    await voucher.list_groups("p-2")
    assert server.seen[-1].raw_path == "/api/v1/providers/p-2/groups"
    assert len(server.seen) == 4


async def test_a_ttl_of_zero_turns_the_cache_off(
    server: FaultServer, make_client: MakeClient
) -> None:
    voucher = make_client(catalog_ttl=0, listing_ttl=0)
    server.script(Reply(200, QUEUE_TYPES))
    await voucher.list_queue_types()
    await voucher.list_queue_types()
    server.script(Reply(200, GROUPS))
    await voucher.list_groups("p-1")
    await voucher.list_groups("p-1")
    assert len(server.seen) == 4


# --- the cache alone ---------------------------------------------------------------------------


async def test_clear_forgets_entries_and_does_not_keep_a_load_in_flight(ticks: Ticks) -> None:
    cache: TtlCache[int] = TtlCache(10, monotonic=ticks)
    loads = 0
    started, gate = asyncio.Event(), asyncio.Event()

    async def load() -> int:
        nonlocal loads
        loads += 1
        started.set()
        await gate.wait()
        return loads

    gate.set()
    assert await cache.get("k", load) == 1
    cache.clear()
    assert len(cache) == 0
    started.clear()
    gate.clear()
    in_flight = asyncio.create_task(cache.get("k", load))
    await asyncio.wait_for(started.wait(), 5)
    cache.clear()
    gate.set()
    assert await in_flight == 2  # its caller is answered...
    assert len(cache) == 0  # ...but what was loaded before the clear is not kept


def test_the_cache_needs_room_for_one_entry() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        TtlCache[Any](10, max_entries=0)


async def test_clear_cache_makes_the_next_reads_ask_the_service(
    server: FaultServer, make_client: MakeClient
) -> None:
    voucher = make_client()
    server.script(Reply(200, QUEUE_TYPES))
    await voucher.list_queue_types()
    server.script(Reply(200, GROUPS))
    await voucher.list_groups("p-1")
    voucher.clear_cache()
    await voucher.list_groups("p-1")
    server.script(Reply(200, QUEUE_TYPES))
    await voucher.list_queue_types()
    assert len(server.seen) == 4
