"""Suite-wide guards.

- A database connection left open is a failure, not a hang: aiosqlite runs each connection in a
  non-daemon thread; one that is never closed keeps the interpreter alive after the last test,
  and CI would wait for it until its time runs out.
- `without_gc_pauses`, for tests whose healthy calls run under a read timeout of a fraction of
  a second (see the fixture).
"""

from __future__ import annotations

import gc
import os
import sys
import threading
from collections.abc import Iterator

import pytest


@pytest.fixture
def without_gc_pauses() -> Iterator[None]:
    """No automatic garbage collection during the test.

    In this process a full collection stops the event loop for 0.3-1.4 s (gc.callbacks over the
    whole suite, 2026-11-27). A test that gives the voucher client a 0.15-0.2 s read timeout, so
    that a hang it injects is seen quickly, would take such a stop during one of its healthy
    calls for the service hanging, and fail once in a while.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


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
