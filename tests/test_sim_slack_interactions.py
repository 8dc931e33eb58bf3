"""What the Slack emulator sends for the App Home, shortcuts and modals, as Slack sends it: to a Bolt
app over signed HTTP and Socket Mode, and to a bare endpoint that keeps the raw requests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import pytest
from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from bot.sim.slack import SlackEmulator, Submission
from bot.sim.slack_views import REQUIRED, TROUBLE

BOT = "xoxb-test-bot"
APP = "xapp-test-app"
SECRET = "test-signing-secret"
CHANNEL = "C0OPS"
USER = "U0ALICE"
TEAM = "T0EMULATOR"
FORM_ID = "sandbox_refresh_form"
SHORTCUT = "sandbox_refresh_shortcut"
AT = int(datetime(2030, 7, 2, 22, tzinfo=UTC).timestamp())

OPTIONS = [
    {"text": {"type": "plain_text", "text": "staging"}, "value": "staging"},
    {"text": {"type": "plain_text", "text": "uat"}, "value": "uat"},
]
WHEN = [
    {"text": {"type": "plain_text", "text": "Now"}, "value": "now"},
    {"text": {"type": "plain_text", "text": "At a time"}, "value": "at"},
]
FORM: dict[str, Any] = {
    "type": "modal",
    "callback_id": FORM_ID,
    "private_metadata": '{"channel": "C0OPS"}',
    "title": {"type": "plain_text", "text": "Refresh a sandbox"},
    "submit": {"type": "plain_text", "text": "Next"},
    "close": {"type": "plain_text", "text": "Cancel"},
    "blocks": [
        {"type": "input", "block_id": "env", "label": {"type": "plain_text", "text": "Environment"},
         "element": {"type": "static_select", "action_id": "env", "options": OPTIONS}},
        {"type": "input", "block_id": "when", "label": {"type": "plain_text", "text": "When"},
         "element": {"type": "radio_buttons", "action_id": "when", "options": WHEN, "initial_option": WHEN[0]}},
        {"type": "input", "block_id": "at", "optional": True, "label": {"type": "plain_text", "text": "At"},
         "element": {"type": "datetimepicker", "action_id": "at"}},
        {"type": "actions", "block_id": "tools",
         "elements": [{"type": "button", "action_id": "check", "value": "v1",
                       "text": {"type": "plain_text", "text": "Check"}}]},
    ],
}  # fmt: skip
CONFIRM: dict[str, Any] = {
    "type": "modal",
    "callback_id": FORM_ID,
    "title": {"type": "plain_text", "text": "Confirm the refresh"},
    "submit": {"type": "plain_text", "text": "Refresh"},
    "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "Overwrites *staging*"}}],
}
HOME: dict[str, Any] = {
    "type": "home",
    "blocks": [
        {
            "type": "actions",
            "block_id": "home",
            "elements": [
                {
                    "type": "button",
                    "action_id": "sandbox_refresh_open",
                    "text": {"type": "plain_text", "text": "Refresh…"},
                },
                {
                    "type": "static_select",
                    "action_id": "pick_env",
                    "placeholder": {"type": "plain_text", "text": "Environment"},
                    "options": OPTIONS,
                },
            ],
        }
    ],
}


@pytest.fixture
async def emu() -> AsyncIterator[SlackEmulator]:
    # A wide trigger window: a loaded machine may take a while between a payload and views.open;
    # the 3 s rule itself is tested with a stepped clock in test_sim_slack_views.py.
    async with SlackEmulator(
        bot_token=BOT, app_token=APP, signing_secret=SECRET, trigger_seconds=60
    ) as emulator:
        emulator.add_user(USER, "alice")
        emulator.add_channel(CHANNEL, "ops")
        yield emulator


@pytest.fixture
def client(emu: SlackEmulator) -> AsyncWebClient:
    return AsyncWebClient(token=BOT, base_url=emu.api_url)


@dataclass
class Bolt:
    """A Bolt app wired to the emulator, and the bodies its listeners were given."""

    app: AsyncApp
    url: str = ""
    bodies: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
async def bolt(emu: SlackEmulator) -> AsyncIterator[Bolt]:
    app = AsyncApp(
        client=AsyncWebClient(token=BOT, base_url=emu.api_url),
        signing_secret=SECRET,
    )
    runner = web.AppRunner(app.web_app())
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield Bolt(app, f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events")
    finally:
        await runner.cleanup()


def add_listeners(bolt: Bolt, answer: Callable[[dict[str, Any]], dict[str, Any] | None]) -> None:
    """The Home tab on app_home_opened, the form from the shortcut and the Home button, and
    `answer(body)` as the ack of a submission of the form (None: an empty ack)."""
    app = bolt.app

    @app.event("app_home_opened")
    async def home(body: dict[str, Any], event: dict[str, Any], client: AsyncWebClient) -> None:
        bolt.bodies.append(body)
        if event["tab"] == "home":
            await client.views_publish(user_id=event["user"], view=HOME)

    @app.shortcut(SHORTCUT)
    async def shortcut(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        bolt.bodies.append(body)
        await client.views_open(trigger_id=body["trigger_id"], view=FORM)

    @app.action("sandbox_refresh_open")
    async def open_form(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        bolt.bodies.append(body)
        await client.views_open(trigger_id=body["trigger_id"], view=FORM)

    @app.action("pick_env")
    @app.action("check")
    async def noted(ack: Any, body: dict[str, Any]) -> None:
        await ack()
        bolt.bodies.append(body)

    @app.view(FORM_ID)
    async def submitted(ack: Any, body: dict[str, Any]) -> None:
        bolt.bodies.append(body)
        await ack(**(answer(body) or {}))

    @app.view_closed(FORM_ID)
    async def closed(ack: Any, body: dict[str, Any]) -> None:
        await ack()
        bolt.bodies.append(body)


def of_type(bolt: Bolt, kind: str) -> list[dict[str, Any]]:
    return [b for b in bolt.bodies if b.get("type") == kind]


def event_bodies(bolt: Bolt) -> list[dict[str, Any]]:
    return [b for b in bolt.bodies if b.get("type") == "event_callback"]


async def open_form(emu: SlackEmulator, client: AsyncWebClient) -> str:
    """The form open for USER, as a slash command's trigger opens it; its view ID."""
    trigger_id = emu.command_payload("refresh", USER, CHANNEL)["trigger_id"]
    return str((await client.views_open(trigger_id=trigger_id, view=FORM))["view"]["id"])


# ---- the raw requests


class Receiver:
    """A stand-in bot endpoint that keeps the raw requests and answers `status` with `body`."""

    def __init__(self, status: int = 200, body: str = "") -> None:
        self.status, self.body = status, body
        self.requests: list[tuple[dict[str, str], bytes]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((dict(request.headers), await request.read()))
        return web.Response(status=self.status, text=self.body, content_type="application/json")


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    stand_in = Receiver()
    app = web.Application()
    app.router.add_post("/slack/events", stand_in.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield stand_in, f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events"
    finally:
        await runner.cleanup()


def signed(headers: dict[str, str], body: bytes) -> bool:
    return SignatureVerifier(SECRET).is_valid(
        body, headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"]
    )


def form_payload(body: bytes) -> dict[str, Any]:
    [(name, raw)] = parse_qsl(body.decode(), strict_parsing=True)
    assert name == "payload"
    payload: dict[str, Any] = json.loads(raw)
    return payload


async def test_app_home_opened_is_a_signed_json_event_callback(
    emu: SlackEmulator, client: AsyncWebClient, receiver: tuple[Receiver, str]
) -> None:
    stand_in, url = receiver
    delivery = await emu.send_app_home_opened(url, USER)
    await client.views_publish(user_id=USER, view=HOME)
    await emu.send_app_home_opened(url, USER, "messages")

    (first_headers, first), (_, second) = stand_in.requests
    assert first_headers["Content-Type"] == "application/json"
    assert signed(first_headers, first)
    body = json.loads(first)
    assert (body["type"], body["team_id"], body["api_app_id"]) == (
        "event_callback",
        TEAM,
        emu.app_id,
    )
    assert body["event_id"].startswith("Ev") and isinstance(body["event_time"], int)
    assert body["authorizations"][0]["user_id"] == emu.bot.user_id
    event = body["event"]
    assert (event["type"], event["user"], event["tab"]) == ("app_home_opened", USER, "home")
    assert event["channel"] == emu.dm_channel(USER) and event["channel"].startswith("D")
    assert "view" not in event  # nothing published yet
    assert float(event["event_ts"]) > 0
    later = json.loads(second)["event"]
    home = emu.home_view(USER)
    assert home is not None
    assert (later["tab"], later["view"]["id"], later["view"]["type"]) == (
        "messages",
        home.id,
        "home",
    )
    assert delivery.status == 200


async def test_a_shortcut_and_a_view_submission_are_signed_payload_forms(
    emu: SlackEmulator, client: AsyncWebClient, receiver: tuple[Receiver, str]
) -> None:
    stand_in, url = receiver
    await emu.send_shortcut(url, USER, SHORTCUT)
    await open_form(emu, client)
    result = await emu.send_view_submission(url, USER, {"env": "uat"})

    (headers, raw_shortcut), (submit_headers, raw_submission) = stand_in.requests
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert signed(headers, raw_shortcut) and signed(submit_headers, raw_submission)
    shortcut = form_payload(raw_shortcut)
    assert (shortcut["type"], shortcut["callback_id"]) == ("shortcut", SHORTCUT)
    assert shortcut["user"] == {"id": USER, "username": "alice", "name": "alice", "team_id": TEAM}
    assert shortcut["team"] == {"id": TEAM, "domain": "emulator"}
    assert shortcut["trigger_id"] and "channel" not in shortcut and "response_url" not in shortcut
    submission = form_payload(raw_submission)
    assert submission == result.payload
    assert submission["type"] == "view_submission" and submission["response_urls"] == []
    assert result.closed and result.ack == {}  # an empty 200 closes the modal


# ---- over HTTP, to a Bolt app


async def test_opening_the_home_tab_gets_it_published(emu: SlackEmulator, bolt: Bolt) -> None:
    add_listeners(bolt, lambda body: None)

    delivery = await emu.send_app_home_opened(bolt.url, USER)

    assert delivery.status == 200
    home = await emu.wait_for_home(USER)
    assert home.type == "home" and home.blocks[0]["block_id"] == "home"
    [body] = event_bodies(bolt)
    assert body["event"]["user"] == USER


async def test_a_home_button_opens_the_form_with_its_trigger(
    emu: SlackEmulator, client: AsyncWebClient, bolt: Bolt
) -> None:
    add_listeners(bolt, lambda body: None)
    await client.views_publish(user_id=USER, view=HOME)
    home = emu.home_view(USER)
    assert home is not None

    await emu.send_view_action(bolt.url, USER, "sandbox_refresh_open")

    modal = await emu.wait_for_modal(USER, lambda v: v.callback_id == FORM_ID)
    assert modal.title == "Refresh a sandbox"
    [body] = of_type(bolt, "block_actions")
    assert body["container"] == {"type": "view", "view_id": home.id}
    assert body["view"]["id"] == home.id and body["view"]["type"] == "home"
    assert "response_url" not in body and "channel" not in body
    [action] = body["actions"]
    assert (action["type"], action["action_id"], action["block_id"]) == (
        "button",
        "sandbox_refresh_open",
        "home",
    )
    assert action["text"]["text"] == "Refresh…"


async def test_a_select_on_the_home_tab_sends_its_choice_and_state(
    emu: SlackEmulator, client: AsyncWebClient, bolt: Bolt
) -> None:
    add_listeners(bolt, lambda body: None)
    await client.views_publish(user_id=USER, view=HOME)

    await emu.send_view_action(bolt.url, USER, "pick_env", "uat")

    [body] = of_type(bolt, "block_actions")
    [action] = body["actions"]
    assert action["type"] == "static_select"
    assert action["selected_option"] == OPTIONS[1]
    assert action["placeholder"]["text"] == "Environment"
    assert body["view"]["state"]["values"] == {
        "home": {"pick_env": {"type": "static_select", "selected_option": OPTIONS[1]}}
    }


async def test_the_shortcut_opens_the_form(emu: SlackEmulator, bolt: Bolt) -> None:
    add_listeners(bolt, lambda body: None)

    delivery = await emu.send_shortcut(bolt.url, USER, SHORTCUT)

    assert delivery.status == 200
    modal = await emu.wait_for_modal(USER)
    assert modal.callback_id == FORM_ID
    assert [v.id for v in emu.modal_stack(USER)] == [modal.id]


async def test_a_button_in_a_modal_sends_the_modal_and_what_was_entered(
    emu: SlackEmulator, client: AsyncWebClient, bolt: Bolt
) -> None:
    add_listeners(bolt, lambda body: None)
    view_id = await open_form(emu, client)
    emu.enter_values(USER, {"env": "staging"})

    await emu.send_view_action(bolt.url, USER, "check")

    [body] = of_type(bolt, "block_actions")
    assert body["container"] == {"type": "view", "view_id": view_id}
    view = body["view"]
    assert (view["id"], view["callback_id"], view["private_metadata"]) == (
        view_id,
        FORM_ID,
        '{"channel": "C0OPS"}',
    )
    assert view["state"]["values"]["env"]["env"]["selected_option"] == OPTIONS[0]
    assert body["actions"][0]["value"] == "v1"


async def test_a_submission_carries_the_view_and_its_state_in_slacks_shapes(
    emu: SlackEmulator, client: AsyncWebClient, bolt: Bolt
) -> None:
    add_listeners(bolt, lambda body: None)
    view_id = await open_form(emu, client)
    shown = emu.modal(USER)
    assert shown is not None

    result = await emu.send_view_submission(
        bolt.url, USER, {"env": "staging", "when": "at", "at": AT}
    )

    [body] = of_type(bolt, "view_submission")
    assert body["user"]["id"] == USER and body["trigger_id"]
    view = body["view"]
    assert (view["id"], view["hash"], view["callback_id"]) == (view_id, shown.hash, FORM_ID)
    assert view["private_metadata"] == '{"channel": "C0OPS"}'
    assert view["state"]["values"] == {
        "env": {"env": {"type": "static_select", "selected_option": OPTIONS[0]}},
        "when": {"when": {"type": "radio_buttons", "selected_option": WHEN[1]}},
        "at": {"at": {"type": "datetimepicker", "selected_date_time": AT}},
    }
    assert (result.sent, result.response_action, result.closed) == (True, None, True)
    assert result.delivery is not None and result.delivery.status == 200


@pytest.mark.parametrize("action", ["errors", "update", "push", "clear"])
async def test_the_answer_to_a_submission_is_applied_as_slack_does(
    emu: SlackEmulator, client: AsyncWebClient, bolt: Bolt, action: str
) -> None:
    answers: dict[str, dict[str, Any]] = {
        "errors": {"response_action": "errors", "errors": {"at": "That time has passed"}},
        "update": {"response_action": "update", "view": CONFIRM},
        "push": {"response_action": "push", "view": CONFIRM},
        "clear": {"response_action": "clear"},
    }
    add_listeners(bolt, lambda body: answers[action])
    view_id = await open_form(emu, client)
    if action == "clear":  # a stack of two: clear closes both
        trigger_id = emu.command_payload("x", USER, CHANNEL)["trigger_id"]
        await client.views_push(trigger_id=trigger_id, view=FORM)

    result = await emu.send_view_submission(bolt.url, USER, {"env": "staging", "at": AT})

    assert result.response_action == action and result.problem is None
    stack = emu.modal_stack(USER)
    assert [v.id for v in result.stack] == [v.id for v in stack]
    if action == "errors":
        assert result.errors == {"at": "That time has passed"}
        assert [v.id for v in stack] == [view_id] and stack[0].errors == result.errors
        assert stack[0].state_values()["env"]["env"]["selected_option"] == OPTIONS[0]  # kept
    elif action == "update":
        assert [(v.id, v.title) for v in stack] == [(view_id, "Confirm the refresh")]
    elif action == "push":
        assert [v.title for v in stack] == ["Refresh a sandbox", "Confirm the refresh"]
        assert stack[1].previous_view_id == view_id
    else:
        assert result.closed and stack == []


async def test_no_answer_for_a_pushed_view_goes_back_to_the_one_below(
    emu: SlackEmulator, client: AsyncWebClient, bolt: Bolt
) -> None:
    add_listeners(bolt, lambda body: None)
    view_id = await open_form(emu, client)
    trigger_id = emu.command_payload("x", USER, CHANNEL)["trigger_id"]
    await client.views_push(trigger_id=trigger_id, view=FORM)

    result = await emu.send_view_submission(bolt.url, USER, {"env": "uat"})

    assert [v.id for v in result.stack] == [view_id]


async def test_a_required_input_left_empty_is_never_sent(
    emu: SlackEmulator, client: AsyncWebClient, bolt: Bolt
) -> None:
    add_listeners(bolt, lambda body: None)
    await open_form(emu, client)

    result = await emu.send_view_submission(bolt.url, USER)

    assert (result.sent, result.errors) == (False, {"env": REQUIRED})
    assert of_type(bolt, "view_submission") == []
    modal = emu.modal(USER)
    assert modal is not None and modal.errors == {"env": REQUIRED}


@pytest.mark.parametrize(
    "answer",
    [
        {"response_action": "errors", "errors": {"tools": "not an input"}},
        {"response_action": "update", "view": {**CONFIRM, "title": {"type": "plain_text", "text": "t" * 30}}},
        {"response_action": "dance"},
    ],
)  # fmt: skip
async def test_an_unusable_answer_keeps_the_modal_with_slacks_notice(
    emu: SlackEmulator, client: AsyncWebClient, bolt: Bolt, answer: dict[str, Any]
) -> None:
    add_listeners(bolt, lambda body: answer)
    view_id = await open_form(emu, client)

    result = await emu.send_view_submission(bolt.url, USER, {"env": "uat"})

    assert result.problem == TROUBLE and result.detail
    [still] = emu.modal_stack(USER)
    assert (still.id, still.title, still.notice) == (view_id, "Refresh a sandbox", TROUBLE)


async def test_a_failing_bot_keeps_the_modal_open(
    emu: SlackEmulator, client: AsyncWebClient, receiver: tuple[Receiver, str]
) -> None:
    stand_in, url = receiver
    stand_in.status = 500
    await open_form(emu, client)

    result = await emu.send_view_submission(url, USER, {"env": "uat"})

    assert (result.sent, result.ack, result.problem) == (True, None, TROUBLE)
    assert result.delivery is not None and result.delivery.status == 500
    assert len(emu.modal_stack(USER)) == 1


async def test_closing_a_modal_sends_view_closed_when_the_app_asks(
    emu: SlackEmulator, client: AsyncWebClient, bolt: Bolt
) -> None:
    add_listeners(bolt, lambda body: None)
    trigger_id = emu.command_payload("refresh", USER, CHANNEL)["trigger_id"]
    opened = await client.views_open(trigger_id=trigger_id, view={**FORM, "notify_on_close": True})

    closed = await emu.close_modal(bolt.url, USER)

    assert [v.id for v in closed] == [opened["view"]["id"]]
    [body] = of_type(bolt, "view_closed")
    assert (body["view"]["id"], body["is_cleared"]) == (opened["view"]["id"], False)
    assert emu.modal_stack(USER) == []


# ---- Socket Mode


@pytest.fixture
async def socket_bolt(emu: SlackEmulator) -> AsyncIterator[Bolt]:
    app = AsyncApp(client=AsyncWebClient(token=BOT, base_url=emu.api_url))
    handler = AsyncSocketModeHandler(app, APP)
    await handler.connect_async()
    try:
        await emu.wait_for_socket(timeout=10)
        yield Bolt(app)
    finally:
        await handler.close_async()


async def test_socket_mode_home_shortcut_and_submission(
    emu: SlackEmulator, socket_bolt: Bolt
) -> None:
    add_listeners(socket_bolt, lambda body: {"response_action": "update", "view": CONFIRM})

    ack = await emu.socket_send_app_home_opened(USER, timeout=10)
    home = await emu.wait_for_home(USER)
    await emu.socket_send_shortcut(USER, SHORTCUT, timeout=10)
    modal = await emu.wait_for_modal(USER)
    await emu.socket_send_view_action(USER, "check", timeout=10)
    result: Submission = await emu.socket_send_view_submission(USER, {"env": "uat"}, timeout=10)

    assert "envelope_id" in ack and home.type == "home"
    assert result.response_action == "update" and result.delivery is None
    assert [(v.id, v.title) for v in result.stack] == [(modal.id, "Confirm the refresh")]
    assert [b["type"] for b in socket_bolt.bodies] == [
        "event_callback",
        "shortcut",
        "block_actions",
        "view_submission",
    ]


async def test_socket_mode_envelopes_are_shaped_like_slacks(
    emu: SlackEmulator, client: AsyncWebClient
) -> None:
    seen: list[SocketModeRequest] = []
    sm = SocketModeClient(
        app_token=APP, web_client=AsyncWebClient(base_url=emu.api_url), auto_reconnect_enabled=False
    )

    async def on_request(sm_client: SocketModeClient, request: SocketModeRequest) -> None:
        seen.append(request)
        reply = (
            {"response_action": "clear"}
            if request.payload.get("type") == "view_submission"
            else None
        )
        await sm_client.send_socket_mode_response(
            SocketModeResponse(envelope_id=request.envelope_id, payload=reply)
        )

    sm.socket_mode_request_listeners.append(on_request)
    await sm.connect()
    try:
        await emu.wait_for_socket(timeout=10)
        await emu.socket_send_app_home_opened(USER, timeout=10)
        await open_form(emu, client)
        result = await emu.socket_send_view_submission(USER, {"env": "uat"}, timeout=10)
    finally:
        await sm.close()

    event, submission = seen
    assert (event.type, event.accepts_response_payload) == ("events_api", False)
    assert event.retry_attempt == 0 and event.retry_reason == ""
    assert event.payload["event"]["type"] == "app_home_opened"
    assert (submission.type, submission.accepts_response_payload) == ("interactive", True)
    assert result.response_action == "clear" and result.closed


async def test_socket_mode_submission_without_an_ack_keeps_the_modal(
    emu: SlackEmulator, client: AsyncWebClient
) -> None:
    sm = SocketModeClient(
        app_token=APP, web_client=AsyncWebClient(base_url=emu.api_url), auto_reconnect_enabled=False
    )
    await sm.connect()  # no listener: nothing acks
    try:
        await emu.wait_for_socket(timeout=10)
        await open_form(emu, client)
        result = await emu.socket_send_view_submission(USER, {"env": "uat"}, timeout=0.2)
    finally:
        await sm.close()
    assert (result.sent, result.problem) == (True, TROUBLE)
    assert len(emu.modal_stack(USER)) == 1


async def test_waiting_for_a_modal_returns_when_the_bot_opens_it(
    emu: SlackEmulator, client: AsyncWebClient
) -> None:
    async def bot_later() -> None:
        await asyncio.sleep(0.05)
        await open_form(emu, client)

    task = asyncio.create_task(bot_later())
    modal = await emu.wait_for_modal(USER, lambda v: v.callback_id == FORM_ID, timeout=10)
    await task
    assert emu.views_changed(USER) >= modal.changed > 0
    with pytest.raises(TimeoutError):
        await emu.wait_for_home(USER, timeout=0.1)
