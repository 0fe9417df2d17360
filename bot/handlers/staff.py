"""Staff commands and the digest's delivery to staff chats.

    staff chat ──/digest──▶ figures since the last sent digest (or the last 24 h) + the table
               ──/stats───▶ the same figures since the start + the table
    anyone else ──/digest, /stats──▶ (nothing matches here) the fallback's "unknown command"
    daily job  ──send_daily_digest──▶ every staff chat, then the period is marked as sent

A staff chat is one listed in STAFF_CHAT_IDS: a group, or the private chat of a listed user
(a private chat's id is its user's id). A listed user asking in any other group is refused,
because the answer, table included, would go to everyone in that group.

Staff read the default language (DEFAULT_LOCALE) unless the asking user chose one with
/language; Telegram's own language setting is not used for them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TextIO

from aiogram import Bot, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, Filter
from aiogram.types import BotCommand, BotCommandScopeChat, BufferedInputFile, Message

from bot.config import Settings
from bot.i18n import I18n, Translator
from bot.render.digest import csv_file_name, digest_csv, render_digest, render_plain
from bot.view import Prompt, Services
from services.clock import Clock, SystemClock
from services.digest import Digest
from services.digest_job import Deliver, DigestRun, collect_digest, digest_since, send_digest
from services.reports import SubmissionRow
from services.store import Store

log = logging.getLogger("kezek.bot.staff")

STAFF_COMMANDS = ("digest", "stats")
OutboxCounts = Callable[[], Awaitable[Mapping[str, int]]]


class IsStaff(Filter):
    """The message comes from a staff chat (STAFF_CHAT_IDS)."""

    async def __call__(self, message: Message, settings: Settings) -> bool:
        return message.chat.id in settings.staff_chat_ids


def create_router() -> Router:
    router = Router(name="staff")
    router.message.register(on_digest, Command("digest"), IsStaff())
    router.message.register(on_stats, Command("stats"), IsStaff())
    return router


# --- commands -------------------------------------------------------------------------------


async def on_digest(message: Message, bot: Bot, services: Services) -> None:
    """/digest: the figures since the last sent digest (or the last 24 h), with the table."""
    until = services.clock.now()
    since = await digest_since(services.store, until)
    await _answer(message, bot, services, since=since, until=until)


async def on_stats(message: Message, bot: Bot, services: Services) -> None:
    """/stats: the same figures since the start, with every application in the table."""
    await _answer(message, bot, services, since=None, until=services.clock.now())


async def _answer(
    message: Message, bot: Bot, services: Services, *, since: datetime | None, until: datetime
) -> None:
    user_id = message.from_user.id if message.from_user else message.chat.id
    locale = await staff_locale(services.store, services.settings, message.chat.id, user_id)
    digest, rows = await collect_digest(
        services.settings.database_path,
        since=since,
        until=until,
        outbox_counts=await _outbox_counts(services),
    )
    tr = services.i18n.translator(locale)
    await deliver_digest(
        bot, message.chat.id, digest, rows, tr, sandbox=services.settings.uses_sandbox
    )


# --- delivery, shared by the commands, the daily job and the shell ---------------------------


async def staff_locale(store: Store, settings: Settings, chat_id: int, user_id: int) -> str:
    """The chat's (or the asking user's) chosen language, else DEFAULT_LOCALE."""
    return (
        await store.get_locale(chat_id)
        or await store.get_locale(user_id)
        or settings.default_locale
    )


async def deliver_digest(
    bot: Bot,
    chat_id: int,
    digest: Digest,
    rows: Sequence[SubmissionRow],
    tr: Translator,
    *,
    sandbox: bool,
) -> None:
    """Send the digest to one chat, and the table of its applications when there are any."""
    await bot.send_message(chat_id, render_digest(digest, tr, sandbox=sandbox))
    if rows:
        document = BufferedInputFile(digest_csv(rows, tr), filename=csv_file_name(digest))
        await bot.send_document(chat_id, document, caption=tr("digest-csv-caption"))


def telegram_delivery(bot: Bot, *, store: Store, settings: Settings, i18n: I18n) -> Deliver:
    """A `deliver` for `services.digest_job.send_digest`: each chat in its own language."""

    async def deliver(chat_id: int, digest: Digest, rows: Sequence[SubmissionRow]) -> None:
        locale = await staff_locale(store, settings, chat_id, chat_id)
        tr = i18n.translator(locale)
        await deliver_digest(bot, chat_id, digest, rows, tr, sandbox=settings.uses_sandbox)

    return deliver


def outbox_delivery(services: Services) -> Deliver:
    """A `deliver` that writes the digest to the outbox: the sender keeps Telegram's limits,
    and a digest enqueued twice for the same period is stored once."""

    async def deliver(chat_id: int, digest: Digest, rows: Sequence[SubmissionRow]) -> None:
        settings = services.settings
        locale = await staff_locale(services.store, settings, chat_id, chat_id)
        tr = services.i18n.translator(locale)
        period = digest.until.isoformat()
        await services.outbox.enqueue(
            chat_id=chat_id,
            text=render_digest(digest, tr, sandbox=settings.uses_sandbox),
            kind="digest",
            dedup_key=f"digest:{chat_id}:{period}",
        )
        if rows:
            await services.outbox.enqueue(
                chat_id=chat_id,
                text=tr("digest-csv-caption"),
                kind="digest-csv",
                dedup_key=f"digest-csv:{chat_id}:{period}",
                attachment=(csv_file_name(digest), digest_csv(rows, tr)),
            )

    return deliver


async def send_daily_digest(services: Services) -> DigestRun | None:
    """The scheduled digest (DIGEST_CRON) to every staff chat; None when there are none."""
    settings = services.settings
    if not settings.staff_chat_ids:
        return None
    return await send_digest(
        services.store,
        database_path=settings.database_path,
        clock=services.clock,
        chat_ids=settings.staff_chat_ids,
        deliver=outbox_delivery(services),
        outbox_counts=await _outbox_counts(services),
    )


async def _outbox_counts(services: Services) -> Mapping[str, int] | None:
    # The outbox reports {"waiting": n, "failed": n} once it exists (Services.outbox_counts).
    counter: OutboxCounts | None = getattr(services, "outbox_counts", None)
    return await counter() if counter is not None else None


# --- the staff menu -------------------------------------------------------------------------


def staff_commands(tr: Translator) -> list[BotCommand]:
    """The staff menu in `tr`'s language."""
    return [
        BotCommand(command="digest", description=tr("staff-command-digest")),
        BotCommand(command="stats", description=tr("staff-command-stats")),
    ]


async def set_staff_commands(bot: Bot, settings: Settings, i18n: I18n) -> None:
    """Show /digest and /stats in staff chats only (parents never see them in the menu)."""
    for chat_id in settings.staff_chat_ids:
        scope = BotCommandScopeChat(chat_id=chat_id)
        try:
            for locale in i18n.locales:
                commands = staff_commands(i18n.translator(locale))
                await bot.set_my_commands(commands, scope=scope, language_code=locale)
            # Apps in other languages get the default locale's menu.
            await bot.set_my_commands(staff_commands(i18n.translator(i18n.default)), scope=scope)
        except TelegramAPIError as exc:
            # A listed chat the bot is not in yet: the others still get their menu.
            log.warning("staff commands not set for chat %s: %s", chat_id, exc)


# --- `voucher-bot digest [--send]` ----------------------------------------------------------


async def digest_cli(
    settings: Settings,
    *,
    send: bool,
    out: TextIO,
    err: TextIO | None = None,
    clock: Clock | None = None,
    bot: Bot | None = None,
    csv_path: Path | None = None,
) -> int:
    """`voucher-bot digest [--send] [--csv PATH]`: print the digest since the last sent one.

    Without `send` nothing changes: the digest is only shown. With it, the digest also goes to
    every staff chat and its period counts as sent. Returns the process exit code.
    """
    from bot.app import LOCALES_DIR, create_bot

    err = err or sys.stderr
    clock = clock or SystemClock()
    problem = None
    if not await asyncio.to_thread(os.path.isfile, settings.database_path):
        problem = f"no database at {settings.database_path} (DATABASE_PATH)"
    elif send and not settings.staff_chat_ids:
        problem = "STAFF_CHAT_IDS is empty: nobody to send the digest to"
    elif send and bot is None and settings.bot_token is None:
        problem = "BOT_TOKEN is not set: the digest cannot be sent"
    if problem:
        err.write(f"Kezek: {problem}.\n")
        return 1
    i18n = I18n.load(LOCALES_DIR, default=settings.default_locale)
    tr = i18n.translator(settings.default_locale)
    sender = bot or (create_bot(settings) if send else None)
    store = await Store.open(settings.database_path, clock)
    run: DigestRun | None = None
    try:
        if sender is not None and send:
            deliver = telegram_delivery(sender, store=store, settings=settings, i18n=i18n)
            run = await send_digest(
                store,
                database_path=settings.database_path,
                clock=clock,
                chat_ids=settings.staff_chat_ids,
                deliver=deliver,
            )
            digest, rows = run.digest, list(run.rows)
        else:
            until = clock.now()
            since = await digest_since(store, until)
            digest, rows = await collect_digest(settings.database_path, since=since, until=until)
    finally:
        await store.close()
        if sender is not None and bot is None:  # a Bot we made is ours to close
            await sender.session.close()
    out.write(render_plain(digest, tr) + "\n")
    if csv_path is not None:
        await asyncio.to_thread(csv_path.write_bytes, digest_csv(rows, tr))
    if run is None:
        return 0
    err.write(f"Kezek: digest sent to {len(run.delivered)} chat(s), failed: {len(run.failed)}.\n")
    return 0 if run.delivered and not run.failed else 2


PROMPTS: dict[str, Prompt] = {}
