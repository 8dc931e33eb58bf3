"""`/healthz` tells the truth: Slack from the last auth.test (and the Socket Mode connection), Zuora from the
last token request and call, Redis off; 503 only before the bot serves and while Slack rejects the token.
`/metrics` has prometheus-client's process and Python collectors."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.health import Check, SlackHealth, ZuoraHealth, call_check
from bot.runtime import Runtime
from bot.sim.slack import SlackEmulator
from bot.sim.zuora import ZuoraSimulator
from bot.zuora.errors import ZuoraError
from bot.zuora.retry import NO_RETRY
from tests.conftest import APP_TOKEN, StartBot
from tests.e2e import free_port

# The tests of a running bot: no secret in anything it logged.
running_bot = pytest.mark.usefixtures("no_secrets_logged")


async def healthz(bot: Runtime) -> tuple[int, dict[str, Any]]:
    url = bot.events_url.replace("/slack/events", "/healthz")
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.json()


def check(body: dict[str, Any], name: str) -> tuple[str, str]:
    part = body["checks"][name]
    assert set(part) == {"status", "detail"}
    return part["status"], part["detail"]


async def list_environments(bot: Runtime) -> None:
    """One Zuora call through the bot's own client, without retries (its outcome is the last call's)."""
    await bot.components.zuora.list_test_environments(retry=NO_RETRY)


# -- the shape -------------------------------------------------------------------------------------------------


@running_bot
async def test_the_answer_has_a_status_and_a_check_for_slack_zuora_and_redis(bot: Runtime) -> None:
    status, body = await healthz(bot)
    assert status == 200
    assert set(body) == {"status", "checks"}
    assert body["status"] == "ok"
    assert list(body["checks"]) == ["slack", "zuora", "redis"]
    assert check(body, "slack") == ("ok", "auth.test ok")
    assert check(body, "zuora") == ("ok", "no call yet")
    assert check(body, "redis") == ("off", "not configured")


@running_bot
async def test_healthz_makes_no_call_of_its_own(bot: Runtime, slack: SlackEmulator) -> None:
    probes = len(slack.calls_to("auth.test"))
    for _ in range(5):
        assert (await healthz(bot))[0] == 200
    assert len(slack.calls_to("auth.test")) == probes == 1  # the one at start


# -- Slack -----------------------------------------------------------------------------------------------------


@running_bot
async def test_degraded_while_auth_test_fails_with_a_server_error_then_ok_again(
    bot: Runtime, slack: SlackEmulator
) -> None:
    slack.fail_next("auth.test", error="internal_error", status=500, count=2)
    for _ in range(2):
        assert await bot.health.slack.probe() == Check(
            "degraded", "auth.test: internal_error (HTTP 500)"
        )
        status, body = await healthz(bot)
        assert (status, body["status"]) == (200, "degraded")  # the bot still serves
        assert check(body, "slack") == ("degraded", "auth.test: internal_error (HTTP 500)")
        assert check(body, "zuora") == ("ok", "no call yet")
    await bot.health.slack.probe()  # Slack answers again
    status, body = await healthz(bot)
    assert (status, body["status"], check(body, "slack")) == (200, "ok", ("ok", "auth.test ok"))


@pytest.mark.parametrize("error", ["invalid_auth", "token_revoked", "account_inactive"])
@running_bot
async def test_503_while_slack_rejects_the_token_then_200_when_it_answers_again(
    bot: Runtime, slack: SlackEmulator, error: str
) -> None:
    slack.fail_next("auth.test", error=error, count=1)
    await bot.health.slack.probe()
    status, body = await healthz(bot)
    assert (status, body["status"]) == (503, "degraded")
    assert check(body, "slack") == ("degraded", f"Slack rejects the bot token ({error})")
    await bot.health.slack.probe()
    assert (await healthz(bot))[0] == 200


@running_bot
async def test_a_bot_whose_token_slack_does_not_know_serves_503(start_bot: StartBot) -> None:
    bot = await start_bot(slack_bot_token="xoxb-not-known-to-this-workspace")
    status, body = await healthz(bot)
    assert (status, check(body, "slack")) == (
        503,
        ("degraded", "Slack rejects the bot token (invalid_auth)"),
    )


@running_bot
async def test_degraded_while_slack_cannot_be_reached(start_bot: StartBot) -> None:
    bot = await start_bot(slack_api_url=f"http://127.0.0.1:{free_port()}/api/")  # nothing listens
    status, body = await healthz(bot)
    assert (status, body["status"]) == (200, "degraded")
    slack_status, detail = check(body, "slack")
    assert slack_status == "degraded" and detail.startswith("auth.test: no answer (")


@running_bot
async def test_socket_mode_reports_the_connection(
    start_bot: StartBot, slack: SlackEmulator
) -> None:
    bot = await start_bot(slack_app_token=APP_TOKEN, slack_signing_secret=None)
    await slack.wait_for_socket()
    status, body = await healthz(bot)
    assert (status, check(body, "slack")) == (200, ("ok", "auth.test ok; Socket Mode connected"))


async def test_a_lost_socket_mode_connection_is_degraded() -> None:
    async def answers() -> dict[str, Any]:
        return {"ok": True}

    connected = True

    async def is_connected() -> bool:
        return connected

    health = SlackHealth(answers)
    health.socket_connected = is_connected
    await health.probe()
    assert await health.check() == Check("ok", "auth.test ok; Socket Mode connected")
    connected = False
    assert await health.check() == Check("degraded", "auth.test ok; Socket Mode not connected")


async def test_auth_test_runs_in_the_background_and_again_sooner_after_a_failure() -> None:
    calls: list[float] = []
    loop = asyncio.get_running_loop()
    enough = asyncio.Event()

    async def auth_test() -> dict[str, Any]:
        calls.append(loop.time())
        if len(calls) >= 4:
            enough.set()
        if len(calls) == 2:
            raise OSError("connection refused")
        return {"ok": True}

    # Every 0.5 s while Slack answers, every 0.01 s after it did not: the second round fails, so the
    # third comes quickly, and the fourth a whole interval later.
    health = SlackHealth(auth_test, interval=0.5, retry_interval=0.01)
    await health.start()
    assert calls and health.last == Check("ok", "auth.test ok")  # the first, before start returns
    try:
        await asyncio.wait_for(enough.wait(), 10)
    finally:
        await health.stop()
    first, failed, retried, fourth = calls[:4]
    assert failed - first >= 0.5
    assert retried - failed < 0.5
    assert fourth - retried >= 0.5
    assert health.probes == len(calls)


async def test_an_auth_test_answer_that_is_not_json_is_degraded_not_a_crash() -> None:
    """A proxy's HTML error page where Slack should be: slack_sdk's error then holds the body as text."""

    async def behind_a_proxy() -> dict[str, Any]:
        page = AsyncSlackResponse(
            client=None,
            http_verb="POST",
            api_url="https://slack.com/api/auth.test",
            req_args={},
            data="<html>502 Bad Gateway</html>",
            headers={},
            status_code=502,
        )
        raise SlackApiError("The request to the Slack API failed.", page)

    health = SlackHealth(behind_a_proxy, interval=60)
    await health.start()
    try:
        assert health.last == Check("degraded", "auth.test: error (HTTP 502)")
    finally:
        await health.stop()


async def test_start_does_not_wait_long_for_a_slow_auth_test() -> None:
    released = asyncio.Event()

    async def slow() -> dict[str, Any]:
        await released.wait()
        return {"ok": True}

    health = SlackHealth(slow, interval=60)
    await health.start(first_within=0.05)
    assert health.last == Check("degraded", "auth.test: no answer within 0.05 s")
    await health.stop()
    released.set()


# -- Zuora -----------------------------------------------------------------------------------------------------


@running_bot
async def test_zuora_degraded_after_a_failing_call_and_ok_after_a_good_one(
    bot: Runtime, zuora: ZuoraSimulator
) -> None:
    await list_environments(bot)
    assert check((await healthz(bot))[1], "zuora") == ("ok", "last call: HTTP 200")
    zuora.inject("status", operation="getAllTestEnvironments", status=503, count=1)
    with pytest.raises(ZuoraError):
        await list_environments(bot)
    status, body = await healthz(bot)
    assert (status, body["status"]) == (200, "degraded")
    assert check(body, "zuora") == ("degraded", "last call: HTTP 503")
    assert check(body, "slack") == ("ok", "auth.test ok")
    await list_environments(bot)
    status, body = await healthz(bot)
    assert (status, body["status"], check(body, "zuora")) == (
        200,
        "ok",
        ("ok", "last call: HTTP 200"),
    )


@running_bot
async def test_zuora_degraded_after_a_dropped_connection(
    bot: Runtime, zuora: ZuoraSimulator
) -> None:
    zuora.inject("drop", operation="getAllTestEnvironments", count=1)
    with pytest.raises(ZuoraError):
        await list_environments(bot)
    assert check((await healthz(bot))[1], "zuora") == ("degraded", "last call: no connection")


@running_bot
async def test_zuora_degraded_while_its_token_request_fails(
    bot: Runtime, zuora: ZuoraSimulator
) -> None:
    zuora.inject("status", operation="createToken", status=500, count=1)
    with pytest.raises(ZuoraError):
        await list_environments(bot)
    status, body = await healthz(bot)
    assert (status, check(body, "zuora")) == (200, ("degraded", "token request: HTTP 500"))
    await list_environments(bot)
    assert check((await healthz(bot))[1], "zuora") == ("ok", "last call: HTTP 200")


@running_bot
async def test_credentials_zuora_refuses_are_degraded_not_503(start_bot: StartBot) -> None:
    bot = await start_bot(zuora_client_secret="not-the-secret-of-this-client")
    with pytest.raises(ZuoraError):
        await list_environments(bot)
    status, body = await healthz(bot)
    assert (status, check(body, "zuora")) == (
        200,
        ("degraded", "token refused: check the OAuth client id/secret"),
    )


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        ("200", Check("ok", "last call: HTTP 200")),
        ("404", Check("ok", "last call: HTTP 404")),  # Zuora answered: a refusal is not ill health
        ("403", Check("ok", "last call: HTTP 403")),
        ("401", Check("degraded", "last call: token refused (HTTP 401)")),
        ("429", Check("degraded", "last call: rate limited (HTTP 429)")),
        ("502", Check("degraded", "last call: HTTP 502")),
        ("timeout", Check("degraded", "last call: timeout")),
        ("connection", Check("degraded", "last call: no connection")),
        ("malformed", Check("degraded", "last call: unreadable answer")),
    ],
)
def test_what_a_call_outcome_says(outcome: str, expected: Check) -> None:
    assert call_check(outcome) == expected


def test_token_exchanges_are_not_taken_for_calls() -> None:
    health = ZuoraHealth()
    health.observe("createToken", "500", 0.1)
    assert health.check() == Check("ok", "no call yet")
    health.observe("getJobOfTestEnvironment", "timeout", 30.0)
    assert health.check() == Check("degraded", "last call: timeout")


# -- /metrics --------------------------------------------------------------------------------------------------


@running_bot
async def test_metrics_have_the_process_and_python_collectors(bot: Runtime) -> None:
    url = bot.events_url.replace("/slack/events", "/metrics")
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        text = await response.text()
    names = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] != "#"}
    assert {
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
    } <= names
    assert "python_info" in names
    assert any(name.startswith("python_gc_") for name in names)
