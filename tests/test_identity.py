"""The bot's identity for Bolt (`bot.app.OneIdentity`), against the Slack emulator: one `auth.test` however many
requests arrive at once, and while Slack will not confirm the token, requests are refused without each one
waiting for an `auth.test` of its own."""

from __future__ import annotations

import asyncio

from slack_sdk.web.async_client import AsyncWebClient

from bot.app import IDENTITY_RETRY_SECONDS, OneIdentity
from bot.sim.slack import SlackEmulator
from tests.conftest import BOT_TOKEN


def auth_tests(slack: SlackEmulator) -> int:
    return sum(1 for call in slack.calls if call.method == "auth.test")


async def test_a_burst_at_start_makes_one_auth_test_and_every_request_gets_the_identity(
    slack: SlackEmulator,
) -> None:
    identity = OneIdentity(AsyncWebClient(token=BOT_TOKEN, base_url=slack.api_url))
    results = await asyncio.gather(*(identity(team_id="T1", user_id="U1") for _ in range(20)))
    assert auth_tests(slack) == 1
    assert {result.bot_user_id for result in results if result is not None} == {slack.bot.user_id}
    assert all(result is not None and result.bot_token == BOT_TOKEN for result in results)


async def test_while_slack_rejects_the_token_requests_are_refused_and_slack_asked_again_only_later(
    slack: SlackEmulator,
) -> None:
    now = [1000.0]
    identity = OneIdentity(
        AsyncWebClient(token=BOT_TOKEN, base_url=slack.api_url), clock=lambda: now[0]
    )
    slack.fail_next("auth.test", error="token_revoked", count=1)
    refused = await asyncio.gather(*(identity(team_id="T1", user_id="U1") for _ in range(10)))
    assert refused == [None] * 10
    assert auth_tests(slack) == 1  # the other nine did not queue for one each
    now[0] += IDENTITY_RETRY_SECONDS - 0.1
    assert await identity() is None
    assert auth_tests(slack) == 1
    now[0] += 0.2  # Slack answers again: the identity is known, and kept
    assert (await identity()) is not None
    assert (await identity()) is not None
    assert auth_tests(slack) == 2
