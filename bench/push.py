"""The push: many status changes through the notification outbox and the sender.

Status changes are rendered as the bot renders them (`bot.pushes.render_push`, Kazakh and
Russian parents) and written to the real outbox (a real SQLite file, synchronous=FULL, texts
sealed with the data key and every write through one `SQLiteWriter`, where this version of the
bot has them) in transactions of 1,000, as one wave of the staff's changes would arrive. The
real `Sender` then delivers them through `TelegramDelivery` and a Bot whose session is
`FakeTelegramApi` — Telegram's 30/s and 1/s per chat, plus 1 % of calls answered 429 — on a
virtual clock: every wait of the sender moves the clock instead of sleeping, so an hour of
sending takes the CPU time (and the disk time) it costs and no more.

Every chat gets `per_chat` changes (registered, moved up twice, voucher issued, voucher used), so
the per-chat limit matters as it would after a mass update of the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import shutil
import tempfile
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiogram import Bot

from bench.fake_telegram import FakeTelegramApi, TelegramLimits
from bench.metrics import file_sizes
from bot.app import LOCALES_DIR
from bot.delivery import TelegramDelivery
from bot.i18n import I18n
from bot.pushes import render_push
from services.clock import FakeClock
from services.outbox import Outbox, Outgoing
from services.sender import Sender
from services.status import ISSUED, MOVED, REGISTERED, USED, StatusPush
from services.store import StoredApplication

TOKEN = "4242424242:KEZEK-bench-push-token"
FIRST_CHAT = 70_000_000
KINDS = (REGISTERED, MOVED, MOVED, ISSUED, USED)
_STATUS = {
    REGISTERED: "registered",
    MOVED: "registered",
    ISSUED: "voucher_issued",
    USED: "voucher_used",
}
CHUNK = 1_000


@dataclass
class PushResult:
    pushes: int
    chats: int
    rate: float  # the sender's configured rate
    delivered: int = 0
    duplicates: int = 0
    outbox_counts: dict[str, int] = field(default_factory=dict)
    calls: int = 0
    mandated_429: int = 0
    limit_429: int = 0  # 429s for a broken limit: the sender's fault
    virtual_seconds: float = 0.0  # first send → last send, on the virtual clock
    flood_pauses: int = 0  # times the sender paused every chat (a burst of 429s)
    enqueue_seconds: float = 0.0  # wall
    enqueue_cpu: float = 0.0
    drain_seconds: float = 0.0  # wall
    drain_cpu: float = 0.0  # process CPU while draining (sender + fake + SQLite thread)
    fake_cpu: float = 0.0  # of which inside the fake Bot API
    busiest_second: int = 0  # most accepted messages in one virtual second (≤ 30)
    drain_commits: int = 0  # SQLite commits while draining (0: this version has no writer)
    db_bytes: int = 0

    @property
    def lost(self) -> int:
        return self.pushes - self.delivered

    @property
    def achieved_rate(self) -> float:
        """Messages delivered per virtual second, from the first send to the last."""
        return self.delivered / self.virtual_seconds if self.virtual_seconds else 0.0

    @property
    def sender_cpu_us_per_message(self) -> float:
        cpu = self.drain_cpu - self.fake_cpu
        return cpu / self.delivered * 1e6 if self.delivered else 0.0

    @property
    def commits_per_message(self) -> float:
        return self.drain_commits / self.delivered if self.delivered else 0.0

    @property
    def ok(self) -> bool:
        return self.delivered == self.pushes and self.duplicates == 0 and self.limit_429 == 0


def _application(chat: int, locale: str) -> StoredApplication:
    number = str(100_000 + chat)
    child = "Сейтқали Нұрсұлтан Ерланұлы" if locale == "kk" else "Сейткали Нурсултан Ерланович"
    return StoredApplication(
        id=f"app_bench{chat:08d}",
        user_id=FIRST_CHAT + chat,
        chat_id=FIRST_CHAT + chat,
        number=number,
        status="submitted",
        summary={
            "child": child,
            "provider": {
                "kk": "«Жас дарын» оқушылар сарайы",
                "ru": "Дворец школьников «Жас дарын»",
            },
            "queue": {"kk": "Жалпы кезек", "ru": "Общая очередь"},
        },
        submitted_at=datetime(2026, 9, 1, 9, 0, tzinfo=UTC),
    )


def build_changes(pushes: int, per_chat: int, i18n: I18n) -> list[Outgoing]:
    """`pushes` rendered status pushes, wave after wave (every chat's first, then second, …)."""
    chats = max(1, -(-pushes // per_chat))
    translators = {locale: i18n.translator(locale) for locale in ("kk", "ru")}
    apps = [_application(c, "kk" if c % 3 else "ru") for c in range(chats)]
    changes: list[Outgoing] = []
    for wave in range(per_chat):
        kind = KINDS[wave % len(KINDS)]
        status = _STATUS[kind]
        for c, app in enumerate(apps):
            if len(changes) == pushes:
                break
            position = 500 + c - wave
            after = replace(
                app,
                status=status,
                queue_position=position if status == "registered" else None,
                deadline=app.submitted_at + timedelta(days=30)
                if status == "voucher_issued"
                else None,
            )
            key = f"status:{app.id}:{wave}"
            tr = translators["kk" if c % 3 else "ru"]
            text = render_push(StatusPush(kind, key, after, position + 1), tr)
            text += f"\n<i>#{wave + 1}</i>"  # the wave: two pushes of a chat never read the same
            changes.append(Outgoing(chat_id=app.chat_id, text=text, kind="status", dedup_key=key))
    return changes


async def _open_outbox(path: Path, clock: FakeClock) -> tuple[Outbox, Any]:
    """The outbox as the bot opens it: with a data cipher and the process's SQLite writer
    where this version has them (the writer, or None, comes back for its commit count)."""
    kwargs: dict[str, Any] = {}
    parameters = inspect.signature(Outbox.open).parameters
    if "cipher" in parameters:
        with contextlib.suppress(ImportError):
            from services.crypto import DataCipher, generate_key

            kwargs["cipher"] = DataCipher.from_keys(generate_key())
    writer = None
    if "writer" in parameters:
        from services.sqlite_writer import SQLiteWriter

        writer = kwargs["writer"] = await SQLiteWriter.open(path)
    try:
        return await Outbox.open(path, clock, **kwargs), writer
    except BaseException:
        if writer is not None:
            await writer.close()
        raise


async def run_push(
    pushes: int,
    *,
    per_chat: int = 5,
    rate: float = 30.0,
    limits: TelegramLimits | None = None,
    workdir: Path | None = None,
    seed: int = 429,
) -> PushResult:
    """Enqueue `pushes` status pushes, drain them through the sender, count what Telegram got."""
    limits = limits or TelegramLimits()
    chats = max(1, -(-pushes // per_chat))
    result = PushResult(pushes=pushes, chats=chats, rate=rate)
    own_dir = workdir is None
    work = Path(tempfile.mkdtemp(prefix="kezek-push-")) if workdir is None else workdir
    clock = FakeClock()
    telegram = FakeTelegramApi(clock, limits, seed=seed)
    bot = Bot(TOKEN, session=telegram)
    outbox, writer = await _open_outbox(work / "kezek.sqlite3", clock)

    async def virtual_sleep(seconds: float) -> None:
        clock.advance(seconds)  # time passes at once: the virtual clock
        await asyncio.sleep(0)  # and others may run, as they would while we slept

    try:
        changes = build_changes(pushes, per_chat, I18n.load(LOCALES_DIR))
        keys = {(c.chat_id, c.text) for c in changes}
        if len(keys) != len(changes):
            raise AssertionError("two pushes of one chat read the same: duplicates would hide")
        cpu0, t0 = time.process_time(), time.perf_counter()
        for start in range(0, len(changes), CHUNK):
            await outbox.enqueue_many(changes[start : start + CHUNK])
        result.enqueue_seconds = time.perf_counter() - t0
        result.enqueue_cpu = time.process_time() - cpu0
        del changes

        sender = Sender(outbox, TelegramDelivery(bot), clock, sleep=virtual_sleep, rate=rate)
        commits = writer.stats.batches if writer is not None else 0
        cpu0, t0 = time.process_time(), time.perf_counter()
        await sender.drain()
        result.drain_seconds = time.perf_counter() - t0
        result.drain_cpu = time.process_time() - cpu0
        if writer is not None:
            result.drain_commits = writer.stats.batches - commits

        result.delivered = telegram.delivered
        result.duplicates = telegram.duplicates
        result.calls = telegram.calls
        result.mandated_429 = telegram.mandated_refusals
        result.limit_429 = telegram.limit_refusals
        result.fake_cpu = telegram.cpu_seconds
        result.flood_pauses = sender.stats.flood_pauses
        result.outbox_counts = await outbox.counts()
        if telegram.accepted_at:
            first, last = telegram.accepted_at[0], telegram.accepted_at[-1]
            # The last message's own second counts: N messages at 30/s span (N-1)/30 s.
            span = last - first + round(1_000_000 / rate)
            result.virtual_seconds = span / 1_000_000
            result.busiest_second = _busiest_second(telegram.accepted_at)
        result.db_bytes = sum(file_sizes(work / "kezek.sqlite3").values())
    finally:
        await outbox.close()
        if writer is not None:
            await writer.close()
        await bot.session.close()
        if own_dir:
            shutil.rmtree(work, ignore_errors=True)
    return result


def _busiest_second(times_us: list[int]) -> int:
    """The most messages within any window of one second (sliding)."""
    best, left = 0, 0
    for right, at in enumerate(times_us):
        while at - times_us[left] >= 1_000_000:
            left += 1
        best = max(best, right - left + 1)
    return best
