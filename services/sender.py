"""The outbox sender: delivers queued messages within Telegram's limits, none of them twice.

Limits. A token bucket of capacity one spaces sends at least `1/rate` apart (25/s: 40 ms), so
no 1-second window holds more than `rate` sends; each chat gets at most one send per
`per_chat_interval`. The bucket is taken at the instant a call starts, never earlier. Times are
whole microseconds from the injected clock, and every wait goes through the injected `sleep`,
so a virtual clock runs the sender at full speed with the same decisions it makes in real time.

    due heads ──▶ claim: outcomes so far + mark `sending` ──▶ wait: bucket, chat, pause ──▶ call
    (read beside  (one writer job; the claims of several       and the claim's commit       │
     the sends)    rows share a commit)                                                     │
        ▲                                                                                   │
        └──────────── outcome: sent | retry later | failed | blocked ◀─────────────────────┘

Claims. Before its call a row is *claimed*: a writer job writes the outcomes gathered so far
and marks the row `sending` (only if it is still pending and due), and the call is made only
once that job has committed. Rows are claimed a few at a time in one job, and jobs that come
while the writer is busy share its next commit, so the marks and outcomes of several messages
cost one fsync. How far ahead of its turn a row is claimed follows the disk: one row while
commits keep up with the sends (always, at Telegram's pace: a commit takes a millisecond, a
turn 33 ms), more each time a row's turn comes before its commit (a slow disk, or the
benchmark's virtual clock), never more than `concurrency` rows claimed or in flight at once;
none while the next send is far (a flood pause), nor one whose chat may not send by then. The
next send goes to the first claimed row whose chat is ready; answers are claimed first.

Outcomes. `Delivered` → sent. `RetryAfter(s)` → Telegram's flood control: the row is retried
after `s` seconds (not counted as an attempt) and its chat gets nothing before then. Telegram
says how long to wait "before the request can be repeated"; since the sender already keeps the
documented limits, one refusal is that chat's own flood limit, and the other chats go on. When
refusals come from `flood_burst` different chats within one second, the bot as a whole is over
its budget: every send pauses until the latest of their `s`. `Transient` → retried
after `backoff_base · 2^(attempts-1)` seconds (at most `backoff_max`), failed after
`max_attempts`. `Blocked` → the row and every pending row of its chat become `blocked`, the
chat is remembered by the outbox, and `on_blocked(chat_id)` lets the bot record it.
`Permanent` → failed. An exception from `deliver` is a bug in the bot layer: it counts as
`Transient` (only its type is logged: messages may carry personal data).

Order. Per chat, rows go out in place order (see `services.outbox`), one at a time: a chat's
next row becomes due only after the previous one is settled, and a row waiting for a retry holds
back the rows after it. Among chats, those holding an answer to a parent (the outbox's
priority) go first: every `urgent_poll` seconds the sender looks for them (one small indexed
query) and puts them at the front of its queue.

Exactly once across restarts — the decision. Telegram's sendMessage cannot be deduplicated,
so a call whose answer we never saw may or may not have reached the parent. We choose
*at most once* for that one call and *exactly once* for everything else:
- a row is marked `sending` and committed (WAL, synchronous=FULL) before its call; rows that
  are not claimed stay `pending` in the table, so a kill leaves them to the next process,
  which sends them;
- an outcome is written with a later claim (or beside a long wait, before looking for more
  rows when nothing is claimed, and on stop);
- at start-up, `Outbox.recover()` turns every row still `sending` into `failed` with
  last_error "interrupted …", and it is not sent again. Such a row was claimed when the
  process died (at most `concurrency` rows: in flight, or waiting for its turn), or was
  delivered but its outcome not yet written. Why not resend it: the issue asks for "nothing
  twice", and resending would repeat every row whose call had succeeded when the process
  died. The price: a claimed row whose call never reached Telegram is lost, at most
  `concurrency` rows per crash (in practice the calls in flight and one or two more), and it
  stays visible (failed, "interrupted"), so an operator can re-enqueue it under a new
  dedup_key;
- a new Sender waits one window (max(1 s, per_chat_interval)) before its first send, so the
  global and per-chat limits also hold across a restart without knowing what came before.
`stop()` is the clean shutdown: calls in flight finish, every outcome is written, and rows
claimed but not called go back to `pending`. Cancelling the task, or any BaseException out of
`deliver` or `sleep`, is treated as a crash: nothing more is written. After an error of its own
(the database refused a write), `run()` starts again and gives back the rows it had claimed
but not called, so only the calls in flight then are settled as interrupted. One Sender per
database: two would each believe the other's rows interrupted.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
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
# for a long pause; and no row is claimed while the next send is this far away, so that a
# crash during a flood pause does not cost rows that were only waiting.
_FLUSH_BEFORE_WAIT = 500_000
_MAX_REASON = 200
# After this many sends in a row whose claim had committed in time, claim one row less ahead.
_CALM = 32
# While claims are waiting, new ones are made this many at a time (one writer job for them).
_CLAIM_GROUP = 4
# Queued heads whose chat is not ready passed over at most, looking for ones to claim.
_SKIP = 64


@dataclass(frozen=True, slots=True)
class Delivered:
    """Telegram accepted the message."""

    message_id: int


@dataclass(frozen=True, slots=True)
class RetryAfter:
    """Flood control (429): retry this message, and send nothing to its chat, after `seconds`."""

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
    flood_pauses: int = 0  # of which paused every chat (a burst of them from several chats)
    interrupted: int = 0  # rows found in flight at start-up
    released: int = 0  # rows claimed but not called when stop() came: pending again


@dataclass(slots=True, eq=False)
class _Claim:
    """A row being marked `sending` (the writer job `marked`), to be called once committed."""

    msg: OutboxMessage
    marked: asyncio.Task[set[int]]  # shared by the rows claimed together


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
        concurrency: int = 8,
        on_blocked: OnBlocked | None = None,
        poll_interval: float = 1.0,
        urgent_poll: float = 0.5,
        flood_burst: int = 3,
    ) -> None:
        """`concurrency`: rows claimed at once (calls in flight and rows about to be called);
        `flood_burst`: 429s from this many chats within a second pause every send."""
        if (
            rate <= 0
            or per_chat_interval < 0
            or min(batch, concurrency, max_attempts, flood_burst) < 1
        ):
            raise ValueError("rate, batch, concurrency, max_attempts, flood_burst must be positive")
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
        self._urgent_poll = ceil(urgent_poll * _SECOND)
        self._flood_burst = flood_burst

        self._next_send = 0  # µs: the bucket's next token
        self._pause_until = 0  # µs: end of a pause of every send (start-up, a flood burst)
        self._refusals: deque[tuple[int, int, int]] = deque()  # (µs, chat, until) of recent 429s
        self._urgent_at = 0  # µs: the next look for answers to put first
        self._ahead = 1  # claims that may wait for their send (grows while the disk is slow)
        self._calm = 0  # sends in a row whose claim was committed in time
        self._chat_next: dict[int, int] = {}  # chat → µs of its next allowed send
        self._queue: deque[OutboxMessage] = deque()  # heads found, not yet claimed
        self._backlog = False  # the last full look found a full batch: more may follow
        self._low_water = max(1, batch // 4)  # queue length at which the next look starts
        self._look: asyncio.Task[list[OutboxMessage]] | None = None  # a read in progress
        self._look_urgent = False
        self._sent_while_looking: set[int] = set()  # rows called since the read began
        self._claims: list[_Claim] = []  # in claim order
        self._inflight: dict[int, asyncio.Task[None]] = {}  # chat → its call
        self._busy: set[int] = set()  # chats with a claim or a call
        self._updates: list[RowUpdate] = []  # outcomes not yet written
        self._to_block: list[int] = []
        self._writes: list[asyncio.Task[set[int]]] = []  # outcomes written beside a long wait
        self._release: set[int] = set()  # claimed, never called, when the loop failed
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
        the loop starts again after `poll_interval`: rows it had claimed but not called go back
        to pending, and what was in flight is settled as at a restart.
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
        """Stop sending: calls in flight finish, their outcomes are written, rows claimed but
        not called go back to pending, and `run()` returns."""
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
            while not self._stop.is_set() and await self._step(forever=forever):
                pass
            await self._finish()
        except BaseException:
            self._abandon()
            raise
        finally:
            self._running = False
            self._finished.set()
        return self.stats.sent - sent_before

    async def _start(self) -> None:
        await self._flush()  # outcomes known from before an error are not "interrupted"
        interrupted = await self._outbox.recover(release=self._release)
        self._release = set()
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

    async def _step(self, *, forever: bool) -> bool:
        """One send (or one wait); False when nothing is left to send (drain only)."""
        await self._reap()
        now = self._now()
        self._look_ahead(now)
        if not self._queue and not self._claims:
            await self._take_look()  # a read in progress may bring enough
            if not self._queue:
                await self._flush()  # the heads depend on every outcome so far
                self._start_look(self._now(), urgent_only=False)
                await self._take_look()
            if not self._queue and not self._claims:
                if self._inflight:
                    await self._reap(wait=True)
                    return True
                return await self._idle(forever=forever)
            now = self._now()
        resume = max(self._next_send, self._pause_until, now)
        if resume - now < _FLUSH_BEFORE_WAIT:
            self._claim_more(ready_by=resume + self._ahead * self._gap)
        claim = self._next_claim(now)
        if claim is None:
            if len(self._inflight) >= self._concurrency:
                await self._reap(wait=True)
                return True
            # Nothing to claim yet: a long flood pause, or every queued chat has just had its
            # message. Wait (looking for answers again at least every `urgent_poll`).
            until = resume
            if resume - now < _FLUSH_BEFORE_WAIT:
                chat_next = self._chat_next
                soonest = min((chat_next.get(m.chat_id, 0) for m in self._queue), default=resume)
                until = min(max(resume, soonest, now + self._gap), now + self._urgent_poll)
            if until - now >= _FLUSH_BEFORE_WAIT:
                self._flush_soon()
            await self._nap(until, wake_on_enqueue=False)
            return True
        napped = waited = False
        while True:
            if claim.marked.done() and not self._claimed(claim):
                return True  # refused (forgotten, blocked or sent meanwhile): nothing to wait for
            # From reading the clock to the call's start nothing awaits: the bucket is taken
            # at the call.
            now = self._now()
            target = max(
                self._next_send, self._pause_until, self._chat_next.get(claim.msg.chat_id, 0)
            )
            if now < target:
                if target - now >= _FLUSH_BEFORE_WAIT:
                    self._flush_soon()
                # Then check again: an answer that arrived meanwhile may pause everything.
                await self._nap(target, wake_on_enqueue=False)
                napped = True
            elif not claim.marked.done():
                if napped and not waited:
                    # Its commit had the time until its turn and is not done: the disk is
                    # behind the sends, so claim further ahead from now on.
                    self._ahead = min(self._ahead * 2, self._concurrency)
                    self._calm = 0
                waited = True
                await asyncio.wait((claim.marked,))
            else:
                break
            if self._stop.is_set():
                return False
        if not waited:
            self._calm += 1
            if self._calm >= _CALM and self._ahead > 1:
                self._ahead -= 1  # the disk keeps up: fewer rows marked before their turn
                self._calm = 0
        await self._launch(claim, now)
        return True

    async def _finish(self) -> None:
        """The clean end: calls finish, claims not called go back to pending, all is written."""
        await self._reap(wait=True, every=True)
        claims, self._claims = self._claims, []
        for claim in claims:
            self._busy.discard(claim.msg.chat_id)
            try:
                marked = claim.msg.id in await claim.marked
            except Exception:
                continue  # nothing of it was written; its outcomes wait in `_updates`
            if marked:
                self.stats.released += 1
                self._updates.append(RowUpdate(claim.msg.id, "pending", attempts_delta=-1))
        self._queue.clear()
        if self._look is not None:
            _discard(self._look)
            self._look = None
        while self._writes:
            await self._writes.pop(0)
        await self._flush()

    def _abandon(self) -> None:
        """A crash, or an error of the loop: nothing more is written from here."""
        if self._look is not None:
            _discard(self._look)
            self._look = None
        for task in self._inflight.values():
            task.cancel()
        for claim in self._claims:
            # Claimed but never called: given back at this Sender's next start, if any (a
            # cancelled claim's job may still commit).
            self._release.add(claim.msg.id)
            _discard(claim.marked)
        for write in self._writes:
            _discard(write)  # its job may still commit: outcomes are facts
        self._writes.clear()
        self._inflight.clear()
        self._claims.clear()
        self._busy.clear()
        self._queue.clear()
        self._started = False

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

    def _look_ahead(self, now: int) -> None:
        """Read the next heads while sending: more when the queue runs short, answers often.

        The reads run beside the sends (a thread hop each), and what they find is merged
        when it is there; a head found before its row changed is refused by the claim.
        """
        look = self._look
        if look is not None:
            if look.done():
                self._merge(look.result(), urgent_only=self._look_urgent)
                self._look = None
            return
        if self._backlog and len(self._queue) < self._low_water:
            self._start_look(now, urgent_only=False)
        elif self._queue and now >= self._urgent_at:
            self._start_look(now, urgent_only=True)

    def _start_look(self, now: int, *, urgent_only: bool) -> None:
        if not urgent_only:
            # A full look sees every row committed before its read: an enqueue before this
            # point has nothing more to wake us for, one after it sets the event again. Left
            # set, it cut every idle nap short and the sender polled the database non-stop.
            self._wake.clear()
        self._urgent_at = now + self._urgent_poll  # a full look finds the answers too
        self._look_urgent = urgent_only
        self._sent_while_looking.clear()
        self._look = asyncio.create_task(
            self._outbox.due(self._at(now), self._batch, urgent_only=urgent_only),
            name="outbox-due",
        )

    async def _take_look(self) -> None:
        """Wait for the read in progress and merge what it found."""
        look = self._look
        if look is None:
            return
        try:
            found = await look
        finally:
            self._look = None
        self._merge(found, urgent_only=self._look_urgent)

    def _merge(self, found: list[OutboxMessage], *, urgent_only: bool) -> None:
        """Queue the heads found (not of a chat busy or queued already): answers in front."""
        if not urgent_only:
            # A full batch: more may follow, so the next look comes before the queue is empty.
            self._backlog = len(found) == self._batch
        if not found:
            return
        queued = {m.chat_id for m in self._queue}
        # A row called while the look read is no head any more (its claim would be refused).
        sent = self._sent_while_looking
        fresh = [m for m in found if m.chat_id not in self._busy and m.id not in sent]
        answers = [m for m in fresh if m.priority > 0]
        if answers:  # ahead of the pushes already queued, their own old place given up
            chats = {m.chat_id for m in answers}
            rest = [m for m in self._queue if m.chat_id not in chats]
            self._queue = deque([*answers, *rest])
            queued |= chats
        if urgent_only:
            return
        now = self._now()
        if len(self._chat_next) > 8 * self._batch:
            self._chat_next = {c: t for c, t in self._chat_next.items() if t > now}
        # Stable: among the pushes, the chats ready soonest first, place order among equals.
        chat_next = self._chat_next
        pushes = [m for m in fresh if m.priority <= 0 and m.chat_id not in queued]
        pushes.sort(key=lambda m: max(chat_next.get(m.chat_id, 0), now))
        self._queue.extend(pushes)

    def _claim_more(self, *, ready_by: int) -> None:
        """Claim queued heads while there is room, a few at a time, one writer job for them
        (it also writes the outcomes so far). A head whose chat may not send by `ready_by`
        stays queued: claimed, it would hold a place while others could go."""
        room = min(
            self._ahead - len(self._claims),
            self._concurrency - len(self._inflight),
            len(self._queue),
        )
        if room <= 0 or (self._claims and room < min(_CLAIM_GROUP, self._ahead // 2)):
            return
        chat_next = self._chat_next
        msgs: list[OutboxMessage] = []
        skipped: list[OutboxMessage] = []
        while self._queue and len(msgs) < room and len(skipped) < _SKIP:
            msg = self._queue.popleft()
            (msgs if chat_next.get(msg.chat_id, 0) <= ready_by else skipped).append(msg)
        # Passed-over answers keep their place in front; pushes go to the back, so that the
        # next look at the queue finds others.
        self._queue.extendleft(reversed([m for m in skipped if m.priority > 0]))
        self._queue.extend(m for m in skipped if m.priority <= 0)
        if not msgs:
            return
        updates, self._updates = self._updates, []
        chats, self._to_block = self._to_block, []
        marked = asyncio.create_task(
            self._write(updates, chats, claim=[m.id for m in msgs]), name="outbox-claim"
        )
        for msg in msgs:
            claim = _Claim(msg, marked)
            if msg.priority > 0:  # answers stay in front of the pushes: see `_next_claim`
                at = next(
                    (i for i, c in enumerate(self._claims) if c.msg.priority < msg.priority),
                    len(self._claims),
                )
                self._claims.insert(at, claim)
            else:
                self._claims.append(claim)
            self._busy.add(msg.chat_id)

    def _next_claim(self, now: int) -> _Claim | None:
        """The claim to send next: the first whose chat is ready (answers are kept in front),
        else the one whose chat is ready soonest."""
        chat_next = self._chat_next
        for claim in self._claims:  # nearly always the first
            if chat_next.get(claim.msg.chat_id, 0) <= now:
                return claim
        if not self._claims:
            return None
        return min(self._claims, key=lambda c: chat_next.get(c.msg.chat_id, 0))

    def _claimed(self, claim: _Claim) -> bool:
        """Its job is done: True when the row may be called; else the claim is dropped."""
        try:
            marked = claim.msg.id in claim.marked.result()
        except BaseException:
            self._drop(claim)  # its job rolled back: the row is still pending
            raise
        if not marked:  # forgotten, blocked or sent meanwhile: nothing to send
            self._drop(claim)
        return marked

    def _drop(self, claim: _Claim) -> None:
        self._claims.remove(claim)
        self._busy.discard(claim.msg.chat_id)

    async def _launch(self, claim: _Claim, now: int) -> None:
        msg = claim.msg
        self._claims.remove(claim)
        if self._look is not None:
            self._sent_while_looking.add(msg.id)
        self._next_send = now + self._gap
        self._chat_next[msg.chat_id] = now + self._chat_gap
        self._inflight[msg.chat_id] = asyncio.create_task(
            self._call(msg), name=f"outbox-send-{msg.id}"
        )
        # One turn of the loop: the new task runs first (ready callbacks are FIFO), so the call
        # begins now, at this instant of the clock (a virtual clock may move on as soon as we
        # continue); a call that already ended in a crash is noticed here.
        await asyncio.sleep(0)
        await self._reap()

    async def _call(self, msg: OutboxMessage) -> None:
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
            self._chat_next[msg.chat_id] = max(self._chat_next.get(msg.chat_id, 0), until)
            self._flood_control(now, msg.chat_id, until)
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

    def _flood_control(self, now: int, chat_id: int, until: int) -> None:
        """A 429 holds its chat; refusals from `flood_burst` chats within a second hold all."""
        refusals = self._refusals
        while refusals and refusals[0][0] <= now - _SECOND:
            refusals.popleft()
        refusals.append((now, chat_id, until))
        if len({chat for _, chat, _ in refusals}) < self._flood_burst:
            log.info(
                "outbox: Telegram flood control, holding the refused chat %.3gs",
                (until - now) / _SECOND,
            )
            return
        pause_until = max(end for _, _, end in refusals)
        if pause_until > self._pause_until:
            self._pause_until = pause_until
            self.stats.flood_pauses += 1
            log.warning(
                "outbox: Telegram flood control for %d chats within a second, pausing all sends"
                " %.3gs",
                len(refusals),
                (pause_until - now) / _SECOND,
            )

    def _flush_soon(self) -> None:
        """Write the outcomes so far beside what comes next (before a long wait)."""
        if not self._updates and not self._to_block:
            return
        updates, self._updates = self._updates, []
        chats, self._to_block = self._to_block, []
        self._writes.append(asyncio.create_task(self._write(updates, chats), name="outbox-write"))

    async def _flush(self) -> None:
        """Write the outcomes gathered so far (no claim) in one job; tell about blocks."""
        if not self._updates and not self._to_block:
            return
        updates, self._updates = self._updates, []
        chats, self._to_block = self._to_block, []
        await self._write(updates, chats)

    async def _write(
        self, updates: list[RowUpdate], chats: list[int], *, claim: Sequence[int] = ()
    ) -> set[int]:
        """One writer job: outcomes, blocks and claims; returns the rows claimed."""
        try:
            claimed = await self._outbox.claim(claim, updates=updates, block_chats=chats)
        except Exception:
            # Nothing was written: the outcomes wait for the next write (a claim is dropped,
            # its row stays `pending` and its call is not made).
            self._updates[:0] = updates
            self._to_block[:0] = chats
            raise
        for chat_id in chats:
            self._chat_next.pop(chat_id, None)
            if self._on_blocked is not None:
                try:
                    await self._on_blocked(chat_id)
                except Exception as exc:  # the outbox already knows; the callback is extra
                    log.warning("outbox: on_blocked raised %s", type(exc).__name__)
        return claimed

    async def _reap(self, *, wait: bool = False, every: bool = False) -> None:
        """Forget finished calls (waiting for one, or all); re-raise what killed a call."""
        if wait and self._inflight:
            when = asyncio.ALL_COMPLETED if every else asyncio.FIRST_COMPLETED
            await asyncio.wait(list(self._inflight.values()), return_when=when)
        for chat_id, task in list(self._inflight.items()):
            if task.done():
                del self._inflight[chat_id]
                self._busy.discard(chat_id)
                task.result()  # only a BaseException gets here: `_call` catches the rest
        if self._writes and self._writes[0].done():
            writes, self._writes = self._writes, []
            for write in writes:
                if write.done():
                    write.result()  # a failed write fails the loop, as an awaited one does
                else:
                    self._writes.append(write)

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


def _discard(task: asyncio.Task[object]) -> None:
    """Stop waiting for `task`: cancel it, or take its exception so that none goes unseen."""
    if not task.done():
        task.cancel()
    elif not task.cancelled():
        task.exception()
