"""How long Kezek keeps a draft: a draft nobody touched for 30 days is deleted, with its FSM rows.

A draft holds the most personal data the bot ever has (IINs, names, the phone, the ed24 session),
and a parent who left it a month ago will not come back to the same consents and session: they
start again. Run daily by the scheduler (`bot/__main__.py`); tests call it with a FakeClock.

    drafts.updated_at < now − 30 d  and no FSM write of the user since  ──▶ draft + FSM rows gone
    FSM rows (of anyone) not written for 30 days                         ──▶ gone
    answered submissions (their sealed POST body) unchanged for 30 days  ──▶ gone
    outbox rows sent (or failed) over 30 days ago                        ──▶ text and file emptied

Submitted applications stay (`applications`: what /status shows, no IIN, the names sealed);
/forget removes those too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from services.clock import Clock
from services.outbox import Outbox
from services.store import Store

log = logging.getLogger("kezek.retention")

DRAFT_MAX_AGE = timedelta(days=30)


class UserRows(Protocol):
    """The part of the FSM storage (`bot.fsm.storage.SQLiteStorage`) retention needs."""

    async def users_touched_since(self, since: datetime) -> set[int]: ...

    async def forget_user(self, user_id: int) -> int: ...

    async def purge_untouched(self, before: datetime) -> set[int]: ...


@dataclass(frozen=True, slots=True)
class Purged:
    """What one run deleted: drafts (by user), users whose FSM rows went, submissions."""

    drafts: tuple[int, ...]
    fsm_users: tuple[int, ...]
    submissions: int = 0
    outbox_rows: int = 0


async def purge_stale_drafts(
    store: Store,
    fsm: UserRows,
    clock: Clock,
    max_age: timedelta = DRAFT_MAX_AGE,
    *,
    outbox: Outbox | None = None,
) -> Purged:
    """Delete drafts and FSM rows untouched for `max_age`; returns what went."""
    cutoff = clock.now() - max_age
    active = await fsm.users_touched_since(cutoff)
    drafts: list[int] = []
    fsm_users: set[int] = set()
    for user_id in await store.stale_draft_users(cutoff):
        if user_id in active:
            continue  # still at it (an answer kept only in FSM data): not stale after all
        if await store.delete_draft_if_untouched(user_id, cutoff):
            drafts.append(user_id)
            if await fsm.forget_user(user_id):
                fsm_users.add(user_id)
    fsm_users |= await fsm.purge_untouched(cutoff)
    submissions = await store.delete_settled_submissions(cutoff)
    # The pushes' texts name the child: once delivered they are not kept for long either.
    scrubbed = await outbox.scrub_finished(cutoff) if outbox is not None else 0
    if drafts or fsm_users or submissions or scrubbed:
        log.info(
            "retention: %d drafts, the FSM rows of %d users, %d submissions deleted and %d"
            " outbox texts emptied after %d days",
            len(drafts),
            len(fsm_users),
            submissions,
            scrubbed,
            max_age.days,
        )
    return Purged(tuple(drafts), tuple(sorted(fsm_users)), submissions, scrubbed)
