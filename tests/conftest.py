"""Suite-wide guard: a database connection left open is a failure, not a hang.

aiosqlite runs each connection in a non-daemon thread; one that is never closed keeps the
interpreter alive after the last test, and CI would wait for it until its time runs out.
"""

from __future__ import annotations

import os
import sys
import threading

import pytest


def _leaked_threads() -> list[threading.Thread]:
    main = threading.main_thread()
    return [t for t in threading.enumerate() if t is not main and not t.daemon and t.is_alive()]


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    leaked = _leaked_threads()
    if not leaked:
        return
    names = ", ".join(t.name for t in leaked)
    sys.stderr.write(
        f"\nFAILED: threads left running after the tests (unclosed connection?): {names}\n"
    )
    sys.stderr.flush()
    sys.stdout.flush()
    # The threads would keep the process alive forever; end it with a failure instead.
    os._exit(1)
