"""`voucher-bot run | demo | sandbox` — the command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import tempfile
from pathlib import Path

from pydantic import ValidationError

from bot.config import Settings

DEMO_PHONE = "+77015550101"


def _settings(**overrides: object) -> Settings:
    """Settings from the environment, or a readable list of what is wrong, then exit."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = [f"  {'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors()]
        sys.exit("Kezek: bad configuration:\n" + "\n".join(lines))


async def _run() -> int:
    from aiogram.types import BotCommand, BotCommandScopeAllPrivateChats

    from bot.app import open_app

    settings = _settings()
    if settings.bot_token is None:
        sys.exit("Kezek: BOT_TOKEN is not set (see .env.example).")
    if settings.voucher_api_url is None:
        sys.exit(
            "Kezek: VOUCHER_API_URL is not set. Point it at the operator's voucher service, or "
            "set VOUCHER_API_URL=sandbox to run against the built-in sandbox "
            "(no real applications)."
        )
    if settings.uses_sandbox:
        logging.getLogger("kezek").warning(
            "RUNNING AGAINST THE SANDBOX: no application reaches a real voucher service; "
            "every message to parents says so."
        )
    async with open_app(settings) as app:
        for locale in app.services.i18n.locales:
            tr = app.services.i18n.translator(locale)
            commands = [
                BotCommand(command=name, description=tr(f"command-{name}"))
                for name in ("start", "help", "language", "cancel")
            ]
            await app.bot.set_my_commands(
                commands, scope=BotCommandScopeAllPrivateChats(), language_code=locale
            )
        # Pending updates are kept: a parent's message sent during a restart is not lost.
        await app.dp.start_polling(app.bot, handle_signals=True)
    return 0


async def _demo(script: bool) -> int:
    from bot.app import open_app
    from bot.console import run_console
    from bot.local_chat import LocalChat
    from bot.local_session import LocalBotSession
    from services.voucher.sandbox import SandboxConfig

    with tempfile.TemporaryDirectory(prefix="kezek-demo-") as tmp:
        db = Path(tmp) / "kezek.sqlite3"
        settings = _settings(
            voucher_api_url="sandbox",
            database_path=db,
            bot_token=None,
            consent_poll_seconds=1.0,
        )
        session = LocalBotSession()
        sandbox = SandboxConfig(
            token=settings.voucher_api_token.get_secret_value(),
            db_path=Path(tmp) / "sandbox.sqlite3",
        )
        async with open_app(settings, session=session, sandbox_config=sandbox) as app:
            chat = LocalChat(app.dp, app.bot, language_code=os.environ.get("DEMO_LANG", "kk"))
            await run_console(
                chat,
                session,
                voucher=app.services.voucher,
                demo_phone=DEMO_PHONE,
                stdin=sys.stdin,
                stdout=sys.stdout,
                is_tty=sys.stdin.isatty() and not script,
            )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="voucher-bot", description="Kezek voucher-queue bot")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="long polling against Telegram (or TELEGRAM_API_URL)")
    demo = sub.add_parser("demo", help="the whole bot in this terminal, against the sandbox")
    demo.add_argument("--script", action="store_true", help="read stdin as a script")
    sandbox = sub.add_parser("sandbox", help="serve the voucher-service sandbox")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=8088)
    sandbox.add_argument("--db", type=Path, default=None)
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "WARNING" if args.command == "demo" else "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # aiosqlite logs every statement with its bound values at DEBUG: IINs and phones among them.
    logging.getLogger("aiosqlite").setLevel(max(logging.INFO, logging.root.level))
    if args.command == "sandbox":
        from services.voucher.sandbox.server import serve

        serve(args.host, args.port, args.db)
        return 0
    if args.command == "demo":
        return asyncio.run(_demo(args.script))
    return asyncio.run(_run())


if __name__ == "__main__":
    sys.exit(main())
