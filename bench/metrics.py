"""Small measuring tools: percentiles, CPU of a process, RSS now and sampled over a run."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import resource
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def percentile(sorted_values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile (`share` in 0..1) of already sorted values; 0 when empty."""
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values), math.ceil(share * len(sorted_values))))
    return sorted_values[rank - 1]


def rss_bytes() -> int:
    """This process's resident set size now (Linux /proc; the peak elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return peak_rss_bytes()
    return pages * _PAGE


def peak_rss_bytes() -> int:
    """The highest RSS this process ever had (getrusage: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of another process so far (Linux /proc), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces: split after it.
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def file_sizes(path: Path) -> dict[str, int]:
    """Sizes of an SQLite file and its -wal and -shm companions (0 when absent)."""
    sizes = {}
    for suffix in ("", "-wal", "-shm"):
        candidate = Path(str(path) + suffix)
        sizes[suffix or "db"] = candidate.stat().st_size if candidate.exists() else 0
    return sizes


@dataclass
class RssSampler:
    """Samples RSS every `interval` seconds with a progress count, while the run goes on.

    A measuring task, not a synchronisation: it only reads numbers.
    """

    progress: Callable[[], int]
    interval: float = 0.25
    samples: list[tuple[float, int, int]] = field(default_factory=list)  # (t, progress, rss)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin sampling (one sample now)."""
        self._sample()
        self._task = asyncio.create_task(self._run(), name="bench-rss-sampler")

    async def stop(self) -> None:
        """Stop sampling (one last sample)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._sample()

    @property
    def peak(self) -> int:
        """The highest RSS seen."""
        return max((s[2] for s in self.samples), default=rss_bytes())

    def _sample(self) -> None:
        self.samples.append((time.perf_counter(), self.progress(), rss_bytes()))

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)  # the sampling period itself
            self._sample()


@dataclass
class Latencies:
    """Wall times of many operations, in seconds."""

    values: list[float] = field(default_factory=list)

    def add(self, seconds: float) -> None:
        self.values.append(seconds)

    def summary_ms(self) -> dict[str, float]:
        """p50, p95, p99 and max in milliseconds; empty when nothing was measured."""
        if not self.values:
            return {}
        ordered = sorted(self.values)
        return {
            "p50": percentile(ordered, 0.50) * 1000,
            "p95": percentile(ordered, 0.95) * 1000,
            "p99": percentile(ordered, 0.99) * 1000,
            "max": (ordered[-1] * 1000) if ordered else 0.0,
        }


@dataclass
class StepTimes:
    """One step of the journey across all parents: its handling times and its share of the tail."""

    count: int
    p50_ms: float
    p99_ms: float
    in_slowest: int  # of the run's slowest 1 % of updates, how many were this step's


def step_times(by_step: dict[str, Latencies], all_updates: Latencies) -> dict[str, StepTimes]:
    """Per step: p50, p99 and how many of the run's slowest 1 % it holds (steps in given order)."""
    ordered = sorted(all_updates.values)
    if not ordered:
        return {}
    tail = percentile(ordered, 0.99)
    result: dict[str, StepTimes] = {}
    for name, times in by_step.items():
        values = sorted(times.values)
        result[name] = StepTimes(
            count=len(values),
            p50_ms=percentile(values, 0.50) * 1000,
            p99_ms=percentile(values, 0.99) * 1000,
            in_slowest=sum(1 for v in values if v >= tail),
        )
    return result


class LoopIdleMeter:
    """Seconds the event loop spent blocked in its selector, i.e. with nothing to run.

    The rush's throughput is the loop thread's: if the loop is busy all the time, only less
    CPU per update moves it; if it idles, something it waits for (SQLite's thread, the
    sandbox) is the limit. Wraps the selector of asyncio's own loop (a private attribute, so
    on a loop without one `measuring` stays False and the figure is not reported).
    """

    def __init__(self) -> None:
        self.idle = 0.0
        self.measuring = False
        self._restore: Callable[[], None] | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        selector = getattr(loop, "_selector", None)
        select = getattr(selector, "select", None)
        if select is None:
            return
        self.measuring = True
        clock = time.perf_counter

        def timed(timeout: float | None = None) -> Any:
            started = clock()
            try:
                return select(timeout)
            finally:
                self.idle += clock() - started

        selector.select = timed  # type: ignore[union-attr]
        self._restore = lambda: setattr(selector, "select", select)

    def stop(self) -> None:
        if self._restore is not None:
            self._restore()
            self._restore = None
