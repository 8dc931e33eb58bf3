"""Pydantic models of Zuora's test-environment payloads.

Zuora adds enum values over time, so every enum-typed field accepts an unknown string and keeps it as is
(`JobStatus | str`): a new status is a value to show, never a parse error. Extra fields are kept too.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from bot.zuora.statuses import (
    CANCELLABLE_STATUSES,
    RUNNING_STATUSES,
    TERMINAL_STATUSES,
    DataCopyType,
    EnvironmentStatus,
    EnvironmentType,
    JobStatus,
    JobType,
    is_cancellable,
    is_terminal,
)

__all__ = [
    "CANCELLABLE_STATUSES",
    "RUNNING_STATUSES",
    "TERMINAL_STATUSES",
    "DataCopyType",
    "EnvironmentStatus",
    "EnvironmentType",
    "Job",
    "JobActionRequest",
    "JobList",
    "JobRequest",
    "JobStatus",
    "JobType",
    "TestEnvironment",
    "TestEnvironmentList",
    "Token",
    "ZuoraModel",
    "build_validators",
    "is_cancellable",
    "is_terminal",
]


EnumT = TypeVar("EnumT", bound=StrEnum)

# Known values become the enum member; anything else stays the string Zuora sent.
OpenEnum = Annotated[EnumT | str, Field(union_mode="left_to_right")]


class ZuoraModel(BaseModel):
    """Base for Zuora payloads: camelCase on the wire, snake_case in Python, extra fields kept."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="allow",
        frozen=True,
        defer_build=True,  # each model's validator is built when first used, not at start-up
    )

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


def _assume_utc(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


class Job(ZuoraModel):
    id: str | None = None
    test_environment_id: str | None = None
    job_type: OpenEnum[JobType] | None = None
    status: OpenEnum[JobStatus] | None = None
    progress_percentage: int | None = None
    create_time: datetime | None = None
    update_time: datetime | None = None
    job_start_time: datetime | None = None
    job_end_time: datetime | None = None
    estimated_completion_time: datetime | None = None
    scheduled_refresh_time: datetime | None = None
    created_by_id: str | None = None
    updated_by_id: str | None = None

    _utc = field_validator(
        "create_time",
        "update_time",
        "job_start_time",
        "job_end_time",
        "estimated_completion_time",
        "scheduled_refresh_time",
    )(_assume_utc)

    @property
    def is_terminal(self) -> bool:
        return is_terminal(self.status)

    @property
    def is_cancellable(self) -> bool:
        return is_cancellable(self.status)


class JobList(ZuoraModel):
    result: list[Job] = Field(default_factory=list)
    size: int | None = None


class TestEnvironment(ZuoraModel):
    __test__ = False  # not a pytest test class, despite the name

    id: str | None = None
    tenant_id: str | None = None
    tenant_name: str | None = None
    source_tenant_id: str | None = None
    status: OpenEnum[EnvironmentStatus] | None = None
    environment_type: OpenEnum[EnvironmentType] | None = None
    data_copy_type: OpenEnum[DataCopyType] | None = None
    create_time: datetime | None = None
    update_time: datetime | None = None
    provision_time: datetime | None = None
    last_refresh_time: datetime | None = None
    next_refresh_time: datetime | None = None
    deactivation_time: datetime | None = None
    revenue_tenant_id: str | None = None
    revenue_tenant_name: str | None = None
    created_by_id: str | None = None
    updated_by_id: str | None = None

    _utc = field_validator(
        "create_time",
        "update_time",
        "provision_time",
        "last_refresh_time",
        "next_refresh_time",
        "deactivation_time",
    )(_assume_utc)


class TestEnvironmentList(ZuoraModel):
    __test__ = False

    result: list[TestEnvironment] = Field(default_factory=list)
    size: int | None = None


class JobRequest(ZuoraModel):
    job_type: JobType = JobType.REFRESH
    scheduled_refresh_time: datetime | None = None


class JobActionRequest(ZuoraModel):
    job_action: str = "CANCEL"


class Token(BaseModel):
    """OAuth token answer (snake_case on the wire)."""

    model_config = ConfigDict(extra="allow", frozen=True, defer_build=True)

    access_token: str
    token_type: str = "bearer"  # noqa: S105 (a token kind, not a secret)
    expires_in: float = 3599
    scope: str | None = None
    jti: str | None = None


def build_validators() -> None:
    """Build every model's validator now, each otherwise built at its first use (`defer_build`): the bot does
    this after it starts serving, so that Zuora's first answers find them ready."""
    for model in (
        Job,
        JobList,
        TestEnvironment,
        TestEnvironmentList,
        JobRequest,
        JobActionRequest,
        Token,
    ):
        model.model_rebuild()
