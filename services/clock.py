"""Time, injectable: production reads the system clock, tests move a fake one by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

ALMATY = ZoneInfo("Asia/Almaty")


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FakeClock:
    """A clock that moves only when told to; `advance` is the tests' way to let time pass."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 9, 10, 10, 0, tzinfo=ALMATY)

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float = 0, **kwargs: float) -> datetime:
        self._now += timedelta(seconds=seconds, **kwargs)
        return self._now

    def set(self, when: datetime) -> None:
        self._now = when


def almaty(ts: datetime) -> datetime:
    """The same instant in Asia/Almaty, the zone every user-facing time is shown in."""
    return ts.astimezone(ALMATY)


def format_date(day: datetime | object) -> str:
    """`DD.MM.YYYY`, as the portal writes dates."""
    return day.strftime("%d.%m.%Y")  # type: ignore[attr-defined]


def format_datetime(ts: datetime) -> str:
    """`DD.MM.YYYY HH:MM` in Asia/Almaty."""
    return almaty(ts).strftime("%d.%m.%Y %H:%M")


def format_time(ts: datetime) -> str:
    """`HH:MM` in Asia/Almaty."""
    return almaty(ts).strftime("%H:%M")
