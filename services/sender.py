"""The outbox sender: delivers queued messages within Telegram's limits, none of them twice.

Limits. A token bucket of capacity one spaces sends at least `1/rate` apart (25/s: 40 ms), so
no 1-second window holds more than `rate` sends; each chat gets at most one send per
`per_chat_interval`. Times are whole microseconds from the injected clock, and every wait goes
through the injected `sleep`, so a virtual clock runs the sender at full speed with the same
decisions it makes in real time.

    due heads (one query per batch) ──▶ wait: bucket, chat, pause ──▶ mark `sending` + write
        ▲                                                               the outcomes so far
        │                                                               (one commit) ──▶ call
        └──────────── outcome: sent | retry later | failed | blocked ◀────────────────────┘

Outcomes. `Delivered` → sent. `RetryAfter(s)` → Telegram's flood control: every send pauses for
`s` seconds and the row is retried after it (not counted as an attempt). `Transient` → retried
after `backoff_base · 2^(attempts-1)` seconds (at most `backoff_max`), failed after
`max_attempts`. `Blocked` → the row and every pending row of its chat become `blocked`, the
chat is remembered by the outbox, and `on_blocked(chat_id)` lets the bot record it.
`Permanent` → failed. An exception from `deliver` is a bug in the bot layer: it counts as
`Transient` (only its type is logged: messages may carry personal data).

Order. Per chat, rows go out in place order (see `services.outbox`), one at a time: a chat's
next row becomes due only after the previous one is settled, and a row waiting for a retry holds
back the rows after it.

Exactly once across restarts — the decision. Telegram's sendMessage cannot be deduplicated,
so a call whose answer we never saw may or may not have reached the parent. We choose
*at most once* for that one call and *exactly once* for everything else:
- a row is marked `sending` and committed (WAL, synchronous=FULL) immediately before its call,
  one row at a time; rows of a batch that are not yet being called stay `pending` in the table,
  so a kill in the middle of a batch leaves them to the next process, which sends them;
- the outcome of a call is written with the next mark (or before any long wait, and on stop),
  so the steady state costs one commit per message;
- at start-up, `Outbox.recover()` turns every row still `sending` into `failed` with
  last_error "interrupted …", and it is not sent again. Such a row was in flight when the
  process died (at most `concurrency` rows), or was delivered but its outcome not yet written.
  Why not resend it: the issue asks for "nothing twice", and resending would repeat every row
  whose call had succeeded when the process died. The price: a row whose call never reached
  Telegram is lost, at most `concurrency` rows per crash, and it stays visible (failed,
  "interrupted"), so an operator can re-enqueue it under a new dedup_key;
- a new Sender waits one window (max(1 s, per_chat_interval)) before its first send, so the
  global and per-chat limits also hold across a restart without knowing what came before.
`stop()` is the clean shutdown: calls in flight finish and every outcome is written. Cancelling
the task, or any BaseException out of `deliver` or `sleep`, is treated as a crash: nothing more
is written. One Sender per database: two would each believe the other's rows interrupted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from math import ceil

from services.clock import Clock
from services.outbox import BLOCKED, Outbox, OutboxMessage, RowUpdate

log = logging.getLogger("kezek.sender")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_SECOND = 1_000_000
# Waits shorter than this are not interrupted by stop(): the token bucket's 40 ms gaps stay two
# awaits cheaper, and stop() is never late by more than this.
_UNINTERRUPTED = 250_000
# Before a wait this long the outcomes so far are written, so that they are not left unwritten
# for a long pause.
_FLUSH_BEFORE_WAIT = 500_000
_MAX_REASON = 200


@dataclass(frozen=True, slots=True)
class Delivered:
    """Telegram accepted the message."""

    message_id: int


@dataclass(frozen=True, slots=True)
class RetryAfter:
    """Flood control (429): pause every send for `seconds`, then retry this one."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Transient:
    """Network trouble or a Telegram server error: retry this message later."""

    reason: str


@dataclass(frozen=True, slots=True)
class Blocked:
    """The user blocked the bot (or the chat is gone): stop sending to this chat."""


@dataclass(frozen=True, slots=True)
class Permanent:
    """Telegram refused this message for good (bad HTML, too long, …): do not retry."""

    reason: str


DeliveryResult = Delivered | RetryAfter | Transient | Blocked | Permanent
Deliver = Callable[[OutboxMessage], Awaitable[DeliveryResult]]
Sleep = Callable[[float], Awaitable[None]]
OnBlocked = Callable[[int], Awaitable[None]]


@dataclass(slots=True)
class SenderStats:
    """What this Sender did, for logs and benchmarks."""

    sent: int = 0
    retried: int = 0  # transient failures that will be retried
    failed: int = 0
    blocked: int = 0
    pauses: int = 0  # RetryAfter answers
    interrupted: int = 0  # rows found in flight at start-up


class Sender:
    """Delivers the outbox: `run()` until `stop()`, or `drain()` until nothing is left."""

    def __init__(
        self,
        outbox: Outbox,
        deliver: Deliver,
        clock: Clock,
        *,
        sleep: Sleep,
        rate: float = 25.0,
        per_chat_interval: float = 1.0,
        max_attempts: int = 8,
        backoff_base: float = 1.0,
        backoff_max: float = 300.0,
        batch: int = 200,
        concurrency: int = 4,
        on_blocked: OnBlocked | None = None,
        poll_interval: float = 1.0,
    ) -> None:
        if rate <= 0 or per_chat_interval < 0 or batch < 1 or concurrency < 1 or max_attempts < 1:
            raise ValueError("rate, batch, concurrency and max_attempts must be positive")
        self._outbox = outbox
        self._deliver = deliver
        self._clock = clock
        self._sleep = sleep
        # Rounded up, so that `rate` sends never fit in less than one second.
        self._gap = ceil(_SECOND / rate)
        self._chat_gap = ceil(per_chat_interval * _SECOND)
        self._resume_gap = max(_SECOND, self._chat_gap)
        self._max_attempts = max_attempts
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._batch = batch
        self._concurrency = concurrency
        self._on_blocked = on_blocked
        self._poll = ceil(poll_interval * _SECOND)

        self._next_send = 0  # µs: the bucket's next token
        self._pause_until = 0  # µs: end of Telegram's flood-control pause
        self._chat_next: dict[int, int] = {}  # chat → µs of its next allowed send
        self._inflight: dict[int, asyncio.Task[None]] = {}  # chat → its call
        self._updates: list[RowUpdate] = []  # outcomes not yet written
        self._to_block: list[int] = []
        self._wake = asyncio.Event()  # something was enqueued
        self._stop = asyncio.Event()
        self._finished = asyncio.Event()
        self._started = False
        self._running = False
        self.stats = SenderStats()
        outbox.subscribe(self._wake.set)

    # --- public ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Deliver until `stop()`: wait for new rows (woken by enqueue, or every poll).

        A failure of the loop itself (the database was locked for too long, say) is logged and
        the loop starts again after `poll_interval`, settling what was in flight as at a restart.
        """
        if self._running:
            raise RuntimeError("this Sender is already running")
        while not self._stop.is_set():
            try:
                await self._pump(forever=True)
            except Exception as exc:
                log.error("outbox sender failed (%s); starting again", type(exc).__name__)
                await self._nap(self._now() + self._poll, wake_on_enqueue=False)

    async def drain(self) -> int:
        """Deliver until no row is pending or in flight; returns how many were sent.

        Retries, flood pauses and `not_before` are waited out through `sleep`, so with a virtual
        clock this returns once everything reached its final status.
        """
        return await self._pump(forever=False)

    async def stop(self) -> None:
        """Stop sending: calls in flight finish, their outcomes are written, `run()` returns."""
        self._stop.set()
        if self._running:
            await self._finished.wait()

    # --- the loop -------------------------------------------------------------------------

    async def _pump(self, *, forever: bool) -> int:
        if self._running:
            raise RuntimeError("this Sender is already running")
        self._running = True
        self._finished.clear()
        sent_before = self.stats.sent
        try:
            if not self._started:
                await self._start()
            while not self._stop.is_set():
                await self._flush()  # the heads depend on every outcome so far
                self._wake.clear()
                batch = await self._outbox.due(self._at(self._now()), self._batch)
                if batch:
                    await self._dispatch(batch)
                elif self._inflight:
                    await self._reap(wait=True)
                elif not await self._idle(forever=forever):
                    break
            await self._reap(wait=True, every=True)
            await self._flush()
        except BaseException:
            # A crash (or a cancelled task) writes nothing more: what was in flight stays
            # `sending` and is settled by the next start (of this Sender too, after `run()`
            # survived an error).
            for task in self._inflight.values():
                task.cancel()
            self._inflight.clear()
            self._started = False
            raise
        finally:
            self._running = False
            self._finished.set()
        return self.stats.sent - sent_before

    async def _start(self) -> None:
        interrupted = await self._outbox.recover()
        if interrupted:
            log.warning(
                "outbox: %d message(s) were in flight when the last sender stopped;"
                " marked failed (interrupted), not resent",
                interrupted,
            )
        self.stats.interrupted += interrupted
        # We do not know when an earlier process last sent: wait one window before the first.
        self._next_send = self._pause_until = self._now() + self._resume_gap
        self._started = True

    async def _idle(self, *, forever: bool) -> bool:
        """Nothing is due: wait for the next retry, `not_before`, enqueue or poll; False: done."""
        now = self._now()
        wake_at = await self._outbox.next_due(self._at(now))
        if wake_at is None and not forever:
            return False
        target = self._us(wake_at) if wake_at else now + self._poll
        if forever:
            target = min(target, now + self._poll)
        await self._nap(target, wake_on_enqueue=True)
        return True

    async def _dispatch(self, batch: list[OutboxMessage]) -> None:
        """Send one batch of heads (distinct chats), readiest chats first."""
        now = self._now()
        if len(self._chat_next) > 8 * self._batch:
            self._chat_next = {c: t for c, t in self._chat_next.items() if t > now}
        # Stable: among chats ready now, place order is kept.
        batch = sorted(batch, key=lambda m: max(self._chat_next.get(m.chat_id, 0), now))
        for msg in batch:
            while True:
                if self._stop.is_set():
                    return
                await self._reap()
                if len(self._inflight) >= self._concurrency:
                    await self._reap(wait=True)
                    continue
                now = self._now()
                target = max(
                    self._next_send, self._pause_until, self._chat_next.get(msg.chat_id, 0)
                )
                if now >= target:
                    break
                if target - now >= _FLUSH_BEFORE_WAIT:
                    await self._flush()
                # Re-check after waking: an answer that arrived meanwhile may pause everything.
                await self._nap(target, wake_on_enqueue=False)
            await self._launch(msg, now)

    async def _launch(self, msg: OutboxMessage, now: int) -> None:
        self._next_send = now + self._gap
        self._chat_next[msg.chat_id] = now + self._chat_gap
        # The mark is committed before the call can leave: see the module docstring.
        self._updates.append(RowUpdate(msg.id, "sending", attempts_delta=1))
        await self._flush()
        started = asyncio.Event()
        self._inflight[msg.chat_id] = asyncio.create_task(
            self._call(msg, started), name=f"outbox-send-{msg.id}"
        )
        # Let the call begin now, at this instant of the clock (a virtual clock may move on
        # as soon as we continue); a call that already ended in a crash is noticed here.
        await started.wait()
        await self._reap()

    async def _call(self, msg: OutboxMessage, started: asyncio.Event) -> None:
        started.set()
        try:
            result = await self._deliver(msg)
        except Exception as exc:
            log.warning("outbox row %d: deliver raised %s; will retry", msg.id, type(exc).__name__)
            result = Transient(f"deliver raised {type(exc).__name__}")
        self._settle(msg, result)

    def _settle(self, msg: OutboxMessage, result: DeliveryResult) -> None:
        """Turn an outcome into the row's next state (written by the next `_flush`)."""
        now = self._now()
        attempts = msg.attempts + 1
        if isinstance(result, Delivered):
            self.stats.sent += 1
            update = RowUpdate(msg.id, "sent", sent_at=self._at(now), message_id=result.message_id)
        elif isinstance(result, RetryAfter):
            self.stats.pauses += 1
            until = now + max(ceil(result.seconds * _SECOND), 1)
            self._pause_until = max(self._pause_until, until)
            log.warning("outbox: Telegram flood control, pausing all sends %ss", result.seconds)
            update = RowUpdate(
                msg.id,
                "pending",
                attempts_delta=-1,  # refused before it counted: not an attempt
                next_attempt_at=self._at(until),
                last_error=f"retry after {result.seconds:g}s",
            )
        elif isinstance(result, Transient) and attempts < self._max_attempts:
            self.stats.retried += 1
            delay = min(self._backoff_max, self._backoff_base * 2 ** (attempts - 1))
            update = RowUpdate(
                msg.id,
                "pending",
                next_attempt_at=self._at(now + ceil(delay * _SECOND)),
                last_error=_reason(result.reason),
            )
        elif isinstance(result, Transient):
            self.stats.failed += 1
            reason = f"gave up after {attempts} attempts: {result.reason}"
            update = RowUpdate(msg.id, "failed", last_error=_reason(reason))
        elif isinstance(result, Blocked):
            self.stats.blocked += 1
            self._to_block.append(msg.chat_id)
            update = RowUpdate(msg.id, "blocked", last_error=BLOCKED)
        elif isinstance(result, Permanent):
            self.stats.failed += 1
            update = RowUpdate(msg.id, "failed", last_error=_reason(result.reason))
        else:  # a deliver that returns something else is a bug: keep the row, retry later
            log.error("outbox row %d: deliver returned %s", msg.id, type(result).__name__)
            self._settle(msg, Transient(f"unexpected result {type(result).__name__}"))
            return
        self._updates.append(update)

    async def _flush(self) -> None:
        """Write the outcomes (and a mark) gathered so far in one commit; tell about blocks."""
        if not self._updates and not self._to_block:
            return
        updates, self._updates = self._updates, []
        chats, self._to_block = self._to_block, []
        try:
            await self._outbox.write(updates, block_chats=chats)
        except Exception:
            # Nothing was written. Outcomes are kept for the next try; a mark is dropped, since
            # its call will not be made and the row stays `pending`.
            self._updates = [u for u in updates if u.status != "sending"] + self._updates
            self._to_block = chats + self._to_block
            raise
        for chat_id in chats:
            self._chat_next.pop(chat_id, None)
            if self._on_blocked is not None:
                try:
                    await self._on_blocked(chat_id)
                except Exception as exc:  # the outbox already knows; the callback is extra
                    log.warning("outbox: on_blocked raised %s", type(exc).__name__)

    async def _reap(self, *, wait: bool = False, every: bool = False) -> None:
        """Forget finished calls (waiting for one, or all); re-raise what killed a call."""
        if wait and self._inflight:
            when = asyncio.ALL_COMPLETED if every else asyncio.FIRST_COMPLETED
            await asyncio.wait(list(self._inflight.values()), return_when=when)
        for chat_id, task in list(self._inflight.items()):
            if task.done():
                del self._inflight[chat_id]
                task.result()  # only a BaseException gets here: `_call` catches the rest

    async def _nap(self, until: int, *, wake_on_enqueue: bool) -> None:
        """Sleep until `until` (µs) through the injected sleep; stop() cuts long naps short."""
        left = until - self._now()
        if left <= 0:
            return
        if left < _UNINTERRUPTED:
            await self._sleep(left / _SECOND)
            return
        waits = [asyncio.ensure_future(self._sleep(left / _SECOND))]
        waits.append(asyncio.ensure_future(self._stop.wait()))
        if wake_on_enqueue:
            waits.append(asyncio.ensure_future(self._wake.wait()))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()
        if waits[0].done() and not waits[0].cancelled():
            waits[0].result()  # what the sleep raised (a crash, in a test) goes on up

    # --- time in whole microseconds -------------------------------------------------------

    def _now(self) -> int:
        return self._us(self._clock.now())

    @staticmethod
    def _us(ts: datetime) -> int:
        return (ts - _EPOCH) // _US

    @staticmethod
    def _at(us: int) -> datetime:
        return _EPOCH + timedelta(microseconds=us)


def _reason(text: str) -> str:
    return text[:_MAX_REASON]
