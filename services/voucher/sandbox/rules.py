"""The contract's rules as pure functions: timing of codes and consents, the place of a child
in a queue, feed cursors, JSON equality for idempotency keys."""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Sequence
from datetime import date
from typing import Any

from services.academic_year import age_on_september_first
from services.voucher.models import Group, QueueRef
from services.voucher.sandbox.catalog import age_band, queue_ref
from services.voucher.sandbox.problems import ProblemError

OTP_TTL = 300
OTP_RESEND_AFTER = 60
OTP_PER_HOUR = 3
OTP_MAX_WRONG = 5
SESSION_TTL = 3600
CONSENT_TTL = 600
VOUCHER_DEADLINE = 72 * 3600
IDEMPOTENCY_TTL = 24 * 3600
HOUR = 3600

# Used with fullmatch: ASCII digits only and no trailing newline, which `\d` and `$` would allow.
PHONE = re.compile(r"\+7[0-9]{10}")
OTP_CODE = re.compile(r"[0-9]{4}")


def otp_wait(recent: Sequence[float], now: float) -> int:
    """Whole seconds until this phone may get a new code (0 = now).

    `recent` holds the creation times of the phone's codes within the last hour, newest first.
    """
    allowed_at = now
    if recent and now - recent[0] < OTP_RESEND_AFTER:
        allowed_at = max(allowed_at, recent[0] + OTP_RESEND_AFTER)
    if len(recent) >= OTP_PER_HOUR:
        # The next code is allowed once the oldest of the last three leaves the hour.
        allowed_at = max(allowed_at, recent[OTP_PER_HOUR - 1] + HOUR)
    return 0 if allowed_at <= now else max(1, math.ceil(allowed_at - now))


def consent_status(stored: str, created_at: float, now: float, auto_answer_s: int | None) -> str:
    """The status a consent has now: `pending` turns `granted` (auto-answer) or `expired`."""
    if stored != "pending":
        return stored
    age = now - created_at
    if auto_answer_s is not None and auto_answer_s < CONSENT_TTL and age >= auto_answer_s:
        return "granted"
    if age >= CONSENT_TTL:
        return "expired"
    return "pending"


def place_in_queue(
    birth_date: date,
    queue_type: str,
    group: Group,
    bands: Sequence[tuple[int, int]],
    today: date,
) -> tuple[QueueRef, int]:
    """The queue and age on 1 September, or 422 `age_out_of_range`."""
    age = age_on_september_first(birth_date, today)
    band = age_band(age, bands)
    if band is None:
        raise ProblemError(
            422,
            "age_out_of_range",
            f"A child aged {age} on 1 September fits none of the age bands.",
        )
    if not group.age_min <= age <= group.age_max:
        raise ProblemError(
            422,
            "age_out_of_range",
            f"The group takes children aged {group.age_min}–{group.age_max} on 1 September; "
            f"this child will be {age}.",
        )
    return queue_ref(queue_type, band), age


def require_disability_document(queue_type: str, kinds: Sequence[str]) -> None:
    """422 `document_required` for the special queue without a disability document."""
    if queue_type == "special" and "disability" not in kinds:
        raise ProblemError(
            422,
            "document_required",
            "The special queue needs a disability document among `documents`.",
        )


# --- the changes feed's cursor -------------------------------------------------------------

_CURSOR_BODY = re.compile(r"chg:(0|[1-9][0-9]{0,17})")


def encode_cursor(seq: int) -> str:
    """An opaque cursor for the position after change `seq` (0 = the start)."""
    return base64.urlsafe_b64encode(f"chg:{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int | None:
    """The position a cursor stands for, or None when it is not one of ours."""
    if not cursor or not cursor.isascii():
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        return None
    match = _CURSOR_BODY.fullmatch(text)
    if match is None or encode_cursor(int(match[1])) != cursor:
        return None
    return int(match[1])


# --- idempotency ---------------------------------------------------------------------------


def same_json(a: Any, b: Any) -> bool:
    """Equality of parsed JSON: unlike Python's `==`, `true` is not `1` and `1` is `1.0`."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b
