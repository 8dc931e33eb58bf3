"""The environments and jobs a fresh simulator starts with, under fixed IDs a demo config can alias.

| environment | type | jobs (oldest first) |
|---|---|---|
| ``ENV_STAGING`` | TEST, FULL | completed 45 days ago; cancelled 10 days ago; ``JOB_CANCELLABLE`` running (EXPORTING) |
| ``ENV_UAT`` | TEST, CONFIGURATION | completed 50 days ago; ``JOB_FAILED``; ``JOB_PAST_RESETTING`` (IMPORTING) |
| ``ENV_QA`` | TEST, FULL | ``JOB_COMPLETED`` 35 days ago: may be refreshed now |
| ``ENV_DEV`` | DEVELOPER | completed 3 days ago: the next refresh is refused (403) for 11 more days |
"""

from __future__ import annotations

from datetime import timedelta

from bot.sim.zuora_state import PHASES, ZuoraState

ENV_STAGING = "c0ffee00000000000000000000000001"
ENV_UAT = "c0ffee00000000000000000000000002"
ENV_QA = "c0ffee00000000000000000000000003"
ENV_DEV = "c0ffee00000000000000000000000004"

JOB_STAGING_COMPLETED = "c0ffee01-0000-4000-8000-000000000001"
JOB_CANCELLED = "c0ffee01-0000-4000-8000-000000000002"
JOB_CANCELLABLE = "c0ffee01-0000-4000-8000-000000000003"
JOB_UAT_COMPLETED = "c0ffee02-0000-4000-8000-000000000001"
JOB_FAILED = "c0ffee02-0000-4000-8000-000000000002"
JOB_PAST_RESETTING = "c0ffee02-0000-4000-8000-000000000003"
JOB_COMPLETED = "c0ffee03-0000-4000-8000-000000000001"
JOB_DEV_COMPLETED = "c0ffee04-0000-4000-8000-000000000001"


def _seconds_until(status: str) -> float:
    """Simulated seconds from the creation of a refresh until it enters ``status``."""
    total = 0.0
    for name, seconds in PHASES["REFRESH"]:
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
    # Just into EXPORTING, so it stays cancellable for a while (about a minute at demo speed 60).
    running_since = timedelta(seconds=_seconds_until("EXPORTING") + 60)
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
