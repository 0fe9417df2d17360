"""Sending the staff digest: the daily job, `voucher-bot digest --send`, and the period rule.

The period of a digest runs from where the last sent digest ended (the `meta` table remembers
it) to now, or covers the last 24 hours when none was sent yet. So a missed day (the bot was
down at 09:00) is covered by the next digest, and nothing is counted twice.

How a digest reaches a chat is not decided here (no aiogram in services/): the caller passes
`deliver(chat_id, digest, rows)`, which renders it in the chat's language and sends or
enqueues it — `bot.handlers.staff.telegram_delivery` is the one the bot uses.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from services.clock import Clock
from services.digest import Digest, build_digest
from services.reports import SubmissionRow, open_reports
from services.store import Store

log = logging.getLogger("kezek.digest")

LAST_DIGEST_KEY = "digest_last_until"
DEFAULT_PERIOD = timedelta(hours=24)

Deliver = Callable[[int, Digest, Sequence[SubmissionRow]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class DigestRun:
    """What one sending did: the digest, its rows, and which chats got it."""

    digest: Digest
    rows: tuple[SubmissionRow, ...]
    delivered: tuple[int, ...]
    failed: tuple[int, ...]


async def digest_since(store: Store, until: datetime) -> datetime:
    """Where the next digest starts: the end of the last one sent, else 24 h before `until`."""
    mark = await store.get_meta(LAST_DIGEST_KEY)
    if mark:
        since = datetime.fromisoformat(mark)
        if since < until:
            return since
    return until - DEFAULT_PERIOD


async def collect_digest(
    database_path: Path,
    *,
    since: datetime | None,
    until: datetime,
    outbox_counts: Mapping[str, int] | None = None,
) -> tuple[Digest, list[SubmissionRow]]:
    """The figures of [since, until) and the period's submissions, read in one go."""
    async with open_reports(database_path) as reports:
        digest = await build_digest(reports, since=since, until=until, outbox_counts=outbox_counts)
        rows = await reports.submissions(since, until)
    return digest, rows


async def send_digest(
    store: Store,
    *,
    database_path: Path,
    clock: Clock,
    chat_ids: Iterable[int],
    deliver: Deliver,
    outbox_counts: Mapping[str, int] | None = None,
) -> DigestRun:
    """Build the digest since the last one and hand it to `deliver` for every staff chat.

    The end of the period is remembered only when at least one chat got it, so a digest that
    reached nobody is repeated, whole, the next time.
    """
    until = clock.now()
    since = await digest_since(store, until)
    digest, rows = await collect_digest(
        database_path, since=since, until=until, outbox_counts=outbox_counts
    )
    delivered: list[int] = []
    failed: list[int] = []
    for chat_id in dict.fromkeys(chat_ids):  # once per chat, in the configured order
        try:
            await deliver(chat_id, digest, rows)
        except Exception:
            # One chat that left or blocked the bot must not keep the others from the digest.
            log.exception("digest not delivered to staff chat %s", chat_id)
            failed.append(chat_id)
        else:
            delivered.append(chat_id)
    if delivered:
        await store.set_meta(LAST_DIGEST_KEY, until.isoformat())
    log.info(
        "digest %s..%s: %d submitted, sent to %d chat(s), %d failed",
        since.isoformat(),
        until.isoformat(),
        digest.submitted,
        len(delivered),
        len(failed),
    )
    return DigestRun(digest, tuple(rows), tuple(delivered), tuple(failed))
