"""Shared fixtures: the Zuora simulator, the Slack emulator and a running bot wired to both over loopback."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from hypothesis import settings

from bot.config import load_settings
from bot.runtime import Runtime
from bot.sim.clock import ManualClock
from bot.sim.slack import SlackEmulator
from bot.sim.zuora import ZuoraSimulator
from bot.sim.zuora_seed import ENV_STAGING, ENV_UAT
from tests.programs import in_ci

ALLOWED = "U0ALLOWED1"
GROUP_MEMBER = "U0GROUPIE1"
STRANGER = "U0STRANGER"
GROUP = "S0PLATFORM"
CHANNEL = "C0SANDBOX1"
NOTIFY = "C0AUDITLOG"
BOT_TOKEN = "xoxb-test-bot-token-0123456789"
APP_TOKEN = "xapp-1-test-app-token-0123456789"
SIGNING_SECRET = "test-signing-secret-abcdef0123456789"
ZUORA_CLIENT_ID = "0123abcd-0000-4000-8000-00000000c11d"
ZUORA_CLIENT_SECRET = "zuora-client-secret-never-logged"
SECRETS = (BOT_TOKEN, APP_TOKEN, SIGNING_SECRET, ZUORA_CLIENT_SECRET)

# Property tests: derandomized in CI, so that a run can be repeated example for example; random elsewhere, to
# keep exploring. No deadline in either: a busy machine is slow, not wrong.
settings.register_profile("ci", derandomize=True, deadline=None, database=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if in_ci() else "dev")


@pytest.fixture(autouse=True)
def _no_outside_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests see only the configuration they give: nothing from the developer's shell."""
    for name in list(os.environ):
        if name.startswith(("SLACK_", "ZUORA_", "SANDBOX_")) or name in (
            "PORT",
            "HOST",
            "LOG_LEVEL",
            "LOG_FORMAT",
        ):
            monkeypatch.delenv(name)


@pytest.fixture
def clock() -> ManualClock:
    """Zuora's clock, moved by hand; it starts at the real time, as Slack's (the emulator's) runs on it."""
    return ManualClock(start=datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
async def zuora(clock: ManualClock) -> AsyncIterator[ZuoraSimulator]:
    async with ZuoraSimulator(
        clock, client_id=ZUORA_CLIENT_ID, client_secret=ZUORA_CLIENT_SECRET
    ) as sim:
        yield sim


@pytest.fixture
async def slack() -> AsyncIterator[SlackEmulator]:
    async with SlackEmulator(
        bot_token=BOT_TOKEN, app_token=APP_TOKEN, signing_secret=SIGNING_SECRET
    ) as emu:
        emu.set_usergroup(GROUP, [GROUP_MEMBER])
        yield emu


def bot_settings(zuora: ZuoraSimulator, slack: SlackEmulator, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "slack_bot_token": BOT_TOKEN,
        "slack_signing_secret": SIGNING_SECRET,
        "slack_api_url": slack.api_url,
        "port": 0,
        "zuora_base_url": zuora.base_url,
        "zuora_client_id": ZUORA_CLIENT_ID,
        "zuora_client_secret": ZUORA_CLIENT_SECRET,
        "zuora_timeout_seconds": 5,
        "sandbox_allowed_users": ALLOWED,
        "sandbox_allowed_usergroups": GROUP,
        "sandbox_environments": f"staging={ENV_STAGING},uat={ENV_UAT}",
        "sandbox_notify_channel": NOTIFY,
    }
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not None}


StartBot = Callable[..., Awaitable[Runtime]]


@pytest.fixture
async def start_bot(
    zuora: ZuoraSimulator, slack: SlackEmulator, clock: ManualClock
) -> AsyncIterator[StartBot]:
    """Start a bot with the standard test settings, overridden by keyword (None removes a setting)."""
    started: list[Runtime] = []

    async def start(**overrides: Any) -> Runtime:
        settings = load_settings(env_file=None, **bot_settings(zuora, slack, **overrides))
        runtime = Runtime(settings, host="127.0.0.1", now=clock.now)
        await runtime.start()
        started.append(runtime)
        return runtime

    yield start
    for runtime in reversed(started):
        await runtime.stop()


@pytest.fixture
async def bot(start_bot: StartBot) -> Runtime:
    return await start_bot()


@pytest.fixture
def no_secrets_logged(
    caplog: pytest.LogCaptureFixture, request: pytest.FixtureRequest
) -> Iterator[None]:
    """Every log record of the test, at DEBUG, as logged (before any redaction): no secret in any, nor any
    OAuth token the Zuora simulator issued."""
    caplog.set_level(logging.DEBUG)
    # Taken now, so that the simulator is torn down after this check, not before.
    sim: ZuoraSimulator | None = (
        request.getfixturevalue("zuora") if "zuora" in request.fixturenames else None
    )
    yield
    issued: set[str] = set()
    if sim is not None:
        issued = {
            r.headers["Authorization"].removeprefix("Bearer ")
            for r in sim.requests
            if r.headers.get("Authorization", "").startswith("Bearer ")
        }
    records = [*caplog.get_records("setup"), *caplog.get_records("call")]
    assert records, "nothing was logged: the check would prove nothing"
    logged = "\n".join(f"{r.getMessage()} {r.__dict__!r}" for r in records)
    for secret in (*SECRETS, *issued):
        assert secret not in logged, "a secret reached the logs"


# The root logger and every logger configure() sets a level on.
CONFIGURED_LOGGERS = ("", "aiohttp.access", "httpx")


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Put back the root handlers and every level configure() sets: later tests log as before."""
    root = logging.getLogger()
    handlers = list(root.handlers)
    levels = {name: logging.getLogger(name).level for name in CONFIGURED_LOGGERS}
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    """Starts an aiohttp server on a free loopback port for `handler` (every path); gives its base URL."""
    runners: list[web.AppRunner] = []

    async def start(handler: Handler) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        return f"http://127.0.0.1:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()
