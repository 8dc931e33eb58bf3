"""The environments and jobs a fresh simulator starts with, under fixed IDs a demo config can alias.

| environment | type | jobs (oldest first) |
|---|---|---|
| ``ENV_STAGING`` | TEST, FULL | completed 45 days ago; cancelled 10 days ago; ``JOB_CANCELLABLE`` running (EXPORTING) |
| ``ENV_UAT`` | TEST, CONFIGURATION | completed 50 days ago; ``JOB_FAILED``; ``JOB_PAST_RESETTING`` (IMPORTING) |
| ``ENV_QA`` | TEST, FULL | ``JOB_COMPLETED`` 35 days ago: may be refreshed now |
| ``ENV_DEV`` | DEVELOPER | completed 3 days ago: the next refresh is refused (403) for 11 more days |

Times are relative to the state's clock and stages as long as the state's speed makes them. A demo
keeps itself alive with :class:`Reseeder`: a new refresh every few minutes, so there is always a job
to cancel, and (on ``ENV_TRAINING``, added by :func:`add_training_environment`, not seeded) always a
refresh scheduled a little way ahead, so a reminder before it is soon due.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from bot.sim.zuora_state import (
    CANCELLABLE_STATUSES,
    TERMINAL_STATUSES,
    Job,
    ZuoraState,
    snapshot,
    stage_seconds,
)

ENV_STAGING = "c0ffee00000000000000000000000001"
ENV_UAT = "c0ffee00000000000000000000000002"
ENV_QA = "c0ffee00000000000000000000000003"
ENV_DEV = "c0ffee00000000000000000000000004"
ENV_TRAINING = "c0ffee00000000000000000000000005"

JOB_STAGING_COMPLETED = "c0ffee01-0000-4000-8000-000000000001"
JOB_CANCELLED = "c0ffee01-0000-4000-8000-000000000002"
JOB_CANCELLABLE = "c0ffee01-0000-4000-8000-000000000003"
JOB_UAT_COMPLETED = "c0ffee02-0000-4000-8000-000000000001"
JOB_FAILED = "c0ffee02-0000-4000-8000-000000000002"
JOB_PAST_RESETTING = "c0ffee02-0000-4000-8000-000000000003"
JOB_COMPLETED = "c0ffee03-0000-4000-8000-000000000001"
JOB_DEV_COMPLETED = "c0ffee04-0000-4000-8000-000000000001"

SUPPORT_USER_ID = "2c92c0f96c1f5a3e016c2d7b4e8a0f11"
"""The Zuora user behind the refreshes a :class:`Reseeder` starts (Zuora support, as it were)."""
KEEP_ENDED = 10  # ended refreshes of the reseeder kept per environment


def _seconds_until(status: str, speed: float) -> float:
    """Seconds from the creation of a refresh until it enters ``status``, at ``speed``."""
    total = 0.0
    for name, seconds in stage_seconds("REFRESH", speed):
        if name == status:
            return total
        total += seconds
    raise ValueError(status)


def seed_environments(state: ZuoraState) -> None:
    """Add the seeded environments and jobs, timed relative to the state's clock."""
    now = state.clock.now()
    days = timedelta(days=1)

    state.add_environment(env_id=ENV_STAGING, name="Acme Staging")
    state.add_job(
        ENV_STAGING, job_id=JOB_STAGING_COMPLETED, status="COMPLETED", created_at=now - 45 * days
    )
    state.add_job(ENV_STAGING, job_id=JOB_CANCELLED, status="CANCELLED", created_at=now - 10 * days)
    # A minute (at speed 1) into EXPORTING: cancellable for 54 minutes more (2 min 42 s at speed 20).
    running_since = timedelta(seconds=_seconds_until("EXPORTING", state.speed) + 60 / state.speed)
    state.add_job(
        ENV_STAGING, job_id=JOB_CANCELLABLE, status="EXPORTING", created_at=now - running_since
    )

    state.add_environment(env_id=ENV_UAT, name="Acme UAT", data_copy_type="CONFIGURATION")
    state.add_job(ENV_UAT, job_id=JOB_UAT_COMPLETED, status="COMPLETED", created_at=now - 50 * days)
    state.add_job(ENV_UAT, job_id=JOB_FAILED, status="FAILED", created_at=now - 20 * days)
    state.add_job(ENV_UAT, job_id=JOB_PAST_RESETTING, status="IMPORTING")

    state.add_environment(env_id=ENV_QA, name="Acme QA")
    state.add_job(ENV_QA, job_id=JOB_COMPLETED, status="COMPLETED", created_at=now - 35 * days)

    state.add_environment(
        env_id=ENV_DEV,
        name="Acme Dev",
        environment_type="DEVELOPER",
        data_copy_type="CONFIGURATION",
    )
    state.add_job(ENV_DEV, job_id=JOB_DEV_COMPLETED, status="COMPLETED", created_at=now - 3 * days)


def add_training_environment(state: ZuoraState) -> None:
    """The demo's fifth environment, a Central Sandbox whose refreshes are scheduled (see
    :class:`Reseeder`'s ``schedule_on``); not in the seed, so the tests' tenant keeps four."""
    now = state.clock.now()
    state.add_environment(
        env_id=ENV_TRAINING, name="Acme Training", last_refresh_time=now - timedelta(days=30)
    )


class Reseeder:
    """Keeps a demo alive: a new refresh every `interval` seconds of the state's clock, on the next
    environment in rotation that has no active job, so there is always a job to cancel and a watch
    has something to announce. Zuora support could start such a refresh outside the 28/14-day rule;
    it does not count for the rule either, so a refresh the demo's user asks for is still possible.

    With ``schedule_on`` (an environment outside the rotation), :meth:`keep_scheduled` keeps one refresh
    scheduled there ``schedule_ahead`` seconds ahead whenever it has no active job: a reminder before it
    is due soon after a demo starts, and again after each one has run. That job is not counted among the
    jobs to cancel (:meth:`cancellable`), which stay the rotation's running ones.

    Nothing runs by itself: whoever drives the demo calls :meth:`seed_round` and :meth:`keep_scheduled`
    (the demo's loop, every few seconds; a test, after moving its clock)."""

    def __init__(
        self,
        state: ZuoraState,
        env_ids: Sequence[str],
        *,
        interval: float,
        schedule_on: str | None = None,
        schedule_ahead: float = 150.0,
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        if schedule_ahead <= 0:
            raise ValueError("schedule_ahead must be positive")
        if schedule_on is not None and schedule_on in env_ids:
            raise ValueError("the scheduled refreshes' environment is not one of the rotation's")
        self.state = state
        self.env_ids = list(env_ids)
        self.interval = timedelta(seconds=interval)
        self.schedule_on = schedule_on
        self.schedule_ahead = timedelta(seconds=schedule_ahead)
        self._next = 0  # index in env_ids where the rotation goes on
        self._due = state.clock.now() + self.interval

    def seed_round(self) -> Job | None:
        """Start a refresh if one is due (`interval` has passed since the last), or at once if no job
        can be cancelled now; None when none was due or every environment is busy."""
        now = self.state.clock.now()
        if now < self._due and self.cancellable(now):
            return None
        job = self._seed(now)
        if job is not None:
            self._due = now + self.interval
        return job

    def keep_scheduled(self) -> Job | None:
        """Schedule a refresh on `schedule_on` `schedule_ahead` from now when it has no active job (the last
        one has run, or was cancelled); the job scheduled, else None."""
        if self.schedule_on is None:
            return None
        env = self.state.environments.get(self.schedule_on)
        if env is None or env.status != "ACTIVE" or self.state.active_job(env) is not None:
            return None
        now = self.state.clock.now()
        job = self.state.add_job(
            env.id,
            status="SCHEDULED",
            created_at=now,
            created_by=SUPPORT_USER_ID,
            scheduled_refresh_time=now + self.schedule_ahead,
        )
        job.counts_for_refresh_period = False
        self._prune(env.id, now)
        return job

    def cancellable(self, now: datetime | None = None) -> list[Job]:
        """The jobs that can be cancelled at `now` (default: the clock's), newest first; the scheduled
        refreshes of `schedule_on` are not among them."""
        at = self.state.clock.now() if now is None else now
        jobs = [
            job
            for env in self.state.environments.values()
            if env.id != self.schedule_on
            for job in env.jobs.values()
            if snapshot(job, at).status in CANCELLABLE_STATUSES
        ]
        return sorted(jobs, key=lambda job: job.create_time, reverse=True)

    def _seed(self, now: datetime) -> Job | None:
        for step in range(len(self.env_ids)):
            index = (self._next + step) % len(self.env_ids)
            env = self.state.environments.get(self.env_ids[index])
            if env is None or env.status != "ACTIVE" or self.state.active_job(env) is not None:
                continue
            job = self.state.add_job(
                env.id, status="NEW", created_at=now, created_by=SUPPORT_USER_ID
            )
            job.counts_for_refresh_period = False
            self._next = index + 1
            self._prune(env.id, now)
            return job
        return None

    def _prune(self, env_id: str, now: datetime) -> None:
        """Forget all but the newest `KEEP_ENDED` ended refreshes this seeder started there, so a demo
        left running for days lists as much as one just started."""
        jobs = self.state.environment(env_id).jobs
        ended = sorted(
            (
                job
                for job in jobs.values()
                if job.created_by == SUPPORT_USER_ID
                and snapshot(job, now).status in TERMINAL_STATUSES
            ),
            key=lambda job: job.create_time,
        )
        for job in ended[: max(0, len(ended) - KEEP_ENDED)]:
            del jobs[job.id]
