"""Block Kit builders: valid Block Kit, escaped outside text, buttons that fit the status."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot import blocks
from bot.commands import Cancel, EnvRef, Status, UsageError, decode_job_value, parse
from bot.permissions import Grantors
from bot.zuora.errors import (
    Reason,
    ZuoraNotFoundError,
    ZuoraPermissionError,
    ZuoraRateLimitedError,
    ZuoraRejectedError,
    ZuoraServerError,
    ZuoraTimeoutError,
    ZuoraUnavailableError,
)
from bot.zuora.models import Job, JobStatus, TestEnvironment
from tests.blockkit import assert_valid_blocks

ENV = EnvRef(id="0123456789abcdef0123456789abcdef", alias="staging")
CANCEL_X = Cancel(ENV, "x")
STATUS_X = Status(ENV, "x")
JOB_ID = "11111111-2222-3333-4444-555555555555"


def make_job(status: str, **extra: object) -> Job:
    return Job.model_validate(
        {
            "id": JOB_ID,
            "testEnvironmentId": ENV.id,
            "jobType": "REFRESH",
            "status": status,
            "progressPercentage": 40,
            "createTime": "2026-11-29T10:00:00Z",
            "jobStartTime": "2026-11-29T10:01:00Z",
            "estimatedCompletionTime": "2026-11-29T12:00:00Z",
            "createdById": "58f182ab203c447b8b9cd90382da030a",
            **extra,
        }
    )


def action_ids(message: blocks.Message) -> list[str]:
    return [
        element["action_id"]
        for block in message.blocks
        if block["type"] == "actions"
        for element in block["elements"]
    ]


@pytest.mark.parametrize("status", [s.value for s in JobStatus] + ["SOMETHING_NEW"])
def test_job_card_is_valid_and_offers_cancel_only_before_resetting(status: str) -> None:
    card = blocks.job_card(
        make_job(status), ENV, requested_by="U123ABC", track_id="sandbox-bot-abc"
    )
    assert_valid_blocks(card.blocks)
    cancellable = status in {
        "NEW",
        "SCHEDULED",
        "QUEUED",
        "INITIATED",
        "PROVISIONING",
        "DEPROVISIONING",
        "EXPORTING",
        "SCRUBBING",
    }
    assert ("sandbox_cancel_job" in action_ids(card)) is cancellable
    assert "sandbox_job_status" in action_ids(card)
    dumped = json.dumps(card.blocks)
    assert status in dumped
    assert "<@U123ABC>" in dumped
    assert "sandbox-bot-abc" in dumped
    assert "staging" in dumped and ENV.id in dumped


def test_job_card_button_values_decode_to_the_job() -> None:
    card = blocks.job_card(make_job("QUEUED"), ENV)
    values = [
        element["value"]
        for block in card.blocks
        if block["type"] == "actions"
        for element in block["elements"]
    ]
    assert values and all(decode_job_value(v) == (ENV.id, JOB_ID) for v in values)


def test_cancel_button_has_a_confirm_dialog_naming_the_job() -> None:
    button = blocks.cancel_button(ENV, JOB_ID)
    assert button["style"] == "danger"
    assert JOB_ID in button["confirm"]["text"]["text"]
    assert "staging" in button["confirm"]["text"]["text"]


def test_times_use_slack_date_formatting_with_fallback() -> None:
    when = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
    assert (
        blocks.slack_date(when)
        == f"<!date^{int(when.timestamp())}^{{date_short_pretty}} {{time}}|2026-11-29 10:00 UTC>"
    )
    assert blocks.slack_date(None) == "—"


@pytest.mark.parametrize(
    ("percent", "filled"), [(None, None), (0, 0), (45, 4), (100, 10), (150, 10), (-3, 0)]
)
def test_progress_bar(percent: int | None, filled: int | None) -> None:
    bar = blocks.progress_bar(percent)
    if filled is None:
        assert bar == "—"
    else:
        assert bar.count("█") == filled and bar.count("░") == 10 - filled


def test_text_from_zuora_is_escaped_in_the_card() -> None:
    job = make_job("<!channel> QUEUED", jobType="<@U999>", createdById="<!here>")
    card = blocks.job_card(job, ENV)
    dumped = json.dumps(card.blocks) + card.text
    assert "<!channel>" not in dumped and "<!here>" not in dumped and "<@U999>" not in dumped
    assert "&lt;!channel&gt;" in dumped


def test_error_message_quotes_status_reasons_meaning_and_ids() -> None:
    error = ZuoraRejectedError(
        operation="performActionOfJob",
        status=400,
        reasons=(Reason("53100020", "Cannot cancel job in status <!channel> RESETTING"),),
        track_id="sandbox-bot-t1",
        request_id="r-1",
    )
    message = blocks.zuora_error(error, CANCEL_X)
    assert_valid_blocks(message.blocks)
    dumped = json.dumps(message.blocks)
    for expected in ("HTTP 400", "53100020", "sandbox-bot-t1", "r-1", "reset stage"):
        assert expected in dumped
    assert "<!channel>" not in dumped + message.text


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (ZuoraNotFoundError(operation="o", status=404), "no such test environment or job"),
        (ZuoraPermissionError(operation="o", status=403), "Refresh Central Sandbox"),
        (ZuoraRateLimitedError(operation="o", status=429, retry_after=30), "30 seconds"),
        (ZuoraServerError(operation="o", status=500), "problem on its side"),
        (ZuoraTimeoutError(operation="o"), "may still have been applied"),
    ],
)
def test_each_error_kind_explains_itself(error: Exception, expected: str) -> None:
    message = blocks.zuora_error(error, CANCEL_X)  # type: ignore[arg-type]
    assert_valid_blocks(message.blocks)
    assert expected in json.dumps(message.blocks)


def test_error_without_track_id_says_so() -> None:
    message = blocks.zuora_error(ZuoraServerError(operation="o", status=500), STATUS_X)
    assert "no Zuora-Track-Id" in json.dumps(message.blocks)


ALICE, BOB = "U0ALICE01", "U0BOB0002"
SETTING_NAME = re.compile(r"\b(?:SANDBOX|ZUORA|SLACK)_[A-Z_]+")


def test_refusal_names_permission_and_whom_to_ask() -> None:
    message = blocks.refusal(
        "U0ASKER1", reason="Not listed.", ask=Grantors(users=(ALICE,), groups=("S123",))
    )
    assert_valid_blocks(message.blocks)
    assert message.blocks[0]["text"]["text"] == (
        ":no_entry: <@U0ASKER1>, you do not have the *Refresh Central Sandbox* permission in this bot, "
        "so Zuora was not called. Not listed.\n"
        "To get it, ask <@U0ALICE01> or a member of <!subteam^S123>."
    )


@pytest.mark.parametrize(
    ("grantors", "expected"),
    [
        (Grantors(users=(ALICE,)), "To get it, ask <@U0ALICE01>."),
        (Grantors(users=(ALICE, BOB)), "To get it, ask <@U0ALICE01> or <@U0BOB0002>."),
        (
            Grantors(users=(ALICE, BOB), groups=("S0OPS", "S0PLATFORM")),
            "To get it, ask <@U0ALICE01>, <@U0BOB0002> or a member of <!subteam^S0OPS> or "
            "<!subteam^S0PLATFORM>.",
        ),
        (Grantors(groups=("S0OPS",)), "To get it, ask a member of <!subteam^S0OPS>."),
        (Grantors(), "Ask whoever runs this bot in your workspace to grant it."),
        # Only IDs are mentioned: anything else in the lists is left out, never echoed.
        (
            Grantors(users=("<!channel>", ALICE), groups=("#general",)),
            "To get it, ask <@U0ALICE01>.",
        ),
        # The operators' sentence takes the place of the list, escaped.
        (
            Grantors(users=(ALICE,), access_help="Ask in #platform-help <!channel> & co."),
            "Ask in #platform-help &lt;!channel&gt; &amp; co.",
        ),
    ],
)
def test_whom_to_ask(grantors: Grantors, expected: str) -> None:
    assert blocks.whom_to_ask(grantors) == expected


def test_whom_to_ask_names_at_most_ten_users_and_five_groups() -> None:
    users = tuple(f"U0USER{n:04d}" for n in range(12))
    groups = tuple(f"S0GROUP{n:03d}" for n in range(7))
    text = blocks.whom_to_ask(Grantors(users=users, groups=groups))
    assert text.count("<@") == 10 and "<@U0USER0009> (and 2 more)" in text
    assert text.count("<!subteam^") == 5 and "<!subteam^S0GROUP004> (and 2 more groups)" in text


def test_help_for_someone_without_the_permission_says_whom_to_ask() -> None:
    message = blocks.help_message(role=None, usage="unused", ask=Grantors(users=(ALICE,)))
    assert_valid_blocks(message.blocks)
    assert message.blocks[0]["text"]["text"] == (
        ":wave: `/sandbox` manages Zuora Central Sandbox refresh jobs.\n"
        "You have no role in this bot (neither viewer nor the *Refresh Central Sandbox* permission), so only "
        "`/sandbox help` is open to you. To get it, ask <@U0ALICE01>."
    )


def test_help_for_a_viewer_lists_the_usage_and_says_acting_needs_the_permission() -> None:
    message = blocks.help_message(role="viewer", usage="the usage", ask=Grantors(users=(ALICE,)))
    assert_valid_blocks(message.blocks)
    assert message.blocks[0]["text"]["text"] == "the usage"
    assert "*Refresh Central Sandbox*" in json.dumps(message.blocks[1])


def test_refusals_say_what_the_user_has_and_what_is_needed() -> None:
    ask = Grantors(users=(ALICE,))
    looking = blocks.refusal("U1", reason="r", ask=ask, needed="viewer")
    acting = blocks.refusal("U1", reason="r", ask=ask, needed="operator", role="viewer")
    for message in (looking, acting):
        assert_valid_blocks(message.blocks)
        assert "*Refresh Central Sandbox*" in message.blocks[0]["text"]["text"]
    assert "viewer role" in looking.blocks[0]["text"]["text"]
    assert "You are a viewer" in acting.blocks[0]["text"]["text"]


def test_no_message_names_a_setting() -> None:
    """End users never see a configuration variable's name (the refusal and help of old did)."""
    ask = Grantors(users=(ALICE,), groups=("S0OPS",))
    messages = [
        blocks.refusal("U1", reason="r", ask=ask),
        blocks.refusal("U1", reason="r", ask=Grantors()),
        blocks.help_message(role=None, usage="u", ask=ask),
        blocks.help_message(role="viewer", usage="u", ask=ask),
        blocks.refusal("U1", reason="r", ask=ask, needed="viewer"),
        blocks.zuora_error(ZuoraUnavailableError(operation="o"), CANCEL_X),
    ]
    for message in messages:
        assert not SETTING_NAME.search(json.dumps(message.blocks) + message.text)
    assert "listed user" not in json.dumps([m.blocks for m in messages])


def usage_answer(text: str, now: datetime | None = None) -> str:
    with pytest.raises(UsageError) as info:
        parse(text, {"staging": ENV.id}, now=now)
    message = blocks.usage_error(info.value)
    assert_valid_blocks(message.blocks)
    shown: str = message.blocks[0]["text"]["text"]
    return shown


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("jobs", ":information_source: Missing &lt;env&gt;.\nUsage: `/sandbox jobs &lt;env&gt;`"),
        (
            "cancel staging",
            ":information_source: Missing &lt;job&gt;.\nUsage: `/sandbox cancel &lt;env&gt; &lt;job&gt;`",
        ),
        (
            "refresh staging at",
            ":information_source: Missing &lt;time&gt; after `at`.\n"
            "Usage: `/sandbox refresh &lt;env&gt; [at &lt;time&gt;]`",
        ),
        (
            "jobs staging uat",
            ":information_source: Too many arguments: `uat` is extra.\nUsage: `/sandbox jobs &lt;env&gt;`",
        ),
        (
            "nuke",
            ":information_source: Unknown subcommand `nuke`. Valid subcommands: help, envs, jobs, status, "
            "cancel, refresh.\nType `/sandbox help` to see what the bot can do.",
        ),
    ],
)
def test_a_usage_error_says_each_thing_once(typed: str, expected: str) -> None:
    assert usage_answer(typed) == expected


@pytest.mark.parametrize(
    "typed",
    [
        "jobs",
        "status staging",
        "cancel",
        "envs staging",
        "refresh staging tomorrow",
        "refresh staging at",
        "refresh staging at 2031-01-01T00:00Z x",
        "refresh staging at tomorrow",
        "refresh staging at 2031-01-01",
        "jobs a/b",
        "cancel staging -x",
        "nuke",
        "list staging",
    ],
)
def test_one_usage_line_and_one_pointer_to_help_per_error(typed: str) -> None:
    shown = usage_answer(typed)
    assert shown.count("Usage:") + shown.count("/sandbox help") == 1, shown
    assert "Try " not in shown


def test_a_time_in_the_past_is_shown_in_the_readers_time_zone_not_against_now_in_utc() -> None:
    now = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    shown = usage_answer("refresh staging at 2030-01-01T13:00+02:00", now=now)
    at = datetime(2030, 1, 1, 11, 0, tzinfo=UTC)
    assert shown == (
        ":information_source: &lt;time&gt; `2030-01-01T13:00+02:00` is not in the future. "
        f"That is {blocks.slack_date(at)} in your time zone.\n"
        "Usage: `/sandbox refresh &lt;env&gt; [at &lt;time&gt;]`"
    )
    assert "now:" not in shown


def test_unreachable_zuora_names_no_setting() -> None:
    message = blocks.zuora_error(ZuoraUnavailableError(operation="o"), CANCEL_X)
    assert "could not reach Zuora" in json.dumps(message.blocks)
    assert "sandbox-bot check --online" in json.dumps(message.blocks)


def test_usage_error_shows_escaped_usage_line() -> None:
    message = blocks.usage_error(
        UsageError("bad &lt;job&gt;", argument="<job>", subcommand="cancel")
    )
    dumped = json.dumps(message.blocks)
    assert "/sandbox cancel &lt;env&gt; &lt;job&gt;" in dumped
    assert "&amp;lt;" not in dumped  # escaped once, not twice


def test_action_notification_names_actor_job_status_and_track_id() -> None:
    note = blocks.action_notification(
        actor="U42", verb="cancelled", job=make_job("CANCELLING"), env=ENV, track_id="t-9"
    )
    assert_valid_blocks(note.blocks)
    dumped = json.dumps(note.blocks)
    for expected in ("<@U42>", "cancelled", JOB_ID, "staging", ENV.id, "CANCELLING", "t-9"):
        assert expected in dumped


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    status=st.text(max_size=300),
    job_type=st.text(max_size=300),
    created_by=st.text(max_size=300),
    percent=st.integers(min_value=-1000, max_value=1000),
)
def test_any_zuora_text_yields_valid_escaped_cards(
    status: str, job_type: str, created_by: str, percent: int
) -> None:
    job = Job(
        id=JOB_ID,
        status=status,
        job_type=job_type,
        created_by_id=created_by,
        progress_percentage=percent,
    )
    card = blocks.job_card(job, ENV)
    assert_valid_blocks(card.blocks)
    for block in card.blocks:
        texts = [block.get("text", {}).get("text", "")] + [
            f["text"] for f in block.get("fields", [])
        ]
        for text in texts:
            assert "<!" not in text.replace("<!date^", "") and "<@" not in text


def _mrkdwn_objects(value: object) -> list[dict[str, object]]:
    found: list[dict[str, object]] = []
    if isinstance(value, dict):
        if value.get("type") == "mrkdwn":
            found.append(value)
        for child in value.values():
            found.extend(_mrkdwn_objects(child))
    elif isinstance(value, list):
        for child in value:
            found.extend(_mrkdwn_objects(child))
    return found


def test_every_mrkdwn_text_is_verbatim_so_bare_here_and_channel_are_not_parsed() -> None:
    job = make_job("QUEUED", jobType="@here REFRESH", createdById="@channel")
    messages = [
        blocks.job_card(job, ENV, requested_by="U1", track_id="t", note="n", warning="w"),
        blocks.job_list([job], ENV, track_id="t"),
        blocks.zuora_error(ZuoraServerError(operation="o", status=500), CANCEL_X),
        blocks.refusal("U1", reason="r", ask=Grantors(users=("U0ALICE1",))),
        blocks.refresh_confirmation(
            ENV, None, value="v", block_id="b", expires=datetime(2030, 1, 1, tzinfo=UTC)
        ),
        blocks.refresh_not_possible(ENV, None, TestEnvironment(environment_type="TEST")),
    ]
    objects = [obj for message in messages for obj in _mrkdwn_objects(message.blocks)]
    assert objects
    assert all(obj.get("verbatim") is True for obj in objects)


def test_ids_from_zuora_that_fail_the_id_rule_get_no_buttons_instead_of_an_error() -> None:
    odd = Job(id="job/with/slashes", status="QUEUED")
    card = blocks.job_card(odd, ENV)
    assert_valid_blocks(card.blocks)
    assert action_ids(card) == []
    listing = blocks.job_list([odd], ENV, track_id=None)
    assert_valid_blocks(listing.blocks)
    assert "accessory" not in json.dumps(listing.blocks)


# -- refresh: the confirmation tells this environment's truth ----------------------------------------------------

ISSUED = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
LAST = ISSUED - timedelta(days=3)


def confirmation(at: datetime | None = None, **kwargs: object) -> blocks.Message:
    return blocks.refresh_confirmation(
        ENV,
        at,
        value='{"env":"x","at":null}',
        block_id="refresh:U1:1:0123abcd",
        expires=ISSUED + timedelta(minutes=10),
        **kwargs,  # type: ignore[arg-type]
    )


def first_text(message: blocks.Message) -> str:
    text: str = message.blocks[0]["text"]["text"]
    return text


def button_labels(message: blocks.Message) -> list[str]:
    return [
        element["text"]["text"]
        for block in message.blocks
        if block["type"] == "actions"
        for element in block["elements"]
    ]


def test_confirmation_names_a_central_sandbox_its_limit_and_its_dates() -> None:
    environment = TestEnvironment(
        environment_type="TEST",
        last_refresh_time=ISSUED - timedelta(days=40),
        next_refresh_time=ISSUED - timedelta(days=12),
    )
    message = confirmation(environment=environment)
    assert_valid_blocks(message.blocks)
    assert first_text(message) == (
        ":warning: Refresh *staging* (`0123456789abcdef0123456789abcdef`) now?\n"
        "A refresh replaces everything in this sandbox (data, configuration, users' work) with a fresh copy "
        "from production. It cannot be undone once it reaches its reset stage.\n"
        "This is a *Central Sandbox*: Zuora allows one refresh every *28 days*. "
        f"Last refreshed {blocks.slack_date(ISSUED - timedelta(days=40))}; "
        f"next refresh possible {blocks.slack_date(ISSUED - timedelta(days=12))}."
    )
    assert button_labels(message) == ["Refresh now", "Don't refresh"]


def test_confirmation_of_a_developer_sandbox_names_its_14_days() -> None:
    possible = LAST + timedelta(days=14)
    environment = TestEnvironment(
        environment_type="DEVELOPER", last_refresh_time=LAST, next_refresh_time=possible
    )
    message = confirmation(possible + timedelta(hours=1), environment=environment)
    assert "This is a *Developer Sandbox*: Zuora allows one refresh every *14 days*." in first_text(
        message
    )
    assert f"next refresh possible {blocks.slack_date(possible)}" in first_text(message)
    assert button_labels(message) == ["Schedule refresh", "Don't refresh"]


@pytest.mark.parametrize(
    ("environment_type", "expected"),
    [
        ("ENTERPRISE", "Zuora gives its type as `ENTERPRISE`. Zuora allows one refresh per period"),
        ("<!channel>`x", "Zuora gives its type as `&lt;!channel&gt;'x`."),
        (None, "Zuora allows one refresh per period: every *28 days* for a Central Sandbox"),
    ],
)
def test_confirmation_of_another_type_quotes_it_with_the_general_rule(
    environment_type: str | None, expected: str
) -> None:
    message = confirmation(environment=TestEnvironment(environment_type=environment_type))
    assert_valid_blocks(message.blocks)
    assert expected in first_text(message)
    assert "<!channel>" not in json.dumps(message.blocks)


def test_confirmation_without_the_environment_is_generic_and_says_the_limit_was_not_checked() -> (
    None
):
    error = ZuoraServerError(operation="getTestEnvironment", status=500)
    message = confirmation(unchecked=error)
    assert_valid_blocks(message.blocks)
    text = first_text(message)
    assert text.endswith(
        "Zuora allows one refresh per period: every *28 days* for a Central Sandbox (14 for a Developer Sandbox).\n"
        f":grey_question: The bot could not read this environment from Zuora just now ({error.summary}, "
        "HTTP 500), so it could not check its type and when its next refresh is possible. If it is too "
        "soon, Zuora refuses when you confirm and says when."
    )
    assert button_labels(message) == ["Refresh now", "Don't refresh"]


def test_a_refresh_zuora_would_refuse_says_when_it_is_possible_and_offers_no_button() -> None:
    possible = LAST + timedelta(days=14)
    environment = TestEnvironment(
        environment_type="DEVELOPER", last_refresh_time=LAST, next_refresh_time=possible
    )
    message = blocks.refresh_not_possible(ENV, None, environment)
    assert_valid_blocks(message.blocks)
    assert button_labels(message) == []
    assert first_text(message) == (
        ":no_entry: Zuora will not refresh *staging* (`0123456789abcdef0123456789abcdef`) now: too soon "
        "after its last refresh.\n"
        "This is a *Developer Sandbox*: Zuora allows one refresh every *14 days*. "
        f"Last refreshed {blocks.slack_date(LAST)}; next refresh possible {blocks.slack_date(possible)}.\n"
        "To refresh it then or later, schedule it: `/sandbox refresh staging at &lt;time&gt;`."
    )
    assert (
        message.text
        == "Zuora will not refresh staging (0123456789abcdef0123456789abcdef) now: too soon after its last refresh."
    )
    assert "No refresh was requested." in json.dumps(message.blocks)


def test_a_scheduled_refresh_zuora_would_refuse_names_both_times() -> None:
    possible = LAST + timedelta(days=28)
    at = possible - timedelta(days=1)
    environment = TestEnvironment(
        environment_type="TEST", last_refresh_time=LAST, next_refresh_time=possible
    )
    message = blocks.refresh_not_possible(EnvRef(ENV.id, None), at, environment)
    text = first_text(message)
    assert text.startswith(
        f":no_entry: Zuora will not refresh `{ENV.id}` at {blocks.slack_date(at)}: too soon"
    )
    assert f"next refresh possible {blocks.slack_date(possible)}" in text
    assert f"`/sandbox refresh {ENV.id} at &lt;time&gt;`" in text
    assert button_labels(message) == []
