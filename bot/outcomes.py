"""What an operation reports: a small closed set of outcomes, matched exhaustively where they are delivered.

Operations decide what happened and build the messages (with `bot.blocks`); the listeners decide where each
outcome goes (`bot.listeners.deliver`), and job cards are `JobCards`'s business.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TypeAlias, assert_never

from bot.blocks import Message
from bot.commands import EnvRef

if TYPE_CHECKING:
    # Types only: the models (and pydantic) are loaded when Zuora first answers, not at start-up.
    from bot.zuora.models import Job


Metric = Literal["ok", "usage", "refused", "zuora_error", "duplicate", "expired", "unavailable"]


@dataclass(frozen=True, slots=True)
class Told:
    """A message for the user alone; `replace` puts it in place of the clicked message."""

    message: Message
    metric: Metric = "ok"
    replace: bool = False


@dataclass(frozen=True, slots=True)
class NeedsConfirmation:
    """Nothing sent to Zuora yet: the requester is asked to confirm (a message only they see)."""

    message: Message


@dataclass(frozen=True, slots=True)
class OpensForm:
    """`/sandbox refresh` alone: the refresh form opens with the command's trigger_id."""


@dataclass(frozen=True, slots=True)
class Refused:
    """The user may not do this; nothing was sent to Zuora."""

    message: Message


@dataclass(frozen=True, slots=True)
class AuditLine:
    """One action taken through the bot, successful or not, for the notification channel."""

    env: EnvRef
    job_id: str | None
    message: Message


@dataclass(frozen=True, slots=True)
class ZuoraFailed:
    """Zuora did not give what was asked; `audit` when it was an action (the audit trail keeps failures).
    `then`: an action that may have been applied anyway, with the job as Zuora showed it when read back: its
    card goes to the channel and is followed, so it ends up showing what Zuora says."""

    message: Message
    audit: AuditLine | None = None
    then: JobActed | None = None


@dataclass(frozen=True, slots=True)
class JobLooked:
    """A job as Zuora just showed it (status, *Refresh status*): the card goes to whoever looked. `may_act`:
    whether they are an operator; a card only a viewer sees carries no *Cancel job* button."""

    env: EnvRef
    job: Job
    track_id: str
    requested_by: str | None = None
    may_act: bool = True


@dataclass(frozen=True, slots=True)
class JobActed:
    """An action on a job that Zuora carried out: the card goes to the channel, the notification card and the
    audit thread say who did it. `done`, for a confirmed refresh, replaces the confirmation."""

    env: EnvRef
    job: Job
    actor: str
    verb: str  # "cancelled", "started", "scheduled"
    track_id: str
    done: Message | None = None


JobOutcome: TypeAlias = JobLooked | JobActed
Outcome: TypeAlias = (
    Told | NeedsConfirmation | OpensForm | Refused | ZuoraFailed | JobLooked | JobActed
)


def metric_of(outcome: Outcome) -> Metric:
    """The `outcome` label of the commands metric."""
    match outcome:
        case Told(metric=metric):
            return metric
        case Refused():
            return "refused"
        case ZuoraFailed():
            return "zuora_error"
        case NeedsConfirmation() | OpensForm() | JobLooked() | JobActed():
            return "ok"
        case _:
            assert_never(outcome)
