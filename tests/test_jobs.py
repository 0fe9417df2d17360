"""services/jobs.py: which jobs, how they are scheduled, and how they start and stop.

No test waits for a trigger to fire: the schedule is read from the jobs and their triggers,
and job runs are started by calling the job's function, as the scheduler would.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

import pytest
from apscheduler.schedulers.base import STATE_PAUSED
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from services import jobs as jobs_module
from services.clock import ALMATY
from services.jobs import DIGEST_JOB, POLL_JOB, REMINDER_JOB, JobPlan, Jobs, running_jobs


class Recorder:
    """A job function that counts its runs."""

    def __init__(self) -> None:
        self.runs = 0

    async def __call__(self) -> None:
        self.runs += 1


def plan(**overrides: object) -> JobPlan:
    fields: dict[str, object] = {
        "poll_status": Recorder(),
        "reminders": Recorder(),
        "digest": Recorder(),
        "poll_seconds": 30.0,
    }
    fields.update(overrides)
    return JobPlan(**fields)  # type: ignore[arg-type]


def test_three_jobs_that_never_overlap_or_silently_skip() -> None:
    jobs = Jobs(plan(poll_seconds=12.5))
    found = {job.id: job for job in jobs.scheduler.get_jobs()}
    assert set(found) == {POLL_JOB, REMINDER_JOB, DIGEST_JOB}
    for job in found.values():
        assert job.coalesce is True
        assert job.max_instances == 1
        assert job.misfire_grace_time is not None and job.misfire_grace_time >= 60
    poll, reminders = found[POLL_JOB].trigger, found[REMINDER_JOB].trigger
    assert isinstance(poll, IntervalTrigger) and poll.interval == timedelta(seconds=12.5)
    assert isinstance(reminders, IntervalTrigger)
    assert reminders.interval == timedelta(seconds=jobs_module.REMINDER_SECONDS)
    assert reminders.interval <= timedelta(minutes=10)  # "every few minutes"
    # A digest missed by a restart at 11:00 is still sent.
    assert found[DIGEST_JOB].misfire_grace_time >= 2 * 3600


def test_the_digest_runs_at_nine_in_almaty_by_default() -> None:
    digest = {job.id: job for job in Jobs(plan()).scheduler.get_jobs()}[DIGEST_JOB]
    assert isinstance(digest.trigger, CronTrigger)
    # 08:30 in Almaty is 03:30 UTC: the next run is 09:00 Almaty the same day.
    now = datetime(2026, 9, 10, 8, 30, tzinfo=ALMATY)
    assert digest.trigger.get_next_fire_time(None, now) == datetime(
        2026, 9, 10, 9, 0, tzinfo=ALMATY
    )
    after = datetime(2026, 9, 10, 9, 0, 1, tzinfo=ALMATY)
    assert digest.trigger.get_next_fire_time(None, after) == datetime(
        2026, 9, 11, 9, 0, tzinfo=ALMATY
    )


def test_a_custom_digest_cron_and_no_digest_at_all() -> None:
    custom = {j.id: j for j in Jobs(plan(digest_cron="30 18 * * 1-5")).scheduler.get_jobs()}
    friday = datetime(2026, 9, 11, 19, 0, tzinfo=ALMATY)
    assert custom[DIGEST_JOB].trigger.get_next_fire_time(None, friday) == datetime(
        2026, 9, 14, 18, 30, tzinfo=ALMATY
    )
    without = Jobs(plan(digest=None)).scheduler.get_jobs()
    assert {job.id for job in without} == {POLL_JOB, REMINDER_JOB}


def test_a_bad_digest_cron_fails_at_start() -> None:
    with pytest.raises(ValueError):
        Jobs(plan(digest_cron="at nine"))


async def test_each_job_calls_its_injected_function() -> None:
    p = plan()
    jobs = Jobs(p)
    found = {job.id: job for job in jobs.scheduler.get_jobs()}
    await found[POLL_JOB].func()
    await found[POLL_JOB].func()
    await found[REMINDER_JOB].func()
    await found[DIGEST_JOB].func()
    assert (p.poll_status.runs, p.reminders.runs, p.digest.runs) == (2, 1, 1)  # type: ignore[union-attr]


async def test_a_failing_run_is_logged_and_the_job_stays(caplog: pytest.LogCaptureFixture) -> None:
    async def broken() -> None:
        raise ConnectionError("voucher service down")

    jobs = Jobs(plan(poll_status=broken))
    poll = jobs.scheduler.get_job(POLL_JOB)
    with caplog.at_level(logging.ERROR, logger="kezek.jobs"):
        await poll.func()  # does not raise: the next run must still happen
    assert "job status_poll failed" in caplog.text
    assert jobs.scheduler.get_job(POLL_JOB) is not None


async def test_start_and_stop_with_the_bot() -> None:
    p = plan()
    async with running_jobs(p) as jobs:
        assert jobs.scheduler.running
        poll = jobs.scheduler.get_job(POLL_JOB)
        # The feed is read right at start (catching up after a restart), not 30 s later.
        assert poll.next_run_time <= datetime.now(ALMATY) + timedelta(seconds=1)
        reminders = jobs.scheduler.get_job(REMINDER_JOB)
        assert reminders.next_run_time > datetime.now(ALMATY) + timedelta(seconds=60)
    assert not jobs.scheduler.running


async def _yield_until(condition: object, rounds: int = 200) -> bool:
    """Let the loop run a bounded number of rounds until `condition()` holds."""
    for _ in range(rounds):
        if condition():  # type: ignore[operator]
            return True
        await asyncio.sleep(0)
    return bool(condition())  # type: ignore[operator]


async def test_stopping_lets_a_run_in_flight_finish() -> None:
    entered, release = asyncio.Event(), asyncio.Event()
    finished: list[bool] = []

    async def slow_reminders() -> None:
        entered.set()
        await release.wait()
        finished.append(True)

    jobs = Jobs(plan(reminders=slow_reminders))
    jobs.start()
    run = asyncio.create_task(jobs.scheduler.get_job(REMINDER_JOB).func())
    await entered.wait()
    stopping = asyncio.create_task(jobs.stop())
    assert await _yield_until(lambda: jobs.scheduler.state == STATE_PAUSED)
    assert not await _yield_until(stopping.done, rounds=50)  # still waiting for the run
    release.set()
    await stopping
    assert finished == [True] and run.done() and not run.cancelled()
    assert not jobs.scheduler.running


async def test_a_run_that_does_not_finish_in_time_is_cancelled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(jobs_module, "STOP_TIMEOUT", 0.0)
    entered = asyncio.Event()

    async def stuck() -> None:
        entered.set()
        await asyncio.Event().wait()

    jobs = Jobs(plan(reminders=stuck))
    jobs.start()
    run = asyncio.create_task(jobs.scheduler.get_job(REMINDER_JOB).func())
    await entered.wait()
    await jobs.stop()
    assert run.cancelled()
    assert not jobs.scheduler.running


@pytest.mark.parametrize(
    ("weekdays", "runs_on"),
    [
        ("*", {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"}),
        ("1-5", {"Mon", "Tue", "Wed", "Thu", "Fri"}),
        ("mon-fri", {"Mon", "Tue", "Wed", "Thu", "Fri"}),
        ("0,6", {"Sun", "Sat"}),
        ("7", {"Sun"}),
        ("5-7", {"Fri", "Sat", "Sun"}),
        ("*/2", {"Sun", "Tue", "Thu", "Sat"}),
        ("1/3", {"Mon", "Thu", "Sun"}),
    ],
)
def test_crontab_weekdays_count_from_sunday(weekdays: str, runs_on: set[str]) -> None:
    trigger = jobs_module.crontab_trigger(f"0 9 * * {weekdays}")
    moment = datetime(2026, 9, 6, 12, 0, tzinfo=ALMATY)  # a Sunday, after 09:00
    seen: set[str] = set()
    for _ in range(7):
        moment = trigger.get_next_fire_time(None, moment + timedelta(seconds=1))
        assert (moment.hour, moment.minute) == (9, 0)
        seen.add(moment.strftime("%a"))
    assert seen == runs_on


@pytest.mark.parametrize("line", ["0 9 * *", "0 25 * * *", "0 9 * * 8", "0 9 * * 5-1", "x 9 * * *"])
def test_bad_crontab_lines_are_refused(line: str) -> None:
    with pytest.raises(ValueError):
        jobs_module.crontab_trigger(line)
