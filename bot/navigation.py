"""Where *Back* leads from each state; the one place that knows the order of the steps."""

from __future__ import annotations

from typing import Any

from aiogram.fsm.state import State

from bot.fsm.states import ApplicationForm as F

_BACK: dict[str, State] = {
    F.rules.state: F.language,
    F.phone.state: F.rules,
    F.otp.state: F.phone,
    F.parent_iin.state: F.phone,
    F.parent_consent.state: F.parent_iin,
    F.parent_confirm.state: F.parent_iin,
    F.child_iin.state: F.parent_confirm,
    F.child_consent.state: F.child_iin,
    F.child_confirm.state: F.child_iin,
    F.queue_type.state: F.child_confirm,
    F.state_order.state: F.queue_type,
    F.disability_doc.state: F.state_order,
    F.benefit_doc.state: F.benefit,
    F.provider.state: F.benefit,
    F.group.state: F.provider,
    F.preview.state: F.group,
    F.notify_channel.state: F.preview,
    F.notify_language.state: F.notify_channel,
    F.review.state: F.notify_language,
}


def previous_state(current: str | None, draft: dict[str, Any]) -> State | None:
    """The state *Back* returns to, or None where there is no way back (after submission)."""
    if current == F.benefit.state:
        # The disability paper is asked only for the special queue.
        return F.disability_doc if draft.get("queue_type") == "special" else F.state_order
    return _BACK.get(current or "")
