"""The voucher sandbox in its own process (`python -m bot sandbox`), so the bot's CPU is its own.

The sandbox is started on port 0 and prints the URL it bound; we read that line instead of
guessing a free port. Its CPU is read from /proc, for the report.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from bench.metrics import process_cpu_seconds

_URL = re.compile(r"(https?://\S+/api/v1)")
# The tree this benchmark runs from, so the sandbox process runs the same code as the bot.
ROOT = Path(__file__).resolve().parent.parent
TOKEN = "sandbox-token"


@dataclass
class SandboxProcess:
    """A running sandbox process and where it listens."""

    process: asyncio.subprocess.Process
    base_url: str
    db_path: Path

    def cpu_seconds(self) -> float | None:
        """CPU the sandbox used so far (None where /proc is missing)."""
        return process_cpu_seconds(self.process.pid)


@contextlib.asynccontextmanager
async def sandbox_process(
    workdir: Path, *, latency_ms: int = 0, start_timeout: float = 60.0
) -> AsyncIterator[SandboxProcess]:
    """Start `python -m bot sandbox` with its database in `workdir`; stop it (SIGTERM) on exit."""
    db_path = workdir / "sandbox.sqlite3"
    env = {
        **os.environ,
        "SANDBOX_LATENCY_MS": str(latency_ms),
        "VOUCHER_API_TOKEN": TOKEN,
        # One access-log line per request would make the sandbox measure its own logging.
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    for name in ("SANDBOX_FAILURE_RATE", "SANDBOX_INTAKE_CLOSED", "SANDBOX_CONSENT_AUTO_ANSWER_S"):
        env.pop(name, None)
    stderr = (workdir / "sandbox.stderr.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "sandbox",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--db",
        str(db_path),
        cwd=workdir,  # away from the repository's .env
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=stderr,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), start_timeout)
        found = _URL.search(line.decode(errors="replace"))
        if found is None:
            log = (workdir / "sandbox.stderr.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the sandbox did not start: {line!r}\n{log}")
        yield SandboxProcess(process=process, base_url=found.group(1), db_path=db_path)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                process.kill()
                await process.wait()
        stderr.close()
