"""Running the sandbox: in-process on loopback (tests, the demo) or in the foreground (CLI)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from services.clock import Clock
from services.voucher.sandbox.app import create_sandbox_app
from services.voucher.sandbox.config import SandboxConfig
from services.voucher.sandbox.context import API, STATE

log = logging.getLogger("services.voucher.sandbox")


@dataclass(frozen=True)
class RunningSandbox:
    """A started sandbox and how to reach it."""

    base_url: str
    token: str
    app: web.Application
    port: int
    clock: Clock


@contextlib.asynccontextmanager
async def running_sandbox(
    config: SandboxConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    clock: Clock | None = None,
    rng: random.Random | None = None,
) -> AsyncIterator[RunningSandbox]:
    """Serve the sandbox on `host:port` (0 = any free port) until the block ends."""
    app = create_sandbox_app(config, clock=clock, rng=rng)
    # access_log=None: aiohttp's own access log would print query strings (phones).
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_port = int(runner.addresses[0][1])
        url_host = f"[{host}]" if ":" in host else host
        yield RunningSandbox(
            base_url=f"http://{url_host}:{bound_port}{API}",
            token=config.token,
            app=app,
            port=bound_port,
            clock=app[STATE].clock,
        )
    finally:
        await runner.cleanup()


async def _serve_until_stopped(config: SandboxConfig, host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows
        loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with running_sandbox(config, host=host, port=port) as sandbox:
        default = config.token == SandboxConfig.model_fields["token"].default
        token_note = "sandbox-token (the default)" if default else "from VOUCHER_API_TOKEN"
        # Printed, not logged: this line is what a person starting the sandbox looks for.
        print(
            f"Voucher sandbox on {sandbox.base_url}; token: {token_note}; "
            f"state in {config.db_path}. Ctrl+C stops it.",
            flush=True,
        )
        await stop.wait()


def serve(host: str, port: int, db_path: Path | None) -> None:
    """Run the sandbox in the foreground until Ctrl+C or SIGTERM."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    env_file = Path(".env")
    config = SandboxConfig(_env_file=env_file if env_file.is_file() else None)  # type: ignore[call-arg]
    if db_path is not None:
        config = config.model_copy(update={"db_path": db_path})
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_until_stopped(config, host, port))


def main(argv: list[str] | None = None) -> None:
    """`python -m services.voucher.sandbox.server [--host] [--port] [--db]`."""
    parser = argparse.ArgumentParser(description="Run the voucher-service sandbox.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8088)
    parser.add_argument(
        "--db", type=Path, default=None, help="SQLite file (default ./sandbox.sqlite3)"
    )
    args = parser.parse_args(argv)
    serve(args.host, args.port, args.db)


if __name__ == "__main__":
    main()
