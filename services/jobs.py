"""The scheduler: APScheduler 3.x on the bot's event loop, in Asia/Almaty.

    status poll   every STATUS_POLL_SECONDS (first run at start: catch up after a restart)
    reminders     every REMINDER_SECONDS    (deadline reminders, idle-draft reminders)
    digest        DIGEST_CRON, "0 9 * * *"  (the staff digest; another module words it)
    retention     daily, first run at start (drafts untouched for 30 days: services/retention)

Each job is a plain coroutine function handed in by the caller, so tests call those directly
with a FakeClock and never wait for the scheduler. Every job has `coalesce=True` (runs missed
while the loop was busy become one), `max_instances=1` (a slow poll is never overlapped by the
next) and a `misfire_grace_time`, so a late run still happens instead of being skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from services.clock import ALMATY

log = logging.getLogger("kezek.jobs")

DEFAULT_DIGEST_CRON = "0 9 * * *"
REMINDER_SECONDS = 300.0
DIGEST_GRACE_SECONDS = 6 * 3600  # the bot restarted at 11:00 still sends the 09:00 digest
STOP_TIMEOUT = 10.0

POLL_JOB = "status_poll"
REMINDER_JOB = "reminders"
DIGEST_JOB = "digest"
RETENTION_JOB = "retention"
RETENTION_SECONDS = 24 * 3600.0

Job = Callable[[], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class JobPlan:
    """What to run and how often."""

    poll_status: Job
    reminders: Job
    digest: Job | None = None
    poll_seconds: float = 30.0
    reminder_seconds: float = REMINDER_SECONDS
    digest_cron: str = DEFAULT_DIGEST_CRON
    retention: Job | None = None
    retention_seconds: float = RETENTION_SECONDS


class Jobs:
    """The scheduler plus the job runs in flight, so stopping can let them finish."""

    def __init__(self, plan: JobPlan) -> None:
        self.plan = plan
        self.scheduler = AsyncIOScheduler(timezone=ALMATY)
        self._running: set[asyncio.Task[Any]] = set()
        self._add(
            POLL_JOB,
            plan.poll_status,
            IntervalTrigger(seconds=plan.poll_seconds, timezone=ALMATY),
            grace=max(plan.poll_seconds, 60.0),
            first_run_now=True,
        )
        self._add(
            REMINDER_JOB,
            plan.reminders,
            IntervalTrigger(seconds=plan.reminder_seconds, timezone=ALMATY),
            grace=plan.reminder_seconds,
        )
        if plan.digest is not None:
            # Parsed now, so a bad DIGEST_CRON stops the start instead of failing at 09:00.
            trigger = crontab_trigger(plan.digest_cron)
            self._add(DIGEST_JOB, plan.digest, trigger, grace=DIGEST_GRACE_SECONDS)
        if plan.retention is not None:
            # At start too: a bot restarted more often than daily would never reach its turn.
            self._add(
                RETENTION_JOB,
                plan.retention,
                IntervalTrigger(seconds=plan.retention_seconds, timezone=ALMATY),
                grace=plan.retention_seconds,
                first_run_now=True,
            )

    def _add(
        self,
        job_id: str,
        func: Job,
        trigger: IntervalTrigger | CronTrigger,
        *,
        grace: float,
        first_run_now: bool = False,
    ) -> None:
        async def run() -> None:
            await self._run(job_id, func)

        extra = {"next_run_time": datetime.now(ALMATY)} if first_run_now else {}
        self.scheduler.add_job(
            run,
            trigger,
            id=job_id,
            name=job_id,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=int(grace),
            replace_existing=True,
            **extra,
        )

    async def _run(self, job_id: str, func: Job) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        try:
            await func()
        except Exception:
            # One failed run (the service down, say) must not stop the next one.
            log.exception("job %s failed; it runs again at its next time", job_id)
        finally:
            if task is not None:
                self._running.discard(task)

    def start(self) -> None:
        """Start on the running event loop."""
        self.scheduler.start()
        log.info("scheduler started: %s", ", ".join(j.id for j in self.scheduler.get_jobs()))

    async def stop(self) -> None:
        """No new runs; the runs in flight get STOP_TIMEOUT to finish, then are cancelled."""
        if self.scheduler.running:
            # AsyncIOScheduler.shutdown cancels running job tasks, so shield them first by
            # pausing: nothing new starts, and what runs now may finish its page.
            self.scheduler.pause()
        running = set(self._running)
        if running:
            _, pending = await asyncio.wait(running, timeout=STOP_TIMEOUT)
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
            # AsyncIOScheduler shuts down in a loop callback; one queued after it tells us
            # that it ran (callbacks run in order), so no timer outlives the scheduler.
            loop = asyncio.get_running_loop()
            finished = loop.create_future()
            loop.call_soon(finished.set_result, None)
            await finished
        log.info("scheduler stopped")


_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # crontab numbers 0–6 (and 7)


def crontab_trigger(expression: str) -> CronTrigger:
    """A trigger in Asia/Almaty from a standard five-field crontab line.

    Not `CronTrigger.from_crontab`: APScheduler 3.x counts weekdays from 0 = Monday, crontab
    from 0 = Sunday, so "1-5" would run Tuesday to Saturday. Weekdays are passed by name.
    """
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(f"a crontab line has 5 fields, not {len(fields)}: {expression!r}")
    minute, hour, day, month, weekday = fields
    return CronTrigger(
        minute=minute,
        hour=hour,
        day=day,
        month=month,
        day_of_week=_crontab_weekdays(weekday),
        timezone=ALMATY,
    )


def _crontab_weekdays(field: str) -> str:
    """A crontab day-of-week field ("1-5", "0,6", "*/2", "mon-fri") as APScheduler day names."""
    if field in ("*", "?"):
        return "*"
    days: set[int] = set()
    for part in field.lower().split(","):
        span, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if span == "*":
            low, high = 0, 6
        elif "-" in span:
            first, _, last = span.partition("-")
            low, high = _weekday(first), _weekday(last)
        else:
            low = _weekday(span)
            high = 7 if step_text else low  # "1/2": from Monday on, every other day
        if low > high or step < 1:
            raise ValueError(f"bad day of week in the crontab line: {field!r}")
        days.update(number % 7 for number in range(low, high + 1, step))
    return ",".join(_WEEKDAYS[d] for d in sorted(days))


def _weekday(token: str) -> int:
    if token.isdigit() and int(token) <= 7:
        return int(token)
    if token in _WEEKDAYS:
        return _WEEKDAYS.index(token)
    raise ValueError(f"bad day of week in the crontab line: {token!r}")


@asynccontextmanager
async def running_jobs(plan: JobPlan) -> AsyncIterator[Jobs]:
    """Start the jobs for the life of the block (the bot's `run` and `demo`)."""
    jobs = Jobs(plan)
    jobs.start()
    try:
        yield jobs
    finally:
        await jobs.stop()
