"""`voucher-bot run | demo | sandbox | digest` — the command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import tempfile
from functools import partial
from pathlib import Path

from aiogram.types import BotCommand, BotCommandScopeAllPrivateChats
from pydantic import ValidationError

from bot.app import App, open_app
from bot.config import Settings
from bot.console import run_console
from bot.demo_tools import run_status_set
from bot.gc_tuning import tune_gc
from bot.handlers.staff import digest_cli, send_daily_digest, set_staff_commands
from bot.local_chat import LocalChat
from bot.local_session import LocalBotSession
from bot.webhook import start_events_server
from bot.webhook_mode import serve_webhook
from services.crypto import generate_key
from services.jobs import JobPlan, running_jobs
from services.logmask import install_log_masking
from services.retention import purge_stale_drafts
from services.voucher.sandbox import SandboxConfig
from services.voucher.sandbox.server import serve

DEMO_PHONE = "+77015550101"


def _settings(**overrides: object) -> Settings:
    """Settings from the environment, or a readable list of what is wrong, then exit."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = [f"  {'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors()]
        sys.exit("Kezek: bad configuration:\n" + "\n".join(lines))


async def _run(*, webhook: bool = False) -> int:
    """`voucher-bot run [--webhook]`: polling (or the webhook), the sender, jobs, events server."""

    settings = _settings()
    if settings.bot_token is None:
        sys.exit("Kezek: BOT_TOKEN is not set (see .env.example).")
    if settings.data_key is None:
        sys.exit(
            "Kezek: DATA_KEY is not set. It encrypts parents' personal data in the database: "
            "make one with `voucher-bot keygen`, keep it secret and apart from the backups "
            "(docs/security.md)."
        )
    if settings.voucher_api_url is None:
        sys.exit(
            "Kezek: VOUCHER_API_URL is not set. Point it at the operator's voucher service, or "
            "set VOUCHER_API_URL=sandbox to run against the built-in sandbox "
            "(no real applications)."
        )
    if webhook:
        _check_webhook_settings(settings)
    if settings.uses_sandbox:
        logging.getLogger("kezek").warning(
            "RUNNING AGAINST THE SANDBOX: no application reaches a real voucher service; "
            "every message to parents says so."
        )
    async with open_app(settings, start_sender=True) as app:
        for locale in app.services.i18n.locales:
            tr = app.services.i18n.translator(locale)
            commands = [
                BotCommand(command=name, description=tr(f"command-{name}"))
                for name in ("start", "status", "help", "language", "cancel", "forget")
            ]
            await app.bot.set_my_commands(
                commands, scope=BotCommandScopeAllPrivateChats(), language_code=locale
            )
        await set_staff_commands(app.bot, settings, app.services.i18n)
        desk = app.status_desk
        secret = settings.voucher_webhook_secret
        server = await start_events_server(
            settings.events_host,
            settings.events_port,
            secret=secret.get_secret_value() if secret else None,
            on_item=desk.accept,
        )
        try:
            async with running_jobs(_job_plan(app)):
                tune_gc(settings.gc_young_threshold)  # start-up is over: freeze what it built
                # Pending updates are kept: a parent's message sent during a restart is not lost.
                if webhook:
                    await _serve_webhook(app)
                else:
                    # A webhook left by an earlier `run --webhook` would refuse getUpdates.
                    await app.bot.delete_webhook(drop_pending_updates=False)
                    await app.dp.start_polling(app.bot, handle_signals=True)
        finally:
            await server.stop()
    return 0


def _check_webhook_settings(settings: Settings) -> None:
    """`run --webhook` needs a public URL and a secret, and its own port."""
    if settings.webhook_url is None or settings.webhook_secret is None:
        sys.exit(
            "Kezek: `run --webhook` needs WEBHOOK_URL (the bot's public https:// base) and "
            "WEBHOOK_SECRET (16-256 characters of A-Z, a-z, 0-9, _ and -); see .env.example."
        )
    same_host = settings.webhook_host == settings.events_host
    if same_host and settings.webhook_port == settings.events_port and settings.events_port:
        sys.exit("Kezek: WEBHOOK_PORT and EVENTS_PORT must differ (two servers).")


async def _serve_webhook(app: App) -> None:
    """Serve Telegram's webhook until SIGINT or SIGTERM."""
    settings = app.services.settings
    assert settings.webhook_url is not None and settings.webhook_secret is not None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await serve_webhook(
        app.dp,
        app.bot,
        public_url=settings.webhook_url,
        host=settings.webhook_host,
        port=settings.webhook_port,
        path=settings.webhook_path,
        secret=settings.webhook_secret.get_secret_value(),
        stop=stop,
    )


def _job_plan(app: App, *, poll_seconds: float | None = None) -> JobPlan:
    """The scheduled work of a running bot: status feed, reminders, the staff digest."""
    settings = app.services.settings

    async def digest() -> None:
        await send_daily_digest(app.services)

    return JobPlan(
        poll_status=app.status_desk.poll,
        reminders=app.status_desk.remind,
        digest=digest,
        poll_seconds=poll_seconds or settings.status_poll_seconds,
        digest_cron=settings.digest_cron,
        retention=partial(
            purge_stale_drafts,
            app.services.store,
            app.storage,
            app.services.clock,
            outbox=app.services.outbox,
        ),
    )


async def _demo(script: bool) -> int:
    """`voucher-bot demo`: the whole bot in this terminal, on throwaway files."""
    with tempfile.TemporaryDirectory(prefix="kezek-demo-") as tmp:
        db = Path(tmp) / "kezek.sqlite3"
        settings = _settings(
            voucher_api_url="sandbox",
            database_path=db,
            bot_token=None,
            consent_poll_seconds=1.0,
            flood_burst=0,  # one local person; a --script types faster than any parent
            data_key=generate_key(),  # throwaway, like every file of the demo
        )
        session = LocalBotSession()
        sandbox = SandboxConfig(
            token=settings.voucher_api_token.get_secret_value(),
            db_path=Path(tmp) / "sandbox.sqlite3",
        )
        async with open_app(
            settings, session=session, sandbox_config=sandbox, start_sender=True
        ) as app:
            chat = LocalChat(app.dp, app.bot, language_code=os.environ.get("DEMO_LANG", "kk"))
            desk = app.status_desk

            async def status_set(arguments: str) -> str:
                return await run_status_set(app.services.voucher, arguments, poll=desk.poll)

            async with running_jobs(_job_plan(app, poll_seconds=2.0)):
                await run_console(
                    chat,
                    session,
                    voucher=app.services.voucher,
                    demo_phone=DEMO_PHONE,
                    stdin=sys.stdin,
                    stdout=sys.stdout,
                    is_tty=sys.stdin.isatty() and not script,
                    commands={"/status_set": status_set},
                )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="voucher-bot", description="Kezek voucher-queue bot")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="long polling against Telegram (or TELEGRAM_API_URL)")
    run.add_argument(
        "--webhook", action="store_true", help="serve Telegram's webhook instead (WEBHOOK_*)"
    )
    sub.add_parser("keygen", help="print a new DATA_KEY (encryption of personal data)")
    demo = sub.add_parser("demo", help="the whole bot in this terminal, against the sandbox")
    demo.add_argument("--script", action="store_true", help="read stdin as a script")
    sandbox = sub.add_parser("sandbox", help="serve the voucher-service sandbox")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=8088)
    sandbox.add_argument("--db", type=Path, default=None)
    digest = sub.add_parser("digest", help="print the staff digest since the last one sent")
    digest.add_argument("--send", action="store_true", help="also send it to STAFF_CHAT_IDS")
    digest.add_argument("--csv", type=Path, default=None, help="write the submissions CSV here")
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "WARNING" if args.command == "demo" else "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # aiosqlite logs every statement with its bound values at DEBUG: IINs and phones among them.
    logging.getLogger("aiosqlite").setLevel(max(logging.INFO, logging.root.level))
    # Defence in depth: whatever slips into a record, IINs and phones leave it masked.
    install_log_masking()
    if args.command == "keygen":
        print(generate_key())
        return 0
    if args.command == "sandbox":
        serve(args.host, args.port, args.db)
        return 0
    if args.command == "demo":
        return asyncio.run(_demo(args.script))
    if args.command == "digest":
        return asyncio.run(
            digest_cli(_settings(), send=args.send, out=sys.stdout, csv_path=args.csv)
        )
    return asyncio.run(_run(webhook=args.webhook))


if __name__ == "__main__":
    sys.exit(main())
