"""Demo helpers: play the staff side of the sandbox, so a person at the console sees pushes.

`/status_set 21792 registered 15` in `voucher-bot demo` moves application № 21792 (or an id)
in the sandbox, then reads the changes feed at once instead of waiting for the next poll:

    /status_set NUMBER registered POSITION
    /status_set NUMBER voucher_issued [DD.MM.YYYY HH:MM]     (default: now + 72 h)
    /status_set NUMBER rejected REASON  or  kk reason | ru reason
    /status_set NUMBER submitted | voucher_used | voucher_expired | cancelled
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Protocol

from services.clock import ALMATY, format_datetime
from services.voucher.errors import VoucherError
from services.voucher.models import (
    APPLICATION_STATUSES,
    Application,
    Localized,
    SandboxApplication,
    StatusChange,
)

USAGE = "/status_set NUMBER STATUS [POSITION | DD.MM.YYYY HH:MM | REASON] — " + ", ".join(
    APPLICATION_STATUSES
)


class SandboxStaff(Protocol):
    """The part of VoucherClient that plays the staff."""

    async def sandbox_list_applications(self) -> list[SandboxApplication]: ...

    async def sandbox_set_status(
        self, application_id: str, change: StatusChange
    ) -> Application: ...


class DemoCommandError(ValueError):
    """The command's arguments are wrong; the message says how to write it."""


async def demo_set_status(
    voucher: SandboxStaff,
    number_or_id: str,
    status: str,
    *,
    position: int | None = None,
    reason: str | None = None,
    deadline: datetime | None = None,
) -> Application:
    """Move a sandbox application (by number or id) to `status`; returns it as it is now."""
    if status not in APPLICATION_STATUSES:
        raise DemoCommandError(
            f"unknown status {status!r}; one of: " + ", ".join(APPLICATION_STATUSES)
        )
    applications = await voucher.sandbox_list_applications()
    found = next((a for a in applications if number_or_id in (a.number, a.id)), None)
    if found is None:
        raise DemoCommandError(f"no application {number_or_id!r} in the sandbox")
    localized = None
    if reason:
        kk, _, ru = reason.partition("|")
        localized = Localized(kk=kk.strip(), ru=(ru or kk).strip())
    change = StatusChange.model_validate(
        {
            "status": status,
            "queue_position": position,
            "reason": localized,
            "deadline": deadline,
        }
    )
    return await voucher.sandbox_set_status(found.id, change)


def parse_status_set(arguments: str) -> tuple[str, str, dict[str, object]]:
    """`NUMBER STATUS [rest]` → (number, status, keyword arguments of demo_set_status)."""
    parts = arguments.split(maxsplit=2)
    if len(parts) < 2:
        raise DemoCommandError(USAGE)
    number, status = parts[0], parts[1]
    rest = parts[2].strip() if len(parts) == 3 else ""
    options: dict[str, object] = {}
    if status == "registered" and rest:
        if not rest.isdigit() or int(rest) < 1:
            raise DemoCommandError("the queue position is a whole number from 1: " + USAGE)
        options["position"] = int(rest)
    elif status == "voucher_issued" and rest:
        try:
            options["deadline"] = datetime.strptime(rest, "%d.%m.%Y %H:%M").replace(tzinfo=ALMATY)
        except ValueError:
            raise DemoCommandError("the deadline is DD.MM.YYYY HH:MM: " + USAGE) from None
    elif status == "rejected" and rest:
        options["reason"] = rest
    elif rest:
        raise DemoCommandError(f"{status} takes nothing more: " + USAGE)
    return number, status, options


async def run_status_set(
    voucher: SandboxStaff,
    arguments: str,
    *,
    poll: Callable[[], Awaitable[object]] | None = None,
) -> str:
    """The console's `/status_set ARGS`: change the status, poll the feed, say what was done."""
    try:
        number, status, options = parse_status_set(arguments)
        app = await demo_set_status(voucher, number, status, **options)  # type: ignore[arg-type]
    except DemoCommandError as exc:
        return f"status_set: {exc}"
    except VoucherError as exc:
        return f"status_set: the sandbox refused ({exc.status} {exc.code})"
    if poll is not None:
        await poll()  # the push is in the outbox now, not in STATUS_POLL_SECONDS
    details = [f"№ {app.number}: {app.status}"]
    if app.queue_position is not None:
        details.append(f"position {app.queue_position}")
    if app.deadline is not None:
        details.append(f"deadline {format_datetime(app.deadline)}")
    return "status_set: " + ", ".join(details)
