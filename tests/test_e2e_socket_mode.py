"""Socket Mode: the emulator opens a local WebSocket, delivers a slash-command envelope, and the bot's ack
and reply come back over it (no signing secret needed, no HTTP events endpoint)."""

from __future__ import annotations

import pytest

from bot.sim.slack import SlackEmulator
from bot.sim.zuora import ZuoraSimulator
from bot.sim.zuora_seed import ENV_STAGING, JOB_CANCELLABLE
from tests.conftest import ALLOWED, APP_TOKEN, CHANNEL, NOTIFY, STRANGER, StartBot
from tests.e2e import api_calls, reply_to, text_of, zuora_calls

pytestmark = pytest.mark.usefixtures("no_secrets_logged")


async def test_cancel_over_socket_mode(
    start_bot: StartBot, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    bot = await start_bot(slack_app_token=APP_TOKEN, slack_signing_secret=None)
    await slack.wait_for_socket()
    ack = await slack.socket_send_command(f"cancel staging {JOB_CANCELLABLE}", ALLOWED, CHANNEL)
    assert "envelope_id" in ack

    card = await reply_to(slack, CHANNEL, ALLOWED, "CANCELLING")
    assert card.ephemeral_for is None
    (request,) = zuora_calls(zuora, "performActionOfJob")
    assert request.path == f"/test-environments/{ENV_STAGING}/jobs/{JOB_CANCELLABLE}/actions"
    assert request.headers["Zuora-Track-Id"] in text_of(card)
    await reply_to(slack, NOTIFY, ALLOWED, "cancelled")
    assert slack.calls_to("apps.connections.open")
    assert bot.ready


async def test_socket_mode_refusal_and_no_events_endpoint(
    start_bot: StartBot, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    import aiohttp

    bot = await start_bot(slack_app_token=APP_TOKEN, slack_signing_secret=None)
    await slack.wait_for_socket()
    await slack.socket_send_command(f"cancel staging {JOB_CANCELLABLE}", STRANGER, CHANNEL)
    await reply_to(slack, CHANNEL, STRANGER, "Refresh Central Sandbox")
    assert api_calls(zuora) == []
    async with (
        aiohttp.ClientSession() as session,
        session.post(bot.events_url, data=b"x") as response,
    ):
        assert response.status in (404, 405)  # unsigned HTTP requests have no way in
    async with (
        aiohttp.ClientSession() as session,
        session.get(bot.events_url.replace("/slack/events", "/healthz")) as response,
    ):
        assert response.status == 200
