"""The use cases behind `/sandbox` and its buttons: validate, authorise, call Zuora, decide what to say.

No Slack SDK and no HTTP here: an operation returns a `Reply` (messages built by `bot.blocks`) and the
listeners deliver it.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from bot import audit, blocks
from bot.blocks import Message
from bot.commands import (
    Cancel,
    Command,
    EnvRef,
    Envs,
    Help,
    Jobs,
    Refresh,
    Status,
    UsageError,
    decode_job_value,
    decode_refresh_value,
    encode_refresh_value,
    escape_mrkdwn,
    parse,
    usage_text,
)
from bot.permissions import Decision, Permissions
from bot.zuora.client import ZuoraClient
from bot.zuora.errors import (
    ZuoraError,
    ZuoraPermissionError,
    zuora_did_not_act,
)
from bot.zuora.models import Job
from bot.zuora.trackid import new_track_id

log = logging.getLogger(__name__)

Visibility = Literal["ephemeral", "in_channel"]

CONFIRMATION_TTL = timedelta(minutes=10)
_CONFIRM_BLOCK = re.compile(r"^refresh:([UW][A-Z0-9]{2,20}):([0-9]{9,11})$")
_EMOJI = re.compile(r":[a-z0-9_+-]+: ?")
_ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?")


@dataclass(frozen=True, slots=True)
class Click:
    """A button click as Slack reported it. `value` and `block_id` are untrusted."""

    user_id: str
    value: str
    block_id: str = ""
    requested_by: str | None = None  # from the clicked card, so a refreshed card keeps who asked


@dataclass(frozen=True, slots=True)
class Follow:
    """A job the reply is about: its cards are kept current (live cards) and, for an action (`announce`), its
    notification card says who did what."""

    env: EnvRef
    job: Job
    requested_by: str | None = None
    track_id: str | None = None
    note: str | None = None
    announce: bool = False


@dataclass(frozen=True, slots=True)
class AuditLine:
    """One action taken through the bot, successful or not, for the notification channel."""

    env: EnvRef
    job_id: str | None
    message: Message


@dataclass(frozen=True, slots=True)
class Reply:
    """What to tell the user, where, and what else to do.

    `visibility` in_channel means a message everyone in the channel sees (a job card). For button clicks,
    `replace_original` replaces the clicked message with `message`; `replacement`, when set, replaces it with
    that instead while `message` goes out by its visibility.
    """

    message: Message
    visibility: Visibility = "ephemeral"
    replace_original: bool = False
    replacement: Message | None = None
    follow: Follow | None = None
    audit: AuditLine | None = None  # an action's line in the notification channel (the audit trail)
    is_job_card: bool = False
    outcome: str = "ok"  # for metrics: ok, usage, refused, zuora_error, duplicate, expired


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
        # A second submit of the same action while the first is on its way is answered, not sent again.
        self._cancels_in_flight: dict[tuple[str, str], str] = {}
        self._refreshes_in_flight: set[str] = set()
        # Confirmations already used (block_id -> when, job ID): a double click starts one refresh.
        self._confirmed: dict[str, tuple[datetime, str | None]] = {}

    # -- entry points ------------------------------------------------------------------------------------------

    async def command(self, user_id: str, text: str) -> Reply:
        """`/sandbox <text>` typed by `user_id`."""
        try:
            command = parse(text, self._aliases, now=self._now())
        except UsageError as error:
            return Reply(blocks.usage_error(error), outcome="usage")
        return await self._dispatch(user_id, command)

    async def click_cancel(self, click: Click) -> Reply:
        """*Cancel job*: the value is untrusted input, validated like typed text."""
        try:
            env_id, job_id = decode_job_value(click.value)
        except UsageError as error:
            return Reply(blocks.usage_error(error), outcome="usage")
        refusal = await self._authorise(click.user_id, "cancel", env=env_id, job=job_id)
        if refusal is not None:
            return refusal
        return _replacing(await self._cancel(click.user_id, self._env(env_id), job_id))

    async def click_status(self, click: Click) -> Reply:
        """*Refresh status*: fetch the job again and replace the card in place."""
        try:
            env_id, job_id = decode_job_value(click.value)
        except UsageError as error:
            return Reply(blocks.usage_error(error), outcome="usage")
        refusal = await self._authorise(click.user_id, "status", env=env_id, job=job_id)
        if refusal is not None:
            return refusal
        reply = await self._status(self._env(env_id), job_id, requested_by=click.requested_by)
        return _replacing(reply)

    async def click_refresh_confirm(self, click: Click) -> Reply:
        try:
            env_id, at = decode_refresh_value(click.value, now=self._now())
        except UsageError as error:
            return Reply(blocks.usage_error(error), outcome="usage")
        # This also claims the confirmation: a second click stops here.
        problem = self._confirmation_problem(click)
        if problem is not None:
            return problem
        refusal = await self._authorise(click.user_id, "refresh", env=env_id)
        if refusal is not None:
            self._confirmed.pop(click.block_id, None)
            return refusal
        return await self._refresh(click, self._env(env_id), at)

    async def click_refresh_abort(self, click: Click) -> Reply:
        try:
            env_id, _at = decode_refresh_value(click.value)
        except UsageError as error:
            return Reply(blocks.usage_error(error), outcome="usage")
        env = self._env(env_id)
        return Reply(
            blocks.notice(
                f":ok_hand: No refresh of {blocks.env_label(env)}: nothing was sent to Zuora.",
                f"No refresh of {blocks.env_plain(env)}.",
            ),
            replace_original=True,
        )

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
            return await self._status(command.env, command.job_id)
        if isinstance(command, Jobs):
            return await self._jobs(command.env)
        if isinstance(command, Envs):
            return await self._envs()
        return self._refresh_confirmation(user_id, command)

    async def _help(self, user_id: str) -> Reply:
        decision = await self._permissions.check(user_id)
        return Reply(blocks.help_message(allowed=decision.allowed, usage=usage_text(self._aliases)))

    async def _authorise(self, user_id: str, action: str, **fields: str) -> Reply | None:
        decision: Decision = await self._permissions.check(user_id)
        if decision.allowed:
            return None
        audit.record(
            "refused", user=user_id, allowed=False, action=action, reason=decision.reason, **fields
        )
        return Reply(
            blocks.refusal(
                user_id, reason=decision.reason, granted_by=self._permissions.granted_by
            ),
            outcome="refused",
        )

    # -- use cases ---------------------------------------------------------------------------------------------

    async def _cancel(self, user_id: str, env: EnvRef, job_id: str) -> Reply:
        key = (env.id, job_id)
        holder = self._cancels_in_flight.get(key)
        job_label = f"job `{escape_mrkdwn(job_id)}` in {blocks.env_label(env)}"
        if holder is not None:
            audit.record("cancel-duplicate", user=user_id, env=env.id, job=job_id, first_by=holder)
            return Reply(
                blocks.notice(
                    f":hourglass_flowing_sand: A cancel of {job_label} requested by "
                    f"{blocks.mention(holder)} is already on its way to Zuora; this one was not sent "
                    "again. The job card will show the result.",
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
            what = f"cancel {job_label}"
            return Reply(
                blocks.zuora_error(error, action="cancel", what=what),
                outcome="zuora_error",
                audit=AuditLine(env, job_id, blocks.action_failed(user_id, what, error)),
            )
        finally:
            del self._cancels_in_flight[key]
        job = _with_id(job, job_id)
        audit.record(
            "cancel", user=user_id, env=env.id, job=job_id, outcome="ok",
            job_status=str(job.status), track_id=track_id,
        )  # fmt: skip
        return self._acted(user_id, "cancelled", job, env, track_id)

    async def _status(self, env: EnvRef, job_id: str, *, requested_by: str | None = None) -> Reply:
        track_id = new_track_id()
        what = f"get job `{escape_mrkdwn(job_id)}` in {blocks.env_label(env)}"
        try:
            job = await self._zuora.get_job(env.id, job_id, track_id=track_id)
        except ZuoraError as error:
            return Reply(
                blocks.zuora_error(error, action="status", what=what), outcome="zuora_error"
            )
        job = _with_id(job, job_id)
        card = blocks.job_card(job, env, requested_by=requested_by, track_id=track_id)
        follow = Follow(env, job, requested_by, track_id)
        return Reply(card, "ephemeral", follow=follow, is_job_card=True)

    async def _jobs(self, env: EnvRef) -> Reply:
        track_id = new_track_id()
        try:
            jobs = await self._zuora.list_jobs(env.id, track_id=track_id)
        except ZuoraError as error:
            what = f"list the jobs of {blocks.env_label(env)}"
            return Reply(blocks.zuora_error(error, action="jobs", what=what), outcome="zuora_error")
        return Reply(blocks.job_list(jobs, env, track_id=track_id))

    async def _envs(self) -> Reply:
        track_id = new_track_id()
        try:
            environments = await self._zuora.list_test_environments(track_id=track_id)
        except ZuoraError as error:
            what = "list the test environments"
            return Reply(blocks.zuora_error(error, action="envs", what=what), outcome="zuora_error")
        return Reply(blocks.env_list(environments, self._aliases, track_id=track_id))

    def _refresh_confirmation(self, user_id: str, command: Refresh) -> Reply:
        """Nothing is sent to Zuora yet: the requester confirms first (an ephemeral message only they see)."""
        issued = self._now()
        block_id = f"refresh:{user_id}:{int(issued.timestamp())}"
        message = blocks.refresh_confirmation(
            command.env,
            command.at,
            value=encode_refresh_value(command.env.id, command.at),
            block_id=block_id,
            expires=issued + CONFIRMATION_TTL,
        )
        return Reply(message)

    def _confirmation_problem(self, click: Click) -> Reply | None:
        """Only the requester may confirm, within 10 minutes, once."""
        match = _CONFIRM_BLOCK.fullmatch(click.block_id)
        if match is None:
            return _notice_reply(
                ":information_source: This confirmation is not valid. Run `/sandbox refresh` again.",
                "usage",
            )
        requester, issued_at = match.group(1), int(match.group(2))
        if requester != click.user_id:
            return _notice_reply(
                f":no_entry: Only {blocks.mention(requester)}, who asked for this refresh, can confirm it.",
                "refused",
            )
        now = self._now()
        for used, (when, _job) in list(self._confirmed.items()):
            if now - when > 2 * CONFIRMATION_TTL:
                del self._confirmed[used]
        if now - datetime.fromtimestamp(issued_at, UTC) > CONFIRMATION_TTL:
            return Reply(
                blocks.notice(
                    ":hourglass: This confirmation has expired (10 minutes). Run `/sandbox refresh` again.",
                    "This confirmation has expired.",
                ),
                replace_original=True,
                outcome="expired",
            )
        if click.block_id in self._confirmed:
            _when, job_id = self._confirmed[click.block_id]
            started = f" (job `{escape_mrkdwn(job_id)}`)" if job_id else ""
            return _notice_reply(
                f":hourglass_flowing_sand: This refresh was already confirmed{started}; it was not started twice.",
                "duplicate",
            )
        # Claimed before any await, so a second click arriving meanwhile is stopped above.
        self._confirmed[click.block_id] = (now, None)
        return None

    async def _refresh(self, click: Click, env: EnvRef, at: datetime | None) -> Reply:
        if env.id in self._refreshes_in_flight:
            self._confirmed.pop(click.block_id, None)  # not sent: this confirmation stays usable
            return _notice_reply(
                f":hourglass_flowing_sand: A refresh of {blocks.env_label(env)} is already on its way to Zuora; "
                "this one was not sent.",
                "duplicate",
            )
        self._refreshes_in_flight.add(env.id)
        track_id = new_track_id()
        try:
            job = await self._zuora.create_refresh_job(env.id, scheduled_at=at, track_id=track_id)
        except ZuoraError as error:
            if zuora_did_not_act(error):
                # Nothing started: the user may confirm again.
                self._confirmed.pop(click.block_id, None)
            # Otherwise (5xx, a timeout after sending, an unreadable answer) the refresh may have started:
            # the confirmation stays used, and the message says to check the jobs before asking again.
            audit.record(
                "refresh", user=click.user_id, env=env.id, outcome="error", status=error.status,
                track_id=error.track_id, request_id=error.request_id,
            )  # fmt: skip
            what = f"refresh {blocks.env_label(env)}"
            hint = _next_refresh_hint(error)
            return Reply(
                blocks.zuora_error(error, action="refresh", what=what, hint=hint),
                outcome="zuora_error",
                audit=AuditLine(env, None, blocks.action_failed(click.user_id, what, error)),
            )
        finally:
            self._refreshes_in_flight.discard(env.id)
        self._confirmed[click.block_id] = (self._now(), job.id)
        audit.record(
            "refresh", user=click.user_id, env=env.id, job=job.id, outcome="ok",
            job_status=str(job.status), scheduled=at.isoformat() if at else None, track_id=track_id,
        )  # fmt: skip
        reply = self._acted(
            click.user_id, "started" if at is None else "scheduled", job, env, track_id
        )
        job_text = f" as job `{escape_mrkdwn(job.id)}`" if job.id else ""
        done = blocks.notice(
            f":white_check_mark: Refresh of {blocks.env_label(env)} requested{job_text}. "
            "The job card is in the channel.",
            f"Refresh of {blocks.env_plain(env)} requested.",
        )
        return dataclasses.replace(reply, replacement=done)

    def _acted(self, user_id: str, verb: str, job: Job, env: EnvRef, track_id: str) -> Reply:
        """A job card in the channel for an action that succeeded; its notification card (the audit trail)
        says who did it. Both are kept current until the job ends."""
        card = blocks.job_card(job, env, requested_by=user_id, track_id=track_id)
        note = (
            f":memo: {blocks.mention(user_id)} {verb} this job from Slack "
            f"(Zuora-Track-Id `{escape_mrkdwn(track_id)}`)."
        )
        follow = Follow(env, job, user_id, track_id, note, announce=True)
        line = blocks.action_notification(
            actor=user_id, verb=verb, job=job, env=env, track_id=track_id
        )
        return Reply(
            card,
            "in_channel",
            follow=follow,
            is_job_card=True,
            audit=AuditLine(env, job.id, line),
        )

    def _env(self, env_id: str) -> EnvRef:
        alias = next((a for a, i in self._aliases.items() if i == env_id), None)
        return EnvRef(id=env_id, alias=alias)


def _notice_reply(text: str, outcome: str) -> Reply:
    plain = re.sub(r"[*`]", "", _EMOJI.sub("", text)).strip()
    return Reply(blocks.notice(text, plain), outcome=outcome)


def _next_refresh_hint(error: ZuoraError) -> str | None:
    """Zuora's 403 for a second refresh in a period may say when the next one is possible: show that time."""
    if not isinstance(error, ZuoraPermissionError):
        return None
    for reason in error.reasons:
        for match in _ISO_TIME.finditer(reason.message):
            try:
                when = datetime.fromisoformat(match.group(0))
            except ValueError:
                continue
            when = when if when.tzinfo else when.replace(tzinfo=UTC)
            return f":calendar: Zuora says the next refresh is possible {blocks.slack_date(when)}."
    return None


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
