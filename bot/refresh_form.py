"""The refresh form: a modal that asks which sandbox and when, checks it, confirms, and starts one refresh.

Slack's rules shape it: a trigger_id is good once and for 3 s, so the form opens at once from what the bot
holds (the aliases and the environments last listed) and is brought up to date with `views.update` when Zuora
answers; a submission's `response_action` must be in its ack, so a submission is checked against what was read
when the form opened (carried in the view's `private_metadata`), and the refresh is created after the ack.
Every submission is checked against the role; a second submission of the same form starts nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bot import audit, blocks, view_blocks
from bot.commands import ID_PATTERN, EnvRef
from bot.coordination import CoordinationUnavailable
from bot.env_view import EnvironmentView
from bot.home import HomeTab
from bot.job_cards import JobCards
from bot.operations import CONFIRMATION_TTL, Operations
from bot.outcomes import JobActed, Metric, Outcome, ZuoraFailed
from bot.permissions import Permissions
from bot.slack_surface import Origin, SlackSurface
from bot.view_blocks import FIELD_AT, FIELD_ENV, FIELD_WHEN, WHEN_AT, WHEN_NOW, FormState, View
from bot.zuora.errors import ZuoraError

if TYPE_CHECKING:
    # Types only: the models (and pydantic) are loaded when Zuora first answers, not at start-up.
    from bot.zuora.models import TestEnvironment


log = logging.getLogger(__name__)

Ack = dict[
    str, Any
]  # what the view_submission's ack carries: response_action and its view or errors
AfterAck = Callable[[], Awaitable[None]]
_NONCE = 16  # hex characters
CLAIM_DEADLINE = 1.0  # seconds for the store to claim a submission, within Slack's 3 s for the ack
IN_ACK_SECONDS = (
    1.5  # how long the ack waits for Zuora to create the refresh (Slack allows 3 s in all)
)
_EXPIRED = (
    ":hourglass: This confirmation is more than 10 minutes old, so it was not used. Open the form again to "
    "refresh with what Zuora shows now."
)
_PASSED = (
    ":hourglass: The time chosen has passed while the form was open, so nothing was started. Open the form "
    "again and choose a later time."
)
_OUT_OF_DATE = ":warning: This form is out of date. Open it again with `/sandbox refresh`."


class BadForm(ValueError):
    """A submission whose view the bot did not build (or no longer understands)."""


class RefreshForms:
    def __init__(
        self,
        *,
        operations: Operations,
        permissions: Permissions,
        view: EnvironmentView,
        slack: SlackSurface,
        cards: JobCards,
        aliases: Mapping[str, str],
        notify_channel: str | None,
        max_age: float,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._operations = operations
        self._permissions = permissions
        self._view = view
        self._slack = slack
        self._cards = cards
        self._aliases = dict(aliases)
        self._notify_channel = notify_channel
        self._max_age = max_age
        self._now = now
        self.home: HomeTab | None = (
            None  # set once both exist: the Home tab shows a refresh started from it
        )

    # -- opening ------------------------------------------------------------------------------------------------

    async def open(
        self,
        user_id: str,
        trigger_id: str,
        *,
        channel: str | None = None,
        from_home: bool = False,
    ) -> None:
        """Open the form for `user_id` with the trigger of their click, shortcut or command (in `channel`, where
        the result is answered; None: a direct message). A user who is not an operator gets a modal saying why.
        `from_home`: opened from the App Home tab, which shows the new job once the refresh started."""
        standing = await self._permissions.standing(user_id)
        if not standing.may("operator"):
            await self._slack.open_view(
                trigger_id,
                view_blocks.form_refused(
                    self._permissions.grantors, standing.reason, standing.role
                ),
            )
            return
        state = FormState(
            nonce=secrets.token_hex(_NONCE // 2),
            known=self._known(self._view.environments_seen()),
            channel=channel if channel and not channel.startswith("D") else None,
            home=from_home,
        )
        seen = self._view.environments_seen()
        options = view_blocks.environment_options(seen, self._aliases)
        opened = await self._slack.open_view(
            trigger_id,
            view_blocks.form_view(state, options, problem="Reading the sandboxes from Zuora…"),
        )
        if (
            opened is None
        ):  # the trigger expired (or Slack refused): never leave the user without a word
            await self._slack.reply(Origin(None, None, user_id=user_id), blocks.form_unavailable())
            return
        view_id, hash_ = opened
        await self._bring_up_to_date(user_id, view_id, hash_, state)

    async def _bring_up_to_date(
        self, user_id: str, view_id: str, hash_: str, state: FormState
    ) -> None:
        tz_task = asyncio.ensure_future(self._slack.time_zone(user_id))
        problem: str | None = None
        environments: list[TestEnvironment] = list(self._view.environments_seen())
        try:
            environments = list(await self._view.environments(max_age=self._max_age))
        except ZuoraError as error:
            problem = (
                f"Zuora did not list the sandboxes ({error.summary}; Zuora-Track-Id "
                f"{error.track_id or 'none'}): only the configured aliases are offered."
            )
        tz = await tz_task
        fresh = replace(state, known=self._known(environments), read=problem is None, tz=tz)
        options = view_blocks.environment_options(environments, self._aliases)
        # With the hash: if the user already moved on (submitted), their step is not overwritten.
        await self._slack.update_view(
            view_id, view_blocks.form_view(fresh, options, problem=problem), hash_=hash_
        )

    def _known(self, environments: list[TestEnvironment] | Any) -> dict[str, str]:
        known = {env_id: "" for env_id in self._aliases.values()}
        for env in environments:
            if env.id:
                known[env.id] = env.next_refresh_time.isoformat() if env.next_refresh_time else ""
        return known

    # -- submissions ---------------------------------------------------------------------------------------------

    async def submit(
        self, user_id: str, view: Mapping[str, Any]
    ) -> tuple[Ack, AfterAck | None, Metric]:
        """The ack for a submission of the form (errors, the next step, or why not), the work to do after the
        ack (creating the refresh), if any, and the outcome for the commands metric."""
        try:
            state = parse_state(str(view.get("private_metadata") or ""))
        except BadForm:
            log.warning("a refresh form submission the bot cannot read", extra={"user": user_id})
            return (
                _update(
                    view_blocks.form_notice(
                        "Refresh a sandbox",
                        _OUT_OF_DATE,
                    )
                ),
                None,
                "usage",
            )
        standing = await self._permissions.standing(user_id)
        if not standing.may("operator"):
            audit.record(
                "refused", user=user_id, allowed=False, action="refresh_form",
                reason=standing.reason, role=standing.role, needed="operator",
            )  # fmt: skip
            return (
                _update(
                    view_blocks.form_refused(
                        self._permissions.grantors, standing.reason, standing.role
                    )
                ),
                None,
                "refused",
            )
        if state.step == "confirm":
            try:
                return await self._confirmed(user_id, str(view.get("id") or ""), state)
            except BadForm:
                return (
                    _update(view_blocks.form_notice("Refresh a sandbox", _OUT_OF_DATE)),
                    None,
                    "usage",
                )
        checked = self._checked(state, view.get("state") or {})
        return checked, None, "usage" if checked["response_action"] == "errors" else "ok"

    def _checked(self, state: FormState, view_state: Mapping[str, Any]) -> Ack:
        """Step 1's answer: the errors to show in the form, or the confirmation."""
        values = view_state.get("values") or {}
        errors: dict[str, str] = {}
        env_id = _selected(values, FIELD_ENV)
        # Any well-formed ID: the select offers the environments Zuora listed, and the form may not remember
        # the limits of all of them (private_metadata is short); Zuora checks the rest.
        if env_id is None or not ID_PATTERN.fullmatch(env_id):
            errors[FIELD_ENV] = "Choose a sandbox from the list."
        when = _selected(values, FIELD_WHEN) or WHEN_NOW
        at: datetime | None = None
        now = self._now()
        if when not in (WHEN_NOW, WHEN_AT):
            errors[FIELD_WHEN] = "Choose Now or At the time below."
        elif when == WHEN_AT:
            at = _picked_time(values)
            if at is None:
                errors[FIELD_AT] = "Choose a date and time, or choose Now."
            elif at <= now:
                errors[FIELD_AT] = (
                    f"That time has passed (it is now {view_blocks.local_time(now, state.tz)}): "
                    "choose a later one."
                )
        if FIELD_ENV not in errors and env_id is not None:
            possible_from = _iso(state.known.get(env_id, ""))
            if possible_from is not None and (at or now) < possible_from:
                errors[FIELD_AT if at else FIELD_ENV] = view_blocks.not_possible_before(
                    self._env(env_id), possible_from, state.tz
                )
        if errors:
            return {"response_action": "errors", "errors": errors}
        assert env_id is not None
        confirm = replace(
            state,
            step="confirm",
            env=env_id,
            at=at.isoformat() if at is not None else None,
            issued=now.isoformat(),
        )
        environment = next((e for e in self._view.environments_seen() if e.id == env_id), None)
        return _update(view_blocks.form_confirmation(confirm, self._env(env_id), at, environment))

    async def _confirmed(
        self, user_id: str, view_id: str, state: FormState
    ) -> tuple[Ack, AfterAck | None, Metric]:
        """Step 2: claim the form (once), answer 'starting', and create the refresh after the ack."""
        env_id = state.env
        at = _iso(state.at) if state.at else None
        if env_id is None or not ID_PATTERN.fullmatch(env_id) or (state.at and at is None):
            raise BadForm("a confirmation without its environment")
        now = self._now()
        issued = _iso(state.issued)
        if issued is None or now - issued > CONFIRMATION_TTL:
            return _update(view_blocks.form_notice("Refresh a sandbox", _EXPIRED)), None, "expired"
        if at is not None and at <= now:
            return _update(view_blocks.form_notice("Refresh a sandbox", _PASSED)), None, "usage"
        try:
            # On the ack's path: a store that does not answer in time is an unavailable one.
            async with asyncio.timeout(CLAIM_DEADLINE):
                used = await self._operations.claim(f"form:{state.nonce}")
        except (CoordinationUnavailable, TimeoutError):
            return (
                _update(view_blocks.form_failed(blocks.claims_unavailable(None).blocks)),
                None,
                "unavailable",
            )
        if used is not None:
            return _update(view_blocks.form_used(used.job_id)), None, "duplicate"
        env = self._env(env_id)
        # Zuora's answer goes into the ack when it comes in time: then no later views.update can race the
        # ack's own update. Otherwise the ack says "starting", and the answer follows long after it.
        creating = asyncio.ensure_future(
            self._operations.start_refresh(user_id, env.id, at, claim=f"form:{state.nonce}")
        )
        done, _pending = await asyncio.wait({creating}, timeout=IN_ACK_SECONDS)
        if done:
            outcome = creating.result()

            async def records() -> None:
                await self._records(outcome, user_id, state)

            return _update(self._result_view(outcome, state, env)), records, "ok"

        async def later() -> None:
            outcome = await creating
            await self._slack.update_view(view_id, self._result_view(outcome, state, env))
            await self._records(outcome, user_id, state)

        return _update(view_blocks.form_starting(env, at)), later, "ok"

    def _result_view(self, outcome: Outcome, state: FormState, env: EnvRef) -> View:
        """What the form shows of Zuora's answer: the job, or the failure or refusal as a message."""
        match outcome:
            case JobActed(job=job):
                where = (
                    f"in <#{state.channel}>"
                    if state.channel
                    else "in your direct messages with the bot"
                )
                if self._notify_channel:
                    where += f" and in <#{self._notify_channel}>"
                return view_blocks.form_started(env, job, where=where)
            case ZuoraFailed(message=message):
                return view_blocks.form_failed(message.blocks)
            case _:
                told = getattr(outcome, "message", None)  # a refusal, or a refresh under way
                blocks_shown = told.blocks if told is not None else []
                return view_blocks.form_failed(blocks_shown)

    async def _records(self, outcome: Outcome, user_id: str, state: FormState) -> None:
        """The job card where the form was opened (a DM without a channel) and in the notification channel,
        the audit line; the Home tab it was opened from shows the new job."""
        origin = Origin(state.channel or user_id, None, user_id=user_id)
        match outcome:
            case JobActed():
                await self._cards.present(outcome, origin)
                if state.home and self.home is not None:
                    await self.home.publish(user_id, fresh=True)
            case ZuoraFailed(audit=audit, then=then):
                if audit is not None:
                    await self._cards.record(audit)
                if then is not None:
                    await self._cards.present(then, origin)
            case _:
                pass

    def _env(self, env_id: str) -> EnvRef:
        alias = next((a for a, i in self._aliases.items() if i == env_id), None)
        return EnvRef(id=env_id, alias=alias)


def _update(view: View) -> Ack:
    return {"response_action": "update", "view": view}


def _selected(values: Mapping[str, Any], field: str) -> str | None:
    """The value of a select or radio input (block_id = action_id = `field`), or None."""
    element = (values.get(field) or {}).get(field) or {}
    option = element.get("selected_option") or {}
    value = option.get("value")
    return value if isinstance(value, str) else None


def _picked_time(values: Mapping[str, Any]) -> datetime | None:
    element = (values.get(FIELD_AT) or {}).get(FIELD_AT) or {}
    stamp = element.get("selected_date_time")
    if isinstance(stamp, bool) or not isinstance(stamp, int | float):
        return None
    try:
        return datetime.fromtimestamp(int(stamp), UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _iso(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def parse_state(text: str) -> FormState:
    """The form's `private_metadata`, read strictly (BadForm for anything the bot did not write)."""
    try:
        data = json.loads(text)
    except ValueError:
        raise BadForm("not JSON") from None
    if not isinstance(data, dict):
        raise BadForm("not an object")
    nonce, known, step = data.get("nonce"), data.get("known"), data.get("step")
    if not (
        isinstance(nonce, str)
        and len(nonce) == _NONCE
        and all(c in "0123456789abcdef" for c in nonce)
    ):
        raise BadForm("no nonce")
    if step not in ("form", "confirm") or not isinstance(known, dict):
        raise BadForm("no step")
    if not all(
        isinstance(k, str) and ID_PATTERN.fullmatch(k) and isinstance(v, str)
        for k, v in known.items()
    ):
        raise BadForm("bad environments")
    channel, tz, env, at, issued = (data.get(k) for k in ("channel", "tz", "env", "at", "issued"))
    for value in (channel, tz, env, at, issued):
        if value is not None and not (isinstance(value, str) and len(value) <= 100):
            raise BadForm("bad field")
    if channel is not None and not ID_PATTERN.fullmatch(channel):
        raise BadForm("bad channel")
    return FormState(
        nonce=nonce,
        known=known,
        read=bool(data.get("read")),
        tz=tz,
        channel=channel,
        home=bool(data.get("home")),
        step=step,
        env=env,
        at=at,
        issued=issued,
    )
