"""The CLI entry: `serve` runs in the foreground, prints its URL, logs safely, stops on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import httpx

from tests.sandbox.conftest import tls_context
from tests.sandbox.helpers import PARENT_PHONE

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_serve_from_the_command_line(tmp_path: Path) -> None:
    port = _free_port()
    db = tmp_path / "cli.sqlite3"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.voucher.sandbox.server",
        "--port",
        str(port),
        "--db",
        str(db),
        cwd=tmp_path,  # no .env of the developer's checkout
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        banner = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
        base_url = f"http://127.0.0.1:{port}/api/v1"
        assert base_url in banner and "sandbox-token (the default)" in banner and str(db) in banner
        headers = {"Authorization": "Bearer sandbox-token"}
        async with httpx.AsyncClient(
            base_url=base_url, headers=headers, verify=tls_context()
        ) as client:
            response = await client.post("/otp", json={"phone": PARENT_PHONE})
            assert response.status_code == 201
            inbox = await client.get("/sandbox/inbox", params={"phone": PARENT_PHONE})
            assert inbox.json()[0]["otp_code"]
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 20)
    assert process.returncode == 0
    log = (await process.stderr.read()).decode()
    assert "POST /api/v1/otp 201" in log
    assert "GET /api/v1/sandbox/inbox 200" in log
    assert PARENT_PHONE[1:] not in log and "%2B" not in log
    assert db.exists()
