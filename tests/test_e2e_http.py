"""The HTTP surface besides /slack/events: /healthz and /metrics; and `sandbox-bot` itself as a process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from typing import Any

import aiohttp
import pytest

from bot.runtime import Runtime
from bot.sim.slack import SlackEmulator
from bot.sim.zuora import ZuoraSimulator
from bot.sim.zuora_seed import ENV_STAGING, JOB_CANCELLABLE
from tests.conftest import ALLOWED, CHANNEL, SECRETS, STRANGER, StartBot, bot_settings
from tests.e2e import free_port, reply_to, zuora_calls

pytestmark = pytest.mark.usefixtures("no_secrets_logged")


async def get(url: str) -> tuple[int, str, dict[str, str]]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.text(), dict(response.headers)


def base(bot: Runtime) -> str:
    return bot.events_url.removesuffix("/slack/events")


async def until_healthy(url: str, process: asyncio.subprocess.Process) -> None:
    """Wait until the bot process answers 200 on /healthz; fail at once if it exits first."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.returncode is not None:
            raise AssertionError(
                f"sandbox-bot exited with {process.returncode} before it was ready"
            )
        with contextlib.suppress(aiohttp.ClientError):
            if (await get(url + "/healthz"))[0] == 200:
                return
        await asyncio.sleep(0.1)  # polling interval of a readiness probe, not a synchronisation
    raise AssertionError("sandbox-bot did not become ready")


HEALTHY = {
    "status": "ok",
    "checks": {
        "slack": {"status": "ok", "detail": "auth.test ok"},
        "zuora": {"status": "ok", "detail": "no call yet"},  # 200 does not wait for a first token
        "redis": {"status": "off", "detail": "not configured"},
    },
}


async def test_healthz_is_503_until_ready_then_200(bot: Runtime) -> None:
    status, body, headers = await get(base(bot) + "/healthz")
    assert (status, json.loads(body)) == (200, HEALTHY)
    assert headers["Content-Type"].startswith("application/json")
    bot.ready = False  # as while starting
    status, body, _ = await get(base(bot) + "/healthz")
    assert (status, json.loads(body)) == (503, {**HEALTHY, "status": "starting"})
    async with (
        aiohttp.ClientSession() as session,
        session.post(bot.events_url, data=b"x") as response,
    ):
        assert response.status == 503  # nothing is processed before the bot is ready
    bot.ready = True


async def test_metrics_count_commands_and_zuora_calls(bot: Runtime, slack: SlackEmulator) -> None:
    await slack.send_command(bot.events_url, f"cancel staging {JOB_CANCELLABLE}", ALLOWED, CHANNEL)
    await reply_to(slack, CHANNEL, ALLOWED, "CANCELLING")
    await slack.send_command(bot.events_url, "envs", STRANGER, CHANNEL)
    await reply_to(slack, CHANNEL, STRANGER, "Refresh Central Sandbox")
    await slack.send_command(bot.events_url, "cancel", ALLOWED, CHANNEL)
    await reply_to(slack, CHANNEL, ALLOWED, "Usage")
    # A command is counted once its reply was delivered, which is just after Slack received it.
    await slack.wait_for(
        lambda: bot.metrics.registry.get_sample_value(
            "sandbox_commands_total", {"command": "cancel", "outcome": "usage"}
        )
    )
    status, text, headers = await get(base(bot) + "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    assert 'sandbox_commands_total{command="cancel",outcome="ok"} 1.0' in text
    assert 'sandbox_commands_total{command="envs",outcome="refused"} 1.0' in text
    assert 'sandbox_commands_total{command="cancel",outcome="usage"} 1.0' in text
    assert 'sandbox_zuora_calls_total{operation="performActionOfJob",status="200"} 1.0' in text
    assert "sandbox_zuora_call_seconds_bucket" in text


async def test_sandbox_bot_process_serves_http_mode_and_stops_on_sigterm(
    slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    """`python -m bot` with the documented variables: a signed cancel yields one Zuora request, a card and a
    notification; SIGTERM stops it cleanly; no secret in its output."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "ZUORA_", "SANDBOX_"))
    }
    settings: dict[str, Any] = bot_settings(zuora, slack)
    settings["port"] = free_port()
    env.update({name.upper(): str(value) for name, value in settings.items()})
    env["LOG_LEVEL"] = "DEBUG"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{settings['port']}"
        await until_healthy(url, process)
        await slack.send_command(
            url + "/slack/events", f"cancel staging {JOB_CANCELLABLE}", ALLOWED, CHANNEL
        )
        await reply_to(slack, CHANNEL, ALLOWED, "CANCELLING")
        (request,) = zuora_calls(zuora, "performActionOfJob")
        assert request.path == f"/test-environments/{ENV_STAGING}/jobs/{JOB_CANCELLABLE}/actions"
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(process.communicate(), timeout=15)
    assert process.returncode == 0
    logged = output.decode()
    assert "sandbox-bot ready" in logged and "zuora call" in logged
    for secret in SECRETS:
        assert secret not in logged


async def test_two_bots_side_by_side_have_their_own_ports_and_metrics(start_bot: StartBot) -> None:
    """The fixture can start two bots side by side (separate metrics registries)."""
    first = await start_bot()
    second = await start_bot()
    assert first.port != second.port
    assert first.metrics.registry is not second.metrics.registry
