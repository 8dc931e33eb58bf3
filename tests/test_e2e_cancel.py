"""`/sandbox cancel` end to end: signed HTTP in, the simulator's view of Zuora and the emulator's view of Slack out."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time

import pytest

from bot.runtime import Runtime
from bot.sim.slack import SlackEmulator
from bot.sim.zuora import ZuoraSimulator
from bot.sim.zuora_seed import ENV_STAGING, ENV_UAT, JOB_CANCELLABLE, JOB_PAST_RESETTING
from tests.blockkit import assert_valid_blocks
from tests.conftest import ALLOWED, CHANNEL, GROUP_MEMBER, NOTIFY, SECRETS, STRANGER, StartBot
from tests.e2e import api_calls, free_port, handled, reply_to, text_of, until_handled, zuora_calls

pytestmark = pytest.mark.usefixtures("no_secrets_logged")

CANCEL = "performActionOfJob"


async def test_allowed_user_cancels_a_job(
    bot: Runtime, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    delivery = await slack.send_command(
        bot.events_url, f"cancel staging {JOB_CANCELLABLE}", ALLOWED, CHANNEL
    )
    assert delivery.status == 200

    card = await reply_to(slack, CHANNEL, ALLOWED, "CANCELLING")
    assert card.ephemeral_for is None  # in channel, for the team
    assert_valid_blocks(card.blocks)
    shown = text_of(card)
    for expected in (
        JOB_CANCELLABLE,
        "staging",
        ENV_STAGING,
        f"<@{ALLOWED}>",
        "sandbox_job_status",
    ):
        assert expected in shown
    assert "sandbox_cancel_job" not in shown  # a CANCELLING job cannot be cancelled again

    # Zuora received exactly one correct request.
    (request,) = zuora_calls(zuora, CANCEL)
    assert request.method == "POST"
    assert request.path == f"/test-environments/{ENV_STAGING}/jobs/{JOB_CANCELLABLE}/actions"
    assert request.body == {"jobAction": "CANCEL"}
    track_id = request.headers["Zuora-Track-Id"]
    assert track_id in shown
    assert zuora.job(ENV_STAGING, JOB_CANCELLABLE)["status"] == "CANCELLING"

    note = await reply_to(slack, NOTIFY, ALLOWED, "cancelled")
    assert_valid_blocks(note.blocks)
    for expected in (
        f"<@{ALLOWED}>",
        "staging",
        ENV_STAGING,
        JOB_CANCELLABLE,
        "CANCELLING",
        track_id,
    ):
        assert expected in text_of(note)


async def test_group_member_may_cancel_and_is_looked_up_in_slack(
    bot: Runtime, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    await slack.send_command(
        bot.events_url, f"cancel staging {JOB_CANCELLABLE}", GROUP_MEMBER, CHANNEL
    )
    await reply_to(slack, CHANNEL, GROUP_MEMBER, "CANCELLING")
    assert len(zuora_calls(zuora, CANCEL)) == 1
    assert slack.calls_to("usergroups.users.list")


async def test_ack_does_not_wait_for_a_slow_zuora(
    bot: Runtime, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    hold = zuora.hold(CANCEL)  # Zuora answers only when the test says so
    delivery = await slack.send_command(
        bot.events_url, f"cancel staging {JOB_CANCELLABLE}", ALLOWED, CHANNEL
    )
    assert delivery.status == 200
    # The ack is back while Zuora is still holding the request: no card yet.
    assert not [m for m in slack.messages(CHANNEL) if "CANCELLING" in text_of(m)]
    hold.release()
    await reply_to(slack, CHANNEL, ALLOWED, "CANCELLING")


async def test_uat_job_past_resetting_is_refused_by_zuora_with_meaning(
    bot: Runtime, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    await slack.send_command(bot.events_url, f"cancel uat {JOB_PAST_RESETTING}", ALLOWED, CHANNEL)
    answer = await reply_to(slack, CHANNEL, ALLOWED, "Could not cancel")
    assert answer.ephemeral_for == ALLOWED
    shown = text_of(answer)
    (request,) = zuora_calls(zuora, CANCEL)
    assert "HTTP 400" in shown and "reset stage" in shown
    assert re.search(r"`\d{8}`", shown), "Zuora's reason code is quoted"
    assert "IMPORTING" in shown  # Zuora's reason message names the job's status
    assert request.headers["Zuora-Track-Id"] in shown
    assert ENV_UAT in request.path
    # The failed action is in the audit trail too, with its track ID.
    line = await reply_to(slack, NOTIFY, ALLOWED, "tried to cancel")
    assert request.headers["Zuora-Track-Id"] in text_of(line) and "HTTP 400" in text_of(line)


async def test_duplicate_submit_while_in_flight_reaches_zuora_once(
    bot: Runtime, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    hold = zuora.hold(CANCEL)  # the first cancel stays on its way until the second was answered
    text = f"cancel staging {JOB_CANCELLABLE}"
    first, second = await asyncio.gather(
        slack.send_command(bot.events_url, text, ALLOWED, CHANNEL),
        slack.send_command(bot.events_url, text, GROUP_MEMBER, CHANNEL),
    )
    assert first.status == second.status == 200
    duplicate = await slack.wait_for_message(
        CHANNEL, lambda m: m.ephemeral_for is not None and "already on its way" in text_of(m)
    )
    assert duplicate is not None
    hold.release()
    await reply_to(slack, CHANNEL, ALLOWED, "CANCELLING")
    assert len(zuora_calls(zuora, CANCEL)) == 1


# -- bad input: a clear message, no Zuora call ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("cancel", "&lt;env&gt;"),
        ("cancel staging", "&lt;job&gt;"),
        (f"cancel staging {JOB_CANCELLABLE} now", "now"),
        ("cancel staging a/b", "&lt;job&gt;"),
        ("cancel staging ..", "&lt;job&gt;"),
        ("cancel staging 50%25", "&lt;job&gt;"),
        ("cancel staging " + "a" * 65, "&lt;job&gt;"),
        ("cancel <!channel> abc", "&lt;!channel&gt;"),
        ("cancel staging <@U0ALLOWED1>", "&lt;@U0ALLOWED1&gt;"),
        ("obliterate staging", "obliterate"),
        ("cancel nowhere/x abc", "&lt;env&gt;"),
    ],
)
async def test_bad_input_gets_usage_and_never_reaches_zuora(
    bot: Runtime, slack: SlackEmulator, zuora: ZuoraSimulator, text: str, named: str
) -> None:
    await slack.send_command(bot.events_url, text, ALLOWED, CHANNEL)
    answer = await slack.wait_for_message(CHANNEL, lambda m: m.ephemeral_for == ALLOWED)
    shown = text_of(answer)
    assert named in shown
    assert "<!channel>" not in shown and "<@U0ALLOWED1>" not in shown
    assert_valid_blocks(answer.blocks)
    assert api_calls(zuora) == []
    # The bot keeps serving.
    await slack.send_command(bot.events_url, f"cancel staging {JOB_CANCELLABLE}", ALLOWED, CHANNEL)
    await reply_to(slack, CHANNEL, ALLOWED, "CANCELLING")


async def test_user_not_allowed_is_refused_and_audited(
    bot: Runtime, slack: SlackEmulator, zuora: ZuoraSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    await slack.send_command(bot.events_url, f"cancel staging {JOB_CANCELLABLE}", STRANGER, CHANNEL)
    answer = await reply_to(slack, CHANNEL, STRANGER, "Refresh Central Sandbox")
    assert answer.ephemeral_for == STRANGER
    assert "<!subteam^S0PLATFORM>" in text_of(answer)
    # Whom to ask: the listed user and the group, as mentions; never a variable's name, nor a count.
    assert f"To get it, ask <@{ALLOWED}> or a member of <!subteam^S0PLATFORM>." in text_of(answer)
    assert "SANDBOX_" not in text_of(answer) and "listed user" not in text_of(answer)
    assert api_calls(zuora) == []
    refusals = [
        r for r in caplog.records if r.name == "sandbox_bot.audit" and r.getMessage() == "refused"
    ]
    assert refusals and refusals[0].user == STRANGER  # type: ignore[attr-defined]


async def test_user_group_lookup_failing_fails_closed(
    bot: Runtime, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    slack.fail_next("usergroups.users.list", error="internal_error", count=10)
    await slack.send_command(
        bot.events_url, f"cancel staging {JOB_CANCELLABLE}", GROUP_MEMBER, CHANNEL
    )
    answer = await reply_to(slack, CHANNEL, GROUP_MEMBER, "did not answer")
    assert answer.ephemeral_for == GROUP_MEMBER
    assert api_calls(zuora) == []


async def test_nobody_is_allowed_without_an_allowlist(
    start_bot: StartBot, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    bot = await start_bot(sandbox_allowed_users=None, sandbox_allowed_usergroups=None)
    await slack.send_command(bot.events_url, f"cancel staging {JOB_CANCELLABLE}", ALLOWED, CHANNEL)
    answer = await reply_to(slack, CHANNEL, ALLOWED, "Nobody is allowed yet")
    assert "Ask whoever runs this bot in your workspace to grant it." in text_of(answer)
    assert "SANDBOX_" not in text_of(answer)
    assert api_calls(zuora) == []


@pytest.mark.parametrize("mode", ["bad_signature", "stale", "missing"])
async def test_forged_or_stale_requests_get_401_and_are_not_processed(
    bot: Runtime, slack: SlackEmulator, zuora: ZuoraSimulator, mode: str
) -> None:
    delivery = await slack.send_command(
        bot.events_url,
        f"cancel staging {JOB_CANCELLABLE}",
        ALLOWED,
        CHANNEL,
        sign_mode=mode,  # type: ignore[arg-type]
    )
    assert delivery.status == 401
    # A genuine command after it is handled; the forged one was not, before or since.
    await slack.send_command(bot.events_url, "help", ALLOWED, CHANNEL)
    await until_handled(slack, bot, "help")
    assert handled(bot, "cancel") == 0
    assert api_calls(zuora) == []
    assert len(slack.messages(CHANNEL)) == 1  # the help


# -- Zuora failures: a clear message with the track ID, and the bot keeps serving -------------------------------


@pytest.mark.parametrize(
    ("fault", "params", "expected"),
    [
        ("status", {"status": 500, "body": "system"}, "HTTP 500"),
        ("status", {"status": 500, "body": "empty"}, "problem on its side"),
        ("status", {"status": 404, "body": "classic"}, "HTTP 404"),
        ("status", {"status": 403, "body": "classic"}, "HTTP 403"),
        ("garbage", {}, "could not be read"),
        ("drop", {}, "connection"),
    ],
)
async def test_zuora_failures_become_clear_messages(
    bot: Runtime,
    slack: SlackEmulator,
    zuora: ZuoraSimulator,
    fault: str,
    params: dict[str, object],
    expected: str,
) -> None:
    zuora.inject(fault, operation=CANCEL, count=1, **params)  # type: ignore[arg-type]
    await slack.send_command(bot.events_url, f"cancel staging {JOB_CANCELLABLE}", ALLOWED, CHANNEL)
    answer = await reply_to(slack, CHANNEL, ALLOWED, "Could not cancel")
    shown = text_of(answer)
    assert expected in shown
    sent = zuora_calls(zuora, CANCEL)[0].headers["Zuora-Track-Id"]
    assert sent in shown
    assert "Zuora-Request-Id" in shown or fault == "drop"
    # The next command works.
    await slack.send_command(bot.events_url, f"cancel staging {JOB_CANCELLABLE}", ALLOWED, CHANNEL)
    await reply_to(slack, CHANNEL, ALLOWED, "CANCELLING")


async def test_rate_limit_then_success_is_retried_after_retry_after(
    bot: Runtime, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    zuora.inject("rate_limit", operation=CANCEL, retry_after=1)
    started = time.monotonic()
    await slack.send_command(bot.events_url, f"cancel staging {JOB_CANCELLABLE}", ALLOWED, CHANNEL)
    await reply_to(slack, CHANNEL, ALLOWED, "CANCELLING")
    assert time.monotonic() - started >= 1.0  # a lower bound only: Retry-After was waited out
    first, second = zuora_calls(zuora, CANCEL)
    assert first.headers["Zuora-Track-Id"] == second.headers["Zuora-Track-Id"]


async def test_401_twice_says_the_bot_credentials_were_refused(
    bot: Runtime, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    zuora.inject("status", operation=CANCEL, status=401, count=2)
    await slack.send_command(bot.events_url, f"cancel staging {JOB_CANCELLABLE}", ALLOWED, CHANNEL)
    answer = await reply_to(slack, CHANNEL, ALLOWED, "Could not cancel")
    assert "HTTP 401" in text_of(answer) and "credentials" in text_of(answer)
    assert len(zuora_calls(zuora, CANCEL)) == 2
    assert zuora.token_requests == 2


async def test_zuora_timeout_says_the_cancel_may_have_applied(
    start_bot: StartBot, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    bot = await start_bot(zuora_timeout_seconds=1)  # the token request must still fit in it
    zuora.inject("latency", operation=CANCEL, seconds=3.0)
    await slack.send_command(bot.events_url, f"cancel staging {JOB_CANCELLABLE}", ALLOWED, CHANNEL)
    answer = await reply_to(slack, CHANNEL, ALLOWED, "Could not cancel")
    assert "may still have been applied" in text_of(answer)
    assert len(zuora_calls(zuora, CANCEL)) == 1  # a cancel that may have arrived is not sent again


async def test_refused_connection_is_reported(start_bot: StartBot, slack: SlackEmulator) -> None:
    bot = await start_bot(zuora_base_url=f"http://127.0.0.1:{free_port()}")
    await slack.send_command(bot.events_url, f"cancel staging {JOB_CANCELLABLE}", ALLOWED, CHANNEL)
    answer = await reply_to(slack, CHANNEL, ALLOWED, "Could not cancel")
    assert "could not reach Zuora" in text_of(answer)
    assert "sandbox-bot-" in text_of(answer)  # the track ID of the attempt


async def test_no_secret_in_any_log_line(
    bot: Runtime, slack: SlackEmulator, zuora: ZuoraSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    zuora.inject("status", operation=CANCEL, status=401, count=2)
    await slack.send_command(bot.events_url, f"cancel staging {JOB_CANCELLABLE}", ALLOWED, CHANNEL)
    await reply_to(slack, CHANNEL, ALLOWED, "Could not cancel")
    await slack.send_command(bot.events_url, f"cancel staging {JOB_CANCELLABLE}", ALLOWED, CHANNEL)
    await reply_to(slack, CHANNEL, ALLOWED, "CANCELLING")
    logged = "\n".join(
        f"{r.getMessage()} {json.dumps(r.__dict__, default=str)}" for r in caplog.records
    )
    assert logged
    issued_tokens = {
        r.headers["Authorization"].removeprefix("Bearer ")
        for r in zuora.requests
        if "Authorization" in r.headers
    }
    assert issued_tokens
    for secret in (*SECRETS, *issued_tokens):
        assert secret not in logged


async def test_slack_rate_limit_on_posting_the_card_is_retried(
    bot: Runtime, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    slack.fail_next("chat.postMessage", error="ratelimited", retry_after=1)
    await slack.send_command(bot.events_url, f"cancel staging {JOB_CANCELLABLE}", ALLOWED, CHANNEL)
    card = await reply_to(slack, CHANNEL, ALLOWED, "CANCELLING")
    assert (
        card.ephemeral_for is None
    )  # posted by chat.postMessage after the 429, not through response_url
    posts = [c for c in slack.calls_to("chat.postMessage") if c.args.get("channel") == CHANNEL]
    assert len(posts) == 2 and posts[0].status == 429


@pytest.mark.parametrize("first", ["forged", "401"])
async def test_the_next_command_works_after_a_forged_request_or_a_401(
    bot: Runtime, slack: SlackEmulator, zuora: ZuoraSimulator, first: str
) -> None:
    if first == "forged":
        delivery = await slack.send_command(
            bot.events_url,
            f"cancel staging {JOB_CANCELLABLE}",
            ALLOWED,
            CHANNEL,
            sign_mode="bad_signature",
        )
        assert delivery.status == 401
    else:
        zuora.inject("status", operation=CANCEL, status=401, count=2)
        await slack.send_command(
            bot.events_url, f"cancel staging {JOB_CANCELLABLE}", ALLOWED, CHANNEL
        )
        await reply_to(slack, CHANNEL, ALLOWED, "HTTP 401")
    await slack.send_command(bot.events_url, f"cancel staging {JOB_CANCELLABLE}", ALLOWED, CHANNEL)
    await reply_to(slack, CHANNEL, ALLOWED, "CANCELLING")
