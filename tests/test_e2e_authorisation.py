"""The authorisation matrix: every subcommand and every button, in HTTP and Socket Mode, for someone outside
the allowlist and for a group member while Slack cannot say (or is slow to say) who is in the group. Each
case gets a refusal naming the permission, and Zuora is never called."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest

from bot import blocks
from bot.commands import EnvRef, encode_job_value, encode_refresh_value
from bot.runtime import Runtime
from bot.sim.slack import SlackEmulator
from bot.sim.slack_state import Message
from bot.sim.zuora import ZuoraSimulator
from bot.sim.zuora_seed import ENV_STAGING, JOB_CANCELLABLE
from bot.zuora.models import Job
from tests.conftest import ALLOWED, APP_TOKEN, CHANNEL, GROUP_MEMBER, STRANGER, StartBot
from tests.e2e import api_calls, reply_to, until_handled

pytestmark = pytest.mark.usefixtures("no_secrets_logged")

TYPED = {
    "envs": "envs",
    "jobs": "jobs staging",
    "status": f"status staging {JOB_CANCELLABLE}",
    "cancel": f"cancel staging {JOB_CANCELLABLE}",
    "refresh": "refresh staging",
}
JOB_VALUE = encode_job_value(ENV_STAGING, JOB_CANCELLABLE)
BUTTONS = {
    "sandbox_cancel_job": ("button_cancel", JOB_VALUE, None),
    "sandbox_job_status": ("button_status", JOB_VALUE, None),
    "sandbox_refresh_confirm": (
        "refresh_confirm",
        encode_refresh_value(ENV_STAGING, None),
        "refresh:{user}:{now}:0123abcd",
    ),
}
# Who asks, and how Slack answers the user-group lookup.
CASES = {
    "stranger": (STRANGER, None),
    "member, lookup failing": (GROUP_MEMBER, "fail"),
    "stranger, lookup slow": (STRANGER, "slow"),
}


def posted_with(slack: SlackEmulator, action: str, user: str, block_id: str | None) -> Message:
    """A message in the channel showing the button, as the bot would post it."""
    env = EnvRef(ENV_STAGING, "staging")
    if action == "sandbox_refresh_confirm":
        assert block_id is not None
        message = blocks.refresh_confirmation(
            env,
            None,
            value=encode_refresh_value(ENV_STAGING, None),
            block_id=block_id.format(user=user, now=int(time.time())),
            expires=datetime.now(UTC),
        )
    else:
        message = blocks.job_card(Job(id=JOB_CANCELLABLE, status="EXPORTING"), env)
    ws = slack.workspace
    return ws.add_message(
        Message(channel=CHANNEL, ts=ws.next_ts(), user=slack.bot.user_id, text=message.text,
                blocks=message.blocks, bot_id=slack.bot.bot_id)
    )  # fmt: skip


async def bot_in(mode: str, start_bot: StartBot, slack: SlackEmulator) -> Runtime:
    if mode == "socket":
        bot = await start_bot(slack_app_token=APP_TOKEN, slack_signing_secret=None)
        await slack.wait_for_socket()
        return bot
    return await start_bot()


def lookup(slack: SlackEmulator, how: str | None) -> None:
    if how == "fail":
        slack.fail_next("usergroups.users.list", error="internal_error", status=500, count=20)
    elif how == "slow":
        slack.slow("usergroups.users.list", 0.8)


@pytest.mark.parametrize("mode", ["http", "socket"])
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("name", list(TYPED))
async def test_a_typed_command_beyond_the_role_never_reaches_zuora(
    start_bot: StartBot,
    slack: SlackEmulator,
    zuora: ZuoraSimulator,
    mode: str,
    case: str,
    name: str,
) -> None:
    bot = await bot_in(mode, start_bot, slack)
    user, how = CASES[case]
    lookup(slack, how)
    if mode == "socket":
        await slack.socket_send_command(TYPED[name], user, CHANNEL)
    else:
        await slack.send_command(bot.events_url, TYPED[name], user, CHANNEL)
    refusal = await reply_to(slack, CHANNEL, user, "Refresh Central Sandbox")
    assert refusal.ephemeral_for == user
    await until_handled(slack, bot, name)
    assert api_calls(zuora) == []


@pytest.mark.parametrize("mode", ["http", "socket"])
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("action", list(BUTTONS))
async def test_a_click_beyond_the_role_never_reaches_zuora(
    start_bot: StartBot,
    slack: SlackEmulator,
    zuora: ZuoraSimulator,
    mode: str,
    case: str,
    action: str,
) -> None:
    bot = await bot_in(mode, start_bot, slack)
    user, how = CASES[case]
    lookup(slack, how)
    metric, value, block_id = BUTTONS[action]
    options: dict[str, Any] = {"message_ts": posted_with(slack, action, user, block_id).ts}
    if block_id:
        options["block_id"] = block_id.format(user=user, now=int(time.time()))
    if mode == "socket":
        await slack.socket_send_block_action(user, action, value, CHANNEL, **options)
    else:
        await slack.send_block_action(bot.events_url, user, action, value, CHANNEL, **options)
    refusal = await reply_to(slack, CHANNEL, user, "Refresh Central Sandbox")
    assert refusal.ephemeral_for == user
    await until_handled(slack, bot, metric)
    assert api_calls(zuora) == []


async def test_a_refusal_names_whom_to_ask_as_the_operator_set_it(
    start_bot: StartBot, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    bot = await start_bot(sandbox_access_help="Ask in #platform-help for <!here> access.")
    await slack.send_command(bot.events_url, "envs", STRANGER, CHANNEL)
    refusal = await reply_to(slack, CHANNEL, STRANGER, "Refresh Central Sandbox")
    shown = refusal.blocks[0]["text"]["text"]
    # The operator's sentence, escaped.
    assert "Ask in #platform-help for &lt;!here&gt; access." in shown
    assert "SANDBOX_" not in shown
    assert api_calls(zuora) == []


@pytest.mark.parametrize("mode", ["http", "socket"])
async def test_while_slack_rejects_the_bot_token_a_command_is_answered_and_never_reaches_zuora(
    start_bot: StartBot, slack: SlackEmulator, zuora: ZuoraSimulator, mode: str
) -> None:
    overrides: dict[str, Any] = {"slack_bot_token": "xoxb-not-known-to-this-workspace"}
    if mode == "socket":
        overrides |= {"slack_app_token": APP_TOKEN, "slack_signing_secret": None}
    bot = await start_bot(**overrides)
    if mode == "socket":
        await slack.wait_for_socket()
    text = TYPED["cancel"]
    if mode == "socket":
        await slack.socket_send_command(text, ALLOWED, CHANNEL)
    else:
        delivery = await slack.send_command(bot.events_url, text, ALLOWED, CHANNEL)
        assert delivery.status == 200
    told = await reply_to(slack, CHANNEL, ALLOWED, "Slack rejects its bot token")
    assert told.ephemeral_for == ALLOWED
    assert "Nothing was sent to Zuora" in told.text
    assert api_calls(zuora) == []
