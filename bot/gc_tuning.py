"""Python's garbage collector, set for a long-running bot (measured in docs/performance.md).

With the interpreter's defaults a busy bot spent ≈ 10 % of its CPU in the collector, and every
full collection walked everything start-up had built (aiogram's and pydantic's types, the
Fluent bundles, ≈ 220,000 objects) besides the parents in flight: 20 pauses of 0.4–0.6 s in a
six-minute paced rush of 1,000 parents, each one stalling every update in flight. Two changes:

- `gc.freeze()` once start-up is done: those objects never become garbage, so they move to the
  permanent generation and no collection walks them again;
- a larger young generation (`young` allocations between two collections instead of 700):
  most objects of an update die with it, and collecting them 70 times less often costs less
  in total; the older generations keep their thresholds.

Process-wide, so called by the entry point (`voucher-bot run`, the benchmark), never on import
nor by `open_app` (tests open many apps in one process).
"""

from __future__ import annotations

import gc

DEFAULT_YOUNG = 50_000


def tune_gc(young: int = DEFAULT_YOUNG) -> None:
    """Freeze what start-up built and collect the young generation every `young` allocations.

    `young` = 0 leaves the collector as Python set it.
    """
    if young <= 0:
        return
    gc.collect()  # what start-up left as garbage is freed, not frozen
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(young, middle, old)
