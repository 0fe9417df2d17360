"""Fixtures for the voucher client tests: the real sandbox on loopback and a client bound to it."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from services.clock import FakeClock
from services.validation import iin_check_digit
from services.voucher.client import VoucherClient

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
