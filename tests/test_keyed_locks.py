"""Per-key locks: the same key waits, another key does not, the table forgets unused keys."""

from __future__ import annotations

import asyncio

from services.keyed_locks import KeyedLocks


async def test_same_key_waits_other_key_does_not() -> None:
    locks: KeyedLocks[int] = KeyedLocks()
    release = asyncio.Event()
    order: list[str] = []

    async def holder() -> None:
        async with locks(1):
            order.append("first in")
            await release.wait()
            order.append("first out")

    async def same_key() -> None:
        async with locks(1):
            order.append("same key in")

    async def other_key() -> None:
        async with locks(2):
            order.append("other key in")

    first = asyncio.create_task(holder())
    await asyncio.sleep(0)
    waiting = asyncio.create_task(same_key())
    await other_key()  # not blocked by key 1
    assert order == ["first in", "other key in"]
    assert len(locks) == 1  # key 2 already forgotten; key 1 held and waited for
    release.set()
    await asyncio.gather(first, waiting)
    assert order == ["first in", "other key in", "first out", "same key in"]
    assert len(locks) == 0


async def test_an_error_inside_releases_the_key() -> None:
    locks: KeyedLocks[str] = KeyedLocks()
    try:
        async with locks("k"):
            raise ValueError("boom")
    except ValueError:
        pass
    assert len(locks) == 0
    async with locks("k"):
        assert len(locks) == 1
