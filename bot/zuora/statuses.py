"""Zuora's job and environment statuses and types, and what each status allows: no pydantic here, so that the
bot starts serving without it (the models in `bot.zuora.models` load it when Zuora first answers)."""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    NEW = "NEW"
    SCHEDULED = "SCHEDULED"
    QUEUED = "QUEUED"
    INITIATED = "INITIATED"
    PROVISIONING = "PROVISIONING"
    DEPROVISIONING = "DEPROVISIONING"
    EXPORTING = "EXPORTING"
    SCRUBBING = "SCRUBBING"
    RESETTING = "RESETTING"
    IMPORTING = "IMPORTING"
    FINALIZING = "FINALIZING"
    CANCELLING = "CANCELLING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class JobType(StrEnum):
    REFRESH = "REFRESH"
    CREATE = "CREATE"
    DELETE = "DELETE"


class EnvironmentStatus(StrEnum):
    ACTIVE = "ACTIVE"
    PROCESSING = "PROCESSING"
    INACTIVE = "INACTIVE"
    DEACTIVATED = "DEACTIVATED"
    DELETED = "DELETED"


class EnvironmentType(StrEnum):
    TEST = "TEST"
    ENTERPRISE = "ENTERPRISE"
    TRIAL = "TRIAL"
    DEMO = "DEMO"
    DEVELOPER = "DEVELOPER"


class DataCopyType(StrEnum):
    FULL = "FULL"
    CONFIGURATION = "CONFIGURATION"


TERMINAL_STATUSES: frozenset[str] = frozenset(
    {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED}
)
# A refresh can be cancelled only before its reset stage (RESETTING); statuses Zuora lists before it.
CANCELLABLE_STATUSES: frozenset[str] = frozenset(
    {
        JobStatus.NEW,
        JobStatus.SCHEDULED,
        JobStatus.QUEUED,
        JobStatus.INITIATED,
        JobStatus.PROVISIONING,
        JobStatus.DEPROVISIONING,
        JobStatus.EXPORTING,
        JobStatus.SCRUBBING,
    }
)

# The stages of a job that is running: past waiting in the queue or for its scheduled time, not yet ended.
RUNNING_STATUSES: frozenset[str] = frozenset(
    {
        JobStatus.INITIATED,
        JobStatus.PROVISIONING,
        JobStatus.DEPROVISIONING,
        JobStatus.EXPORTING,
        JobStatus.SCRUBBING,
        JobStatus.RESETTING,
        JobStatus.IMPORTING,
        JobStatus.FINALIZING,
    }
)


def is_terminal(status: str | None) -> bool:
    return status in TERMINAL_STATUSES


def is_cancellable(status: str | None) -> bool:
    """True for statuses known to come before RESETTING; an unknown status is not offered a button."""
    return status in CANCELLABLE_STATUSES
