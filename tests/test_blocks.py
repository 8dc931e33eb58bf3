"""Block Kit builders: valid Block Kit, escaped outside text, buttons that fit the status."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot import blocks
from bot.commands import Cancel, EnvRef, Status, UsageError, decode_job_value
from bot.zuora.errors import (
    Reason,
    ZuoraNotFoundError,
    ZuoraPermissionError,
    ZuoraRateLimitedError,
    ZuoraRejectedError,
    ZuoraServerError,
    ZuoraTimeoutError,
)
from bot.zuora.models import Job, JobStatus
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


def test_refusal_names_permission_and_grantors() -> None:
    message = blocks.refusal("U1", reason="Not listed.", granted_by=["<!subteam^S123>"])
    assert_valid_blocks(message.blocks)
    dumped = json.dumps(message.blocks)
    assert "Refresh Central Sandbox" in dumped and "<!subteam^S123>" in dumped


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
        blocks.refusal("U1", reason="r", granted_by=[]),
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
