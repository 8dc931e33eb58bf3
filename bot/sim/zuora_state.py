"""State of the simulated Zuora test environments: environments, jobs and the job lifecycle.

Pure and synchronous: nothing here knows HTTP. A job stores only what happened to it (created,
scheduled, cancel requested, failed); its status, progress and times are derived from the clock
each time it is looked at, so no background task is needed.

A state made with ``speed`` N runs every stage of its jobs (and a cancellation) N times faster than
Zuora's: the clock stays what it is, so every time shown is real, and only the durations shrink.
A scheduled refresh still waits for its scheduled time.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bot.sim.clock import Clock

JOB_STATUSES = (
    "NEW",
    "SCHEDULED",
    "QUEUED",
    "INITIATED",
    "PROVISIONING",
    "DEPROVISIONING",
    "EXPORTING",
    "SCRUBBING",
    "RESETTING",
    "IMPORTING",
    "FINALIZING",
    "CANCELLING",
    "COMPLETED",
    "FAILED",
    "CANCELLED",
)
TERMINAL_STATUSES = frozenset({"COMPLETED", "FAILED", "CANCELLED"})
CANCELLABLE_STATUSES = frozenset(
    {
        "NEW",
        "SCHEDULED",
        "QUEUED",
        "INITIATED",
        "PROVISIONING",
        "DEPROVISIONING",
        "EXPORTING",
        "SCRUBBING",
    }
)
ENVIRONMENT_TYPES = ("TEST", "ENTERPRISE", "TRIAL", "DEMO", "DEVELOPER")
ENVIRONMENT_STATUSES = ("ACTIVE", "PROCESSING", "INACTIVE", "DEACTIVATED", "DELETED")
DATA_COPY_TYPES = ("FULL", "CONFIGURATION")

# Seconds spent in each status, in order (at speed 1); a refresh takes about two hours.
PHASES: dict[str, tuple[tuple[str, float], ...]] = {
    "REFRESH": (
        ("NEW", 30),
        ("QUEUED", 120),
        ("INITIATED", 180),
        ("EXPORTING", 2400),
        ("SCRUBBING", 900),
        ("RESETTING", 600),
        ("IMPORTING", 2400),
        ("FINALIZING", 300),
    ),
    "CREATE": (("NEW", 30), ("QUEUED", 120), ("PROVISIONING", 1800), ("FINALIZING", 300)),
    "DELETE": (("NEW", 30), ("QUEUED", 120), ("DEPROVISIONING", 600)),
}
JOB_TYPES = tuple(PHASES)
# Phases before the work itself starts (jobStartTime is the end of these).
WAITING_STATUSES = frozenset({"NEW", "SCHEDULED", "QUEUED"})
CANCEL_DURATION = timedelta(seconds=60)
REFRESH_PERIOD = timedelta(days=28)
DEVELOPER_REFRESH_PERIOD = timedelta(days=14)

UI_USER_ID = "2c92c0f86a8dd422016a9e7a70116b0d"
"""The Zuora user who starts jobs "in the UI" (jobs added with ``add_job``)."""

# Classic reason codes: 6 digits for the resource, 2 for the category.
JOB_RESOURCE = 531000
ENVIRONMENT_RESOURCE = 532000
CATEGORY_PERMISSION = 10
CATEGORY_INVALID = 20
CATEGORY_NOT_FOUND = 40
CATEGORY_LOCKING = 50


def reason_code(resource: int, category: int) -> int:
    return resource * 100 + category


def isoformat(moment: datetime) -> str:
    """Zuora's date-time format, e.g. ``2019-08-24T14:15:22Z``."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class SimApiError(Exception):
    """A refusal the API answers with a classic reasons body."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def stage_seconds(job_type: str, speed: float = 1.0) -> list[tuple[str, float]]:
    """Each status of a job of ``job_type`` and the seconds it lasts at ``speed``."""
    return [(status, seconds / speed) for status, seconds in PHASES[job_type]]


@dataclass
class Job:
    """What happened to a job; everything else is derived by :func:`snapshot`."""

    id: str
    env_id: str
    job_type: str
    create_time: datetime
    created_by: str
    scheduled_time: datetime | None = None
    cancel_time: datetime | None = None
    cancelled_by: str | None = None
    fail_time: datetime | None = None
    speed: float = 1.0
    """How many times faster than Zuora's its stages run (the waiting for a scheduled time does not)."""
    counts_for_refresh_period: bool = True
    """False for a refresh started outside the 28/14-day rule (the demo's, as Zuora support could)."""
    rescheduled_at: datetime | None = None
    """When its scheduled time was last moved (its updateTime while it waits for that time)."""

    @property
    def is_scheduled(self) -> bool:
        return self.scheduled_time is not None and self.scheduled_time > self.create_time

    @property
    def cancel_duration(self) -> timedelta:
        return CANCEL_DURATION / self.speed

    def timeline(self) -> list[tuple[str, datetime]]:
        """Each status with the moment it begins, ending with COMPLETED."""
        phases = stage_seconds(self.job_type, self.speed)
        if self.is_scheduled:
            assert self.scheduled_time is not None
            waiting = (self.scheduled_time - self.create_time).total_seconds()
            phases[0] = ("SCHEDULED", waiting)
        moments: list[tuple[str, datetime]] = []
        at = self.create_time
        for status, seconds in phases:
            moments.append((status, at))
            at += timedelta(seconds=seconds)
        moments.append(("COMPLETED", at))
        return moments


@dataclass(frozen=True)
class JobSnapshot:
    status: str
    progress: int
    update_time: datetime
    start_time: datetime | None
    end_time: datetime | None
    estimated_completion: datetime


def _phase_at(timeline: Sequence[tuple[str, datetime]], moment: datetime) -> tuple[str, datetime]:
    current = timeline[0]
    for status, begins in timeline:
        if begins <= moment:
            current = (status, begins)
    return current


def snapshot(job: Job, now: datetime) -> JobSnapshot:
    """The job as Zuora would report it at ``now``."""
    timeline = job.timeline()
    completion = timeline[-1][1]
    work_origin = job.scheduled_time if job.is_scheduled and job.scheduled_time else job.create_time
    frozen_at = now
    status: str | None = None
    end_time: datetime | None = None
    update_time = now
    if job.cancel_time is not None and job.cancel_time <= now:
        frozen_at = job.cancel_time
        cancelled_at = job.cancel_time + job.cancel_duration
        if now < cancelled_at:
            status, update_time = "CANCELLING", job.cancel_time
        else:
            status, update_time, end_time = "CANCELLED", cancelled_at, cancelled_at
    elif job.fail_time is not None and job.fail_time <= now:
        frozen_at = job.fail_time
        status, update_time, end_time = "FAILED", job.fail_time, job.fail_time

    phase, phase_begins = _phase_at(timeline, frozen_at)
    if status is None:
        status, update_time = phase, phase_begins
        if status == "SCHEDULED" and job.rescheduled_at is not None:
            update_time = max(update_time, job.rescheduled_at)
        if phase == "COMPLETED":
            end_time = completion

    total = (completion - work_origin).total_seconds()
    done = (frozen_at - work_origin).total_seconds()
    progress = 100 if phase == "COMPLETED" else min(99, max(0, int(100 * done / total)))
    work_begins = next(begins for st, begins in timeline if st not in WAITING_STATUSES)
    start_time = work_begins if work_begins <= frozen_at else None
    return JobSnapshot(status, progress, update_time, start_time, end_time, completion)


@dataclass
class Environment:
    id: str
    tenant_id: str
    tenant_name: str
    source_tenant_id: str
    environment_type: str
    data_copy_type: str
    status: str
    create_time: datetime
    provision_time: datetime
    created_by: str
    initial_last_refresh: datetime | None = None
    jobs: dict[str, Job] = field(default_factory=dict)

    @property
    def refresh_period(self) -> timedelta:
        if self.environment_type == "DEVELOPER":
            return DEVELOPER_REFRESH_PERIOD
        return REFRESH_PERIOD


def new_job_id() -> str:
    return str(uuid.uuid4())


def new_environment_id() -> str:
    return uuid.uuid4().hex


class ZuoraState:
    """All environments and jobs of one simulated tenant, on one clock, their stages ``speed`` times
    faster than Zuora's."""

    def __init__(self, clock: Clock, *, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.clock = clock
        self.speed = speed
        self.environments: dict[str, Environment] = {}

    # --- lookups -----------------------------------------------------------------------------

    def environment(self, env_id: str) -> Environment:
        env = self.environments.get(env_id)
        if env is None:
            raise SimApiError(
                404,
                reason_code(ENVIRONMENT_RESOURCE, CATEGORY_NOT_FOUND),
                f"Test environment {env_id} was not found.",
            )
        return env

    def job(self, env_id: str, job_id: str) -> Job:
        job = self.environment(env_id).jobs.get(job_id)
        if job is None:
            raise SimApiError(
                404,
                reason_code(JOB_RESOURCE, CATEGORY_NOT_FOUND),
                f"Job {job_id} of test environment {env_id} was not found.",
            )
        return job

    def jobs(self, env_id: str) -> list[Job]:
        """The environment's jobs, oldest first."""
        return sorted(self.environment(env_id).jobs.values(), key=lambda j: j.create_time)

    def active_job(self, env: Environment) -> Job | None:
        now = self.clock.now()
        for job in env.jobs.values():
            if snapshot(job, now).status not in TERMINAL_STATUSES:
                return job
        return None

    def last_refresh_time(self, env: Environment) -> datetime | None:
        """End of the last completed refresh (cancelled and failed ones do not count, nor those started
        outside the refresh period's rule)."""
        now = self.clock.now()
        ends = [env.initial_last_refresh] if env.initial_last_refresh else []
        for job in env.jobs.values():
            if job.job_type != "REFRESH" or not job.counts_for_refresh_period:
                continue
            snap = snapshot(job, now)
            if snap.status == "COMPLETED" and snap.end_time:
                ends.append(snap.end_time)
        return max(ends, default=None)

    def next_refresh_time(self, env: Environment) -> datetime | None:
        last = self.last_refresh_time(env)
        return last + env.refresh_period if last else None

    # --- JSON views (JobResponse / TestEnvironmentResponse) -----------------------------------

    def job_json(self, job: Job) -> dict[str, Any]:
        snap = snapshot(job, self.clock.now())
        cancelled = snap.status in ("CANCELLING", "CANCELLED")
        body: dict[str, Any] = {
            "id": job.id,
            "testEnvironmentId": job.env_id,
            "jobType": job.job_type,
            "status": snap.status,
            "progressPercentage": snap.progress,
            "createTime": isoformat(job.create_time),
            "updateTime": isoformat(snap.update_time),
            "estimatedCompletionTime": isoformat(snap.estimated_completion),
            "createdById": job.created_by,
            "updatedById": (job.cancelled_by or job.created_by) if cancelled else job.created_by,
        }
        if snap.start_time:
            body["jobStartTime"] = isoformat(snap.start_time)
        if snap.end_time:
            body["jobEndTime"] = isoformat(snap.end_time)
        if job.scheduled_time:
            body["scheduledRefreshTime"] = isoformat(job.scheduled_time)
        return body

    def environment_json(self, env: Environment) -> dict[str, Any]:
        now = self.clock.now()
        snaps = [snapshot(job, now) for job in env.jobs.values()]
        status = env.status
        if status == "ACTIVE" and any(
            s.status not in TERMINAL_STATUSES and s.status != "SCHEDULED" for s in snaps
        ):
            status = "PROCESSING"
        update_time = max([env.provision_time, *(s.update_time for s in snaps)])
        body: dict[str, Any] = {
            "id": env.id,
            "tenantId": env.tenant_id,
            "tenantName": env.tenant_name,
            "sourceTenantId": env.source_tenant_id,
            "status": status,
            "environmentType": env.environment_type,
            "dataCopyType": env.data_copy_type,
            "createTime": isoformat(env.create_time),
            "updateTime": isoformat(update_time),
            "provisionTime": isoformat(env.provision_time),
            "createdById": env.created_by,
            "updatedById": env.created_by,
        }
        last, upcoming = self.last_refresh_time(env), self.next_refresh_time(env)
        if last:
            body["lastRefreshTime"] = isoformat(last)
        if upcoming:
            body["nextRefreshTime"] = isoformat(upcoming)
        if env.status == "DEACTIVATED":
            body["deactivationTime"] = isoformat(update_time)
        return body

    # --- changes -------------------------------------------------------------------------------

    def add_environment(
        self,
        *,
        env_id: str | None = None,
        name: str = "Central Sandbox",
        environment_type: str = "TEST",
        data_copy_type: str = "FULL",
        status: str = "ACTIVE",
        last_refresh_time: datetime | None = None,
        tenant_id: str | None = None,
        created_at: datetime | None = None,
    ) -> Environment:
        """Add a test environment (for tests and seeding; Zuora provisions them out of band)."""
        if environment_type not in ENVIRONMENT_TYPES:
            raise ValueError(f"unknown environment type {environment_type!r}")
        if data_copy_type not in DATA_COPY_TYPES:
            raise ValueError(f"unknown data copy type {data_copy_type!r}")
        if status not in ENVIRONMENT_STATUSES or status == "PROCESSING":
            raise ValueError(
                f"status must be one of ACTIVE, INACTIVE, DEACTIVATED, DELETED: {status!r}"
            )
        env_id = env_id or new_environment_id()
        if env_id in self.environments:
            raise ValueError(f"environment {env_id} exists already")
        created = created_at or self.clock.now() - timedelta(days=365)
        number = 10_000_001 + len(self.environments)
        env = Environment(
            id=env_id,
            tenant_id=tenant_id or str(number),
            tenant_name=name,
            source_tenant_id="10000000",
            environment_type=environment_type,
            data_copy_type=data_copy_type,
            status=status,
            create_time=created,
            provision_time=created + timedelta(hours=3),
            created_by=UI_USER_ID,
            initial_last_refresh=last_refresh_time,
        )
        self.environments[env_id] = env
        return env

    def add_job(
        self,
        env_id: str,
        *,
        status: str = "QUEUED",
        job_type: str = "REFRESH",
        job_id: str | None = None,
        created_at: datetime | None = None,
        created_by: str = UI_USER_ID,
        scheduled_refresh_time: datetime | None = None,
    ) -> Job:
        """Add a job that is in ``status`` now, as if someone had started it in Zuora's UI.

        Without ``created_at`` the job is backdated to the middle of ``status`` (terminal
        statuses: ended a minute ago), its stages as long as the state's speed makes them. With it,
        the job starts then and must have reached ``status`` by now. Business rules (refresh
        period) are not applied; one active job per environment is, to keep the environment
        consistent.
        """
        env = self.environment(env_id)
        if job_type not in PHASES:
            raise ValueError(f"unknown job type {job_type!r}")
        if status not in JOB_STATUSES:
            raise ValueError(f"unknown job status {status!r}")
        if status not in TERMINAL_STATUSES and self.active_job(env) is not None:
            raise ValueError(f"environment {env_id} already has an active job")
        now = self.clock.now()
        phases = stage_seconds(job_type, self.speed)
        cancel_duration = CANCEL_DURATION / self.speed
        offsets: dict[str, float] = {}
        elapsed = 0.0
        for name, seconds in phases:
            offsets[name] = elapsed + seconds / 2
            elapsed += seconds
        cancel_point = next(
            offsets[name] for name, _ in reversed(phases) if name in CANCELLABLE_STATUSES
        )
        fail_point = elapsed * 0.6
        job = Job(
            id=job_id or new_job_id(),
            env_id=env_id,
            job_type=job_type,
            create_time=now,
            created_by=created_by,
            speed=self.speed,
        )
        since = timedelta(seconds=0)
        if status == "SCHEDULED":
            job.scheduled_time = scheduled_refresh_time or now + timedelta(days=1)
        elif status in offsets:
            since = timedelta(seconds=offsets[status])
        elif status == "COMPLETED":
            since = timedelta(seconds=elapsed + 60)
        elif status == "CANCELLING":
            since = timedelta(seconds=cancel_point)
            job.cancel_time = now
        elif status == "CANCELLED":
            since = timedelta(seconds=cancel_point) + cancel_duration + timedelta(seconds=60)
            job.cancel_time = now - cancel_duration - timedelta(seconds=60)
        elif status == "FAILED":
            since = timedelta(seconds=fail_point + 60)
            job.fail_time = now - timedelta(seconds=60)
        else:
            raise ValueError(f"a {job_type} job never has status {status}")
        job.create_time = created_at or now - since
        if created_at is not None:
            # Keep the interruption at the same point of the job's life.
            if job.cancel_time is not None:
                job.cancel_time = created_at + timedelta(seconds=cancel_point)
            if job.fail_time is not None:
                job.fail_time = created_at + timedelta(seconds=fail_point)
        if job.cancel_time is not None:
            job.cancelled_by = created_by
        if scheduled_refresh_time is not None and job.scheduled_time is None:
            job.scheduled_time = scheduled_refresh_time
        reached = snapshot(job, now).status
        if reached != status:
            raise ValueError(f"a job created at {job.create_time} is {reached} now, not {status}")
        if job.id in env.jobs:
            raise ValueError(f"job {job.id} exists already")
        env.jobs[job.id] = job
        return job

    def create_refresh(self, env_id: str, scheduled: datetime | None, user_id: str) -> Job:
        """Start (or schedule) a refresh, enforcing Zuora's rules."""
        env = self.environment(env_id)
        now = self.clock.now()
        if env.status != "ACTIVE":
            raise SimApiError(
                400,
                reason_code(ENVIRONMENT_RESOURCE, CATEGORY_INVALID),
                f"Test environment {env_id} is {env.status}; only an active one can be refreshed.",
            )
        active = self.active_job(env)
        if active is not None:
            active_status = snapshot(active, now).status
            raise SimApiError(
                400,
                reason_code(ENVIRONMENT_RESOURCE, CATEGORY_LOCKING),
                f"Test environment {env_id} already has an active job {active.id} "
                f"({active_status}); wait for it to end or cancel it.",
            )
        starts = scheduled if scheduled is not None and scheduled > now else now
        allowed_from = self.next_refresh_time(env)
        if allowed_from is not None and starts < allowed_from:
            days = env.refresh_period.days
            raise SimApiError(
                403,
                reason_code(ENVIRONMENT_RESOURCE, CATEGORY_PERMISSION),
                f"Only one refresh can be performed every {days} days. The next refresh of "
                f"test environment {env_id} is possible from {isoformat(allowed_from)}.",
            )
        job = Job(
            id=new_job_id(),
            env_id=env_id,
            job_type="REFRESH",
            create_time=now,
            created_by=user_id,
            scheduled_time=scheduled,
            speed=self.speed,
        )
        env.jobs[job.id] = job
        return job

    def cancel(self, env_id: str, job_id: str, user_id: str) -> Job:
        """Request cancellation; repeating it while CANCELLING changes nothing."""
        job = self.job(env_id, job_id)
        now = self.clock.now()
        status = snapshot(job, now).status
        if status == "CANCELLING":
            return job
        if status not in CANCELLABLE_STATUSES:
            raise SimApiError(
                400,
                reason_code(JOB_RESOURCE, CATEGORY_INVALID),
                f"Job {job_id} cannot be cancelled in its status {status}: a job can be "
                "cancelled only before it reaches RESETTING.",
            )
        job.cancel_time = now
        job.cancelled_by = user_id
        return job

    def reschedule(self, env_id: str, job_id: str, when: datetime) -> Job:
        """Move a SCHEDULED refresh to ``when`` (later or earlier, still ahead), as Zuora's UI can; its
        stages then begin at the new time. A test and console hook: the API has no such operation."""
        job = self.job(env_id, job_id)
        now = self.clock.now()
        status = snapshot(job, now).status
        if status != "SCHEDULED":
            raise ValueError(f"job {job_id} is {status}; only a SCHEDULED job can be moved")
        if when <= now:
            raise ValueError(f"the new time {isoformat(when)} is not ahead of {isoformat(now)}")
        job.scheduled_time = when
        job.rescheduled_at = now
        return job

    def fail(self, env_id: str, job_id: str) -> Job:
        """Make a job fail now (a test helper: Zuora jobs fail on their own)."""
        job = self.job(env_id, job_id)
        now = self.clock.now()
        status = snapshot(job, now).status
        if status in TERMINAL_STATUSES or status == "CANCELLING":
            raise ValueError(f"job {job_id} is {status}; it cannot fail now")
        job.fail_time = now
        return job
