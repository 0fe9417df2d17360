"""Failpoints: named places where the crash tests kill the process on purpose.

`failpoint("submit.before_post")` does nothing unless the environment variable
`KEZEK_FAILPOINT` names that very point; then the process dies at once with SIGKILL, the way a
power cut or the OOM killer ends it: no `finally`, no flush, no clean close of the database.
The variable is read on every call (not cached at import), so a test can set it for one child
process only. The points in use:

    submit.before_post     services/submitter.py, just before POST /applications
    submit.after_response  services/submitter.py, the service said 201, nothing recorded yet
    confirm.after_send     bot/delivery.py, Telegram accepted the confirmation, row not marked
"""

from __future__ import annotations

import os
import signal

ENV = "KEZEK_FAILPOINT"


def failpoint(name: str) -> None:
    """Kill this process with SIGKILL when `KEZEK_FAILPOINT` equals `name`."""
    if os.environ.get(ENV) == name:
        crash()


def crash() -> None:
    """Die now, as an unexpected kill would: SIGKILL to ourselves."""
    os.kill(os.getpid(), signal.SIGKILL)
