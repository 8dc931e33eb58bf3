"""The views the bot shows: the App Home tab and the refresh form's steps (Slack modals).

Plain dicts within Slack's limits for views (100 blocks, titles of 24 characters), built from escaped values
with the helpers of `bot.blocks`, which builds every message. Text in a modal's plain_text cannot render
Slack's `<!date>` forms, so times there are written in the reader's time zone (from `users.info`), or in UTC.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.blocks import (
    _GENERIC_LIMIT,
    _OVERWRITES,
    PERMISSION,
    Block,
    _clip,
    _context,
    _header,
    _limit,
    _plain,
    _section,
    buttonable,
    cancel_button,
    env_label,
    env_plain,
    progress_bar,
    slack_date,
    status_text,
    whom_to_ask,
)
from bot.commands import COMMAND, EnvRef, escape_mrkdwn
from bot.permissions import Grantors, Role
from bot.zuora.statuses import is_cancellable, is_terminal

if TYPE_CHECKING:
    # Types only: the models (and pydantic) are loaded when Zuora first answers, not at start-up.
    from bot.zuora.models import Job, TestEnvironment


FORM_CALLBACK = "sandbox_refresh_form"
SHORTCUT_CALLBACK = "sandbox_refresh_shortcut"
ACTION_REFRESH_OPEN = "sandbox_refresh_open"
ACTION_HOME_RELOAD = "sandbox_home_reload"
# The form's inputs (block_id = action_id): what a submission's state is read from.
FIELD_ENV = "env"
FIELD_WHEN = "when"
FIELD_AT = "at"
WHEN_NOW = "now"
WHEN_AT = "at"

MAX_VIEW_BLOCKS = 100
VIEW_TITLE = 24
OPTION_TEXT = 75
MAX_OPTIONS = 100
ERROR_TEXT = 300  # an inline error under an input: a sentence or two
PRIVATE_METADATA = 3000
# Within Slack's 100 blocks for a Home tab: 3 at the top, and per environment a divider, its section, its jobs
# and a "more" line: 3 + 15 x 6 = 93, with room for the notes.
MAX_HOME_ENVIRONMENTS = 15
MAX_HOME_JOBS = 3  # per environment: its active and scheduled ones, newest first
View = dict[str, Any]


def _view_text(text: str, limit: int = VIEW_TITLE) -> dict[str, Any]:
    return _plain(_clip(text, limit))


# -- time in the reader's zone ------------------------------------------------------------------------------------


def zone_of(name: str | None) -> ZoneInfo | None:
    """The time zone `users.info` gave (an IANA name), or None for UTC when unknown or not a zone."""
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def local_time(value: datetime, zone_name: str | None) -> str:
    """`Tue 1 Dec 2026, 15:30 (Europe/London)`, or `… (UTC)`: plain text, for modals."""
    zone = zone_of(zone_name)
    shown = value.astimezone(zone or UTC)
    return f"{shown:%a} {shown.day} {shown:%b %Y, %H:%M} ({zone_name if zone else 'UTC'})"


# -- App Home -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HomeEnvironment:
    """One environment on the Home tab: as Zuora listed it, its alias, and its jobs (None: not read)."""

    environment: TestEnvironment
    ref: EnvRef
    jobs: Sequence[Job] | None
    problem: str | None = None  # why its jobs could not be read (plain words, escaped here)


def _reload_button() -> Block:
    return {"type": "button", "action_id": ACTION_HOME_RELOAD, "text": _plain("Reload")}


def _refresh_open_button() -> Block:
    return {
        "type": "button",
        "action_id": ACTION_REFRESH_OPEN,
        "text": _plain("Refresh…"),
        "style": "primary",
    }


def home_view(
    environments: Sequence[HomeEnvironment],
    *,
    may_act: bool,
    read_at: datetime,
    problem: str | None = None,
) -> View:
    """The Home tab of a viewer or an operator: every environment, its active and scheduled jobs. Operators
    get *Cancel job* (behind Slack's confirm dialog) and *Refresh…*; everyone gets *Reload*."""
    top = [_refresh_open_button(), _reload_button()] if may_act else [_reload_button()]
    blocks: list[Block] = [
        _header("Zuora Central Sandboxes"),
        _context(
            f"As Zuora showed them {slack_date(read_at)}. "
            + ("You may cancel and refresh." if may_act else "You are a viewer: you may look.")
        ),
        {"type": "actions", "block_id": "home:top", "elements": top},
    ]
    if problem:
        blocks.append(_section(f":warning: {escape_mrkdwn(problem)}"))
    elif not environments:
        blocks.append(_section("Zuora lists no test environments for this tenant."))
    for item in environments[:MAX_HOME_ENVIRONMENTS]:
        blocks.extend(_home_environment(item, may_act=may_act))
    if len(environments) > MAX_HOME_ENVIRONMENTS:
        more = len(environments) - MAX_HOME_ENVIRONMENTS
        blocks.append(_context(f"…and {more} more: `{COMMAND} envs` lists them all."))
    return {"type": "home", "blocks": blocks[:MAX_VIEW_BLOCKS]}


def _home_environment(item: HomeEnvironment, *, may_act: bool) -> list[Block]:
    env, ref = item.environment, item.ref
    name = f" · {escape_mrkdwn(env.tenant_name)}" if env.tenant_name else ""
    kind = escape_mrkdwn(str(env.environment_type)) if env.environment_type else "—"
    status = escape_mrkdwn(str(env.status or "UNKNOWN"))
    blocks: list[Block] = [
        {"type": "divider"},
        _section(
            f"{env_label(ref)}{name}\n{kind} · *{status}*\n"
            f"Last refresh {slack_date(env.last_refresh_time)} · "
            f"next refresh possible {slack_date(env.next_refresh_time)}"
        ),
    ]
    if item.jobs is None:
        reason = f" ({escape_mrkdwn(item.problem)})" if item.problem else ""
        blocks.append(_context(f"Its jobs could not be read{reason}: *Reload* tries again."))
        return blocks
    active = [job for job in item.jobs if not is_terminal(job.status)]
    if not active:
        blocks.append(_context("No active or scheduled job."))
    for job in active[:MAX_HOME_JOBS]:
        job_id = job.id or "unknown"
        when = (
            f" · scheduled for {slack_date(job.scheduled_refresh_time)}"
            if job.scheduled_refresh_time
            else ""
        )
        section = _section(
            f"{status_text(job.status)} · {escape_mrkdwn(str(job.job_type or 'JOB').title())} "
            f"`{escape_mrkdwn(job_id)}`\n{progress_bar(job.progress_percentage)}{when}"
        )
        if may_act and buttonable(ref, job.id) and is_cancellable(job.status):
            section["accessory"] = cancel_button(ref, job_id)
        blocks.append(section)
    if len(active) > MAX_HOME_JOBS:
        blocks.append(
            _context(f"…and {len(active) - MAX_HOME_JOBS} more: `{COMMAND} jobs` lists them.")
        )
    return blocks


def home_without_role(ask: Grantors) -> View:
    """The Home tab of a user with no role: what the bot is and who grants access, no data."""
    return {
        "type": "home",
        "blocks": [
            _header("sandbox-bot"),
            _section(
                "This bot shows and manages Zuora Central Sandbox refresh jobs: which sandbox is being "
                "refreshed, when the next one is scheduled, and (for operators) cancelling and starting "
                "refreshes."
            ),
            _section(
                f"You have no role in this bot yet: looking needs the viewer role, acting the *{PERMISSION}* "
                f"permission. {whom_to_ask(ask)}"
            ),
            {"type": "actions", "block_id": "home:top", "elements": [_reload_button()]},
        ],
    }


# -- the refresh form ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FormState:
    """What the form carries in its `private_metadata` (the bot's own, handed back by Slack with the signed
    submission; still read strictly): its single-use nonce, the environments as read when it opened (ID ->
    next refresh possible, ISO; "" when Zuora gave none), whether Zuora was read, the reader's time zone, and
    the channel to answer in (None: a direct message)."""

    nonce: str
    known: Mapping[str, str]
    read: bool = False
    tz: str | None = None
    channel: str | None = None
    home: bool = (
        False  # opened from the App Home tab: it is published again once the refresh started
    )
    step: str = "form"
    env: str | None = None
    at: str | None = None  # ISO, for the confirmation step
    issued: str | None = None  # ISO: when the confirmation was shown (it expires after 10 minutes)

    def dumps(self) -> str:
        data: dict[str, Any] = {
            "step": self.step,
            "nonce": self.nonce,
            "known": dict(self.known),
            "read": self.read,
            "tz": self.tz,
            "channel": self.channel,
            "home": self.home,
            "env": self.env,
            "at": self.at,
            "issued": self.issued,
        }
        text = json.dumps(data, separators=(",", ":"))
        while len(text) > PRIVATE_METADATA and data["known"]:
            # Too many environments to remember their limits: keep the IDs that fit (the rest are not checked
            # before the submission; Zuora's answer still is).
            known = dict(data["known"])
            known.popitem()
            data["known"] = known
            text = json.dumps(data, separators=(",", ":"))
        return text


def _option(value: str, label: str) -> dict[str, Any]:
    return {"text": _plain(_clip(label, OPTION_TEXT)), "value": value}


def environment_options(
    environments: Sequence[TestEnvironment], aliases: Mapping[str, str]
) -> list[dict[str, Any]]:
    """The environment select's options: aliases first (in their order), then every environment Zuora listed;
    each labelled with its alias, name and type, valued with its ID."""
    by_id = {env.id: env for env in environments if env.id}
    options: list[dict[str, Any]] = []
    seen: set[str] = set()
    for alias, env_id in aliases.items():
        env = by_id.get(env_id)
        name = f" · {env.tenant_name}" if env is not None and env.tenant_name else ""
        options.append(_option(env_id, f"{alias}{name}"))
        seen.add(env_id)
    for env_id, env in by_id.items():
        if env_id in seen:
            continue
        kind = f" ({env.environment_type})" if env.environment_type else ""
        options.append(_option(env_id, f"{env.tenant_name or env_id}{kind}"))
    return options[:MAX_OPTIONS]


def form_view(
    state: FormState,
    options: Sequence[dict[str, Any]],
    *,
    selected: str | None = None,
    problem: str | None = None,
) -> View:
    """Step 1: which environment, and when. Opens at once from what the bot holds; `problem` says why the
    list may be incomplete (Zuora not read yet, or failing)."""
    blocks: list[Block] = [
        _section(
            ":warning: A refresh replaces everything in the sandbox with a fresh copy from production."
        ),
    ]
    if options:
        select: dict[str, Any] = {
            "type": "static_select",
            "action_id": FIELD_ENV,
            "placeholder": _plain("Choose a sandbox"),
            "options": list(options),
        }
        initial = next((o for o in options if o["value"] == selected), None)
        if initial is not None:
            select["initial_option"] = initial
        blocks.append(
            {
                "type": "input",
                "block_id": FIELD_ENV,
                "label": _plain("Sandbox"),
                "element": select,
            }
        )
    when_options = [
        _option(WHEN_NOW, "Now"),
        _option(WHEN_AT, "At the time below"),
    ]
    blocks += [
        {
            "type": "input",
            "block_id": FIELD_WHEN,
            "label": _plain("When"),
            "element": {
                "type": "radio_buttons",
                "action_id": FIELD_WHEN,
                "options": when_options,
                "initial_option": when_options[0],
            },
        },
        {
            "type": "input",
            "block_id": FIELD_AT,
            "optional": True,
            "label": _plain("Time"),
            "hint": _plain(
                f"Used with 'At the time below'; in your time zone ({state.tz or 'UTC'})."
            ),
            "element": {"type": "datetimepicker", "action_id": FIELD_AT},
        },
    ]
    notes = [_GENERIC_LIMIT]
    if problem:
        notes.insert(0, f":hourglass_flowing_sand: {escape_mrkdwn(problem)}")
    blocks.append(_context(*notes))
    view: View = {
        "type": "modal",
        "callback_id": FORM_CALLBACK,
        "title": _view_text("Refresh a sandbox"),
        "close": _view_text("Cancel"),
        "private_metadata": state.dumps(),
        "blocks": blocks,
    }
    if options:
        view["submit"] = _view_text("Next")
    return view


def form_confirmation(
    state: FormState, env: EnvRef, at: datetime | None, environment: TestEnvironment | None
) -> View:
    """Step 2: what will be overwritten, and Zuora's limit; submitting it starts the refresh."""
    when = "now" if at is None else f"at {slack_date(at)}"
    limit = _limit(environment) if environment is not None else _GENERIC_LIMIT
    return {
        "type": "modal",
        "callback_id": FORM_CALLBACK,
        "title": _view_text("Confirm the refresh"),
        "submit": _view_text("Refresh now" if at is None else "Schedule refresh"),
        "close": _view_text("Cancel"),
        "private_metadata": state.dumps(),
        "blocks": [
            _section(f":warning: Refresh {env_label(env)} {when}?"),
            _section(_OVERWRITES),
            _context(limit),
        ],
    }


def form_notice(title: str, text_mrkdwn: str, *, context: str | None = None) -> View:
    """A step with nothing to submit: starting, done, refused, already used."""
    blocks: list[Block] = [_section(text_mrkdwn)]
    if context:
        blocks.append(_context(context))
    return {
        "type": "modal",
        "callback_id": FORM_CALLBACK,
        "title": _view_text(title),
        "close": _view_text("Close"),
        "blocks": blocks,
    }


def form_starting(env: EnvRef, at: datetime | None) -> View:
    verb = "Starting" if at is None else "Scheduling"
    return form_notice(
        "Refresh a sandbox",
        f":hourglass_flowing_sand: {verb} the refresh of {env_label(env)}…",
        context="This view shows Zuora's answer as soon as it comes.",
    )


def form_started(env: EnvRef, job: Job, *, where: str) -> View:
    """The refresh Zuora accepted; `where` (mrkdwn) says where its card is."""
    verb = "scheduled" if job.scheduled_refresh_time else "started"
    when = f" for {slack_date(job.scheduled_refresh_time)}" if job.scheduled_refresh_time else ""
    return form_notice(
        "Refresh a sandbox",
        f":white_check_mark: Refresh of {env_label(env)} {verb}{when}: job "
        f"`{escape_mrkdwn(job.id or 'unknown')}`, {status_text(job.status)}.",
        context=f"Its card keeps itself current {where}.",
    )


def form_refused(ask: Grantors, reason: str, role: Role | None) -> View:
    """For a user who is not an operator: why the form does not open, naming the permission. `reason` is
    the permission check's, in plain words (escaped here); a viewer is told what they may do instead."""
    if role == "viewer":
        reason = "You are a viewer: you may look at sandboxes and their jobs, not refresh them."
    return form_notice(
        "Refresh a sandbox",
        f":no_entry: Refreshing a sandbox needs the *{PERMISSION}* permission in this bot, and you do not "
        f"have it. {escape_mrkdwn(reason)}\n{whom_to_ask(ask)}",
    )


def form_used(job_id: str | None) -> View:
    what = f" (job `{escape_mrkdwn(job_id)}`)" if job_id else ""
    return form_notice(
        "Refresh a sandbox",
        f":information_source: This refresh was already submitted{what}; it is not started twice.",
    )


def form_failed(blocks_of_message: Sequence[Block]) -> View:
    """Zuora's refusal or failure, as the message the bot would have sent."""
    view = form_notice("Refresh a sandbox", "")
    view["blocks"] = list(blocks_of_message)[:MAX_VIEW_BLOCKS]
    return view


def not_possible_before(env: EnvRef, possible_from: datetime, zone: str | None) -> str:
    """An inline error: Zuora will not refresh this sandbox before `possible_from` (plain text)."""
    return _clip(
        f"Zuora will not refresh {env_plain(env)} before {local_time(possible_from, zone)}: one refresh "
        "per 28 days (14 for a Developer Sandbox). Choose a time from then on.",
        ERROR_TEXT,
    )
