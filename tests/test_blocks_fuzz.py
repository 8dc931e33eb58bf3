"""Every message builder, fed whatever Zuora or a user might send: it never raises, never lets text make a
mention or a link, and always builds valid Block Kit within Slack's limits (derandomized in CI)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot import blocks
from bot.commands import Cancel, EnvRef, Envs, Jobs, Refresh, Status, UsageError, parse
from bot.permissions import Grantors, Role
from bot.zuora.errors import (
    Reason,
    ZuoraPermissionError,
    ZuoraRateLimitedError,
    ZuoraRejectedError,
    ZuoraServerError,
    ZuoraTimeoutError,
)
from bot.zuora.models import Job, TestEnvironment
from tests.blockkit import assert_valid_blocks

ACTOR = "U0ACTOR1"
ENV = EnvRef("c0ffee00000000000000000000000001", "staging")
fuzz = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])

hostile = st.one_of(
    st.text(max_size=400),
    st.sampled_from(
        [
            "<!channel>",
            "<!here|here>",
            "<@U123>",
            "<https://evil.example|click>",
            "&lt;!everyone&gt;",
            "@here",
            "*" * 50,
        ]
    ),
)
times = st.none() | st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(9998, 1, 1), timezones=st.just(UTC)
)
ids = st.one_of(
    st.text(max_size=80), st.from_regex(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}", fullmatch=True)
)
jobs = st.builds(
    Job,
    id=st.none() | ids,
    status=st.none() | hostile | st.sampled_from(["EXPORTING", "CANCELLED", "SCHEDULED"]),
    job_type=st.none() | hostile,
    created_by_id=st.none() | hostile,
    progress_percentage=st.none() | st.integers(min_value=-(10**9), max_value=10**9),
    create_time=times,
    job_start_time=times,
    job_end_time=times,
    estimated_completion_time=times,
    scheduled_refresh_time=times,
)
environments = st.builds(
    TestEnvironment,
    id=st.none() | ids,
    tenant_name=st.none() | hostile,
    status=st.none() | hostile,
    environment_type=st.none() | hostile,
    last_refresh_time=times,
    next_refresh_time=times,
)
reasons = st.lists(st.builds(Reason, hostile, hostile), max_size=8).map(tuple)
errors = st.one_of(
    st.builds(
        ZuoraRejectedError,
        operation=st.just("o"),
        status=st.just(400),
        reasons=reasons,
        track_id=st.none() | hostile,
    ),
    st.builds(
        ZuoraPermissionError,
        operation=st.just("o"),
        status=st.just(403),
        reasons=reasons,
        request_id=st.none() | hostile,
    ),
    st.builds(
        ZuoraServerError, operation=st.just("o"), status=st.integers(500, 599), reasons=reasons
    ),
    st.builds(
        ZuoraRateLimitedError,
        operation=st.just("o"),
        status=st.just(429),
        retry_after=st.none() | st.floats(0, 86_400),
    ),
    st.builds(ZuoraTimeoutError, operation=st.just("o")),
)
commands = st.sampled_from(
    [Cancel(ENV, "j-1"), Status(ENV, "j-1"), Jobs(ENV), Envs(), Refresh(ENV, None)]
)


def assert_safe(message: blocks.Message, *, mentions: frozenset[str] = frozenset()) -> None:
    """Valid Block Kit, and nothing outside text can mention, link or ping (`mentions`: the ones the bot
    itself makes, e.g. `@U…` and `!subteam^S…`)."""
    assert_valid_blocks(message.blocks)
    shown = json.dumps(message.blocks, ensure_ascii=False) + message.text
    control = re.findall(r"<([!@#][^>]*|https?:[^>]*)>", shown)
    allowed = {f"@{ACTOR}", *mentions}
    assert all(c in allowed or c.startswith("!date^") for c in control), control
    assert len(message.text) <= 4000


@fuzz
@given(job=jobs, note_by=st.booleans(), warning=st.none() | hostile)
def test_job_cards(job: Job, note_by: bool, warning: str | None) -> None:
    note = blocks.acted_note(ACTOR, "cancelled", "sandbox-bot-1") if note_by else None
    warn = None if warning is None else blocks.escape_mrkdwn(warning)
    assert_safe(
        blocks.job_card(job, ENV, requested_by=ACTOR, track_id="t", note=note, warning=warn)
    )
    assert_safe(blocks.job_ended(job, ENV))
    assert_safe(
        blocks.action_notification(actor=ACTOR, verb="cancelled", job=job, env=ENV, track_id="t")
    )


@fuzz
@given(listed=st.lists(jobs, max_size=60))
def test_job_lists(listed: list[Job]) -> None:
    assert_safe(blocks.job_list(listed, ENV, track_id="t"))


@fuzz
@given(
    listed=st.lists(environments, max_size=60), aliases=st.dictionaries(hostile, ids, max_size=5)
)
def test_environment_lists(listed: list[TestEnvironment], aliases: dict[str, str]) -> None:
    assert_safe(blocks.env_list(listed, aliases, track_id="t"))


@fuzz
@given(error=errors, command=commands, read_back=st.none() | jobs)
def test_error_messages_and_audit_lines(error: Any, command: Any, read_back: Job | None) -> None:
    assert_safe(blocks.zuora_error(error, command, read_back=read_back))
    assert_safe(blocks.action_failed(ACTOR, command, error))
    warning = blocks.poll_failed(error, 40)
    assert_safe(blocks.job_card(Job(id="j-1", status="EXPORTING"), ENV, warning=warning))


@fuzz
@given(text=hostile, aliases=st.dictionaries(hostile, ids, max_size=5))
def test_usage_errors_from_anything_typed(text: str, aliases: dict[str, str]) -> None:
    try:
        parse(text, aliases, now=datetime(2030, 1, 1, tzinfo=UTC))
    except UsageError as error:
        message = blocks.usage_error(error)
        assert_safe(message)
        # Said once: one usage line, or one pointer to the help, never both nor either twice.
        shown = message.blocks[0]["text"]["text"]
        assert shown.count("Usage:") + shown.count("/sandbox help` to see") == 1


@fuzz
@given(
    environment=environments,
    at=times,
    error=st.none() | errors,
    alias=st.none() | hostile,
)
def test_refresh_confirmations_and_refusals_of_any_environment(
    environment: TestEnvironment, at: datetime | None, error: Any, alias: str | None
) -> None:
    env = EnvRef(ENV.id, alias)
    expires = datetime(2030, 1, 1, tzinfo=UTC)
    checked = None if error is not None else environment
    assert_safe(
        blocks.refresh_confirmation(
            env, at, value="v", block_id="b", expires=expires, environment=checked, unchecked=error
        )
    )
    assert_safe(blocks.refresh_not_possible(env, at, environment))


user_ids = st.from_regex(r"[UW][A-Z0-9]{2,20}", fullmatch=True)
group_ids = st.from_regex(r"S[A-Z0-9]{2,20}", fullmatch=True)


@fuzz
@given(
    users=st.lists(user_ids | hostile, max_size=15),
    groups=st.lists(group_ids | hostile, max_size=8),
    access_help=st.none() | hostile,
    role=st.sampled_from([None, "viewer", "operator"]),
    needed=st.sampled_from(["viewer", "operator"]),
)
def test_refusals_and_help_name_only_the_ids_they_were_given(
    users: list[str],
    groups: list[str],
    access_help: str | None,
    role: Role | None,
    needed: Role,
) -> None:
    ask = Grantors(tuple(users), tuple(groups), access_help)
    mentions = frozenset(
        [f"@{u}" for u in users if re.fullmatch(r"[UW][A-Z0-9]{2,20}", u)]
        + [f"!subteam^{g}" for g in groups if re.fullmatch(r"S[A-Z0-9]{2,20}", g)]
    )
    assert_safe(
        blocks.refusal(ACTOR, reason="You are not on the list.", ask=ask, needed=needed, role=role),
        mentions=mentions,
    )
    assert_safe(blocks.help_message(role=role, usage="u", ask=ask), mentions=mentions)
