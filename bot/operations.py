"""The use cases behind `/sandbox` and its buttons: validate, authorise, call Zuora, decide what to say.

No Slack SDK and no HTTP here: an operation returns a `Reply` (messages built by `bot.blocks`) and the
listeners deliver it.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from bot import audit, blocks
from bot.blocks import Message
from bot.commands import (
    Cancel,
    Command,
    EnvRef,
    Help,
    Status,
    UsageError,
    decode_job_value,
    escape_mrkdwn,
    parse,
    usage_text,
)
from bot.permissions import Decision, Permissions
from bot.zuora.client import ZuoraClient
from bot.zuora.errors import ZuoraError
from bot.zuora.models import Job
from bot.zuora.trackid import new_track_id

log = logging.getLogger(__name__)

Visibility = Literal["ephemeral", "in_channel"]


@dataclass(frozen=True, slots=True)
class Follow:
    """A job whose card should be kept current (live cards)."""

    env: EnvRef
    job_id: str
    requested_by: str | None
    track_id: str | None


@dataclass(frozen=True, slots=True)
class Reply:
    """What to tell the user, where, and what else to do.

    `visibility` in_channel means a message everyone in the channel sees (a job card); `replace_original`
    applies to button clicks, whose card is replaced in place.
    """

    message: Message
    visibility: Visibility = "ephemeral"
    replace_original: bool = False
    notification: Message | None = None
    follow: Follow | None = None
    is_job_card: bool = False
    outcome: str = "ok"  # for metrics: ok, usage, refused, zuora_error, duplicate


class Operations:
    def __init__(
        self,
        *,
        zuora: ZuoraClient,
        permissions: Permissions,
        aliases: Mapping[str, str],
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._zuora = zuora
        self._permissions = permissions
        self._aliases = dict(aliases)
        self._now = now
        # (env, job) -> the user whose cancel is being sent: a second submit is answered, not sent again.
        self._cancels_in_flight: dict[tuple[str, str], str] = {}

    # -- entry points ------------------------------------------------------------------------------------------

    async def command(self, user_id: str, text: str) -> Reply:
        """`/sandbox <text>` typed by `user_id`."""
        try:
            command = parse(text, self._aliases, now=self._now())
        except UsageError as error:
            return Reply(blocks.usage_error(error), outcome="usage")
        return await self._dispatch(user_id, command)

    async def click_cancel(self, user_id: str, value: str) -> Reply:
        """The *Cancel job* button: the value is untrusted input, validated like typed text."""
        try:
            env_id, job_id = decode_job_value(value)
        except UsageError as error:
            return Reply(blocks.usage_error(error), outcome="usage")
        refusal = await self._authorise(user_id, "cancel", env=env_id, job=job_id)
        if refusal is not None:
            return refusal
        return _replacing(await self._cancel(user_id, self._env(env_id), job_id))

    async def click_status(self, user_id: str, value: str) -> Reply:
        """The *Refresh status* button: fetch the job again and replace the card in place."""
        try:
            env_id, job_id = decode_job_value(value)
        except UsageError as error:
            return Reply(blocks.usage_error(error), outcome="usage")
        refusal = await self._authorise(user_id, "status", env=env_id, job=job_id)
        if refusal is not None:
            return refusal
        reply = await self._status(self._env(env_id), job_id, requested_by=None)
        return _replacing(reply)

    # -- dispatch ----------------------------------------------------------------------------------------------

    async def _dispatch(self, user_id: str, command: Command) -> Reply:
        if isinstance(command, Help):
            return await self._help(user_id)
        refusal = await self._authorise(user_id, command.name, **_command_fields(command))
        if refusal is not None:
            return refusal
        if isinstance(command, Cancel):
            return await self._cancel(user_id, command.env, command.job_id)
        if isinstance(command, Status):
            return await self._status(command.env, command.job_id, requested_by=None)
        return Reply(
            blocks.notice(
                f":construction: `/sandbox {command.name}` is not available yet in this version of the bot.",
                f"/sandbox {command.name} is not available yet.",
            )
        )

    async def _help(self, user_id: str) -> Reply:
        decision = await self._permissions.check(user_id)
        return Reply(
            blocks.help_message(
                allowed=decision.allowed, aliases=self._aliases, usage=usage_text(self._aliases)
            )
        )

    async def _authorise(self, user_id: str, action: str, **fields: str) -> Reply | None:
        decision: Decision = await self._permissions.check(user_id)
        if decision.allowed:
            return None
        audit.record(
            "refused", user=user_id, allowed=False, action=action, reason=decision.reason, **fields
        )
        return Reply(
            blocks.refusal(user_id, reason=decision.reason, granted_by=self._permissions.granted_by)
        )

    # -- use cases ---------------------------------------------------------------------------------------------

    async def _cancel(self, user_id: str, env: EnvRef, job_id: str) -> Reply:
        key = (env.id, job_id)
        holder = self._cancels_in_flight.get(key)
        what = f"cancel job `{escape_mrkdwn(job_id)}` in {blocks.env_label(env)}"
        if holder is not None:
            audit.record("cancel-duplicate", user=user_id, env=env.id, job=job_id, first_by=holder)
            return Reply(
                blocks.notice(
                    f":hourglass_flowing_sand: A cancel of job `{escape_mrkdwn(job_id)}` in {blocks.env_label(env)} "
                    f"requested by {blocks.mention(holder)} is already on its way to Zuora; "
                    "this one was not sent again. The job card will show the result.",
                    f"A cancel of job {job_id} is already in progress; not sent again.",
                ),
                outcome="duplicate",
            )
        self._cancels_in_flight[key] = user_id
        track_id = new_track_id()
        try:
            job = await self._zuora.cancel_job(env.id, job_id, track_id=track_id)
        except ZuoraError as error:
            audit.record(
                "cancel", user=user_id, env=env.id, job=job_id, outcome="error",
                status=error.status, track_id=error.track_id, request_id=error.request_id,
            )  # fmt: skip
            return Reply(
                blocks.zuora_error(error, action="cancel", what=what), outcome="zuora_error"
            )
        finally:
            del self._cancels_in_flight[key]
        audit.record(
            "cancel", user=user_id, env=env.id, job=job_id, outcome="ok",
            job_status=str(job.status), track_id=track_id,
        )  # fmt: skip
        card = blocks.job_card(_with_id(job, job_id), env, requested_by=user_id, track_id=track_id)
        notification = blocks.action_notification(
            actor=user_id, verb="cancelled", job=_with_id(job, job_id), env=env, track_id=track_id
        )
        follow = None if job.is_terminal else Follow(env, job_id, user_id, track_id)
        return Reply(card, "in_channel", notification=notification, follow=follow, is_job_card=True)

    async def _status(self, env: EnvRef, job_id: str, *, requested_by: str | None) -> Reply:
        track_id = new_track_id()
        what = f"get job `{escape_mrkdwn(job_id)}` in {blocks.env_label(env)}"
        try:
            job = await self._zuora.get_job(env.id, job_id, track_id=track_id)
        except ZuoraError as error:
            return Reply(
                blocks.zuora_error(error, action="status", what=what), outcome="zuora_error"
            )
        card = blocks.job_card(
            _with_id(job, job_id), env, requested_by=requested_by, track_id=track_id
        )
        follow = None if job.is_terminal else Follow(env, job_id, requested_by, track_id)
        return Reply(card, "ephemeral", follow=follow, is_job_card=True)

    def _env(self, env_id: str) -> EnvRef:
        alias = next((a for a, i in self._aliases.items() if i == env_id), None)
        return EnvRef(id=env_id, alias=alias)


def _with_id(job: Job, job_id: str) -> Job:
    """Zuora's answer should carry the job ID; if it does not, the one we asked about is the one it is."""
    return job if job.id else job.model_copy(update={"id": job_id})


def _replacing(reply: Reply) -> Reply:
    """A button's successful answer replaces the card that was clicked; a failure is told to the clicker only."""
    if not reply.is_job_card:
        return reply
    return dataclasses.replace(reply, visibility="in_channel", replace_original=True)


def _command_fields(command: Command) -> dict[str, str]:
    fields: dict[str, str] = {}
    env = getattr(command, "env", None)
    if isinstance(env, EnvRef):
        fields["env"] = env.id
    job_id = getattr(command, "job_id", None)
    if isinstance(job_id, str):
        fields["job"] = job_id
    return fields
