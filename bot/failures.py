"""How a failed call to the voucher service is told to the parent.

Step handlers catch the errors they expect (a wrong code, a closed intake…) and explain them
in their own words; everything else comes here so the answer is the same at every step: what
happened, that nothing was lost, and a button to try again.
"""

from __future__ import annotations

import logging

from bot.fsm.states import ApplicationForm
from bot.keyboards.common import retry_keyboard
from bot.view import StepView
from services.voucher.errors import ServiceUnavailable, SessionInvalid, VoucherError

log = logging.getLogger("kezek.bot")


async def explain_failure(view: StepView, exc: VoucherError) -> None:
    """Answer a voucher-service failure the step did not handle itself; keep the step."""
    if isinstance(exc, ServiceUnavailable):
        await view.send(view.tr("error-service-unavailable"), retry_keyboard(view.tr))
        return
    if isinstance(exc, SessionInvalid):
        # The ed24 session lasts an hour; only a fresh code proves the phone again.
        await view.save(session=None)
        await view.send(view.tr("error-session-expired"), header=False)
        await view.goto(ApplicationForm.phone)
        return
    log.warning("voucher service refused a request: %s", exc.code)
    await view.send(view.tr("error-service-refused"), retry_keyboard(view.tr))
