"""Viewers, end to end: they look (envs, jobs, status, Refresh status) and get no buttons that act in replies
only they see; a viewer's typed or clicked cancel or refresh never reaches Zuora; `*` admits full members of
the installing workspace, decided with users.info, and nobody of another team or a guest."""

from __future__ import annotations

import pytest

from bot.runtime import Runtime
from bot.sim.slack import SlackEmulator
from bot.sim.zuora import ZuoraSimulator
from bot.sim.zuora_seed import JOB_CANCELLABLE
from tests.conftest import ALLOWED, APP_TOKEN, CHANNEL, StartBot
from tests.e2e import action_values, api_calls, reply_to, text_of, until_handled, zuora_calls

pytestmark = pytest.mark.usefixtures("no_secrets_logged")

VIEWER = "U0VIEWER01"
MEMBER = "U0MEMBER01"
GUEST = "U0GUEST001"
OUTSIDER = "U0CONNECT1"  # of another team, through Slack Connect
CANCEL = "sandbox_cancel_job"
STATUS = "sandbox_job_status"


async def bot_in(mode: str, start_bot: StartBot, slack: SlackEmulator, viewers: str) -> Runtime:
    slack.add_user(VIEWER, "vera")
    slack.add_user(MEMBER, "mona")
    slack.add_user(GUEST, "gus", guest="multi")
    slack.add_user(OUTSIDER, "otto", team_id="T0OTHERORG")
    if mode == "socket":
        bot = await start_bot(
            slack_app_token=APP_TOKEN, slack_signing_secret=None, sandbox_viewer_users=viewers
        )
        await slack.wait_for_socket()
        return bot
    return await start_bot(sandbox_viewer_users=viewers)


async def send(mode: str, slack: SlackEmulator, bot: Runtime, text: str, user: str) -> None:
    if mode == "socket":
        await slack.socket_send_command(text, user, CHANNEL)
    else:
        await slack.send_command(bot.events_url, text, user, CHANNEL)


@pytest.mark.parametrize("mode", ["http", "socket"])
async def test_a_viewer_looks_without_buttons_that_act(
    mode: str, start_bot: StartBot, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    bot = await bot_in(mode, start_bot, slack, VIEWER)
    await send(mode, slack, bot, "envs", VIEWER)
    envs = await reply_to(slack, CHANNEL, VIEWER, "Test environments")
    assert envs.ephemeral_for == VIEWER and "Acme Staging" in text_of(envs)
    await send(mode, slack, bot, "jobs staging", VIEWER)
    jobs = await reply_to(slack, CHANNEL, VIEWER, "Jobs of")
    assert JOB_CANCELLABLE in text_of(jobs)
    assert action_values(jobs, CANCEL) == [] and action_values(jobs, STATUS) != []
    await send(mode, slack, bot, f"status staging {JOB_CANCELLABLE}", VIEWER)
    card = await reply_to(slack, CHANNEL, VIEWER, "EXPORTING")
    assert card.ephemeral_for == VIEWER
    assert action_values(card, CANCEL) == [] and action_values(card, STATUS) != []
    # The same for an operator shows Cancel job: the difference is the role, not the command.
    await send(mode, slack, bot, f"status staging {JOB_CANCELLABLE}", ALLOWED)
    operator_card = await reply_to(slack, CHANNEL, ALLOWED, "EXPORTING")
    assert action_values(operator_card, CANCEL) != []
    assert zuora_calls(zuora, "performActionOfJob") == []


@pytest.mark.parametrize("mode", ["http", "socket"])
@pytest.mark.parametrize("text", [f"cancel staging {JOB_CANCELLABLE}", "refresh staging"])
async def test_a_viewer_who_types_an_action_is_refused_before_zuora(
    mode: str, text: str, start_bot: StartBot, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    bot = await bot_in(mode, start_bot, slack, VIEWER)
    await send(mode, slack, bot, text, VIEWER)
    refusal = await reply_to(slack, CHANNEL, VIEWER, "Refresh Central Sandbox")
    assert "You are a viewer" in text_of(refusal) and refusal.ephemeral_for == VIEWER
    await until_handled(slack, bot, text.split()[0])
    assert api_calls(zuora) == []


async def test_a_viewer_clicking_cancel_on_a_shared_card_is_refused_and_refresh_status_works(
    start_bot: StartBot, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    bot = await bot_in("http", start_bot, slack, VIEWER)
    await slack.send_command(bot.events_url, f"cancel staging {JOB_CANCELLABLE}", ALLOWED, CHANNEL)
    shared = await slack.wait_for_message(
        CHANNEL, lambda m: m.ephemeral_for is None and "CANCELLING" in text_of(m)
    )
    (value,) = action_values(shared, STATUS)
    cancels = len(zuora_calls(zuora, "performActionOfJob"))
    await slack.send_block_action(bot.events_url, VIEWER, STATUS, value, CHANNEL, shared.ts)
    await until_handled(slack, bot, "button_status")
    assert len(zuora_calls(zuora, "getJobOfTestEnvironment")) == 1  # the viewer's Refresh status
    # A job list an operator shares has Cancel job; a viewer's click on it is checked against the role.
    await slack.send_block_action(bot.events_url, VIEWER, CANCEL, value, CHANNEL, shared.ts)
    refusal = await reply_to(slack, CHANNEL, VIEWER, "Refresh Central Sandbox")
    assert refusal.ephemeral_for == VIEWER
    await until_handled(slack, bot, "button_cancel")
    assert len(zuora_calls(zuora, "performActionOfJob")) == cancels


@pytest.mark.parametrize("mode", ["http", "socket"])
async def test_every_member_admits_the_workspace_and_no_guest_or_other_team(
    mode: str, start_bot: StartBot, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    bot = await bot_in(mode, start_bot, slack, "*")
    await send(mode, slack, bot, "envs", MEMBER)
    envs = await reply_to(slack, CHANNEL, MEMBER, "Test environments")
    assert "Acme Staging" in text_of(envs)
    for user in (OUTSIDER, GUEST):
        await send(mode, slack, bot, "envs", user)
        refusal = await reply_to(slack, CHANNEL, user, "Refresh Central Sandbox")
        assert "viewer role" in text_of(refusal)
    await until_handled(slack, bot, "envs", 3)
    assert len(zuora_calls(zuora, "getAllTestEnvironments")) == 1  # the member's only
    # Decided from users.info, never from the payload's team.
    assert {c.args.get("user") for c in slack.calls_to("users.info")} >= {MEMBER, OUTSIDER, GUEST}


async def test_help_lists_what_the_role_allows(start_bot: StartBot, slack: SlackEmulator) -> None:
    bot = await bot_in("http", start_bot, slack, VIEWER)
    await slack.send_command(bot.events_url, "help", VIEWER, CHANNEL)
    viewer_help = await reply_to(slack, CHANNEL, VIEWER, "Usage")
    assert "/sandbox status" in text_of(viewer_help)
    assert "/sandbox cancel" not in text_of(viewer_help)
    await slack.send_command(bot.events_url, "help", ALLOWED, CHANNEL)
    operator_help = await reply_to(slack, CHANNEL, ALLOWED, "Usage")
    assert "/sandbox cancel" in text_of(operator_help)
