"""Every sandbox test talks plain HTTP to a real sandbox on loopback with a real SQLite file."""

from __future__ import annotations

import functools
import os
import random
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.clock import ALMATY, FakeClock
from services.voucher.sandbox import RunningSandbox, SandboxConfig, running_sandbox

START = datetime(2026, 9, 10, 10, 0, tzinfo=ALMATY)


@pytest.fixture(autouse=True)
def _no_sandbox_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come only from what a test passes, never from the developer's shell."""
    for name in list(os.environ):
        if name.startswith("SANDBOX_") or name == "VOUCHER_API_TOKEN":
            monkeypatch.delenv(name)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "sandbox.sqlite3"


@pytest.fixture
def config(db_path: Path) -> SandboxConfig:
    return SandboxConfig(db_path=db_path)


@pytest.fixture
def start(
    config: SandboxConfig, clock: FakeClock
) -> Callable[..., AbstractAsyncContextManager[RunningSandbox]]:
    """`async with start(**overrides) as sb`: a sandbox with some settings changed."""

    def _start(**overrides: Any) -> AbstractAsyncContextManager[RunningSandbox]:
        return running_sandbox(
            config.model_copy(update=overrides), clock=clock, rng=random.Random(2026)
        )

    return _start


@pytest.fixture
async def sandbox(
    start: Callable[..., AbstractAsyncContextManager[RunningSandbox]],
) -> AsyncIterator[RunningSandbox]:
    async with start() as running:
        yield running


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One TLS context for all clients: httpx would load the CA bundle (~30 ms) per client,
    and the sandbox is plain HTTP on loopback anyway."""
    return ssl.create_default_context()


def api_client(sandbox: RunningSandbox, token: str | None = None) -> httpx.AsyncClient:
    """An httpx client for the sandbox, with the bearer token unless told otherwise."""
    headers = {"Authorization": f"Bearer {token or sandbox.token}"}
    return httpx.AsyncClient(
        base_url=sandbox.base_url, headers=headers, timeout=10, verify=tls_context()
    )


@pytest.fixture
async def client(sandbox: RunningSandbox) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(sandbox) as http:
        yield http
