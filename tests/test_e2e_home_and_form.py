"""The App Home tab and the refresh form, end to end: signed HTTP and Socket Mode against the Zuora simulator
and the Slack emulator (which checks every view as Slack does, and applies each response_action)."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest

from bot.runtime import Runtime
from bot.sim.clock import ManualClock
from bot.sim.slack import SlackEmulator
from bot.sim.slack_views import View
from bot.sim.zuora import ZuoraSimulator
from bot.sim.zuora_seed import ENV_DEV, ENV_QA, ENV_STAGING, JOB_CANCELLABLE
from tests.conftest import ALLOWED, APP_TOKEN, CHANNEL, NOTIFY, STRANGER, StartBot
from tests.e2e import text_of, until_handled, zuora_calls

pytestmark = pytest.mark.usefixtures("no_secrets_logged")

VIEWER = "U0VIEWER01"
SHORTCUT = "sandbox_refresh_shortcut"


def shown(view: View | dict[str, Any]) -> str:
    blocks = view.blocks if isinstance(view, View) else view["blocks"]
    return json.dumps(blocks, ensure_ascii=False)


def action_ids(view: View | dict[str, Any]) -> list[str]:
    blocks = view.blocks if isinstance(view, View) else view["blocks"]
    found = []
    for block in blocks:
        for element in block.get("elements", []) if block.get("type") == "actions" else []:
            found.append(element.get("action_id"))
        if isinstance(block.get("accessory"), dict):
            found.append(block["accessory"].get("action_id"))
    return found


def newest_job(zuora: ZuoraSimulator, env_id: str) -> str:
    return max(zuora.state.jobs(env_id), key=lambda job: job.create_time).id


async def bot_in(mode: str, start_bot: StartBot, slack: SlackEmulator, **settings: Any) -> Runtime:
    slack.add_user(VIEWER, "vera", tz="America/New_York")
    slack.add_user(ALLOWED, "olive", tz="Europe/Berlin")
    if mode == "socket":
        bot = await start_bot(
            slack_app_token=APP_TOKEN,
            slack_signing_secret=None,
            sandbox_viewer_users=VIEWER,
            **settings,
        )
        await slack.wait_for_socket()
        return bot
    return await start_bot(sandbox_viewer_users=VIEWER, **settings)


async def open_home(mode: str, slack: SlackEmulator, bot: Runtime, user: str) -> None:
    if mode == "socket":
        await slack.socket_send_app_home_opened(user)
    else:
        await slack.send_app_home_opened(bot.events_url, user)


# -- App Home ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["http", "socket"])
async def test_the_home_tab_shows_environments_and_jobs_with_buttons_for_the_role(
    mode: str, start_bot: StartBot, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    bot = await bot_in(mode, start_bot, slack)
    await open_home(mode, slack, bot, ALLOWED)
    home = await slack.wait_for_home(ALLOWED)
    assert "Acme Staging" in shown(home) and ENV_STAGING in shown(home)
    assert "**" not in shown(home)  # mrkdwn as written, never doubled
    assert JOB_CANCELLABLE in shown(home)  # the running job of staging, with its status
    assert {"sandbox_refresh_open", "sandbox_home_reload", "sandbox_cancel_job"} <= set(
        action_ids(home)
    )
    # One Zuora round: the environments and the jobs of each known one, once each.
    assert len(zuora_calls(zuora, "getAllTestEnvironments")) == 1
    assert (
        len(zuora_calls(zuora, "getAllJobsOfTestEnvironment")) == 2
    )  # staging and uat, the aliased ones

    await open_home(mode, slack, bot, VIEWER)
    looked = await slack.wait_for_home(VIEWER)
    assert JOB_CANCELLABLE in shown(looked)
    assert action_ids(looked) == ["sandbox_home_reload"]  # a viewer's own view: nothing that acts

    await open_home(mode, slack, bot, STRANGER)
    outsider = await slack.wait_for_home(STRANGER)
    assert "Refresh Central Sandbox" in shown(outsider)
    assert ENV_STAGING not in shown(outsider) and "Acme" not in shown(outsider)


async def test_the_messages_tab_is_not_the_home(start_bot: StartBot, slack: SlackEmulator) -> None:
    bot = await bot_in("http", start_bot, slack)
    await slack.send_app_home_opened(bot.events_url, ALLOWED, "messages")
    await slack.send_app_home_opened(bot.events_url, VIEWER, "home")
    await slack.wait_for_home(VIEWER)
    assert slack.home_view(ALLOWED) is None
    assert len(slack.calls_to("views.publish")) == 1


async def test_cancel_from_the_home_tab_shows_the_new_state(
    start_bot: StartBot, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    bot = await bot_in("http", start_bot, slack)
    await open_home("http", slack, bot, ALLOWED)
    await slack.wait_for_home(ALLOWED, lambda v: "sandbox_cancel_job" in action_ids(v))
    await slack.send_view_action(bot.events_url, ALLOWED, "sandbox_cancel_job")
    after = await slack.wait_for_home(ALLOWED, lambda v: "CANCELLING" in shown(v))
    assert JOB_CANCELLABLE in shown(after)
    (cancel,) = zuora_calls(zuora, "performActionOfJob")
    assert JOB_CANCELLABLE in cancel.path
    # The team's audit trail has it too.
    await slack.wait_for_message(NOTIFY, lambda m: JOB_CANCELLABLE in json.dumps(m.blocks))


async def test_reload_reads_zuora_again(
    start_bot: StartBot, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    bot = await bot_in("http", start_bot, slack)
    await open_home("http", slack, bot, VIEWER)
    await slack.wait_for_home(VIEWER)
    before = len(zuora_calls(zuora, "getAllTestEnvironments"))
    await slack.send_view_action(bot.events_url, VIEWER, "sandbox_home_reload")
    await until_handled(slack, bot, "home_reload")
    assert len(zuora_calls(zuora, "getAllTestEnvironments")) == before + 1
    home = await slack.wait_for_home(VIEWER)
    assert ENV_QA in shown(home)  # known since the first look: its jobs are read too


# -- the refresh form ----------------------------------------------------------------------------------------------


async def open_form(how: str, slack: SlackEmulator, bot: Runtime, user: str) -> View:
    """Open the form by `how` and return it once Zuora's environments are in it (or the refusal)."""
    if how == "shortcut":
        await slack.send_shortcut(bot.events_url, user, SHORTCUT)
    elif how == "command":
        await slack.send_command(bot.events_url, "refresh", user, CHANNEL)
    elif how == "home":
        await open_home("http", slack, bot, user)
        await slack.wait_for_home(user, lambda v: "sandbox_refresh_open" in action_ids(v))
        await slack.send_view_action(bot.events_url, user, "sandbox_refresh_open")
    elif how == "socket-command":
        await slack.socket_send_command("refresh", user, CHANNEL)
    else:
        await slack.socket_send_shortcut(user, SHORTCUT)
    return await slack.wait_for_modal(
        user, lambda v: ENV_QA in shown(v) or not v.to_api().get("submit")
    )


@pytest.mark.parametrize("how", ["shortcut", "command", "home"])
async def test_the_form_opens_from_every_entry_point_and_refreshes_once(
    how: str, start_bot: StartBot, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    bot = await bot_in("http", start_bot, slack)
    form = await open_form(how, slack, bot, ALLOWED)
    assert form.callback_id == "sandbox_refresh_form" and ENV_QA in shown(form)
    step = await slack.send_view_submission(bot.events_url, ALLOWED, {"env": ENV_QA, "when": "now"})
    assert step.response_action == "update", step.detail
    confirm = slack.modal(ALLOWED)
    assert confirm is not None and "replaces everything" in shown(confirm)
    assert "28 days" in shown(confirm)
    done = await slack.send_view_submission(bot.events_url, ALLOWED)
    assert done.response_action == "update"
    result = await slack.wait_for_modal(ALLOWED, lambda v: "started" in shown(v))
    (create,) = zuora_calls(zuora, "createTestEnvironmentJob")
    assert ENV_QA in create.path and "scheduledRefreshTime" not in create.body
    job_id = newest_job(zuora, ENV_QA)
    assert job_id in shown(result)
    # The card goes to the notification channel, and to where the form was opened (a DM from Home/shortcut).
    await slack.wait_for_message(NOTIFY, lambda m: job_id in json.dumps(m.blocks))
    answered_in = CHANNEL if how == "command" else slack.dm_channel(ALLOWED)
    await slack.wait_for_message(answered_in, lambda m: job_id in json.dumps(m.blocks))
    if how == "home":  # the Home tab it was started from shows the new job
        await slack.wait_for_home(ALLOWED, lambda v: job_id in shown(v))


@pytest.mark.parametrize("how", ["socket-command", "socket-shortcut"])
async def test_the_form_in_socket_mode_schedules_one_refresh(
    how: str, start_bot: StartBot, slack: SlackEmulator, zuora: ZuoraSimulator, clock: ManualClock
) -> None:
    await bot_in("socket", start_bot, slack)
    form = await open_form(how, slack, None, ALLOWED)  # type: ignore[arg-type]
    assert ENV_QA in shown(form)
    at = clock.now() + timedelta(days=2)
    step = await slack.socket_send_view_submission(
        ALLOWED, {"env": ENV_QA, "when": "at", "at": int(at.timestamp())}
    )
    assert step.response_action == "update", step.detail
    done = await slack.socket_send_view_submission(ALLOWED)
    assert done.response_action == "update"
    await slack.wait_for_modal(ALLOWED, lambda v: "scheduled" in shown(v))
    (create,) = zuora_calls(zuora, "createTestEnvironmentJob")
    sent = create.body
    assert sent["jobType"] == "REFRESH" and sent["scheduledRefreshTime"].startswith(
        at.strftime("%Y-%m-%dT%H:%M")
    )


async def test_the_form_rejects_a_past_time_and_a_blocked_environment_inline(
    start_bot: StartBot, slack: SlackEmulator, zuora: ZuoraSimulator, clock: ManualClock
) -> None:
    bot = await bot_in("http", start_bot, slack)
    await open_form("shortcut", slack, bot, ALLOWED)
    missing = await slack.send_view_submission(
        bot.events_url, ALLOWED, {"env": ENV_QA, "when": "at"}
    )
    assert missing.response_action == "errors" and "Choose a date" in missing.errors["at"]
    past = clock.now() - timedelta(hours=1)
    late = await slack.send_view_submission(
        bot.events_url, ALLOWED, {"env": ENV_QA, "when": "at", "at": int(past.timestamp())}
    )
    assert late.response_action == "errors" and "passed" in late.errors["at"]
    assert "Europe/Berlin" in late.errors["at"]  # in the user's own time zone
    blocked = await slack.send_view_submission(
        bot.events_url, ALLOWED, {"env": ENV_DEV, "when": "now"}
    )
    assert blocked.response_action == "errors"
    assert "will not refresh" in blocked.errors["env"] and "Europe/Berlin" in blocked.errors["env"]
    assert zuora_calls(zuora, "createTestEnvironmentJob") == []


async def test_a_double_submit_creates_one_refresh(
    start_bot: StartBot, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    bot = await bot_in("http", start_bot, slack)
    await open_form("shortcut", slack, bot, ALLOWED)
    await slack.send_view_submission(bot.events_url, ALLOWED, {"env": ENV_QA, "when": "now"})
    first, second = await asyncio.gather(
        slack.send_view_submission(bot.events_url, ALLOWED),
        slack.send_view_submission(bot.events_url, ALLOWED),
    )
    assert {first.response_action, second.response_action} == {"update"}
    await until_handled(slack, bot, "refresh_form")
    await slack.wait_for_message(NOTIFY, lambda m: "REFRESH" in json.dumps(m.blocks).upper())
    assert len(zuora_calls(zuora, "createTestEnvironmentJob")) == 1


async def post_signed(slack: SlackEmulator, url: str, payload: dict[str, Any]) -> int:
    body = urlencode({"payload": json.dumps(payload)}).encode()
    stamp = int(time.time())
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": str(stamp),
        "X-Slack-Signature": slack.sign(body, stamp),
    }
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=headers) as r,
    ):
        await r.read()
        return r.status


async def test_a_non_operator_gets_a_modal_saying_why_and_their_submission_creates_nothing(
    start_bot: StartBot, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    bot = await bot_in("http", start_bot, slack)
    refused = await open_form("shortcut", slack, bot, VIEWER)
    assert "Refresh Central Sandbox" in shown(refused) and not refused.to_api().get("submit")
    assert "You are a viewer" in shown(refused) and "SANDBOX_" not in shown(refused)
    # A viewer replaying an operator's confirmation (a forged, but signed, submission) starts nothing.
    await open_form("shortcut", slack, bot, ALLOWED)
    step = await slack.send_view_submission(bot.events_url, ALLOWED, {"env": ENV_QA, "when": "now"})
    confirm = slack.modal(ALLOWED)
    assert confirm is not None
    forged = {
        **step.payload,
        "user": {**step.payload["user"], "id": VIEWER},
        "view": confirm.to_api(),
    }
    assert await post_signed(slack, bot.events_url, forged) == 200
    await until_handled(
        slack, bot, "refresh_form_submit", 2
    )  # the operator's step, then the forged one
    assert zuora_calls(zuora, "createTestEnvironmentJob") == []


async def test_a_confirmation_left_open_expires_and_starts_nothing(
    start_bot: StartBot, slack: SlackEmulator, zuora: ZuoraSimulator, clock: ManualClock
) -> None:
    bot = await bot_in("http", start_bot, slack)
    await open_form("shortcut", slack, bot, ALLOWED)
    soon = clock.now() + timedelta(minutes=5)
    await slack.send_view_submission(
        bot.events_url, ALLOWED, {"env": ENV_QA, "when": "at", "at": int(soon.timestamp())}
    )
    clock.advance(11 * 60)  # the confirmation stays open; its time passes too
    late = await slack.send_view_submission(bot.events_url, ALLOWED)
    assert late.response_action == "update"
    assert "10 minutes" in shown(slack.modal(ALLOWED))  # type: ignore[arg-type]
    assert zuora_calls(zuora, "createTestEnvironmentJob") == []


async def test_a_refresh_from_the_form_finishes_when_zuora_answers_during_a_shutdown(
    start_bot: StartBot, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    """A refresh the form started is not cut short with the requests that only read: Zuora answers while the bot
    is stopping, and the form shows the job it started, with its card, as without the shutdown."""
    bot = await bot_in("http", start_bot, slack)
    await open_form("shortcut", slack, bot, ALLOWED)
    await slack.send_view_submission(bot.events_url, ALLOWED, {"env": ENV_QA, "when": "now"})
    hold = zuora.hold("createTestEnvironmentJob")
    await slack.send_view_submission(bot.events_url, ALLOWED)
    await slack.wait_for(lambda: hold.reached)
    stopping = asyncio.create_task(bot.stop(drain_seconds=0))
    await slack.wait_for(lambda: bot.components.listeners.stopping)
    hold.release()
    await stopping
    job_id = newest_job(zuora, ENV_QA)
    assert job_id in shown(slack.modal(ALLOWED))  # type: ignore[arg-type]
    assert any(job_id in json.dumps(m.blocks) for m in slack.messages(NOTIFY))
    assert not [m for m in slack.messages(slack.dm_channel(ALLOWED)) if "stopped" in text_of(m)]
    assert bot.metrics.commands.labels("refresh_form", "ok")._value.get() == 1


async def test_a_slow_zuora_answers_starting_then_the_result(
    start_bot: StartBot, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    """The ack waits a moment for Zuora; past that it says "starting", and the result replaces it."""
    bot = await bot_in("http", start_bot, slack)
    await open_form("shortcut", slack, bot, ALLOWED)
    await slack.send_view_submission(bot.events_url, ALLOWED, {"env": ENV_QA, "when": "now"})
    hold = zuora.hold("createTestEnvironmentJob")
    confirmed = await slack.send_view_submission(bot.events_url, ALLOWED)
    assert confirmed.response_action == "update" and "Starting" in shown(slack.modal(ALLOWED))  # type: ignore[arg-type]
    assert hold.reached
    hold.release()
    await slack.wait_for_modal(ALLOWED, lambda v: "started" in shown(v))
    assert len(zuora_calls(zuora, "createTestEnvironmentJob")) == 1
