"""The one factory: services, Bot and Dispatcher for `run`, `demo` and the tests alike."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.base import BaseSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.fsm.storage.base import BaseStorage
from aiogram.fsm.storage.memory import SimpleEventIsolation
from aiogram.utils.callback_answer import CallbackAnswerMiddleware

from bot.abuse import FloodLimit, TooLongInput
from bot.config import Settings
from bot.dedup import UpdateDedup
from bot.delivery import TelegramDelivery
from bot.fsm.storage import SQLiteStorage
from bot.handlers import all_prompts, create_routers
from bot.handlers import errors as error_handlers
from bot.i18n import I18n, LocaleMiddleware
from bot.local_session import LocalBotSession
from bot.middlewares import ViewMiddleware
from bot.pushes import StatusDesk, create_status_desk
from bot.submissions import SubmissionDesk
from bot.view import Services
from bot.watchers import ConsentWatcher
from services.clock import Clock, SystemClock
from services.crypto import DataCipher, generate_key
from services.otp_guard import OtpGuard
from services.outbox import Outbox
from services.sender import Sender
from services.sqlite_writer import SQLiteWriter
from services.store import Store
from services.submitter import Submitter
from services.voucher.client import VoucherClient

log = logging.getLogger("kezek.app")

LOCALES_DIR = Path(__file__).resolve().parent.parent / "locales"
SUBMITTER_STOP_GRACE = 5.0  # seconds a POST in flight may take at shutdown
DEMO_TOKEN = "4242424242:KEZEK-local-demo-token-not-for-telegram"


def create_dispatcher(
    services: Services, storage: BaseStorage, *, dedup: UpdateDedup | None = None
) -> Dispatcher:
    """Build the Dispatcher: middlewares, one router per step, dependencies by name."""
    dp = Dispatcher(
        storage=storage,
        events_isolation=SimpleEventIsolation(),
        services=services,
        store=services.store,
        voucher=services.voucher,
        settings=services.settings,
    )

    async def resolve_locale(user_id: int, telegram_code: str | None) -> str:
        return await services.store.get_locale(user_id) or services.i18n.pick(telegram_code)

    # After aiogram's own outer middlewares (errors, user context, FSM + event isolation): a
    # duplicated update is dropped first, then a flood, before any handler or storage work.
    if dedup is not None:
        dp.update.outer_middleware(dedup)
    if services.settings.flood_burst:
        dp.update.outer_middleware(
            FloodLimit(
                services,
                burst=services.settings.flood_burst,
                per_seconds=services.settings.flood_seconds,
            )
        )
    locale_mw = LocaleMiddleware(services.i18n, resolve_locale)
    for observer in (dp.message, dp.callback_query):
        observer.outer_middleware(locale_mw)
        observer.middleware(ViewMiddleware())
    dp.message.outer_middleware(TooLongInput())
    error_handlers.install(dp)
    # Telegram shows a spinner until a callback is answered: answer first, then work.
    dp.callback_query.middleware(CallbackAnswerMiddleware(pre=True))
    services.prompts = all_prompts()
    services.background = ConsentWatcher(services, storage, dp.fsm.events_isolation)
    dp.include_routers(*create_routers())
    return dp


@dataclass(slots=True)
class App:
    bot: Bot
    dp: Dispatcher
    services: Services
    storage: SQLiteStorage
    sandbox: Any = None  # RunningSandbox when VOUCHER_API_URL=sandbox
    status_desk: StatusDesk | None = None
    sender: Sender | None = None
    dedup: UpdateDedup | None = None
    otp_guard: OtpGuard | None = None
    submitter: Submitter | None = None  # posts what Submit saved (`run_once()` in tests)
    writer: SQLiteWriter | None = None  # every write of the file goes through it (its stats)


def create_bot(settings: Settings, session: BaseSession | None = None) -> Bot:
    if session is None and settings.telegram_api_url:
        session = AiohttpSession(api=TelegramAPIServer.from_base(settings.telegram_api_url))
    token = settings.bot_token.get_secret_value() if settings.bot_token else DEMO_TOKEN
    return Bot(token, session=session, default=DefaultBotProperties(parse_mode=ParseMode.HTML))


def data_cipher(settings: Settings) -> DataCipher:
    """The cipher of DATA_KEY; without one (tests that do not care, never `run`) a throwaway."""
    cipher = settings.data_cipher()
    if cipher is None:
        # `run` refuses to start without DATA_KEY (bot/__main__.py); anything else that gets
        # here keeps its data for this process only, and says so.
        log.warning("DATA_KEY is not set: this run's data is sealed with a throwaway key")
        cipher = DataCipher.from_keys(generate_key())
    return cipher


async def _continue_local_update_ids(bot: Bot, dedup: UpdateDedup) -> None:
    """Telegram's update_id sequence outlives a restart of the bot; the in-process stand-in of
    a new process starts at 1 again, which the dedup would rightly drop as repeats."""
    session = bot.session
    if isinstance(session, LocalBotSession):
        top = await dedup.top(bot.id)
        if top is not None:
            session.continue_update_ids_after(top)


def _submitter(services: Services, storage: SQLiteStorage, dp: Dispatcher, bot: Bot) -> Submitter:
    """The submission worker of this app, wired into the services (Submit wakes it)."""
    desk = SubmissionDesk(services, storage, dp.fsm.events_isolation, bot)
    submitter = Submitter(
        services.store,
        services.voucher,
        desk,
        services.clock,
        sleep=asyncio.sleep,
        on_notice=services.outbox.notify if services.outbox is not None else None,
    )
    services.submitter = submitter
    services.outbox_counts = services.store.submission_counts
    return submitter


@asynccontextmanager
async def open_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    session: BaseSession | None = None,
    sandbox_config: Any = None,
    voucher_options: Mapping[str, Any] | None = None,
    start_sender: bool = False,
) -> AsyncIterator[App]:
    """Open everything the bot needs and close it all on exit, in reverse order.

    `voucher_options` go to the VoucherClient: tests pass a recording `sleep` so retries
    honour Retry-After without waiting for it. `start_sender` runs the outbox sender as a
    task (`run` and `demo`); tests drain the outbox themselves on their fake clock.
    """
    clock = clock or SystemClock()
    async with AsyncExitStack() as stack:
        sandbox = None
        base_url = settings.voucher_api_url
        if settings.uses_sandbox:
            from services.voucher.sandbox import SandboxConfig, running_sandbox

            config = sandbox_config or SandboxConfig(
                token=settings.voucher_api_token.get_secret_value(),
                db_path=settings.database_path.with_suffix(".sandbox.sqlite3"),
            )
            sandbox = await stack.enter_async_context(running_sandbox(config, clock=clock))
            base_url = sandbox.base_url
        if base_url is None:
            raise RuntimeError("VOUCHER_API_URL is not set")
        voucher = VoucherClient(
            base_url,
            settings.voucher_api_token.get_secret_value(),
            connect_timeout=settings.voucher_connect_timeout,
            read_timeout=settings.voucher_read_timeout,
            max_connections=settings.voucher_max_connections,
            pool_timeout=settings.voucher_pool_timeout,
            catalog_ttl=settings.voucher_catalog_ttl,
            listing_ttl=settings.voucher_listing_ttl,
            **(voucher_options or {}),
        )
        stack.push_async_callback(voucher.aclose)
        cipher = data_cipher(settings)
        # One write connection for the whole bot (group commit); pushed first, so it closes
        # after everything that writes through it.
        writer = await SQLiteWriter.open(settings.database_path)
        stack.push_async_callback(writer.close)
        store = await Store.open(settings.database_path, clock, cipher=cipher, writer=writer)
        stack.push_async_callback(store.close)
        outbox = await Outbox.open(settings.database_path, clock, cipher=cipher, writer=writer)
        stack.push_async_callback(outbox.close)
        storage = await SQLiteStorage.open(
            settings.database_path, cipher=cipher, clock=clock, writer=writer
        )
        stack.push_async_callback(storage.close)
        i18n = I18n.load(LOCALES_DIR, default=settings.default_locale)
        services = Services(
            settings=settings, store=store, voucher=voucher, i18n=i18n, clock=clock, outbox=outbox
        )
        dedup = await UpdateDedup.open(settings.database_path, clock, writer=writer)
        stack.push_async_callback(dedup.close)
        otp_guard = await OtpGuard.open(
            settings.database_path,
            clock,
            phone_key=lambda phone: cipher.lookup_hash(phone, "otp-phone"),
            writer=writer,
        )
        stack.push_async_callback(otp_guard.close)
        bot = create_bot(settings, session)
        stack.push_async_callback(bot.session.close)
        await _continue_local_update_ids(bot, dedup)
        dp = create_dispatcher(services, storage, dedup=dedup)
        dp["otp_guard"] = otp_guard
        stack.push_async_callback(services.background.stop)
        desk = create_status_desk(services, outbox)
        dp["status_desk"] = desk
        sender = None
        if start_sender:
            sender = Sender(
                outbox,
                TelegramDelivery(bot),
                clock,
                sleep=asyncio.sleep,
                on_blocked=store.mark_blocked,
            )
            task = asyncio.create_task(sender.run(), name="outbox-sender")

            async def stop_sender() -> None:
                # stop() lets calls in flight finish and saves every result; cancelling the
                # task would count as a crash (see services/sender.py).
                await sender.stop()
                await task

            stack.push_async_callback(stop_sender)
        submitter = _submitter(services, storage, dp, bot)
        if start_sender:
            submit_task = asyncio.create_task(submitter.run(), name="submitter")

            async def stop_submitter() -> None:
                # A POST in flight may finish; one that takes longer is cut off, which is as
                # safe as a crash: the row stays pending, the next start posts the same key.
                await submitter.stop()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(submit_task, SUBMITTER_STOP_GRACE)

            stack.push_async_callback(stop_submitter)
        yield App(
            bot=bot,
            dp=dp,
            services=services,
            storage=storage,
            sandbox=sandbox,
            status_desk=desk,
            sender=sender,
            dedup=dedup,
            otp_guard=otp_guard,
            submitter=submitter,
            writer=writer,
        )
