"""A small in-process cache for the voucher catalogue, which is the same for every parent.

Every parent reads the queue types, the state order types, a few pages of providers and one
provider's groups: 4–5 of the ~15 voucher calls of a whole conversation, with the same answer
for all of them. Entries expire after a TTL on a monotonic clock (injectable for tests), the
cache holds at most `max_entries` (least recently used out first), errors are never kept, and
concurrent misses of one key share a single request, so a rush does not stampede the service.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")
Monotonic = Callable[[], float]


class TtlCache(Generic[V]):
    """Values by key for `ttl` seconds, LRU-bounded; one load at a time per key."""

    def __init__(
        self, ttl: float, max_entries: int = 256, monotonic: Monotonic = time.monotonic
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._ttl = ttl
        self._max_entries = max_entries
        self._monotonic = monotonic
        # key -> (expires at, value); the most recently used entry is last.
        self._entries: OrderedDict[Hashable, tuple[float, V]] = OrderedDict()
        self._loading: dict[Hashable, asyncio.Task[V]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: Hashable, load: Callable[[], Awaitable[V]]) -> V:
        """The fresh cached value of `key`, or what `load()` returns (kept only on success)."""
        if self._ttl <= 0:
            return await load()
        entry = self._entries.get(key)
        if entry is not None:
            if entry[0] > self._monotonic():
                self._entries.move_to_end(key)
                return entry[1]
            del self._entries[key]
        task = self._loading.get(key)
        if task is None:
            # A task of its own, not the first caller's coroutine: if that caller is cancelled
            # (the parent pressed /cancel), the others waiting on the same key still get it.
            task = asyncio.ensure_future(self._load(key, load))
            self._loading[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
        return await asyncio.shield(task)

    def clear(self) -> None:
        """Forget every entry (loads in flight still answer their callers, and are not kept)."""
        self._entries.clear()
        self._loading.clear()

    async def _load(self, key: Hashable, load: Callable[[], Awaitable[V]]) -> V:
        value = await load()
        if self._loading.get(key) is asyncio.current_task():  # not cleared meanwhile
            self._entries[key] = (self._monotonic() + self._ttl, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
        return value

    def _finished(self, key: Hashable, task: asyncio.Task[V]) -> None:
        if self._loading.get(key) is task:
            del self._loading[key]
        # Every waiter may have been cancelled; retrieving the error keeps asyncio from
        # reporting it as never retrieved. The waiters that remain get it through the shield.
        if not task.cancelled():
            task.exception()
