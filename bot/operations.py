"""The use cases behind `/sandbox` and its buttons: validate, authorise, call Zuora, report what happened.

No Slack SDK and no HTTP here: an operation returns an `Outcome` (`bot.outcomes`; its messages built by
`bot.blocks`) and the listeners deliver it. Each subcommand's handler is registered with `@handles(<command
class>)`; the command's syntax, usage and summary are defined with the class in `bot.commands`.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from bot import audit, blocks
from bot.commands import (
    SUBCOMMAND_DEFINITIONS,
    Cancel,
    Command,
    EnvRef,
    Envs,
    Help,
    Jobs,
    Parseable,
    Refresh,
    RefreshForm,
    Status,
    UsageError,
    decode_job_value,
    decode_refresh_value,
    encode_refresh_value,
    parse,
    usage_text,
)
from bot.coordination import CoordinationUnavailable, InProcessStore, Store
from bot.outcomes import (
    AuditLine,
    JobActed,
    JobLooked,
    NeedsConfirmation,
    OpensForm,
    Outcome,
    Refused,
    Told,
    ZuoraFailed,
)
from bot.permissions import Permissions, Role, Standing
from bot.zuora.client import ZuoraClient
from bot.zuora.errors import ZuoraError, zuora_did_not_act
from bot.zuora.statuses import JobStatus
from bot.zuora.trackid import new_track_id

if TYPE_CHECKING:
    # Types only: the models (and pydantic) are loaded when Zuora first answers, not at start-up.
    from bot.zuora.models import Job, TestEnvironment


log = logging.getLogger(__name__)

CONFIRMATION_TTL = timedelta(minutes=10)
# A used confirmation is remembered for twice its life, then expires in the store.
CLAIM_TTL = 2 * CONFIRMATION_TTL.total_seconds()
# An action in flight holds its claim at most this long (Zuora's timeout and retries fit in it many times); a
# replica that died holding one frees it by expiry.
IN_FLIGHT_TTL = 300.0
_USER = re.compile(r"^[UW][A-Z0-9]{2,20}$")
_CONFIRM_BLOCK = re.compile(r"^refresh:([UW][A-Z0-9]{2,20}):([0-9]{9,11}):[0-9a-f]{8}$")

C = TypeVar("C", bound=Parseable)
Handler = Callable[["Operations", "Asker", Any], Awaitable[Outcome]]
_HANDLERS: dict[type[Parseable], Handler] = {}


def handles(
    kind: type[C],
) -> Callable[[Callable[[Operations, Asker, C], Awaitable[Outcome]]], Handler]:
    """Register the handler of a command class (as Bolt registers a listener)."""

    def register(handler: Callable[[Operations, Asker, C], Awaitable[Outcome]]) -> Handler:
        _HANDLERS[kind] = handler
        return handler

    return register


@dataclass(frozen=True, slots=True)
class Asker:
    """Who typed a command, and their role (already checked against the subcommand's)."""

    user_id: str
    role: Role | None

    @property
    def may_act(self) -> bool:
        return self.role == "operator"


@dataclass(frozen=True, slots=True)
class Used:
    """A single-use confirmation seen before, and the job its first use started (None: not yet known)."""

    job_id: str | None


@dataclass(frozen=True, slots=True)
class Click:
    """A button click as Slack reported it. `value` is untrusted; `block_id` is the one the bot set on the
    clicked message (it carries who asked for the job, for the audit trail)."""

    user_id: str
    value: str
    block_id: str = ""


class Operations:
    def __init__(
        self,
        *,
        zuora: ZuoraClient,
        permissions: Permissions,
        aliases: Mapping[str, str],
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        store: Store | None = None,
    ) -> None:
        """`store` holds the single-use claims (confirmations, forms, actions in flight): in this process by
        default, in Redis when several replicas share the work."""
        self._store = store or InProcessStore()
        # Actions this replica has on their way to Zuora now, by kind (benchmarks and shutdown look at it).
        self.in_flight = {"cancel": 0, "refresh": 0}
        self._zuora = zuora
        self._permissions = permissions
        self._aliases = dict(aliases)
        self._now = now
        # A second submit of the same action while the first is on its way is answered, not sent again.
        # Confirmations already used (block_id -> when, job ID): a double click starts one refresh.

    # -- entry points ------------------------------------------------------------------------------------------

    async def command(self, user_id: str, text: str) -> Outcome:
        """`/sandbox <text>` typed by `user_id`."""
        try:
            command = parse(text, self._aliases, now=self._now())
        except UsageError as error:
            return Told(blocks.usage_error(error), "usage")
        needed = getattr(command, "role", None) or SUBCOMMAND_DEFINITIONS[command.name].role
        standing = await self._permissions.standing(user_id)
        if needed != "anyone" and not standing.may(needed):
            return self._refused(
                user_id, command.name, standing, needed, **_command_fields(command)
            )
        return await _HANDLERS[type(command)](self, Asker(user_id, standing.role), command)

    async def click_cancel(self, click: Click) -> Outcome:
        """*Cancel job*: the value is untrusted input, validated like typed text."""
        try:
            env_id, job_id = decode_job_value(click.value)
        except UsageError as error:
            return Told(blocks.usage_error(error), "usage")
        standing = await self._authorise(
            click.user_id, "cancel", "operator", env=env_id, job=job_id
        )
        if isinstance(standing, Refused):
            return standing
        return await self._cancel(
            Asker(click.user_id, standing.role), Cancel(self._env(env_id), job_id)
        )

    async def click_status(self, click: Click) -> Outcome:
        """*Refresh status*: fetch the job again; the card keeps who asked for it."""
        try:
            env_id, job_id = decode_job_value(click.value)
        except UsageError as error:
            return Told(blocks.usage_error(error), "usage")
        standing = await self._authorise(click.user_id, "status", "viewer", env=env_id, job=job_id)
        if isinstance(standing, Refused):
            return standing
        requested_by = blocks.requested_by_in(click.block_id)
        return await self._status(
            Status(self._env(env_id), job_id),
            requested_by=requested_by,
            may_act=standing.role == "operator",
        )

    async def click_refresh_confirm(self, click: Click) -> Outcome:
        try:
            env_id, at = decode_refresh_value(click.value, now=self._now())
        except UsageError as error:
            return Told(blocks.usage_error(error), "usage")
        # This also claims the confirmation: a second click stops here.
        problem = await self._confirmation_problem(click)
        if problem is not None:
            return problem
        standing = await self._authorise(click.user_id, "refresh", "operator", env=env_id)
        if isinstance(standing, Refused):
            await self._give_back(click.block_id)
            return standing
        return await self._refresh(click.user_id, Refresh(self._env(env_id), at), click.block_id)

    async def click_refresh_abort(self, click: Click) -> Outcome:
        try:
            env_id, _at = decode_refresh_value(click.value)
        except UsageError as error:
            return Told(blocks.usage_error(error), "usage")
        return Told(blocks.refresh_aborted(self._env(env_id)), replace=True)

    # -- subcommands -------------------------------------------------------------------------------------------

    @handles(Help)
    async def _help(self, asker: Asker, command: Help) -> Outcome:
        return Told(
            blocks.help_message(
                role=asker.role,
                usage=usage_text(self._aliases, role=asker.role or "anyone"),
                ask=self._permissions.grantors,
            )
        )

    @handles(Cancel)
    async def _cancel(self, asker: Asker, command: Cancel) -> Outcome:
        user_id = asker.user_id
        env, job_id = command.env, command.job_id
        in_flight = f"cancel:{env.id}:{job_id}"
        try:
            first = await self._store.claim(in_flight, IN_FLIGHT_TTL, value=user_id)
            holder = None if first else await self._store.get(in_flight)
        except CoordinationUnavailable:
            return Told(blocks.claims_unavailable(command), "unavailable")
        if not first:
            holder = holder if holder and _USER.fullmatch(holder) else None
            audit.record("cancel-duplicate", user=user_id, env=env.id, job=job_id, first_by=holder)
            return Told(blocks.cancel_in_flight(env, job_id, holder), "duplicate")
        track_id = new_track_id()
        self.in_flight["cancel"] += 1
        try:
            job = await self._zuora.cancel_job(env.id, job_id, track_id=track_id)
        except ZuoraError as error:
            audit.record(
                "cancel", user=user_id, env=env.id, job=job_id, outcome="error",
                status=error.status, track_id=error.track_id, request_id=error.request_id,
            )  # fmt: skip
            failed = AuditLine(env, job_id, blocks.action_failed(user_id, command, error))
            if zuora_did_not_act(error):
                return ZuoraFailed(blocks.zuora_error(error, command), failed)
            return await self._after_lost_answer(user_id, command, error, failed)
        finally:
            self.in_flight["cancel"] -= 1
            await self._let_go(in_flight, user_id)
        job = _with_id(job, job_id)
        audit.record(
            "cancel", user=user_id, env=env.id, job=job_id, outcome="ok",
            job_status=str(job.status), track_id=track_id,
        )  # fmt: skip
        return JobActed(env, job, user_id, "cancelled", track_id)

    async def _after_lost_answer(
        self, user_id: str, command: Cancel, error: ZuoraError, failed: AuditLine
    ) -> Outcome:
        """The cancel may have reached Zuora although no answer came: read the job back and tell the truth. If
        Zuora shows it cancelling, the cancel was applied; otherwise the user hears that it may still be, and
        the job's card follows it."""
        track_id = new_track_id()
        try:
            job = await self._zuora.get_job(command.env.id, command.job_id, track_id=track_id)
        except ZuoraError:
            return ZuoraFailed(blocks.zuora_error(error, command), failed)
        job = _with_id(job, command.job_id)
        log.warning(
            "cancel answer lost; job read back",
            extra={"job": command.job_id, "job_status": str(job.status), "track_id": track_id},
        )
        if job.status in (JobStatus.CANCELLING, JobStatus.CANCELLED):
            return JobActed(command.env, job, user_id, "cancelled", track_id)
        then = JobActed(command.env, job, user_id, "asked Zuora to cancel", track_id)
        return ZuoraFailed(blocks.zuora_error(error, command, read_back=job), failed, then)

    @handles(Status)
    async def _status_command(self, asker: Asker, command: Status) -> Outcome:
        return await self._status(command, may_act=asker.may_act)

    async def _status(
        self, command: Status, *, requested_by: str | None = None, may_act: bool
    ) -> Outcome:
        track_id = new_track_id()
        try:
            job = await self._zuora.get_job(command.env.id, command.job_id, track_id=track_id)
        except ZuoraError as error:
            return ZuoraFailed(blocks.zuora_error(error, command))
        job = _with_id(job, command.job_id)
        return JobLooked(command.env, job, track_id, requested_by, may_act=may_act)

    @handles(Jobs)
    async def _jobs(self, asker: Asker, command: Jobs) -> Outcome:
        track_id = new_track_id()
        try:
            jobs = await self._zuora.list_jobs(command.env.id, track_id=track_id)
        except ZuoraError as error:
            return ZuoraFailed(blocks.zuora_error(error, command))
        return Told(blocks.job_list(jobs, command.env, track_id=track_id, act=asker.may_act))

    @handles(Envs)
    async def _envs(self, asker: Asker, command: Envs) -> Outcome:
        track_id = new_track_id()
        try:
            environments = await self._zuora.list_test_environments(track_id=track_id)
        except ZuoraError as error:
            return ZuoraFailed(blocks.zuora_error(error, command))
        return Told(blocks.env_list(environments, self._aliases, track_id=track_id))

    @handles(RefreshForm)
    async def _refresh_form(self, asker: Asker, command: RefreshForm) -> Outcome:
        """The form opens from the command's trigger (the listeners hold it); it checks the role itself."""
        return OpensForm()

    @handles(Refresh)
    async def _refresh_confirmation(self, asker: Asker, command: Refresh) -> Outcome:
        """No refresh is sent to Zuora yet: the requester confirms first (an ephemeral message only they see).

        The environment is read first, so the confirmation names its type and limit, and a refresh Zuora
        would refuse (its next refresh is possible only after the time asked for) is not offered at all. If
        Zuora cannot be read, the generic confirmation says so: the user is not held up by it."""
        env, at = command.env, command.at
        track_id = new_track_id()
        environment: TestEnvironment | None = None
        unchecked: ZuoraError | None = None
        try:
            environment = await self._zuora.get_test_environment(env.id, track_id=track_id)
        except ZuoraError as error:
            unchecked = error
            log.warning(
                "refresh limit not checked: the environment could not be read",
                extra={"env": env.id, "status": error.status, "track_id": error.track_id},
            )
        issued = self._now()
        possible_from = environment.next_refresh_time if environment is not None else None
        if environment is not None and possible_from is not None and (at or issued) < possible_from:
            return Told(blocks.refresh_not_possible(env, at, environment))
        # Who asked, when, and a nonce: two confirmations asked for in the same second stay distinct.
        block_id = f"refresh:{asker.user_id}:{int(issued.timestamp())}:{secrets.token_hex(4)}"
        message = blocks.refresh_confirmation(
            env,
            at,
            value=encode_refresh_value(env.id, at),
            block_id=block_id,
            expires=issued + CONFIRMATION_TTL,
            environment=environment,
            unchecked=unchecked,
        )
        return NeedsConfirmation(message)

    # -- rules ---------------------------------------------------------------------------------------------------

    async def _authorise(
        self, user_id: str, action: str, needed: Role, **fields: str
    ) -> Standing | Refused:
        """The user's standing if it allows `needed`, else the refusal (audited)."""
        standing = await self._permissions.standing(user_id)
        if standing.may(needed):
            return standing
        return self._refused(user_id, action, standing, needed, **fields)

    def _refused(
        self, user_id: str, action: str, standing: Standing, needed: Role, **fields: str
    ) -> Refused:
        audit.record(
            "refused", user=user_id, allowed=False, action=action, reason=standing.reason,
            role=standing.role, needed=needed, **fields,
        )  # fmt: skip
        return Refused(
            blocks.refusal(
                user_id,
                reason=standing.reason,
                ask=self._permissions.grantors,
                needed=needed,
                role=standing.role,
            )
        )

    async def _confirmation_problem(self, click: Click) -> Told | None:
        """Only the requester may confirm, within 10 minutes, once."""
        match = _CONFIRM_BLOCK.fullmatch(click.block_id)
        if match is None:
            return Told(blocks.confirmation_invalid(), "usage")
        requester, issued_at = match.group(1), int(match.group(2))
        if requester != click.user_id:
            return Told(blocks.confirmation_not_yours(requester), "refused")
        if self._now() - datetime.fromtimestamp(issued_at, UTC) > CONFIRMATION_TTL:
            return Told(blocks.confirmation_expired(), "expired", replace=True)
        try:
            used = await self.claim(click.block_id)
        except CoordinationUnavailable:
            return Told(blocks.claims_unavailable(None), "unavailable")
        if used is not None:
            return Told(blocks.confirmation_used(used.job_id), "duplicate")
        return None

    async def claim(self, key: str) -> Used | None:
        """Claim a single-use confirmation (a confirm button's block_id, a form's nonce) in the store, so that
        every replica sees it: None the first time, else what the first use started. Raises
        `CoordinationUnavailable` when the store cannot say: the caller then starts nothing."""
        stored = f"confirm:{key}"
        if await self._store.claim(stored, CLAIM_TTL, value=""):
            return None
        return Used(await self._store.get(stored) or None)

    async def _give_back(self, key: str) -> None:
        """The confirmation did not start anything: it may be used again."""
        try:
            await self._store.release(f"confirm:{key}")
        except CoordinationUnavailable:
            log.warning("a confirmation could not be given back; it stays used", extra={"key": key})

    async def _settle(self, key: str, job_id: str | None) -> None:
        """Remember which job a confirmation started, for a second click to name."""
        try:
            await self._store.put(f"confirm:{key}", job_id or "", CLAIM_TTL)
        except CoordinationUnavailable:
            log.warning("the job a confirmation started is not remembered", extra={"key": key})

    async def _let_go(self, in_flight: str, user_id: str) -> None:
        try:
            await self._store.release_if(in_flight, user_id)
        except CoordinationUnavailable:  # it expires by itself
            log.warning("an in-flight claim could not be released", extra={"key": in_flight})

    async def start_refresh(
        self, user_id: str, env_id: str, at: datetime | None, *, claim: str
    ) -> Outcome:
        """A refresh confirmed in the form: `claim` is the form's, already claimed with `claim()`. The user is
        checked against the role again (as on every submission); a refusal frees the claim."""
        standing = await self._authorise(user_id, "refresh", "operator", env=env_id)
        if isinstance(standing, Refused):
            await self._give_back(claim)
            return standing
        return await self._refresh(user_id, Refresh(self._env(env_id), at), claim)

    async def _refresh(self, user_id: str, command: Refresh, claim: str) -> Outcome:
        env, at = command.env, command.at
        in_flight = f"refresh:{env.id}"
        try:
            first = await self._store.claim(in_flight, IN_FLIGHT_TTL, value=user_id)
        except CoordinationUnavailable:
            await self._give_back(claim)
            return Told(blocks.claims_unavailable(command), "unavailable")
        if not first:
            await self._give_back(claim)  # not sent: this confirmation stays usable
            return Told(blocks.refresh_in_flight(env), "duplicate")
        track_id = new_track_id()
        asked_at = self._now()
        self.in_flight["refresh"] += 1
        try:
            job = await self._zuora.create_refresh_job(env.id, scheduled_at=at, track_id=track_id)
        except ZuoraError as error:
            if zuora_did_not_act(error):
                # Nothing started: the user may confirm again.
                await self._give_back(claim)
            # Otherwise (5xx, a timeout after sending, an unreadable answer) the refresh may have started:
            # the confirmation stays used, and the message says to check the jobs before asking again.
            audit.record(
                "refresh", user=user_id, env=env.id, outcome="error", status=error.status,
                track_id=error.track_id, request_id=error.request_id,
            )  # fmt: skip
            started = None if zuora_did_not_act(error) else await self._started_since(env, asked_at)
            if started is None:
                return ZuoraFailed(
                    blocks.zuora_error(error, command),
                    AuditLine(env, None, blocks.action_failed(user_id, command, error)),
                )
            job, track_id = started  # the answer was lost, but the refresh did start
            log.warning("refresh answer lost; its job found", extra={"job": job.id, "env": env.id})
        finally:
            self.in_flight["refresh"] -= 1
            await self._let_go(in_flight, user_id)
        await self._settle(claim, job.id)
        audit.record(
            "refresh", user=user_id, env=env.id, job=job.id, outcome="ok",
            job_status=str(job.status), scheduled=at.isoformat() if at else None, track_id=track_id,
        )  # fmt: skip
        verb = "started" if at is None else "scheduled"
        done = blocks.refresh_requested(env, job)
        return JobActed(env, job, user_id, verb, track_id, done=done)

    async def _started_since(self, env: EnvRef, asked_at: datetime) -> tuple[Job, str] | None:
        """After a create whose answer was lost: the refresh job Zuora shows as created since it was asked for
        (a minute's leeway for clocks), if any, and the track ID of that read. None when there is none or
        Zuora cannot be read: the user is then told the refresh may have started."""
        track_id = new_track_id()
        try:
            jobs = await self._zuora.list_jobs(env.id, track_id=track_id)
        except ZuoraError:
            return None
        since = asked_at - timedelta(minutes=1)
        for job in jobs:
            created = job.create_time
            if job.id and not job.is_terminal and created is not None and created >= since:
                return job, track_id
        return None

    def _env(self, env_id: str) -> EnvRef:
        alias = next((a for a, i in self._aliases.items() if i == env_id), None)
        return EnvRef(id=env_id, alias=alias)


def _with_id(job: Job, job_id: str) -> Job:
    """Zuora's answer should carry the job ID; if it does not, the one we asked about is the one it is."""
    return job if job.id else job.model_copy(update={"id": job_id})


def _command_fields(command: Command) -> dict[str, str]:
    fields: dict[str, str] = {}
    env = getattr(command, "env", None)
    if isinstance(env, EnvRef):
        fields["env"] = env.id
    job_id = getattr(command, "job_id", None)
    if isinstance(job_id, str):
        fields["job"] = job_id
    return fields


def missing_handlers() -> list[str]:
    """Subcommands defined in `bot.commands` without a handler here (a test keeps this empty)."""
    handled = {kind.name for kind in _HANDLERS}
    return [name for name in SUBCOMMAND_DEFINITIONS if name not in handled]
