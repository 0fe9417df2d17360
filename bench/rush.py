"""The rush: N parents at once, each the whole conversation, through the real bot.

The real Dispatcher from `open_app` (middlewares, routers, SQLite FSM storage, the store and
outbox on one SQLite file, the outbox sender running), Telegram faked by the recording session,
the voucher service by the sandbox over loopback HTTP — in its own process by default, so the CPU
this process spends is the bot's (plus the Telegram stand-in's and the parents' phones', which are
measured and reported apart).

All N parents are started together as N tasks, nothing bounds how many are in flight. With
`think` > 0 each parent waits about that long before each action (a time drawn once per parent
within ±50 %, seeded), and the starts are spread over one think time: a paced crowd, whose
per-update latency is the bot's service time rather than a queue.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import logging
import random
import re
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.metrics import Latencies, RssSampler, StepTimes, file_sizes, rss_bytes, step_times
from bench.parent import (
    TR_KEYS,
    BenchChat,
    BenchSession,
    JourneyError,
    MessageNamer,
    Parent,
    Phones,
    UpdateStats,
    child_iins,
    parent_iins,
    phone_of,
)
from bench.sandbox_proc import TOKEN, sandbox_process
from bot.app import open_app
from bot.config import Settings
from services.voucher.client import VoucherClient
from services.voucher.sandbox import SandboxConfig

log = logging.getLogger("kezek.bench")
FIRST_USER_ID = 50_000_000
_DIGITS = re.compile(r"[0-9]{4,}")
_URL = re.compile(r"url='?[^ ,']*'?")


@dataclass
class RushResult:
    """Everything one rush measured."""

    parents: int
    latency_ms: int
    think_ms: int
    sandbox_mode: str
    completed: int = 0  # parents told a number that the sandbox holds for their child
    applications: int = 0  # applications the sandbox holds
    duplicated: int = 0  # children with more than one application
    lost: int = 0  # parents without an application upstream
    wrong_number: int = 0  # parents told a number that is not their child's
    failures: dict[str, int] = field(default_factory=dict)  # "stage: reason" → parents
    updates: int = 0
    handling_seconds: float = 0.0  # first update in → last update handled
    wall_seconds: float = 0.0  # start → every parent has a number (or gave up)
    latency_ms_summary: dict[str, float] = field(default_factory=dict)
    number_wait_ms: dict[str, float] = field(default_factory=dict)  # submit → number
    process_cpu: float = 0.0  # seconds, this process, during the run
    telegram_cpu: float = 0.0  # seconds, inside the Telegram stand-in
    harness_http_calls: int = 0
    harness_cpu_per_call: float = 0.0  # seconds, calibrated after the run
    sandbox_cpu: float | None = None  # seconds, the sandbox process
    telegram_calls: int = 0
    rss_before: int = 0
    rss_peak: int = 0
    rss_after: int = 0  # the rush over, app still open, after gc
    rss_closed: int = 0  # app closed, after gc
    blocks_before: int = 0  # Python's allocated memory blocks (sys.getallocatedblocks), after gc
    blocks_after: int = 0  # the rush over, app still open, after gc
    db_sizes: dict[str, int] = field(default_factory=dict)
    sandbox_db_bytes: int = 0
    rss_curve: list[tuple[int, int]] = field(default_factory=list)  # (completed, rss)
    writes: int = 0  # jobs of the process's SQLite writer during the run (0: no writer)
    commits: int = 0  # its batches: each one COMMIT, one fsync
    loop_busy: float | None = None  # share of the handling time the event loop had work
    steps: dict[str, StepTimes] = field(default_factory=dict)  # by step of the journey

    @property
    def updates_per_second(self) -> float:
        return self.updates / self.handling_seconds if self.handling_seconds else 0.0

    @property
    def bot_cpu(self) -> float:
        """Process CPU minus the Telegram stand-in and the parents' phone calls."""
        harness = self.harness_http_calls * self.harness_cpu_per_call
        return max(self.process_cpu - self.telegram_cpu - harness, 0.0)

    def cpu_us_per_update(self, *, raw: bool = False) -> float:
        cpu = self.process_cpu if raw else self.bot_cpu
        return cpu / self.updates * 1e6 if self.updates else 0.0

    @property
    def rss_growth_per_1000(self) -> float:
        """Bytes kept per 1,000 parents once the rush is over (app still open)."""
        return (self.rss_after - self.rss_before) / self.parents * 1000 if self.parents else 0.0

    @property
    def blocks_per_parent(self) -> float:
        """Python memory blocks still allocated per parent once the rush is over."""
        return (self.blocks_after - self.blocks_before) / self.parents if self.parents else 0.0

    @property
    def rss_peak_per_1000(self) -> float:
        """Bytes at the peak per 1,000 parents in flight."""
        return (self.rss_peak - self.rss_before) / self.parents * 1000 if self.parents else 0.0

    @property
    def ok(self) -> bool:
        return (
            self.completed == self.parents
            and self.applications == self.parents
            and self.duplicated == 0
            and self.lost == 0
            and self.wrong_number == 0
        )


@contextlib.asynccontextmanager
async def _voucher_endpoint(
    mode: str, workdir: Path, latency_ms: int
) -> AsyncIterator[tuple[str, SandboxConfig | None, Any]]:
    """(VOUCHER_API_URL, in-process sandbox config, the sandbox process or None)."""
    if mode == "process":
        async with sandbox_process(workdir, latency_ms=latency_ms) as proc:
            yield proc.base_url, None, proc
    elif mode == "inprocess":
        config = SandboxConfig(
            token=TOKEN, db_path=workdir / "sandbox.sqlite3", latency_ms=latency_ms
        )
        yield "sandbox", config, None
    else:
        raise ValueError(f"unknown sandbox mode {mode!r}")


async def run_rush(
    parents: int,
    *,
    latency_ms: int = 0,
    think_ms: int = 0,
    sandbox_mode: str = "process",
    number_timeout: float | None = None,
    workdir: Path | None = None,
    seed: int = 2026,
) -> RushResult:
    """Run the rush once, on fresh databases, and check every application upstream."""
    result = RushResult(parents, latency_ms, think_ms, sandbox_mode)
    own_dir = workdir is None
    work = Path(tempfile.mkdtemp(prefix="kezek-bench-")) if workdir is None else workdir
    if number_timeout is None:
        # The number may come through the outbox at ~25/s: leave room for all of them.
        number_timeout = 120.0 + parents / 10
    try:
        async with _voucher_endpoint(sandbox_mode, work, latency_ms) as (url, config, proc):
            await _run(result, work, url, config, proc, number_timeout, seed)
    finally:
        if own_dir:
            shutil.rmtree(work, ignore_errors=True)
    return result


async def _run(
    result: RushResult,
    work: Path,
    url: str,
    sandbox_config: SandboxConfig | None,
    proc: Any,
    number_timeout: float,
    seed: int,
) -> None:
    n = result.parents
    db_path = work / "kezek.sqlite3"
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        voucher_api_url=url,
        voucher_api_token=TOKEN,
        database_path=db_path,
        **_settings_overrides(result.think_ms),
    )
    session = BenchSession()
    stats = UpdateStats()
    mothers, children = parent_iins(n), child_iins(n)
    rng = random.Random(seed)
    async with open_app(
        settings, session=session, sandbox_config=sandbox_config, start_sender=True
    ) as app:
        base_url = url if sandbox_config is None else app.sandbox.base_url
        phones = Phones(base_url, TOKEN)
        checker = VoucherClient(base_url, TOKEN)  # for the count afterwards
        try:
            tr_table = {key: app.services.i18n.t("kk", key) for key in TR_KEYS}
            namer = MessageNamer(app.services.i18n)
            crowd = []
            for i in range(n):
                chat = BenchChat(
                    app.dp,
                    app.bot,
                    session,
                    stats,
                    user_id=FIRST_USER_ID + i,
                    language_code="kk",
                    phone=phone_of(i),
                )
                crowd.append(
                    Parent(
                        chat=chat,
                        phones=phones,
                        tr_table=tr_table,
                        namer=namer,
                        phone=phone_of(i),
                        parent_iin=mothers[i],
                        child_iin=children[i],
                        number_timeout=number_timeout,
                    )
                )
            done = 0

            def completed() -> int:
                return done

            async def one(parent: Parent, start_delay: float) -> None:
                nonlocal done
                if start_delay > 0:
                    await asyncio.sleep(start_delay)  # arrivals spread over one think time
                if result.think_ms:
                    parent.think = result.think_ms / 1000 * rng.uniform(0.5, 1.5)
                try:
                    await parent.run()
                finally:
                    done += 1
                    session.forget_chat(parent.chat.chat_id)

            think = result.think_ms / 1000
            gc.collect()
            result.rss_before = rss_bytes()
            result.blocks_before = sys.getallocatedblocks()
            sampler = RssSampler(completed)
            sampler.start()
            stats.meter.start(asyncio.get_running_loop())
            writer = getattr(app, "writer", None)
            writes0 = (writer.stats.jobs, writer.stats.batches) if writer is not None else None
            cpu0 = time.process_time()
            tg0 = session.cpu_seconds
            sandbox0 = proc.cpu_seconds() if proc is not None else None
            t0 = time.perf_counter()
            outcomes = await asyncio.gather(
                *(one(p, rng.uniform(0, think) if think else 0.0) for p in crowd),
                return_exceptions=True,
            )
            result.wall_seconds = time.perf_counter() - t0
            stats.meter.stop()
            result.loop_busy = stats.loop_busy
            result.process_cpu = time.process_time() - cpu0
            result.telegram_cpu = session.cpu_seconds - tg0
            if proc is not None and sandbox0 is not None:
                after = proc.cpu_seconds()
                result.sandbox_cpu = after - sandbox0 if after is not None else None
            if writer is not None and writes0 is not None:
                result.writes = writer.stats.jobs - writes0[0]
                result.commits = writer.stats.batches - writes0[1]
            await sampler.stop()
            result.rss_peak = sampler.peak
            result.rss_curve = [(s[1], s[2]) for s in sampler.samples]

            result.updates = stats.count
            if stats.first_at is not None:
                result.handling_seconds = stats.last_at - stats.first_at
            result.latency_ms_summary = stats.latencies.summary_ms()
            result.steps = step_times(stats.by_step, stats.latencies)
            result.telegram_calls = session.calls
            result.harness_http_calls = phones.calls
            failures: collections.Counter[str] = collections.Counter()
            for parent, outcome in zip(crowd, outcomes, strict=True):
                if isinstance(outcome, BaseException):
                    failures[_describe(parent, outcome)] += 1
            result.failures = dict(failures.most_common())
            waits = [
                p.number_at - p.submitted_at
                for p in crowd
                if p.number_at is not None and p.submitted_at is not None
            ]
            result.number_wait_ms = Latencies(waits).summary_ms()

            await _check_upstream(result, crowd, checker)
            result.harness_cpu_per_call = await _calibrate_phones(phones, crowd[0].phone)
            del outcomes, crowd
            gc.collect()
            result.rss_after = rss_bytes()
            result.blocks_after = sys.getallocatedblocks()
            result.db_sizes = file_sizes(db_path)
            result.sandbox_db_bytes = sum(file_sizes(work / "sandbox.sqlite3").values())
        finally:
            await phones.close()
            await checker.aclose()
    gc.collect()
    result.rss_closed = rss_bytes()


async def _check_upstream(result: RushResult, crowd: list[Parent], phone: VoucherClient) -> None:
    """Count applications in the sandbox: one per child, and the number each parent was told."""
    applications = await phone.sandbox_list_applications()
    result.applications = len(applications)
    by_child: dict[str, list[str]] = collections.defaultdict(list)
    for application in applications:
        by_child[str(application.body["child"]["iin"])].append(application.number)
    result.duplicated = sum(1 for numbers in by_child.values() if len(numbers) > 1)
    for parent in crowd:
        numbers = by_child.get(parent.child_iin, [])
        if not numbers:
            result.lost += 1
        elif parent.number is not None and parent.number in numbers:
            result.completed += 1
        elif parent.number is not None:
            result.wrong_number += 1


async def _calibrate_phones(phones: Phones, number: str, calls: int = 200) -> float:
    """CPU seconds this process spends on one of the phones' sandbox calls (an inbox read)."""
    await phones.inbox(number)  # warm the connection
    started = time.process_time()
    for _ in range(calls):
        await phones.inbox(number)
    return (time.process_time() - started) / calls


def _settings_overrides(think_ms: int) -> dict[str, Any]:
    """Settings the benchmark fixes, where this version of the bot has them.

    A fixed DATA_KEY (personal data is sealed as in production, without the throwaway-key
    warning). Without think time the simulated parents act faster than any person, so the
    per-user flood limit is raised out of their way (the middleware still runs); with think time
    the production limit applies.
    """
    fields = Settings.model_fields
    overrides: dict[str, Any] = {}
    if "data_key" in fields:
        with contextlib.suppress(ImportError):
            from services.crypto import generate_key

            overrides["data_key"] = generate_key()
    if "flood_burst" in fields and think_ms == 0:
        overrides["flood_burst"] = 10_000
    return overrides


def _describe(parent: Parent, exc: BaseException) -> str:
    """A failure's kind without personal data: digits (IINs, phones, codes) are masked."""
    if isinstance(exc, JourneyError):
        reason = exc.reason
    else:
        first = str(exc).splitlines()[0] if str(exc) else ""
        reason = f"{type(exc).__name__}: {_URL.sub('url=…', first)}{_raised_in(exc)}"
    return f"{parent.stage}: {_DIGITS.sub('…', reason)[:200]}"


def _raised_in(exc: BaseException) -> str:
    """Where in the bot's own code (bot/, services/) the exception came from, if it did."""
    where = ""
    tb = exc.__traceback__
    while tb is not None:
        path = tb.tb_frame.f_code.co_filename.replace("\\", "/")
        for package in ("/bot/", "/services/"):
            if package in path and "/local_" not in path:
                file = package.strip("/") + "/" + path.rsplit(package, 1)[1]
                where = f" (in {file}:{tb.tb_frame.f_code.co_name})"
        tb = tb.tb_next
    return where
