"""Fixtures for the voucher client tests: the real sandbox or a scripted server on loopback."""

from __future__ import annotations

import random
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import web

from services.clock import FakeClock
from services.validation import iin_check_digit
from services.voucher.client import VoucherClient
from tests.voucher.scripted_server import FaultServer

if TYPE_CHECKING:
    from services.voucher.sandbox import RunningSandbox


def make_iin(born: date, male: bool, serial: int = 1) -> str:
    """A valid IIN for this birth date and sex (the first serial whose check digit exists)."""
    century = {18: 1, 19: 3, 20: 5}[born.year // 100] + (0 if male else 1)
    for number in range(serial, serial + 100):
        first11 = f"{born:%y%m%d}{century}{number:04d}"
        check = iin_check_digit(first11)
        if check is not None:
            return first11 + str(check)
    raise AssertionError("no serial gives a check digit")  # never: most serials do


# A valid IIN the test sandbox is told to treat as absent from the state database.
UNKNOWN_IIN = make_iin(date(1985, 7, 20), male=False, serial=4000)


class RecordedSleep:
    """Stands in for asyncio.sleep: remembers each backoff delay instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


@pytest.fixture
def recorded_sleep() -> RecordedSleep:
    return RecordedSleep()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def sandbox(tmp_path: Path, clock: FakeClock) -> AsyncIterator[RunningSandbox]:
    """The real sandbox on 127.0.0.1, with its own SQLite file and the test's FakeClock."""
    # Imported here, not at the top, so the fault tests never depend on the sandbox package.
    from services.voucher.sandbox import SandboxConfig, running_sandbox

    config = SandboxConfig(token="t", db_path=tmp_path / "s.db", unknown_iins={UNKNOWN_IIN})
    async with running_sandbox(config, clock=clock) as sb:
        yield sb


@pytest.fixture
async def client(
    sandbox: RunningSandbox, recorded_sleep: RecordedSleep
) -> AsyncIterator[VoucherClient]:
    """A client of the sandbox whose backoff is recorded, not waited for."""
    async with VoucherClient(
        sandbox.base_url, sandbox.token, sleep=recorded_sleep, rng=random.Random(0)
    ) as voucher:
        yield voucher


# --- the scripted server (tests/voucher/scripted_server.py) ---------------------------------


@pytest.fixture
async def server() -> AsyncIterator[FaultServer]:
    """A scripted server on 127.0.0.1; hung requests are released at teardown."""
    fault = FaultServer()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fault.handle)
    runner = web.AppRunner(app, access_log=None)  # the server side is not under test
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    fault.base_url = f"http://{host}:{port}/api/v1"
    yield fault
    fault.release()
    await runner.cleanup()


@pytest.fixture
def refused_url() -> Iterator[str]:
    """A port that is bound but never listens: connecting is refused, and no one can take it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/api/v1"


MakeClient = Callable[..., VoucherClient]


@pytest.fixture
async def make_client(
    server: FaultServer, recorded_sleep: RecordedSleep
) -> AsyncIterator[MakeClient]:
    """Clients of the scripted server (knobs as keyword arguments), closed at teardown."""
    made: list[VoucherClient] = []

    def make(**knobs: Any) -> VoucherClient:
        knobs.setdefault("read_timeout", 5.0)
        knobs.setdefault("sleep", recorded_sleep)
        knobs.setdefault("rng", random.Random(1))
        voucher = VoucherClient(knobs.pop("base_url", server.base_url), "tok", **knobs)
        made.append(voucher)
        return voucher

    yield make
    for voucher in made:
        await voucher.aclose()
