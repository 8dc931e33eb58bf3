"""The demo's server side over loopback: the console's JSON API on the Slack emulator, the demo's wiring
and configuration, and `sandbox-bot demo` as a process."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
import pytest
from aiohttp import web

from bot.demo import (
    ALIASES,
    ALLOWED_USER,
    AUDIT_CHANNEL,
    GROUP,
    GROUP_USER,
    OUTSIDER,
    SEED_SECONDS,
    WORK_CHANNEL,
    Demo,
)
from bot.sim.clock import ManualClock
from bot.sim.slack import SlackEmulator
from bot.sim.slack_console import Persona, SlackConsole
from bot.sim.slack_state import Message, RecordedCall
from bot.sim.zuora_seed import (
    ENV_QA,
    ENV_STAGING,
    ENV_TRAINING,
    JOB_CANCELLABLE,
    SUPPORT_USER_ID,
)
from bot.sim.zuora_state import CANCELLABLE_STATUSES
from tests.e2e import free_port

API = "console/api/"
STATUS = f"/sandbox status staging {JOB_CANCELLABLE}"
STAGING_JOB = f"staging {JOB_CANCELLABLE}"
STATIC = Path(__file__).resolve().parent.parent / "bot" / "sim" / "static"


@pytest.fixture
async def demo() -> AsyncIterator[Demo]:
    """The demo without its watch, so that only what a test does reaches Slack."""
    async with Demo(watch_seconds=None) as running:
        yield running


@pytest.fixture
async def still_demo(clock: ManualClock) -> AsyncIterator[Demo]:
    """The demo without its watch, with Zuora's clock standing still: jobs move only when a test acts."""
    async with Demo(watch_seconds=None, clock=clock) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        yield session


async def get(http: aiohttp.ClientSession, url: str, **params: Any) -> tuple[int, Any]:
    async with http.get(url, params={k: str(v) for k, v in params.items()}) as response:
        return response.status, await response.json()


async def post(http: aiohttp.ClientSession, url: str, body: Any) -> tuple[int, Any]:
    async with http.post(url, json=body) as response:
        return response.status, await response.json()


async def view(http: aiohttp.ClientSession, demo: Demo, user: str, channel: str) -> Any:
    status, body = await get(http, demo.url + API + "messages", channel=channel, user=user)
    assert status == 200
    return body


async def seen(
    http: aiohttp.ClientSession,
    demo: Demo,
    user: str,
    channel: str,
    where: Callable[[Any], bool],
    timeout: float = 8.0,
) -> Any:
    """The newest message `user` sees in `channel` that matches `where`, waiting through the long poll."""
    return await seen_at(http, demo.url, user, channel, where, timeout)


async def seen_at(
    http: aiohttp.ClientSession,
    url: str,
    user: str,
    channel: str,
    where: Callable[[Any], bool],
    timeout: float = 8.0,
) -> Any:
    """`seen`, for the console at `url`."""
    deadline = time.monotonic() + timeout
    version = None
    while time.monotonic() < deadline:
        params: dict[str, Any] = {"channel": channel, "user": user, "wait": 1}
        if version is not None:
            params["after"] = version
        status, body = await get(http, url + API + "messages", **params)
        assert status == 200
        version = body["version"]
        found = [m for m in body["messages"] if where(m)]
        if found:
            return found[-1]
    raise AssertionError(f"{user} never saw the message in {channel}")


def asked_slack(demo: Demo) -> list[Any]:
    """The Slack calls the bot made, but for its own health check (auth.test at start)."""
    return [call for call in demo.slack.calls if call.method != "auth.test"]


def shown(message: Any) -> str:
    return json.dumps(message["blocks"], ensure_ascii=False) + "\n" + message["text"]


def button(message: Any, action_id: str) -> tuple[str, dict[str, Any]]:
    """(block_id, element) of the button `action_id` in a message of the console's view."""
    for block in message["blocks"]:
        for element in block.get("elements", []):
            if element.get("action_id") == action_id:
                return block["block_id"], element
    raise AssertionError(f"no {action_id} button")


async def typed(http: aiohttp.ClientSession, demo: Demo, user: str, text: str) -> Any:
    status, body = await post(
        http, demo.url + API + "command", {"user": user, "channel": WORK_CHANNEL, "text": text}
    )
    assert status == 200, body
    return body


# -- the page -----------------------------------------------------------------------------------------------


async def test_page_and_its_files_are_served_with_a_strict_policy(
    demo: Demo, http: aiohttp.ClientSession
) -> None:
    async with http.get(demo.url) as response:
        assert response.status == 200
        assert response.content_type == "text/html"
        assert "default-src 'none'" in response.headers["Content-Security-Policy"]
        page = await response.text()
    assert '<script src="/static/console.js"' in page
    for name, kind in (("console.js", "text/javascript"), ("console.css", "text/css")):
        async with http.get(demo.url + "static/" + name) as response:
            assert response.status == 200
            assert response.content_type == kind
            assert await response.read() == (STATIC / name).read_bytes()
    for missing in ("static/console.py", "static/..%2Fslack.py", "static/console.html"):
        async with http.get(demo.url + missing) as response:
            assert response.status == 404


def test_the_page_loads_nothing_from_elsewhere_and_writes_no_html() -> None:
    for name in ("console.html", "console.js", "console.css"):
        text = (STATIC / name).read_text()
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.I), name
        assert "@import" not in text and "url(" not in text
    script = (STATIC / "console.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script


async def test_workspace_describes_the_personas_channels_and_names(
    demo: Demo, http: aiohttp.ClientSession
) -> None:
    status, workspace = await get(http, demo.url + API + "workspace")
    assert status == 200
    assert [p["id"] for p in workspace["personas"]] == [ALLOWED_USER, GROUP_USER, OUTSIDER]
    assert [p["name"] for p in workspace["personas"]] == ["alice", "bob", "carol"]
    assert [c["name"] for c in workspace["channels"]] == ["sandbox-ops", "sandbox-audit"]
    assert workspace["usergroups"] == {GROUP: "platform-team"}
    assert workspace["users"][demo.slack.bot.user_id] == "sandbox-bot"
    assert STATUS in workspace["hints"]


# -- commands, cards and clicks through the console ----------------------------------------------------------


async def test_typed_status_shows_an_ephemeral_card_to_the_typist_only(
    demo: Demo, http: aiohttp.ClientSession
) -> None:
    answer = await typed(http, demo, ALLOWED_USER, STATUS)
    assert answer["ok"] is True

    card = await seen(http, demo, ALLOWED_USER, WORK_CHANNEL, lambda m: "EXPORTING" in shown(m))
    assert card["ephemeral"] is True
    assert card["is_bot"] is True and card["user_name"] == "sandbox-bot"
    assert card["blocks"][0]["type"] == "header"
    assert JOB_CANCELLABLE in shown(card)
    button(card, "sandbox_cancel_job")

    others = await view(http, demo, GROUP_USER, WORK_CHANNEL)
    assert others["messages"] == []
    assert others["counts"] == {WORK_CHANNEL: 0, AUDIT_CHANNEL: 0}
    mine = await view(http, demo, ALLOWED_USER, WORK_CHANNEL)
    assert mine["counts"][WORK_CHANNEL] == 1


async def test_click_and_confirm_cancels_and_the_card_changes_in_place(
    still_demo: Demo, http: aiohttp.ClientSession
) -> None:
    demo = still_demo  # nothing changes what bob sees until he clicks
    await typed(http, demo, GROUP_USER, STATUS)  # allowed through the user group
    card = await seen(http, demo, GROUP_USER, WORK_CHANNEL, lambda m: "EXPORTING" in shown(m))
    block_id, _ = button(card, "sandbox_cancel_job")

    before = (await view(http, demo, GROUP_USER, WORK_CHANNEL))["version"]
    poll = asyncio.ensure_future(
        get(
            http,
            demo.url + API + "messages",
            channel=WORK_CHANNEL,
            user=GROUP_USER,
            after=before,
            wait=20,
        )
    )
    status, answer = await post(
        http,
        demo.url + API + "click",
        {
            "user": GROUP_USER,
            "channel": WORK_CHANNEL,
            "ts": card["ts"],
            "block_id": block_id,
            "action_id": "sandbox_cancel_job",
        },
    )
    assert (status, answer["ok"]) == (200, True)
    # The long poll wakes on what the click changed: not on the bot's reads, nor before the click.
    status, changed = await asyncio.wait_for(poll, 20)
    assert status == 200 and changed["version"] > before
    assert any("CANCELLING" in shown(m) for m in changed["messages"])

    updated = await seen(
        http,
        demo,
        GROUP_USER,
        WORK_CHANNEL,
        lambda m: m["ts"] == card["ts"] and "CANCELLING" in shown(m),
    )
    assert updated["edited"] is True
    assert demo.zuora.job(ENV_STAGING, JOB_CANCELLABLE)["status"] == "CANCELLING"
    note = await seen(http, demo, GROUP_USER, AUDIT_CHANNEL, lambda m: JOB_CANCELLABLE in shown(m))
    assert note["ephemeral"] is False


async def test_not_allowed_user_sees_the_refusal_and_zuora_is_not_called(
    demo: Demo, http: aiohttp.ClientSession
) -> None:
    await typed(http, demo, OUTSIDER, f"/sandbox cancel staging {JOB_CANCELLABLE}")
    refusal = await seen(
        http, demo, OUTSIDER, WORK_CHANNEL, lambda m: "Refresh Central Sandbox" in shown(m)
    )
    assert refusal["ephemeral"] is True
    assert f"<@{OUTSIDER}>" in shown(refusal)
    assert not [r for r in demo.zuora.requests if r.operation == "performActionOfJob"]
    assert demo.zuora.job(ENV_STAGING, JOB_CANCELLABLE)["status"] == "EXPORTING"
    assert (await view(http, demo, ALLOWED_USER, WORK_CHANNEL))["messages"] == []


async def test_a_click_on_what_the_user_cannot_see_is_refused(
    demo: Demo, http: aiohttp.ClientSession
) -> None:
    await typed(http, demo, ALLOWED_USER, STATUS)
    card = await seen(http, demo, ALLOWED_USER, WORK_CHANNEL, lambda m: "EXPORTING" in shown(m))
    block_id, _ = button(card, "sandbox_cancel_job")
    click = {
        "user": OUTSIDER,  # the card is ephemeral to alice
        "channel": WORK_CHANNEL,
        "ts": card["ts"],
        "block_id": block_id,
        "action_id": "sandbox_cancel_job",
    }
    assert (await post(http, demo.url + API + "click", click))[0] == 404
    missing = {**click, "user": ALLOWED_USER, "action_id": "sandbox_refresh_confirm"}
    assert (await post(http, demo.url + API + "click", missing))[0] == 404
    assert not [r for r in demo.zuora.requests if r.operation == "performActionOfJob"]


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (
            {"user": "U0NOBODY", "channel": WORK_CHANNEL, "text": "/sandbox help"},
            400,
            "unknown user",
        ),
        (
            {"user": ALLOWED_USER, "channel": "C0OTHER", "text": "/sandbox help"},
            400,
            "unknown channel",
        ),
        ({"user": ALLOWED_USER, "channel": WORK_CHANNEL, "text": "help"}, 400, "slash command"),
        (
            {"user": ALLOWED_USER, "channel": WORK_CHANNEL, "text": "/deploy x"},
            400,
            "not a command",
        ),
        ({"user": ALLOWED_USER, "channel": WORK_CHANNEL, "text": ""}, 400, "text"),
        (["not", "an", "object"], 400, "JSON object"),
    ],
)
async def test_bad_commands_are_answered_with_a_reason(
    demo: Demo, http: aiohttp.ClientSession, body: Any, status: int, error: str
) -> None:
    got, answer = await post(http, demo.url + API + "command", body)
    assert got == status
    assert answer["ok"] is False and error in answer["error"]
    assert not asked_slack(demo)


async def test_only_json_from_a_loopback_name_is_accepted(
    demo: Demo, http: aiohttp.ClientSession
) -> None:
    command = {"user": ALLOWED_USER, "channel": WORK_CHANNEL, "text": "/sandbox help"}
    async with http.post(demo.url + API + "command", data=json.dumps(command)) as response:
        assert response.status == 415  # a form post from another site's page does not qualify
    headers = {"Host": f"evil.example:{demo.slack.port}"}
    async with http.post(demo.url + API + "command", json=command, headers=headers) as response:
        assert response.status == 403
    async with http.get(demo.url + API + "workspace", headers=headers) as response:
        assert response.status == 403
    assert not asked_slack(demo)
    async with http.post(
        demo.url.replace("127.0.0.1", "localhost") + API + "command", json=command
    ) as response:
        assert response.status == 200


async def test_the_page_time_zone_becomes_the_users_own(
    demo: Demo, http: aiohttp.ClientSession
) -> None:
    """As Slack sets a user's zone from their device: the bot writes times in the zone the page shows."""
    url = demo.url + API + "time_zone"
    assert await post(http, url, {"tz": "America/New_York"}) == (
        200,
        {"ok": True, "tz": "America/New_York"},
    )
    assert {demo.slack.workspace.users[u].tz for u in (ALLOWED_USER, GROUP_USER, OUTSIDER)} == {
        "America/New_York"
    }
    for bad in ("Mars/Olympus", "../etc/passwd", "", 5, None):
        status, answer = await post(http, url, {"tz": bad})
        assert status == 400 and answer["ok"] is False
    assert demo.slack.workspace.users[ALLOWED_USER].tz == "America/New_York"


async def test_message_queries_are_validated(demo: Demo, http: aiohttp.ClientSession) -> None:
    url = demo.url + API + "messages"
    assert (await get(http, url, channel=WORK_CHANNEL, user="U0NOBODY"))[0] == 400
    assert (await get(http, url, channel="C0NOPE", user=ALLOWED_USER))[0] == 400
    assert (await get(http, url, channel=WORK_CHANNEL, user=ALLOWED_USER, after="x"))[0] == 400
    assert (await get(http, url, channel=WORK_CHANNEL, user=ALLOWED_USER, after=-1))[0] == 400


# -- the console against a stand-in bot: what exactly is sent ---------------------------------------------------

Received = list[tuple[dict[str, str], bytes]]


@pytest.fixture
async def stand_in_bot() -> AsyncIterator[tuple[str, Received, dict[str, Any]]]:
    """A server in place of the bot that records each request and answers as `behaviour` says."""
    received: Received = []
    behaviour: dict[str, Any] = {"status": 200, "delay": 0.0}

    async def events(request: web.Request) -> web.Response:
        received.append((dict(request.headers), await request.read()))
        await asyncio.sleep(behaviour["delay"])
        return web.Response(status=behaviour["status"])

    app = web.Application()
    app.router.add_post("/slack/events", events)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events", received, behaviour
    finally:
        await runner.cleanup()


SECRET = "console-test-signing-secret"
CARD = [
    {"type": "section", "text": {"type": "mrkdwn", "text": "*a card*"}},
    {
        "type": "actions",
        "block_id": "job:1",
        "elements": [
            {"type": "button", "action_id": "sandbox_job_status", "value": '{"env":"e","job":"j"}'}
        ],
    },
]


@pytest.fixture
async def console() -> AsyncIterator[SlackConsole]:
    emulator = SlackEmulator(bot_token="xoxb-console-test", signing_secret=SECRET)
    emulator.add_user("U0ONE", "one")
    emulator.add_channel("C0WORK", "work")
    console = SlackConsole(emulator, personas=[Persona("U0ONE", "a user")], channels=["C0WORK"])
    await emulator.start()
    try:
        yield console
    finally:
        await emulator.stop()


def verified(headers: dict[str, str], body: bytes) -> dict[str, str]:
    """The form fields of a request, after checking its Slack signature as a bot must."""
    timestamp = headers["X-Slack-Request-Timestamp"]
    assert abs(time.time() - int(timestamp)) < 60
    base = b"v0:" + timestamp.encode() + b":" + body
    expected = "v0=" + hmac.new(SECRET.encode(), base, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Slack-Signature"], expected)
    return dict(parse_qsl(body.decode()))


async def test_a_typed_command_is_a_signed_slash_command(
    console: SlackConsole,
    stand_in_bot: tuple[str, Received, dict[str, Any]],
    http: aiohttp.ClientSession,
) -> None:
    events_url, received, _ = stand_in_bot
    console.attach(events_url)
    command = {"user": "U0ONE", "channel": "C0WORK", "text": "/sandbox  jobs staging "}
    status, answer = await post(http, console.url + API + "command", command)
    assert (status, answer["ok"]) == (200, True)
    ((headers, body),) = received
    fields = verified(headers, body)
    assert fields["command"] == "/sandbox"
    assert fields["text"] == "jobs staging"
    assert (fields["user_id"], fields["user_name"]) == ("U0ONE", "one")
    assert (fields["channel_id"], fields["channel_name"]) == ("C0WORK", "work")
    assert fields["response_url"].startswith(console.emulator.base_url + "commands/")


async def test_a_click_is_a_signed_block_actions_payload_for_that_message(
    console: SlackConsole,
    stand_in_bot: tuple[str, Received, dict[str, Any]],
    http: aiohttp.ClientSession,
) -> None:
    events_url, received, _ = stand_in_bot
    console.attach(events_url)
    ws = console.emulator.workspace
    ephemeral = ws.add_message(
        Message("C0WORK", ws.next_ts(), "U0SANDBOT", "card", CARD, ephemeral_for="U0ONE")
    )
    public = ws.add_message(Message("C0WORK", ws.next_ts(), "U0SANDBOT", "card", CARD))

    for message in (ephemeral, public):
        click = {
            "user": "U0ONE",
            "channel": "C0WORK",
            "ts": message.ts,
            "block_id": "job:1",
            "action_id": "sandbox_job_status",
        }
        status, answer = await post(http, console.url + API + "click", click)
        assert (status, answer["ok"]) == (200, True)
        headers, body = received[-1]
        payload = json.loads(verified(headers, body)["payload"])
        assert payload["type"] == "block_actions"
        assert payload["user"]["id"] == "U0ONE"
        assert payload["container"] == {
            "type": "message",
            "message_ts": message.ts,
            "channel_id": "C0WORK",
            "is_ephemeral": message.is_ephemeral,
        }
        assert ("message" in payload) is not message.is_ephemeral
        (action,) = payload["actions"]
        assert (action["action_id"], action["block_id"]) == ("sandbox_job_status", "job:1")
        assert action["value"] == '{"env":"e","job":"j"}'
        assert payload["response_url"].startswith(console.emulator.base_url + "actions/")


@pytest.mark.parametrize(
    ("behaviour", "error"),
    [({"status": 401}, "dispatch_failed"), ({"delay": 3.5}, "operation_timeout")],
)
async def test_a_bot_that_fails_or_is_slow_is_reported_like_slack_does(
    console: SlackConsole,
    stand_in_bot: tuple[str, Received, dict[str, Any]],
    http: aiohttp.ClientSession,
    behaviour: dict[str, Any],
    error: str,
) -> None:
    events_url, _, current = stand_in_bot
    current.update(behaviour)
    console.attach(events_url)
    command = {"user": "U0ONE", "channel": "C0WORK", "text": "/sandbox help"}
    status, answer = await post(http, console.url + API + "command", command)
    assert status == 200
    assert (answer["ok"], answer["error"]) == (False, error)


async def test_no_bot_attached_or_reachable(
    console: SlackConsole, http: aiohttp.ClientSession
) -> None:
    command = {"user": "U0ONE", "channel": "C0WORK", "text": "/sandbox help"}
    assert (await post(http, console.url + API + "command", command))[0] == 503
    console.attach(f"http://127.0.0.1:{free_port()}/slack/events")  # nothing listens
    status, answer = await post(http, console.url + API + "command", command)
    assert (status, answer["error"]) == (502, "the bot is not reachable")


async def test_stopping_releases_a_waiting_long_poll(console: SlackConsole) -> None:
    async with aiohttp.ClientSession() as session:
        url = console.url + API + "messages"
        params = {"channel": "C0WORK", "user": "U0ONE", "after": "1000000", "wait": "25"}
        poll = asyncio.ensure_future(session.get(url, params=params))
        await console.emulator.workspace.wait_for(lambda: console.long_polls, 10, "the long poll")
        started = time.monotonic()
        await console.emulator.stop()
        response = await asyncio.wait_for(poll, 20)
        assert response.status == 200
        response.release()
    assert time.monotonic() - started < 20  # released, not left to run out its 25 s


async def test_the_long_poll_version_moves_only_on_what_that_user_sees_there(
    console: SlackConsole,
) -> None:
    ws = console.emulator.workspace
    console.emulator.add_user("U0TWO", "two")

    def version() -> int:
        return int(console.view("C0WORK", "U0ONE")["version"])

    def post(channel: str = "C0WORK", **fields: Any) -> Message:
        return ws.add_message(Message(channel=channel, ts=ws.next_ts(), user="U0TWO", **fields))

    card = post(text="a card")
    shown = version()
    assert shown > 0
    ws.record(RecordedCall("conversations.history", {}, None, "json", 200, {"ok": True}))
    post(channel="C0ELSEWHERE", text="another channel")
    post(text="for two only", ephemeral_for="U0TWO")
    ws.edit(card, text="a card", metadata={"event_type": "unseen", "event_payload": {}})
    assert version() == shown  # a read, another channel, someone else's ephemeral, nothing shown
    ws.edit(card, text="the card, edited")
    assert version() > shown
    edited = version()
    card.deleted = True
    ws.changed(card)
    assert version() > edited
    assert console.view("C0WORK", "U0ONE")["messages"] == []


def test_a_console_needs_someone_and_somewhere() -> None:
    with pytest.raises(ValueError, match="persona"):
        SlackConsole(SlackEmulator(), personas=[], channels=["C0WORK"])


async def test_routes_are_added_only_before_start(console: SlackConsole) -> None:
    with pytest.raises(RuntimeError, match="before starting"):
        console.emulator.extend(lambda app: None)


# -- the demo's configuration ---------------------------------------------------------------------------------


async def test_the_shell_environment_does_not_reach_the_demo(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SLACK_APP_TOKEN", "xapp-1-real-token-from-the-shell")
    monkeypatch.setenv("SANDBOX_ALLOWED_USERS", OUTSIDER)
    monkeypatch.setenv("SLACK_API_URL", "https://slack.com/api/")
    monkeypatch.setenv("ZUORA_ENTITY_ID", "real-entity")
    async with Demo() as demo:
        assert demo.runtime is not None
        settings = demo.runtime.settings
        assert settings.socket_mode is False
        assert settings.sandbox_allowed_users == (ALLOWED_USER,)
        assert settings.slack_api_url == demo.slack.api_url
        assert settings.zuora_entity_id is None
        assert settings.sandbox_notify_channel == AUDIT_CHANNEL
        assert dict(settings.aliases) == ALIASES
        assert demo.runtime.host == "127.0.0.1"
        for url in (demo.url, demo.zuora.base_url, demo.runtime.events_url):
            assert url.startswith("http://127.0.0.1:")


async def test_each_demo_makes_up_its_own_secrets() -> None:
    first, second = Demo(), Demo()
    assert set(first.secrets).isdisjoint(second.secrets)
    assert all(len(secret) >= 32 for secret in first.secrets)


async def test_a_taken_port_is_reported(demo: Demo) -> None:
    other = Demo(port=demo.slack.port)
    with pytest.raises(OSError, match="in use"):
        await other.start()
    await other.stop()  # nothing left running; stopping again is harmless


# -- `sandbox-bot demo` as a process ---------------------------------------------------------------------------


async def read_line(stream: asyncio.StreamReader, timeout: float) -> str:
    return (await asyncio.wait_for(stream.readline(), timeout)).decode()


async def run_cli(*args: str) -> asyncio.subprocess.Process:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "ZUORA_", "SANDBOX_"))
    }
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "demo",
        *args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )


async def stopped(process: asyncio.subprocess.Process, timeout: float = 10) -> int:
    try:
        return await asyncio.wait_for(process.wait(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise


@pytest.mark.parametrize("stop_with", [signal.SIGTERM, signal.SIGINT])
async def test_cli_prints_the_url_serves_the_console_and_stops_cleanly(
    http: aiohttp.ClientSession, stop_with: signal.Signals
) -> None:
    process = await run_cli("--port", "0")
    assert process.stdout is not None and process.stderr is not None
    try:
        line = await read_line(process.stdout, 20)
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert match, line
        async with http.get(match.group(0)) as response:
            assert response.status == 200
        status, workspace = await get(http, match.group(0) + API + "workspace")
        assert status == 200 and workspace["title"] == "sandbox-bot demo"
        # Where the bot's /healthz and /metrics are: on the console's port.
        line = await read_line(process.stdout, 5)
        pages = re.findall(r"http://127\.0\.0\.1:\d+/(?:healthz|metrics)\b", line)
        assert pages == [match.group(0) + "healthz", match.group(0) + "metrics"], line
        status, health = await get(http, pages[0])
        assert (status, health["status"]) == (200, "ok")
        async with http.get(pages[1]) as response:
            assert response.status == 200
            assert "sandbox_commands_total" in await response.text()
    finally:
        process.send_signal(stop_with)
    assert await stopped(process) == 0
    rest = (await process.stdout.read()).decode()
    assert "stopped" in rest
    errors = (await process.stderr.read()).decode()
    assert "Traceback" not in errors


async def test_cli_on_a_taken_port_says_so_and_exits_1(demo: Demo) -> None:
    process = await run_cli("--port", str(demo.slack.port))
    assert await stopped(process, 20) == 1
    assert process.stderr is not None
    errors = (await process.stderr.read()).decode()
    assert "--port" in errors and "Traceback" not in errors


async def test_the_demo_watch_announces_running_jobs_in_the_audit_channel(
    http: aiohttp.ClientSession,
) -> None:
    async with Demo(watch_seconds=0.2) as demo:
        card = await seen(
            http, demo, OUTSIDER, AUDIT_CHANNEL, lambda m: JOB_CANCELLABLE in shown(m)
        )
        assert card["ephemeral"] is False
        assert "sandbox_cancel_job" in shown(card)


@pytest.mark.parametrize("verbose", [True, False])
async def test_cli_verbose_shows_the_bots_log_and_audit_lines_and_is_quiet_without(
    http: aiohttp.ClientSession, verbose: bool
) -> None:
    process = await run_cli("--port", "0", *(["--verbose"] if verbose else []))
    assert process.stdout is not None and process.stderr is not None
    try:
        match = re.search(r"http://127\.0\.0\.1:\d+/", await read_line(process.stdout, 20))
        assert match
        url = match.group(0)
        command = {
            "user": OUTSIDER,
            "channel": WORK_CHANNEL,
            "text": f"/sandbox cancel {STAGING_JOB}",
        }
        assert (await post(http, url + API + "command", command))[0] == 200
        await seen_at(
            http, url, OUTSIDER, WORK_CHANNEL, lambda m: "Refresh Central Sandbox" in shown(m)
        )
        if verbose:
            # The refusal's audit record reaches the terminal; the bot logs as it goes.
            lines = [await read_line(process.stderr, 20)]
            while "sandbox_bot.audit" not in lines[-1]:
                lines.append(await read_line(process.stderr, 20))
            logged = "".join(lines)
            assert "INFO bot.runtime: sandbox-bot ready" in logged
            assert re.search(rf"INFO sandbox_bot\.audit: refused .*user={OUTSIDER}", logged)
    finally:
        process.send_signal(signal.SIGTERM)
    assert await stopped(process) == 0
    errors = (await process.stderr.read()).decode()
    if not verbose:
        assert not re.search(r" (INFO|DEBUG) ", errors)  # warnings only
    assert "Traceback" not in errors
    assert "xoxb-demo-" not in errors


# -- the demo stays alive --------------------------------------------------------------------------------------


def zuora_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def alias_of(env_id: str) -> str:
    return next(alias for alias, known in ALIASES.items() if known == env_id)


def hinted_jobs(hints: list[str]) -> list[tuple[str, str]]:
    """(alias, job ID) of every `/sandbox status <alias> <job>` hint."""
    return [(w[2], w[3]) for h in hints if (w := h.split())[:2] == ["/sandbox", "status"]]


async def test_after_30_minutes_there_is_a_job_to_cancel_and_its_times_are_real(
    clock: ManualClock, http: aiohttp.ClientSession
) -> None:
    """The done-when of issue 16: the demo's own speed and seeding interval, its clock driven by the test
    (the demo's loop does on the wall clock what this does with `seed_round`)."""
    async with Demo(clock=clock, watch_seconds=None, seed_tick=None) as demo:
        started = clock.now()
        while clock.now() < started + timedelta(minutes=30):
            clock.advance(30)
            demo.seed_round()
            assert demo.seeder.cancellable(), f"nothing to cancel at {clock.now()}"
        now = clock.now()
        assert now - started == timedelta(minutes=30)
        for env in demo.zuora.state.environments.values():  # no time shown is ahead of the clock
            for job in env.jobs.values():
                shown_job = demo.zuora.job(env.id, job.id)
                for field in ("createTime", "updateTime", "jobStartTime", "jobEndTime"):
                    if field in shown_job:
                        assert zuora_time(shown_job[field]) <= now, (field, shown_job)

        (alias, job_id), *_ = hinted_jobs(demo.console.hints)
        job = demo.zuora.job(ALIASES[alias], job_id)
        assert job["status"] in CANCELLABLE_STATUSES
        # Started by the demo within its interval: real time, not twenty times ahead.
        created = zuora_time(job["createTime"])
        assert now - timedelta(seconds=SEED_SECONDS + 30) <= created <= now

        # The bot shows that job's real creation time, and cancels it.
        await typed(http, demo, ALLOWED_USER, f"/sandbox status {alias} {job_id}")
        card = await seen(http, demo, ALLOWED_USER, WORK_CHANNEL, lambda m: job_id in shown(m))
        assert f"<!date^{int(created.timestamp())}^" in shown(card)
        block_id, _ = button(card, "sandbox_cancel_job")
        click = {
            "user": ALLOWED_USER,
            "channel": WORK_CHANNEL,
            "ts": card["ts"],
            "block_id": block_id,
            "action_id": "sandbox_cancel_job",
        }
        assert (await post(http, demo.url + API + "click", click))[0] == 200
        await seen(http, demo, ALLOWED_USER, WORK_CHANNEL, lambda m: "CANCELLING" in shown(m))
        assert demo.zuora.job(ALIASES[alias], job_id)["status"] == "CANCELLING"


async def test_times_are_the_wall_clocks() -> None:
    async with Demo(watch_seconds=None, seed_tick=None) as demo:
        job = demo.zuora.job(ENV_STAGING, JOB_CANCELLABLE)
        now = datetime.now(UTC)
        assert abs(demo.zuora.clock.now() - now) < timedelta(seconds=5)
        # Seeded a minute (of Zuora's) into EXPORTING: about 20 real seconds ago at the demo's speed.
        assert now - timedelta(seconds=60) < zuora_time(job["createTime"]) <= now
        demo.zuora.state.cancel(ENV_STAGING, JOB_CANCELLABLE, "U0TEST")
        seeded = demo.seed_round()  # nothing is cancellable: one is started at once
        assert seeded is not None
        created = zuora_time(demo.zuora.job(seeded.env_id, seeded.id)["createTime"])
        assert abs(created - datetime.now(UTC)) < timedelta(seconds=5)


async def test_the_demo_loop_starts_refreshes_and_the_watch_announces_them(
    clock: ManualClock, http: aiohttp.ClientSession
) -> None:
    async with Demo(clock=clock, watch_seconds=0.2, seed_seconds=60, seed_tick=0.01) as demo:
        await seen(http, demo, OUTSIDER, AUDIT_CHANNEL, lambda m: JOB_CANCELLABLE in shown(m))
        assert demo.seeder.cancellable()[0].id == JOB_CANCELLABLE  # none due yet: nothing new
        clock.advance(61)
        job = await demo.slack.workspace.wait_for(
            lambda: next((j for j in demo.seeder.cancellable() if j.id != JOB_CANCELLABLE), None),
            10,
            "a refresh the demo started",
        )
        assert job.created_by == SUPPORT_USER_ID
        card = await seen(http, demo, OUTSIDER, AUDIT_CHANNEL, lambda m: job.id in shown(m))
        assert "sandbox_cancel_job" in shown(card)


async def test_the_demo_reminds_of_its_scheduled_refresh_within_two_minutes(
    clock: ManualClock, http: aiohttp.ClientSession
) -> None:
    async with Demo(clock=clock, watch_seconds=0.2, seed_tick=0.01) as demo:
        card = await seen(
            http,
            demo,
            OUTSIDER,
            AUDIT_CHANNEL,
            lambda m: ENV_TRAINING in shown(m) and "SCHEDULED" in shown(m) and not m["thread_ts"],
        )
        assert f"<!subteam^{GROUP}>" in shown(card)  # started outside the bot: the team is told

        def reminder(m: Any) -> bool:
            return m["thread_ts"] == card["ts"] and "Scheduled refresh" in shown(m)

        # At once: the 24h and 1h lead times passed when it was scheduled (2.5 minutes ahead).
        first = await seen(http, demo, OUTSIDER, AUDIT_CHANNEL, reminder)
        for expected in (f"<!subteam^{GROUP}>", "*training*", "Acme Training", "in 2m."):
            assert expected in shown(first)
        assert "reminder 1d and 1h before" in shown(first)
        assert first["broadcast"] is True and card["broadcast"] is False  # also sent to the channel
        assert button(first, "sandbox_cancel_job")
        clock.advance(91)  # past the demo's own lead time: a minute before it starts
        second = await seen(
            http, demo, OUTSIDER, AUDIT_CHANNEL, lambda m: reminder(m) and m["ts"] != first["ts"]
        )
        assert "in 59s" in shown(second) and "reminder 1m before" in shown(second)
        clock.advance(60)
        await seen(
            http,
            demo,
            OUTSIDER,
            AUDIT_CHANNEL,
            lambda m: m["thread_ts"] == card["ts"] and "has started" in shown(m),
        )


async def test_hints_name_jobs_that_exist_and_can_be_acted_on_as_they_come_and_go(
    clock: ManualClock, http: aiohttp.ClientSession
) -> None:
    async with Demo(clock=clock, watch_seconds=None, seed_tick=None) as demo:
        first = demo.console.hints
        assert first == [
            "/sandbox help",
            "/sandbox envs",
            "/sandbox jobs staging",
            STATUS,
            "/sandbox refresh qa",  # staging and uat are busy, dev refreshed 3 days ago
        ]
        demo.zuora.state.cancel(ENV_STAGING, JOB_CANCELLABLE, "U0TEST")
        assert hinted_jobs(demo.console.hints) == []  # no job to name until the next round

        seeded = demo.seed_round()  # staging is still cancelling, uat importing: qa's turn
        assert seeded is not None and seeded.env_id == ENV_QA
        hints = demo.console.hints
        assert hints[2:] == ["/sandbox jobs qa", f"/sandbox status qa {seeded.id}"]
        status, workspace = await get(http, demo.url + API + "workspace")
        assert (status, workspace["hints"]) == (200, hints)
        # The page's long poll brings them too, so the chips change without a reload.
        assert (await view(http, demo, ALLOWED_USER, WORK_CHANNEL))["hints"] == hints

        clock.advance(5)  # the cancel has ended: staging may be refreshed again
        assert demo.console.hints[-1] == "/sandbox refresh staging"
        for alias, job_id in hinted_jobs(demo.console.hints):
            assert demo.zuora.job(ALIASES[alias], job_id)["status"] in CANCELLABLE_STATUSES


async def test_the_bots_healthz_and_metrics_are_on_the_consoles_port(
    demo: Demo, http: aiohttp.ClientSession
) -> None:
    assert demo.health_url == demo.url + "healthz"
    assert demo.runtime is not None
    own = f"http://127.0.0.1:{demo.runtime.port}/healthz"
    status, health = await get(http, demo.health_url)
    assert (status, health) == await get(http, own)
    assert (status, health["status"]) == (200, "ok")
    assert health["checks"]["redis"] == {"status": "off", "detail": "not configured"}
    async with http.get(demo.metrics_url) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    assert "sandbox_zuora_calls_total" in text and "process_cpu_seconds_total" in text


async def test_the_console_passes_the_bots_pages_only_once_attached(
    console: SlackConsole, http: aiohttp.ClientSession
) -> None:
    async with http.get(console.url + "healthz") as response:
        assert response.status == 404  # no bot attached
    console.attach("http://127.0.0.1:1/slack/events", pages_url=f"http://127.0.0.1:{free_port()}")
    status, answer = await get(http, console.url + "healthz")
    assert (status, answer["error"]) == (502, "the bot is not reachable")
