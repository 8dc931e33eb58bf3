"""Block Kit builders: every message the bot sends is built here (pure functions: models in, dicts out).

Text that came from a user or from Zuora goes through `escape_mrkdwn` (or into plain_text) before it
reaches mrkdwn, so it can never mention `@channel`, `@here` or anyone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bot.commands import (
    COMMAND,
    ID_PATTERN,
    Cancel,
    Command,
    EnvRef,
    Envs,
    Help,
    Jobs,
    Refresh,
    RefreshForm,
    Status,
    UsageError,
    encode_job_value,
    escape_mrkdwn,
    usage_line,
)
from bot.permissions import Grantors, Role
from bot.zuora.errors import (
    ZuoraAuthenticationError,
    ZuoraError,
    ZuoraMalformedResponseError,
    ZuoraNotFoundError,
    ZuoraPermissionError,
    ZuoraRateLimitedError,
    ZuoraRejectedError,
    ZuoraServerError,
    ZuoraTimeoutError,
    ZuoraUnavailableError,
    zuora_did_not_act,
)
from bot.zuora.statuses import (
    RUNNING_STATUSES,
    EnvironmentType,
    JobStatus,
    JobType,
    is_cancellable,
    is_terminal,
)

if TYPE_CHECKING:
    # Types only: the models (and pydantic) are loaded when Zuora first answers, not at start-up.
    from bot.zuora.models import Job, TestEnvironment


Block = dict[str, Any]

PERMISSION = "Refresh Central Sandbox"
# What a user is told while Slack will not confirm the bot's own token (revoked, the app uninstalled, or Slack
# failing): nothing can be done, and nothing was sent to Zuora.
SLACK_REJECTS_THE_BOT = (
    ":warning: sandbox-bot cannot act right now: Slack rejects its bot token, or could not confirm it "
    "(revoked, the app uninstalled, or Slack failing). Nothing was sent to Zuora. Try again in a minute; "
    "if it goes on, ask whoever runs sandbox-bot to check `SLACK_BOT_TOKEN` and its `/healthz`."
)

MAX_BLOCKS = 50
SECTION_TEXT = 3000
FIELD_TEXT = 2000
MAX_FIELDS = 10
MAX_CONTEXT_ELEMENTS = 10
HEADER_TEXT = 150
CONFIRM_TEXT = 300
BLOCK_ID = 255

ACTION_CANCEL_JOB = "sandbox_cancel_job"
ACTION_JOB_STATUS = "sandbox_job_status"
ACTION_REFRESH_CONFIRM = "sandbox_refresh_confirm"
ACTION_REFRESH_ABORT = "sandbox_refresh_abort"


@dataclass(frozen=True, slots=True)
class Message:
    """A Slack message: fallback `text` (notifications, screen readers) and its blocks."""

    text: str
    blocks: list[Block] = field(default_factory=list)

    def as_kwargs(self) -> dict[str, Any]:
        return {"text": self.text, "blocks": self.blocks}


# -- small pieces ---------------------------------------------------------------------------------------------

_STATUS_EMOJI: Mapping[str, str] = {
    JobStatus.NEW: ":new:",
    JobStatus.SCHEDULED: ":calendar:",
    JobStatus.QUEUED: ":hourglass_flowing_sand:",
    JobStatus.CANCELLING: ":octagonal_sign:",
    JobStatus.COMPLETED: ":white_check_mark:",
    JobStatus.FAILED: ":x:",
    JobStatus.CANCELLED: ":no_entry_sign:",
}
_RUNNING_EMOJI = ":arrows_counterclockwise:"
_UNKNOWN_EMOJI = ":grey_question:"


def status_emoji(status: str | None) -> str:
    if status in RUNNING_STATUSES:
        return _RUNNING_EMOJI
    return _STATUS_EMOJI.get(status or "", _UNKNOWN_EMOJI)


def status_text(status: str | None) -> str:
    return f"{status_emoji(status)} *{escape_mrkdwn(str(status or 'UNKNOWN'))}*"


def progress_bar(percent: int | None, width: int = 10) -> str:
    if percent is None:
        return "—"
    clamped = max(0, min(100, percent))
    filled = round(clamped * width / 100)
    return f"`{'█' * filled}{'░' * (width - filled)}` {clamped}%"


def slack_date(value: datetime | None) -> str:
    """A date each reader sees in their own time zone; the ISO fallback for clients that cannot."""
    if value is None:
        return "—"
    fallback = value.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(value.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def env_label(env: EnvRef) -> str:
    if env.alias:
        return f"*{escape_mrkdwn(env.alias)}* (`{escape_mrkdwn(env.id)}`)"
    return f"`{escape_mrkdwn(env.id)}`"


def env_plain(env: EnvRef) -> str:
    return f"{env.alias} ({env.id})" if env.alias else env.id


def mention(user_id: str) -> str:
    """A user mention; IDs come from Slack's own payload and are checked by the caller's parser."""
    return f"<@{user_id}>"


def _mrkdwn(text: str, limit: int) -> dict[str, Any]:
    """mrkdwn with `verbatim`: Slack then parses no bare @here/@channel/#channel in it; only our explicit
    `<@U…>`, `<!date^…>` and `<!subteam^…>` forms (outside text is escaped, so it cannot make those)."""
    return {"type": "mrkdwn", "text": _clip(text, limit), "verbatim": True}


def _section(text: str) -> Block:
    return {"type": "section", "text": _mrkdwn(text, SECTION_TEXT)}


def _context(*texts: str) -> Block:
    return {
        "type": "context",
        "elements": [_mrkdwn(t, SECTION_TEXT) for t in texts[:MAX_CONTEXT_ELEMENTS]],
    }


def plain_safe(text: str) -> str:
    """Outside text for plain_text fields: Slack does not parse mentions there, but angle brackets still
    have no business in a header, so they become look-alike guillemets."""
    return text.replace("<", "‹").replace(">", "›")


def _header(text: str) -> Block:
    return {
        "type": "header",
        "text": {"type": "plain_text", "text": _clip(plain_safe(text), HEADER_TEXT), "emoji": True},
    }


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _fields(pairs: Iterable[tuple[str, str]]) -> list[Block]:
    return [_mrkdwn(f"*{label}*\n{value}", FIELD_TEXT) for label, value in pairs][:MAX_FIELDS]


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text, "emoji": True}


def cancel_button(env: EnvRef, job_id: str) -> Block:
    plain_env = _clip(env_plain(env), 120)
    return {
        "type": "button",
        "action_id": ACTION_CANCEL_JOB,
        "text": _plain("Cancel job"),
        "style": "danger",
        "value": encode_job_value(env.id, job_id),
        "confirm": {
            "title": _plain("Cancel this refresh?"),
            "text": {
                "type": "plain_text",
                "text": _clip(
                    f"Cancel job {job_id} in {plain_env}? The refresh stops and the sandbox keeps its current data.",
                    CONFIRM_TEXT,
                ),
            },
            "confirm": _plain("Cancel job"),
            "deny": _plain("Keep it running"),
            "style": "danger",
        },
    }


def buttonable(env: EnvRef, job_id: str | None) -> bool:
    """Buttons carry IDs that a click will validate; an ID from Zuora that would fail that gets no button."""
    return job_id is not None and bool(
        ID_PATTERN.fullmatch(env.id) and ID_PATTERN.fullmatch(job_id)
    )


def status_button(env: EnvRef, job_id: str) -> Block:
    return {
        "type": "button",
        "action_id": ACTION_JOB_STATUS,
        "text": _plain("Refresh status"),
        "value": encode_job_value(env.id, job_id),
    }


# -- job card -------------------------------------------------------------------------------------------------


def job_card(
    job: Job,
    env: EnvRef,
    *,
    requested_by: str | None = None,
    track_id: str | None = None,
    note: str | None = None,
    warning: str | None = None,
    act: bool = True,
) -> Message:
    """A job card: type and status, progress, environment, job, who asked, times, track ID, buttons.
    `act=False`: a card only a viewer sees, without *Cancel job*.

    `note` (mrkdwn, built from escaped values) heads the card, e.g. who cancelled it; `warning` (mrkdwn) says
    that the card could not be kept current just now.
    """
    job_id = job.id or "unknown"
    job_type = str(job.job_type or "JOB").title()
    status = str(job.status or "UNKNOWN")
    blocks: list[Block] = [_header(f"{job_type} job · {status}")]
    if note:
        blocks.append(_section(note))
    blocks.append(
        {
            "type": "section",
            "fields": _fields(
                [
                    ("Status", status_text(job.status)),
                    ("Progress", progress_bar(job.progress_percentage)),
                    ("Environment", env_label(env)),
                    ("Job", f"`{escape_mrkdwn(job_id)}`"),
                    ("Requested in Slack by", mention(requested_by) if requested_by else "—"),
                    (
                        "Created by (Zuora user)",
                        f"`{escape_mrkdwn(job.created_by_id)}`" if job.created_by_id else "—",
                    ),
                    ("Created", slack_date(job.create_time)),
                    ("Started", slack_date(job.job_start_time)),
                    (
                        "Estimated completion" if not is_terminal(job.status) else "Ended",
                        slack_date(
                            job.estimated_completion_time
                            if not is_terminal(job.status)
                            else job.job_end_time
                        ),
                    ),
                    ("Scheduled for", slack_date(job.scheduled_refresh_time)),
                ]
            ),
        }
    )
    buttons = []
    if act and buttonable(env, job.id) and is_cancellable(job.status):
        buttons.append(cancel_button(env, job_id))
    if buttonable(env, job.id):
        buttons.append(status_button(env, job_id))
    if buttons:
        blocks.append(
            {"type": "actions", "block_id": job_block_id(job_id, requested_by), "elements": buttons}
        )
    context = []
    if warning:
        context.append(f":warning: {warning}")
    if track_id:
        context.append(f"Zuora-Track-Id `{escape_mrkdwn(track_id)}`")
    if is_terminal(job.status):
        context.append("This job has ended.")
    elif job.status == JobStatus.CANCELLING:
        context.append("Zuora is cancelling the job.")
    elif job.status in PAST_RESET and job.job_type == JobType.REFRESH:
        context.append(PAST_RESET_NOTE)
    if context:
        blocks.append(_context(*context))
    text = f"{job_type} job {job_id} in {env_plain(env)}: {status}"
    return Message(text=escape_mrkdwn(text), blocks=blocks)


_JOB_BLOCK_ID = re.compile(r"^job:[A-Za-z0-9][A-Za-z0-9-]{0,63}(?::([UW][A-Z0-9]{2,20}))?$")
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,20}$")


def job_block_id(job_id: str, requested_by: str | None) -> str:
    """The block_id of a job card's buttons: the job, and who asked for it in Slack, so that a click on the
    card keeps who asked (Slack hands the block_id back with the click; button values stay IDs only)."""
    if requested_by and _USER_ID.fullmatch(requested_by):
        return f"job:{job_id}:{requested_by}"
    return _clip(f"job:{job_id}", BLOCK_ID)


def requested_by_in(block_id: str) -> str | None:
    """Who asked in Slack, from the block_id `job_block_id` set (strictly matched; anything else: None)."""
    match = _JOB_BLOCK_ID.fullmatch(block_id)
    return match.group(1) if match else None


# -- errors and refusals ---------------------------------------------------------------------------------------


def _what(command: Command) -> tuple[str, str]:
    """What the command was trying to do: (mrkdwn from validated values, plain text)."""
    match command:
        case Cancel(env=env, job_id=job_id):
            return (
                f"cancel job `{escape_mrkdwn(job_id)}` in {env_label(env)}",
                f"cancel job {job_id} in {env_plain(env)}",
            )
        case Status(env=env, job_id=job_id):
            return (
                f"get job `{escape_mrkdwn(job_id)}` in {env_label(env)}",
                f"get job {job_id} in {env_plain(env)}",
            )
        case Jobs(env=env):
            return f"list the jobs of {env_label(env)}", f"list the jobs of {env_plain(env)}"
        case Envs():
            return "list the test environments", "list the test environments"
        case Refresh(env=env):
            return f"refresh {env_label(env)}", f"refresh {env_plain(env)}"
        case Help():
            return "show the help", "show the help"
        case RefreshForm():
            return "open the refresh form", "open the refresh form"


def _is_action(command: Command) -> bool:
    return isinstance(command, Cancel | Refresh)


def _meaning(error: ZuoraError, command: Command) -> str:
    """What the error means for this command."""
    refresh = isinstance(command, Refresh)
    if refresh and not zuora_did_not_act(error):
        return (
            "The refresh may have started anyway: check `/sandbox jobs <env>` before asking again "
            "(this confirmation will not send it twice). Give Zuora support the IDs below if in doubt."
        )
    if isinstance(error, ZuoraRejectedError) and isinstance(command, Cancel):
        return (
            "A refresh can be cancelled only before its reset stage (RESETTING). From RESETTING on, "
            "or once it has ended, it runs to its end and cannot be cancelled."
        )
    if isinstance(error, ZuoraRejectedError):
        return "Zuora did not accept the request as sent."
    if isinstance(error, ZuoraNotFoundError):
        return "Zuora knows no such test environment or job. Check the IDs with `/sandbox envs` and `/sandbox jobs <env>`."
    if isinstance(error, ZuoraPermissionError) and refresh:
        return "Zuora allows one refresh per period (28 days for a Central Sandbox, 14 for a Developer Sandbox)."
    if isinstance(error, ZuoraPermissionError):
        return f"The bot's Zuora user needs the *{PERMISSION}* permission in Zuora."
    if isinstance(error, ZuoraAuthenticationError):
        return "The bot's Zuora credentials were refused. An operator should check them with `sandbox-bot check --online`."
    if isinstance(error, ZuoraRateLimitedError):
        wait = (
            f" in {int(error.retry_after)} seconds"
            if error.retry_after is not None
            else " in a minute"
        )
        return f"Zuora is limiting how fast the bot may call it. Try again{wait}."
    if isinstance(error, ZuoraServerError):
        return "Zuora had a problem on its side. Try again shortly; if it persists, give Zuora support the IDs below."
    if isinstance(error, ZuoraTimeoutError):
        if _is_action(command):
            return "Zuora did not answer in time. The request may still have been applied: check with `/sandbox jobs <env>` before trying again."
        return "Zuora did not answer in time. Try again shortly."
    if isinstance(error, ZuoraUnavailableError):
        return (
            "The bot could not reach Zuora. Try again shortly; if it persists, an operator should check the "
            "bot's Zuora address and the network (`sandbox-bot check --online`)."
        )
    if isinstance(error, ZuoraMalformedResponseError):
        return "Zuora's answer could not be read. Try again; if it persists, give Zuora support the IDs below."
    return "The bot could not complete the request."


def _answer(error: ZuoraError) -> str:
    return f"HTTP {error.status}" if error.status is not None else "no answer"


def _support_ids(error: ZuoraError) -> Block:
    """The IDs Zuora support asks for, as a context block."""
    ids = [
        f"Zuora-Track-Id `{escape_mrkdwn(error.track_id)}`"
        if error.track_id
        else "no Zuora-Track-Id"
    ]
    if error.request_id:
        ids.append(f"Zuora-Request-Id `{escape_mrkdwn(error.request_id)}`")
    return _context(" · ".join(ids))


def zuora_error(error: ZuoraError, command: Command, *, read_back: Job | None = None) -> Message:
    """A Zuora failure: status, Zuora's reasons, what it means for this command, and the IDs for support.
    `read_back`: the job as Zuora showed it just after an action whose answer was lost."""
    what, what_plain = _what(command)
    answer = _answer(error)
    lines = [f":warning: Could not {what}: {escape_mrkdwn(error.summary)} ({answer})."]
    for reason in error.reasons[:5]:
        code = f"`{escape_mrkdwn(reason.code)}` " if reason.code else ""
        lines.append(f"> {code}{escape_mrkdwn(_clip(reason.message, 400))}")
    lines.append(_meaning(error, command))
    hint = _next_refresh_hint(error) if isinstance(command, Refresh) else None
    if hint:
        lines.append(hint)
    if read_back is not None:
        lines.append(
            f"The request may still have been applied: Zuora now shows the job as "
            f"{status_text(read_back.status)}. Its card below follows it."
        )
    text = f"Could not {what_plain}: {error.summary} ({answer}). " + " ".join(
        f"{r.code} {r.message}".strip() for r in error.reasons[:5]
    )
    return Message(
        text=escape_mrkdwn(_clip(text, 2000)),
        blocks=[_section("\n".join(lines)), _support_ids(error)],
    )


_ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?")


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
            return f":calendar: Zuora says the next refresh is possible {slack_date(when)}."
    return None


def usage_error(error: UsageError) -> Message:
    """A parser refusal: the message (already escaped; it never carries a usage line itself), a time the
    user gave in the reader's own time zone, then the one usage line that fits, or where to find them."""
    first = f":information_source: {error.message}"
    if error.time is not None:
        first += f" That is {slack_date(error.time)} in your time zone."
    lines = [first]
    if error.subcommand:
        lines.append(f"Usage: `{usage_line(error.subcommand)}`")  # already escaped
    else:
        lines.append(f"Type `{COMMAND} help` to see what the bot can do.")
    return Message(text=error.message, blocks=[_section("\n".join(lines))])


MAX_NAMED_USERS = 10
MAX_NAMED_GROUPS = 5
MAX_ACCESS_HELP = 300
_USERGROUP_ID = re.compile(r"^S[A-Z0-9]{2,20}$")


def _or(items: Sequence[str]) -> str:
    """Join names as a sentence does: a; a or b; a, b or c."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"


def whom_to_ask(grantors: Grantors) -> str:
    """Whom a user without the permission can ask (mrkdwn): the operators' own sentence when they set one
    (escaped), else the users who hold it and its user groups as mentions. Never a setting's name."""
    if grantors.access_help:
        return escape_mrkdwn(_clip(grantors.access_help, MAX_ACCESS_HELP))
    users = [u for u in grantors.users if _USER_ID.fullmatch(u)]
    groups = [g for g in grantors.groups if _USERGROUP_ID.fullmatch(g)]
    names = [mention(u) for u in users[:MAX_NAMED_USERS]]
    if len(users) > MAX_NAMED_USERS:
        names[-1] += f" (and {len(users) - MAX_NAMED_USERS} more)"
    if groups:
        shown = [f"<!subteam^{g}>" for g in groups[:MAX_NAMED_GROUPS]]
        if len(groups) > MAX_NAMED_GROUPS:
            shown[-1] += f" (and {len(groups) - MAX_NAMED_GROUPS} more groups)"
        names.append(f"a member of {_or(shown)}")
    if not names:
        return "Ask whoever runs this bot in your workspace to grant it."
    return f"To get it, ask {_or(names)}."


def refusal(
    user_id: str,
    *,
    reason: str,
    ask: Grantors,
    needed: Role = "operator",
    role: Role | None = None,
) -> Message:
    """A refusal names the permission, why, and whom to ask for it. `needed`: what the command needs (acting
    needs *Refresh Central Sandbox*; looking needs the viewer role or it); `role`: what the user has."""
    if needed == "viewer":
        text = (
            f":no_entry: {mention(user_id)}, looking at sandbox jobs in this bot needs the viewer role or the "
            f"*{PERMISSION}* permission, and you have neither, so Zuora was not called. {reason}\n"
            f"{whom_to_ask(ask)}"
        )
        return Message(
            text="You may not look at sandbox jobs in this bot.", blocks=[_section(text)]
        )
    if role == "viewer":
        reason = (
            f"You are a viewer: you may look (`{COMMAND} status`, `jobs`, `envs`, *Refresh status*), "
            "but cancelling and refreshing are for operators."
        )
    text = (
        f":no_entry: {mention(user_id)}, you do not have the *{PERMISSION}* permission in this bot, "
        f"so Zuora was not called. {reason}\n{whom_to_ask(ask)}"
    )
    return Message(text=f"You do not have the {PERMISSION} permission.", blocks=[_section(text)])


def notice(text_mrkdwn: str, plain: str) -> Message:
    """A one-section message whose mrkdwn the caller built from escaped values."""
    return Message(text=escape_mrkdwn(plain), blocks=[_section(text_mrkdwn)])


def internal_error(what: str, incident: str) -> Message:
    return notice(
        f":warning: Could not {what}: the bot hit an unexpected error. It is logged as incident `{incident}`; "
        "nothing else was affected, so you can try again.",
        f"Could not complete the request (incident {incident}).",
    )


def stopped_before_done(*, changes: bool) -> Message:
    """To the user whose request was still in progress when the bot had to stop (a restart, a deploy).
    `changes`: the request may have reached Zuora (a cancel, a refresh), so the user checks before retrying."""
    if not changes:
        return notice(
            ":warning: sandbox-bot stopped (a restart or a deploy) before it finished this request. Nothing "
            "was changed; try again in a moment.",
            "sandbox-bot stopped before it finished this request; try again in a moment.",
        )
    return notice(
        ":warning: sandbox-bot stopped (a restart or a deploy) before it finished this request, so it may or "
        "may not have reached Zuora. Check `/sandbox jobs <env>` or `/sandbox status <env> <job>` before "
        "trying again.",
        "sandbox-bot stopped before it finished this request; check the job's status before trying again.",
    )


def action_notification(
    *,
    actor: str,
    verb: str,
    job: Job,
    env: EnvRef,
    track_id: str | None,
) -> Message:
    """Audit-trail line for the notification channel: who did what, the result, and the track ID."""
    job_id = job.id or "unknown"
    status = str(job.status or "UNKNOWN")
    text = (
        f"{mention(actor)} {verb} job `{escape_mrkdwn(job_id)}` in {env_label(env)}: "
        f"now {status_text(job.status)}"
    )
    blocks = [_section(text)]
    if track_id:
        blocks.append(_context(f"Zuora-Track-Id `{escape_mrkdwn(track_id)}`"))
    plain = f"{actor} {verb} job {job_id} in {env_plain(env)}: now {status}"
    return Message(text=escape_mrkdwn(plain), blocks=blocks)


def action_failed(actor: str, command: Command, error: ZuoraError) -> Message:
    """Audit line for an action that Zuora did not carry out."""
    what, _plain_what = _what(command)
    answer = _answer(error)
    reasons = "; ".join(
        escape_mrkdwn(_clip(f"{r.code} {r.message}".strip(), 300)) for r in error.reasons[:3]
    )
    text = f":x: {mention(actor)} tried to {what}: {escape_mrkdwn(error.summary)} ({answer})"
    if reasons:
        text += f": {reasons}"
    plain = f"{actor} tried to act on Zuora: {error.summary} ({answer})"
    return Message(text=escape_mrkdwn(plain), blocks=[_section(text), _support_ids(error)])


def acted_note(actor: str, verb: str, track_id: str) -> str:
    """The head of a notification card: who acted on the job through the bot (mrkdwn)."""
    return (
        f":memo: {mention(actor)} {verb} this job from Slack "
        f"(Zuora-Track-Id `{escape_mrkdwn(track_id)}`)."
    )


def cancel_in_flight(env: EnvRef, job_id: str, holder: str | None) -> Message:
    job_label = f"job `{escape_mrkdwn(job_id)}` in {env_label(env)}"
    by = f" requested by {mention(holder)}" if holder else ""
    return notice(
        f":hourglass_flowing_sand: A cancel of {job_label}{by} is already on "
        "its way to Zuora; this one was not sent again. The job card will show the result.",
        f"A cancel of job {job_id} is already in progress; not sent again.",
    )


def claims_unavailable(command: Command | None) -> Message:
    """The shared store of the replicas (Redis) cannot be reached: an action that must happen once is not
    started blindly."""
    what = _what(command)[0] if command is not None else "act on that"
    return notice(
        f":warning: The bot could not {what}: it cannot reach its coordination store (Redis) just now, "
        "and without it it cannot make sure the action happens only once. Nothing was sent to Zuora. "
        "Try again in a moment; looking (`status`, `jobs`, `envs`) still works.",
        "The bot's coordination store is unreachable; nothing was sent to Zuora.",
    )


def refresh_in_flight(env: EnvRef) -> Message:
    return notice(
        f":hourglass_flowing_sand: A refresh of {env_label(env)} is already on its way to Zuora; "
        "this one was not sent.",
        f"A refresh of {env_plain(env)} is already on its way to Zuora; this one was not sent.",
    )


def refresh_aborted(env: EnvRef) -> Message:
    return notice(
        f":ok_hand: No refresh of {env_label(env)}: nothing was sent to Zuora.",
        f"No refresh of {env_plain(env)}.",
    )


def refresh_requested(env: EnvRef, job: Job) -> Message:
    job_text = f" as job `{escape_mrkdwn(job.id)}`" if job.id else ""
    return notice(
        f":white_check_mark: Refresh of {env_label(env)} requested{job_text}. "
        "The job card is in the channel.",
        f"Refresh of {env_plain(env)} requested.",
    )


def form_unavailable() -> Message:
    return notice(
        f":warning: The refresh form could not open here. Use `{COMMAND} refresh <env> [at <time>]` instead.",
        "The refresh form could not open here.",
    )


def confirmation_invalid() -> Message:
    return notice(
        ":information_source: This confirmation is not valid. Run `/sandbox refresh` again.",
        "This confirmation is not valid. Run /sandbox refresh again.",
    )


def confirmation_not_yours(requester: str) -> Message:
    return notice(
        f":no_entry: Only {mention(requester)}, who asked for this refresh, can confirm it.",
        f"Only {requester}, who asked for this refresh, can confirm it.",
    )


def confirmation_expired() -> Message:
    return notice(
        ":hourglass: This confirmation has expired (10 minutes). Run `/sandbox refresh` again.",
        "This confirmation has expired.",
    )


def confirmation_used(job_id: str | None) -> Message:
    started = f" (job `{escape_mrkdwn(job_id)}`)" if job_id else ""
    return notice(
        f":hourglass_flowing_sand: This refresh was already confirmed{started}; it was not started twice.",
        f"This refresh was already confirmed{f' (job {job_id})' if job_id else ''}; it was not started twice.",
    )


def follow_stopped() -> str:
    """The warning of a card that stopped following its job (mrkdwn)."""
    return "This card stopped following the job after a long time; use *Refresh status* for news."


def poll_failed(error: ZuoraError, retry_in: float) -> str:
    """The warning of a card that could not be brought up to date (mrkdwn)."""
    status = f" (HTTP {error.status})" if error.status else ""
    return (
        f"Could not refresh from Zuora: {escape_mrkdwn(error.summary)}{status}; "
        f"trying again in {int(retry_in)} s."
    )


def help_message(*, role: Role | None, usage: str, ask: Grantors) -> Message:
    """Help lists only what the asking user's role allows (`usage`, built for it); to a user without a role
    it says whom to ask."""
    if role is None:
        text = (
            f":wave: `{COMMAND}` manages Zuora Central Sandbox refresh jobs.\n"
            f"You have no role in this bot (neither viewer nor the *{PERMISSION}* permission), so only "
            f"`{COMMAND} help` is open to you. {whom_to_ask(ask)}"
        )
        return Message(text="/sandbox help", blocks=[_section(text)])
    if role == "viewer":
        note = (
            f"You are a viewer: you may look. Cancelling and refreshing need the *{PERMISSION}* permission. "
            f"{whom_to_ask(ask)}"
        )
        return Message(text="/sandbox help", blocks=[_section(usage), _context(note)])
    return Message(text="/sandbox help", blocks=[_section(usage)])


# -- lists ------------------------------------------------------------------------------------------------------

MAX_LISTED = 40  # header, summary and footer take the other blocks of Slack's 50


def _sort_key(job: Job) -> tuple[bool, float]:
    created = job.create_time.timestamp() if job.create_time else float("-inf")
    return (is_terminal(job.status), -created)


def sort_jobs(jobs: Sequence[Job]) -> list[Job]:
    """Active jobs first, then newest first (jobs without a creation time last)."""
    return sorted(jobs, key=_sort_key)


def job_list(
    jobs: Sequence[Job], env: EnvRef, *, track_id: str | None, act: bool = True
) -> Message:
    """The jobs of an environment. `act=False`: a list only a viewer sees, without *Cancel job* buttons."""
    ordered = sort_jobs(jobs)
    shown, rest = ordered[:MAX_LISTED], len(ordered) - MAX_LISTED
    active = sum(1 for job in ordered if not is_terminal(job.status))
    blocks: list[Block] = [
        _header(f"Jobs of {env_plain(env)}"),
        _context(
            f"{len(ordered)} job{'s' if len(ordered) != 1 else ''}, {active} active · {env_label(env)}"
        ),
    ]
    if not ordered:
        blocks.append(
            _section(
                "No jobs yet. Start one with `/sandbox refresh "
                + escape_mrkdwn(env.alias or env.id)
                + "`."
            )
        )
    for job in shown:
        job_id = job.id or "unknown"
        line = (
            f"{status_text(job.status)} · {escape_mrkdwn(str(job.job_type or 'JOB').title())} "
            f"`{escape_mrkdwn(job_id)}`\n{progress_bar(job.progress_percentage)} · created {slack_date(job.create_time)}"
        )
        if is_terminal(job.status):
            line += f" · ended {slack_date(job.job_end_time)}"
        section = _section(line)
        if act and buttonable(env, job.id) and is_cancellable(job.status):
            section["accessory"] = cancel_button(env, job_id)
        elif buttonable(env, job.id) and not is_terminal(job.status):
            section["accessory"] = status_button(env, job_id)
        blocks.append(section)
    footer = []
    if rest > 0:
        footer.append(f"…and {rest} older job{'s' if rest != 1 else ''} not shown.")
    if track_id:
        footer.append(f"Zuora-Track-Id `{escape_mrkdwn(track_id)}`")
    if footer:
        blocks.append(_context(*footer))
    return Message(
        text=escape_mrkdwn(f"{len(ordered)} jobs of {env_plain(env)}, {active} active"),
        blocks=blocks,
    )


_ENV_EMOJI: Mapping[str, str] = {
    "ACTIVE": ":large_green_circle:",
    "PROCESSING": ":arrows_counterclockwise:",
    "INACTIVE": ":white_circle:",
    "DEACTIVATED": ":black_circle:",
    "DELETED": ":wastebasket:",
}


def env_list(
    environments: Sequence[TestEnvironment], aliases: Mapping[str, str], *, track_id: str | None
) -> Message:
    by_id = {env_id: alias for alias, env_id in aliases.items()}
    shown = environments[:MAX_LISTED]
    blocks: list[Block] = [
        _header("Test environments"),
        _context(f"{len(environments)} environment{'s' if len(environments) != 1 else ''}"),
    ]
    if not environments:
        blocks.append(_section("Zuora lists no test environments for this tenant."))
    for env in shown:
        env_id = env.id or "unknown"
        ref = EnvRef(id=env_id, alias=by_id.get(env_id))
        name = f" · {escape_mrkdwn(env.tenant_name)}" if env.tenant_name else ""
        status = str(env.status or "UNKNOWN")
        kind = " · ".join(
            escape_mrkdwn(str(v)) for v in (env.environment_type, env.data_copy_type) if v
        )
        blocks.append(
            _section(
                f"{env_label(ref)}{name}\n{_ENV_EMOJI.get(status, _UNKNOWN_EMOJI)} *{escape_mrkdwn(status)}*"
                f"{' · ' + kind if kind else ''}\n"
                f"Last refresh {slack_date(env.last_refresh_time)} · next refresh possible {slack_date(env.next_refresh_time)}"
            )
        )
    footer = []
    if len(environments) > len(shown):
        footer.append(f"…and {len(environments) - len(shown)} more not shown.")
    if track_id:
        footer.append(f"Zuora-Track-Id `{escape_mrkdwn(track_id)}`")
    if footer:
        blocks.append(_context(*footer))
    return Message(text=f"{len(environments)} test environments", blocks=blocks)


# -- refresh ------------------------------------------------------------------------------------------------------


# Zuora's limit per kind of sandbox: (what it is called, days between two refreshes).
_SANDBOX_KINDS: Mapping[str, tuple[str, int]] = {
    EnvironmentType.TEST: ("Central Sandbox", 28),
    EnvironmentType.DEVELOPER: ("Developer Sandbox", 14),
}
_OVERWRITES = (
    "A refresh replaces everything in this sandbox (data, configuration, users' work) with a fresh copy "
    "from production. It cannot be undone once it reaches its reset stage."
)
_GENERIC_LIMIT = "Zuora allows one refresh per period: every *28 days* for a Central Sandbox (14 for a Developer Sandbox)."


def sandbox_kind(environment: TestEnvironment) -> tuple[str, int] | None:
    """(name, days between refreshes) for the sandbox types whose limit is known, else None."""
    kind = environment.environment_type
    return _SANDBOX_KINDS.get(str(kind)) if kind is not None else None


def _limit(environment: TestEnvironment) -> str:
    """This environment's type and Zuora's limit for it, and its last and next refresh (mrkdwn)."""
    kind = sandbox_kind(environment)
    if kind is not None:
        text = f"This is a *{kind[0]}*: Zuora allows one refresh every *{kind[1]} days*."
    elif environment.environment_type:
        shown = escape_mrkdwn(_clip(str(environment.environment_type), 40)).replace("`", "'")
        text = f"Zuora gives its type as `{shown}`. {_GENERIC_LIMIT}"
    else:
        text = _GENERIC_LIMIT
    times = []
    if environment.last_refresh_time is not None:
        times.append(f"last refreshed {slack_date(environment.last_refresh_time)}")
    if environment.next_refresh_time is not None:
        times.append(f"next refresh possible {slack_date(environment.next_refresh_time)}")
    if times:
        joined = "; ".join(times)
        text += f" {joined[0].upper()}{joined[1:]}."
    return text


def _unchecked(error: ZuoraError) -> str:
    return (
        f":grey_question: The bot could not read this environment from Zuora just now "
        f"({escape_mrkdwn(error.summary)}, {_answer(error)}), so it could not check its type and when its "
        "next refresh is possible. If it is too soon, Zuora refuses when you confirm and says when."
    )


def refresh_confirmation(
    env: EnvRef,
    at: datetime | None,
    *,
    value: str,
    block_id: str,
    expires: datetime,
    environment: TestEnvironment | None = None,
    unchecked: ZuoraError | None = None,
) -> Message:
    """The confirmation of a refresh Zuora should accept: what it overwrites and the limit. `environment`:
    the environment as Zuora just showed it (its type, limit and dates are named); without it, the generic
    limit, and `unchecked`, why Zuora could not be asked."""
    when = f"at {slack_date(at)}" if at else "now"
    lines = [
        f":warning: Refresh {env_label(env)} {when}?",
        _OVERWRITES,
        _limit(environment) if environment is not None else _GENERIC_LIMIT,
    ]
    if environment is None and unchecked is not None:
        lines.append(_unchecked(unchecked))
    text = "\n".join(lines)
    return Message(
        text=escape_mrkdwn(f"Confirm the refresh of {env_plain(env)}"),
        blocks=[
            _section(text),
            {
                "type": "actions",
                "block_id": block_id,
                "elements": [
                    {
                        "type": "button",
                        "action_id": ACTION_REFRESH_CONFIRM,
                        "text": _plain("Refresh now" if at is None else "Schedule refresh"),
                        "style": "primary",
                        "value": value,
                    },
                    {
                        "type": "button",
                        "action_id": ACTION_REFRESH_ABORT,
                        "text": _plain("Don't refresh"),
                        "value": value,
                    },
                ],
            },
            _context(f"Only you see this. It expires {slack_date(expires)} (10 minutes)."),
        ],
    )


def refresh_not_possible(env: EnvRef, at: datetime | None, environment: TestEnvironment) -> Message:
    """Zuora would refuse this refresh: its next refresh is possible only later. No button: nothing to confirm;
    a refresh scheduled from then on is still possible, and the message says how."""
    when = f"at {slack_date(at)}" if at else "now"
    name = (env.alias or env.id).replace("`", "'")
    schedule = escape_mrkdwn(f"{COMMAND} refresh {name} at <time>")
    text = "\n".join(
        [
            f":no_entry: Zuora will not refresh {env_label(env)} {when}: too soon after its last refresh.",
            _limit(environment),
            f"To refresh it then or later, schedule it: `{schedule}`.",
        ]
    )
    plain = f"Zuora will not refresh {env_plain(env)} {'now' if at is None else 'at that time'}: too soon after its last refresh."
    return Message(
        text=escape_mrkdwn(plain),
        blocks=[_section(text), _context("Only you see this. No refresh was requested.")],
    )


def job_ended(job: Job, env: EnvRef) -> Message:
    status = str(job.status or "UNKNOWN")
    text = f"{status_text(job.status)} Job `{escape_mrkdwn(job.id or 'unknown')}` in {env_label(env)} has ended."
    return Message(
        text=escape_mrkdwn(f"Job {job.id} in {env_plain(env)} ended: {status}"),
        blocks=[_section(text)],
    )


# -- reminders before scheduled refreshes, and whom they mention ---------------------------------------------

_USERGROUP_ID = re.compile(r"^S[A-Z0-9]{2,20}$")
# From its reset stage on, a refresh runs to its end: Zuora refuses a cancel (zuora-facts: "only before it
# reaches the reset stage").
PAST_RESET = frozenset({JobStatus.RESETTING, JobStatus.IMPORTING, JobStatus.FINALIZING})
PAST_RESET_NOTE = (
    ":lock: From its reset stage (RESETTING) on, this refresh can no longer be cancelled: "
    "it runs to its end."
)


def mentions(ids: Sequence[str]) -> str:
    """SANDBOX_NOTIFY_MENTION as Slack mentions: a user group `S…` as `<!subteam^S…>`, a user `U…`/`W…` as
    `<@U…>`. The IDs come from the configuration (validated there); anything else is left out, so no
    mention can come from Zuora or user text."""
    shown = []
    for item in ids:
        if _USERGROUP_ID.fullmatch(item):
            shown.append(f"<!subteam^{item}>")
        elif _USER_ID.fullmatch(item):
            shown.append(mention(item))
    return " ".join(shown)


def with_mentions(message: Message, ids: Sequence[str]) -> Message:
    """The first card of a job started outside the bot, telling `ids` (SANDBOX_NOTIFY_MENTION) of it: a
    context line under the header, and the mentions at the head of the fallback text."""
    told = mentions(ids)
    if not told:
        return message
    line = _context(
        f":bell: {told}: a job started outside the bot (Zuora's UI, the API, another tool)."
    )
    blocks = list(message.blocks)
    blocks.insert(1 if blocks and blocks[0].get("type") == "header" else 0, line)
    return Message(text=f"{told} {message.text}", blocks=blocks[:MAX_BLOCKS])


def _span(seconds: float) -> str:
    """A duration as people say it: `1d`, `2h30m`, `45m`; under a minute `45s`."""
    left = max(0, int(seconds))
    if left < 60:
        return f"{left}s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if left >= size:
            parts.append(f"{left // size}{unit}")
            left %= size
    return "".join(parts)


def _leads_text(leads: Sequence[float]) -> str:
    spans = [_span(lead) for lead in sorted(leads, reverse=True)]
    return spans[0] if len(spans) == 1 else ", ".join(spans[:-1]) + " and " + spans[-1]


def reminder(
    job: Job,
    env: EnvRef,
    *,
    scheduled: datetime,
    now: datetime,
    leads: Sequence[float],
    mention_ids: Sequence[str] = (),
    name: str | None = None,
    requested_by: str | None = None,
) -> Message:
    """The reminder before a scheduled refresh, in its notification card's thread (and the channel): which
    sandbox is overwritten and when (each reader's time zone), how soon, whom it concerns, *Cancel job*.
    `leads`: the lead times this one reminder stands for (several after a restart: one catch-up); `name`:
    the environment's name in Zuora (its tenant name), if known."""
    job_id = job.id or "unknown"
    told = mentions(mention_ids)
    named = f" · {escape_mrkdwn(_clip(name, 200))}" if name else ""
    soon = _span((scheduled - now).total_seconds())
    head = f":alarm_clock: {told + ' ' if told else ''}Scheduled refresh: {env_label(env)}{named}"
    text = "\n".join(
        [
            f"{head} will be overwritten {slack_date(scheduled)}, in {soon}.",
            "Everything in this sandbox (data, configuration, users' work) is replaced with a fresh copy "
            "from production. *Cancel job* stops it; from its reset stage on it can no longer be cancelled.",
        ]
    )
    blocks: list[Block] = [_section(text)]
    if buttonable(env, job.id):
        blocks.append(
            {
                "type": "actions",
                "block_id": job_block_id(job_id, requested_by),
                "elements": [cancel_button(env, job_id)],
            }
        )
    blocks.append(
        _context(f"Job `{escape_mrkdwn(job_id)}` · reminder {_leads_text(leads)} before it starts.")
    )
    fallback = scheduled.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    plain = escape_mrkdwn(
        f"Scheduled refresh of {env_plain(env)}{' (' + name + ')' if name else ''} at {fallback}, "
        f"in {soon}: the sandbox will be overwritten."
    )
    return Message(text=f"{told} {plain}" if told else plain, blocks=blocks)


def reminder_started(job: Job, env: EnvRef) -> Message:
    """In the thread of a job that was reminded about: its scheduled refresh has started."""
    status = str(job.status or "UNKNOWN")
    text = (
        f":arrow_forward: The scheduled refresh of {env_label(env)} has started: now {status_text(job.status)}. "
        + (
            "It is past its reset stage: it can no longer be cancelled."
            if job.status in PAST_RESET
            else "It can be cancelled until it reaches its reset stage (RESETTING)."
        )
    )
    return Message(
        text=escape_mrkdwn(f"The scheduled refresh of {env_plain(env)} has started: now {status}"),
        blocks=[_section(text)],
    )
