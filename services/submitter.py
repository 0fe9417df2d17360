"""The submitter: POST /applications with the row's Idempotency-Key until a final answer.

    Submit (bot/handlers/review.py) ──▶ `submissions` row, pending: the key, the exact body
        │                                (one statement: one transaction)
        ▼
    worker ──POST, same key, same bytes──▶ voucher service
        ├─ 201 / 200 (a replay) ──▶ settle: the confirmation in the outbox (dedup
        │                            `submitted:<key>`), the row `done`, the applications row,
        │                            the draft's `application` — one transaction
        ├─ a final refusal ──────▶ settle: the message in the outbox, the row `refused`, the
        │                            draft back where the parent can fix it
        └─ no final answer ──────▶ stays pending; next try after max(Retry-After, backoff)
    after settling, the parent's FSM state follows (the desk, under the user's event-isolation
    lock), and only then the row is marked `synced`.

Why it is exactly once:
- the key is stored before the first POST and every POST of a row carries it with the same body,
  so the service creates at most one application per row, and a repeat after a lost answer
  gets the original back (200);
- a row leaves `pending` only in the settle transaction, so a crash before it (before the POST,
  or after a 201 that was never recorded) ends in another POST with the same key;
- settling is idempotent (the outbox's dedup key, INSERT OR IGNORE, the same draft values), and
  a row stays `synced = 0` until the parent's state has followed: `run_once` first settles such
  rows again, so a crash after the commit is finished by the next process;
- the confirmation is sent by the outbox sender, which never sends a row twice.

Backoff: attempt n waits between c/2 and c seconds, c = min(backoff_max, backoff_base·2^(n-1))
("equal jitter": it grows with n yet never bunches retries together), and never less than the
service's Retry-After. There is no attempt limit: an outage of hours is waited out. The ed24
session lasts an hour, though, and the service checks it before the key, so after a long outage
the answer is `session_invalid`: the parent confirms the phone (and the 1414 consents) again
and Submit sends the very same key (see docs/security.md, "Exactly-once submission").

No aiogram here: words, keyboards and FSM states are the desk's (`bot/submissions.py`).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

from services.application import new_idempotency_key
from services.clock import Clock
from services.failpoints import failpoint
from services.outbox import Outgoing
from services.store import Store, Submission
from services.voucher.client import VoucherClient
from services.voucher.errors import (
    DuplicateApplication,
    IdempotencyKeyReused,
    ServiceUnavailable,
    Unauthorized,
    ValidationFailed,
    VoucherError,
)
from services.voucher.models import ApplicationCreated, ApplicationRequest

log = logging.getLogger("kezek.submitter")

Sleep = Callable[[float], Awaitable[None]]

# Refusals that send the parent back to an earlier step; `editing` brings them back to the
# review afterwards. Every other refusal keeps the review.
SESSION_INVALID = "session_invalid"
_EDITING_REFUSALS = frozenset({SESSION_INVALID, "age_out_of_range", "document_required"})


@dataclass(frozen=True, slots=True)
class Accepted:
    """The service holds the application (201, or 200 for a replay of the same key)."""

    application: dict[str, Any]  # {"id", "number", "submitted_at", "status"}


@dataclass(frozen=True, slots=True)
class Refused:
    """A final refusal: nothing was created, the parent has something to do."""

    code: str
    number: str | None = None  # duplicate_application: the application already in the queue
    fields: tuple[str, ...] = field(default_factory=tuple)  # validation_error: what it named


Outcome = Accepted | Refused


@dataclass(frozen=True, slots=True)
class Notice:
    """What the parent is told about an outcome, and the state the conversation goes on at."""

    message: Outgoing
    step: str


class Desk(Protocol):
    """The bot's side of the submitter (bot/submissions.py)."""

    def exclusive(self, sub: Submission) -> AbstractAsyncContextManager[Any]:
        """The parent's event-isolation lock: no update of theirs runs meanwhile."""
        ...

    async def notice(self, sub: Submission, outcome: Outcome) -> Notice:
        """The localized message about `outcome` and where the parent continues."""
        ...

    async def follow(self, sub: Submission, step: str) -> None:
        """Move the parent's FSM state to `step` (if they still wait on this submission)."""
        ...


def outcome_json(outcome: Outcome) -> dict[str, Any]:
    """The outcome as stored in the row (ids, codes and field names only)."""
    if isinstance(outcome, Accepted):
        return {"application": outcome.application}
    refusal: dict[str, Any] = {"code": outcome.code}
    if outcome.number:
        refusal["number"] = outcome.number
    if outcome.fields:
        refusal["fields"] = list(outcome.fields)
    return {"refusal": refusal}


def outcome_of(stored: dict[str, Any]) -> Outcome:
    """The outcome a settled row recorded."""
    if "application" in stored:
        return Accepted(dict(stored["application"]))
    refusal = stored["refusal"]
    return Refused(refusal["code"], refusal.get("number"), tuple(refusal.get("fields") or ()))


def refusal_of(exc: VoucherError) -> Refused:
    """A final error of POST /applications as a refusal."""
    if isinstance(exc, DuplicateApplication):
        return Refused(exc.code, number=exc.number or None)
    if isinstance(exc, ValidationFailed):
        return Refused(exc.code, fields=tuple(e.get("field", "") for e in exc.errors))
    return Refused(exc.code)


def draft_changes(outcome: Outcome) -> dict[str, Any]:
    """What settling writes into the parent's draft (None removes a key)."""
    if isinstance(outcome, Accepted):
        app = outcome.application
        return {
            "application": {
                "id": app["id"],
                "number": app["number"],
                "submitted_at": app["submitted_at"],
            }
        }
    changes: dict[str, Any] = {}
    if outcome.code in _EDITING_REFUSALS:
        changes["editing"] = True
    if outcome.code == SESSION_INVALID:
        # Only a fresh code proves the phone again; the key stays for the next Submit.
        changes["session"] = None
    return changes


def accepted(created: ApplicationCreated) -> Accepted:
    """The service's answer as the outcome to record."""
    return Accepted(
        {
            "id": created.id,
            "number": created.number,
            "status": created.status,
            "submitted_at": created.submitted_at.isoformat(),
        }
    )


class Submitter:
    """Posts pending submissions: `run_once()` (tests), or `run()` until `stop()`."""

    def __init__(
        self,
        store: Store,
        voucher: VoucherClient,
        desk: Desk,
        clock: Clock,
        *,
        sleep: Sleep,
        rng: random.Random | None = None,
        backoff_base: float = 2.0,
        backoff_max: float = 300.0,
        batch: int = 20,
        poll_interval: float = 60.0,
        on_notice: Callable[[], None] | None = None,
    ) -> None:
        if backoff_base <= 0 or backoff_max < backoff_base or batch < 1 or poll_interval <= 0:
            raise ValueError("backoff, batch and poll_interval must be positive")
        self._store = store
        self._voucher = voucher
        self._desk = desk
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._batch = batch
        self._poll = poll_interval
        # The notice is written to the outbox in the settle's own transaction, past the
        # outbox's enqueue: this wakes an idle sender instead of leaving it to its next poll.
        self._on_notice = on_notice
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()

    # --- public ---------------------------------------------------------------------------

    def wake(self) -> None:
        """A new submission was saved: post it now rather than at the next poll."""
        self._wake.set()

    async def run_once(self) -> int:
        """Finish what a crash left, then try every due submission once; returns final answers."""
        final = 0
        for sub in await self._store.unsynced_submissions():
            stored = sub.outcome
            if stored is not None:
                await self._settle(sub, outcome_of(stored))
        for sub in await self._store.due_submissions(self._clock.now(), self._batch):
            if self._stop.is_set():
                break
            if await self._attempt(sub):
                final += 1
        return final

    async def run(self) -> None:
        """Post submissions until `stop()`; a failure of the loop itself is logged, not fatal."""
        while not self._stop.is_set():
            self._wake.clear()
            wait = self._poll
            try:
                await self.run_once()
                due = await self._store.next_submission_due()
                if due is not None:
                    wait = min(wait, max((due - self._clock.now()).total_seconds(), 0.0))
            except Exception as exc:  # the database was busy for too long, say
                log.error("submitter loop failed (%s); trying again", type(exc).__name__)
            if wait > 0:
                await self._nap(wait)

    async def stop(self) -> None:
        """Ask `run()` to return after the row in hand (a POST in flight is finished)."""
        self._stop.set()

    # --- one attempt ----------------------------------------------------------------------

    async def _attempt(self, sub: Submission, *, rekeyed: bool = False) -> bool:
        """POST one submission; True when the service gave a final answer (now settled)."""
        try:
            request = ApplicationRequest.model_validate(sub.body)
            if sub.session is None:
                raise ValueError("a pending submission without its session")
            failpoint("submit.before_post")
            created = await self._voucher.submit_application(sub.session, sub.key, request)
        except ServiceUnavailable as exc:
            await self._postpone(sub, exc.retry_after, f"unavailable {exc.status}")
            return False
        except Unauthorized:
            # Our token, not the parent's data: the operator must fix it; the row waits.
            log.error("voucher service refused the API token; submission %d waits", sub.id)
            await self._postpone(sub, None, "unauthorized")
            return False
        except IdempotencyKeyReused:
            if rekeyed:
                await self._postpone(sub, None, "idempotency_key_reused")
                return False
            # The key already stands for another body: an earlier POST of this key succeeded
            # but its answer never came back, and the parent then changed the application.
            # That one is settled upstream; this body is another request and gets its own key
            # (the same child in the same queue is refused as duplicate_application).
            log.warning("submission %d: key held another body; sending with a new key", sub.id)
            async with self._desk.exclusive(sub):
                renewed = await self._store.rekey_submission(sub, new_idempotency_key())
            return await self._attempt(renewed, rekeyed=True)
        except VoucherError as exc:
            await self._settle(sub, refusal_of(exc))
            return True
        except Exception as exc:  # a bug must not hold back the other rows
            log.error("submission %d: %s; will try again", sub.id, type(exc).__name__)
            await self._postpone(sub, None, type(exc).__name__)
            return False
        failpoint("submit.after_response")
        await self._settle(sub, accepted(created))
        return True

    async def _settle(self, sub: Submission, outcome: Outcome) -> None:
        """Record a final answer, tell the parent (through the outbox), move their state."""
        async with self._desk.exclusive(sub):
            notice = await self._desk.notice(sub, outcome)
            recorded = await self._store.settle_submission(
                sub,
                outcome=outcome_json(outcome),
                message=notice.message,
                draft=draft_changes(outcome),
                step=notice.step,
            )
            if recorded:
                if self._on_notice is not None:
                    self._on_notice()
                await self._desk.follow(sub, notice.step)
                await self._store.mark_submission_synced(sub.id)
        if not recorded:
            # /forget took the row while its POST was on its way: keep nothing of it here.
            log.info("submission %d was forgotten before its answer came", sub.id)
        elif isinstance(outcome, Accepted):
            log.info("submission %d: application %s", sub.id, outcome.application["number"])
        else:
            log.info("submission %d refused: %s", sub.id, outcome.code)

    async def _postpone(self, sub: Submission, retry_after: float | None, error: str) -> None:
        delay = self.delay(sub.attempts + 1, retry_after)
        at = self._clock.now() + timedelta(seconds=delay)
        log.warning(
            "submission %d: no final answer (%s), attempt %d; next in %.1f s",
            sub.id,
            error,
            sub.attempts + 1,
            delay,
        )
        await self._store.postpone_submission(sub.id, next_attempt_at=at, error=error)

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds before attempt `attempt + 1`: equal jitter, never under Retry-After."""
        ceiling = min(self._backoff_max, self._backoff_base * 2 ** min(attempt - 1, 32))
        delay = ceiling / 2 + self._rng.uniform(0.0, ceiling / 2)
        return max(delay, retry_after or 0.0)

    async def _nap(self, seconds: float) -> None:
        """Sleep through the injected `sleep`, cut short by `wake()` or `stop()`."""
        waits = [
            asyncio.ensure_future(self._sleep(seconds)),
            asyncio.ensure_future(self._wake.wait()),
            asyncio.ensure_future(self._stop.wait()),
        ]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()
