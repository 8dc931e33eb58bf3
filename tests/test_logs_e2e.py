"""No token, secret, response_url or WebSocket ticket in any log line at any level: the bot's own logging
(`bot.logs.configure`) at DEBUG, end to end, in HTTP and in Socket Mode, where Bolt and slack_sdk log whole
requests, envelopes and the WebSocket URL."""

from __future__ import annotations

import io
import re

import pytest

from bot import logs
from bot.runtime import secrets_of
from bot.sim.slack import SlackEmulator
from bot.sim.zuora import ZuoraSimulator
from bot.sim.zuora_seed import JOB_CANCELLABLE
from tests.conftest import ALLOWED, APP_TOKEN, CHANNEL, SECRETS, StartBot
from tests.e2e import reply_to, until_handled


@pytest.fixture
def output(restore_logging: None) -> io.StringIO:
    """What the bot's log handler writes, at DEBUG; the logging set-up is put back afterwards."""
    return io.StringIO()


def leaks(text: str, slack: SlackEmulator, zuora: ZuoraSimulator) -> list[str]:
    found = [secret for secret in SECRETS if secret in text]
    issued = [
        r.headers["Authorization"].removeprefix("Bearer ")
        for r in zuora.requests
        if r.headers.get("Authorization", "").startswith("Bearer ")
    ]
    found += [token for token in issued if token in text]
    # The secret part of every response_url handed out, and every WebSocket ticket.
    found += re.findall(r"(?:commands|actions)\\?/T[A-Z0-9]+\\?/\d{6,}\\?/[0-9a-f]{8,}", text)
    found += [m for m in re.findall(r"ticket=([^&\s\"'\\]+)", text) if m != "***"]
    return found


@pytest.mark.parametrize("fmt", ["text", "json"])
async def test_http_mode_at_debug_logs_no_secret(
    start_bot: StartBot, slack: SlackEmulator, zuora: ZuoraSimulator, output: io.StringIO, fmt: str
) -> None:
    bot = await start_bot()
    logs.configure("DEBUG", fmt, secrets_of(bot.settings), stream=output)
    await slack.send_command(bot.events_url, f"cancel staging {JOB_CANCELLABLE}", ALLOWED, CHANNEL)
    await reply_to(slack, CHANNEL, ALLOWED, "CANCELLING")
    await until_handled(slack, bot, "cancel")
    await slack.send_command(bot.events_url, "cancel", ALLOWED, CHANNEL, sign_mode="bad_signature")
    text = output.getvalue()
    assert "performActionOfJob" in text and "slack_bolt" in text  # DEBUG lines of both were written
    assert leaks(text, slack, zuora) == []


async def test_socket_mode_at_debug_logs_no_secret(
    start_bot: StartBot, slack: SlackEmulator, zuora: ZuoraSimulator, output: io.StringIO
) -> None:
    logs.configure("DEBUG", "text", [APP_TOKEN, *SECRETS], stream=output)
    bot = await start_bot(slack_app_token=APP_TOKEN, slack_signing_secret=None)
    await slack.wait_for_socket()
    await slack.socket_send_command(f"cancel staging {JOB_CANCELLABLE}", ALLOWED, CHANNEL)
    await reply_to(slack, CHANNEL, ALLOWED, "CANCELLING")
    await until_handled(slack, bot, "cancel")
    text = output.getvalue()
    assert "ticket=***" in text  # the WebSocket URL was logged, its ticket scrubbed
    assert "response_url" in text  # so were envelopes with their response_url
    assert leaks(text, slack, zuora) == []
