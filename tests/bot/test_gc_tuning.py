"""The collector settings of a long-running bot, restored after each test."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from bot.gc_tuning import tune_gc


@pytest.fixture(autouse=True)
def restore_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_startup_objects_are_frozen_and_the_young_generation_grows() -> None:
    built_at_startup = [{"step": i} for i in range(1000)]  # stands for aiogram's types & co.
    _, middle, old = gc.get_threshold()

    tune_gc(20_000)

    assert gc.get_freeze_count() >= len(built_at_startup)
    assert gc.get_threshold() == (20_000, middle, old)


def test_zero_leaves_the_collector_alone() -> None:
    before = (gc.get_threshold(), gc.get_freeze_count())

    tune_gc(0)

    assert (gc.get_threshold(), gc.get_freeze_count()) == before
