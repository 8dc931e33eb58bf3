"""The Slack emulator, driven by slack_sdk's real clients (web, webhook, Socket Mode)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qsl

import pytest
from aiohttp import web
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.sim.slack import SlackEmulator

BOT = "xoxb-test-bot"
APP = "xapp-test-app"
SECRET = "test-signing-secret"
CHANNEL = "C0OPS"
USER = "U0ALICE"

BUTTON_BLOCKS: list[dict[str, Any]] = [
    {"type": "section", "text": {"type": "mrkdwn", "text": "Job *42* is running"}},
    {
        "type": "actions",
        "block_id": "job-actions",
        "elements": [
            {
                "type": "button",
                "action_id": "cancel_job",
                "text": {"type": "plain_text", "text": "Cancel"},
                "value": "env=uat;job=42",
            }
        ],
    },
]


@pytest.fixture
async def emu() -> AsyncIterator[SlackEmulator]:
    async with SlackEmulator(bot_token=BOT, app_token=APP, signing_secret=SECRET) as emulator:
        emulator.add_user(USER, "alice")
        emulator.add_channel(CHANNEL, "ops")
        yield emulator


@pytest.fixture
def client(emu: SlackEmulator) -> AsyncWebClient:
    return AsyncWebClient(token=BOT, base_url=emu.api_url)


# ---- Web API


async def test_post_message_is_recorded_and_listed_in_history(
    emu: SlackEmulator, client: AsyncWebClient
) -> None:
    metadata = {"event_type": "job_card", "event_payload": {"job": "42"}}
    posted = await client.chat_postMessage(
        channel=CHANNEL, text="Job 42", blocks=BUTTON_BLOCKS, metadata=metadata, unfurl_links=False
    )

    assert posted["channel"] == CHANNEL
    assert posted["message"]["bot_id"] == emu.bot.bot_id
    assert posted["message"]["blocks"][0]["block_id"]  # Slack fills missing block ids
    [message] = emu.messages(CHANNEL)
    assert (message.ts, message.text, message.metadata) == (posted["ts"], "Job 42", metadata)
    assert message.unfurl_links is False
    assert emu.calls[-1].transport == "json"

    history = await client.conversations_history(channel=CHANNEL, include_all_metadata=True)
    assert [m["ts"] for m in history["messages"]] == [posted["ts"]]
    assert history["messages"][0]["metadata"] == metadata
    plain = await client.conversations_history(channel=CHANNEL)
    assert "metadata" not in plain["messages"][0]


async def test_thread_replies_stay_out_of_history(client: AsyncWebClient) -> None:
    parent = await client.chat_postMessage(channel=CHANNEL, text="parent")
    reply = await client.chat_postMessage(channel=CHANNEL, text="one", thread_ts=parent["ts"])
    # replying to a reply lands in the parent's thread
    nested = await client.chat_postMessage(channel=CHANNEL, text="two", thread_ts=reply["ts"])
    assert nested["message"]["thread_ts"] == parent["ts"]

    history = await client.conversations_history(channel=CHANNEL)
    assert [m["text"] for m in history["messages"]] == ["parent"]
    assert history["messages"][0]["reply_count"] == 2

    thread = await client.conversations_replies(channel=CHANNEL, ts=reply["ts"])
    assert [m["text"] for m in thread["messages"]] == ["parent", "one", "two"]
    with pytest.raises(SlackApiError) as missing:
        await client.conversations_replies(channel=CHANNEL, ts="1.000001")
    assert missing.value.response["error"] == "thread_not_found"


async def test_history_pages_newest_first_with_cursor(client: AsyncWebClient) -> None:
    sent = [(await client.chat_postMessage(channel=CHANNEL, text=str(i)))["ts"] for i in range(3)]

    first = await client.conversations_history(channel=CHANNEL, limit=2)
    assert [m["ts"] for m in first["messages"]] == [sent[2], sent[1]]
    assert first["has_more"] is True
    cursor = first["response_metadata"]["next_cursor"]
    second = await client.conversations_history(channel=CHANNEL, limit=2, cursor=cursor)
    assert [m["ts"] for m in second["messages"]] == [sent[0]]
    assert second["has_more"] is False


async def test_update_keeps_edit_history(emu: SlackEmulator, client: AsyncWebClient) -> None:
    posted = await client.chat_postMessage(channel=CHANNEL, text="running", blocks=BUTTON_BLOCKS)
    updated = await client.chat_update(
        channel=CHANNEL,
        ts=posted["ts"],
        text="cancelled",
        blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": "Cancelled"}}],
    )

    assert updated["ts"] == posted["ts"]
    message = emu.message(CHANNEL, posted["ts"])
    assert message is not None
    assert message.text == "cancelled"
    assert [b["type"] for b in message.blocks] == ["section"]
    assert [v.text for v in message.edits] == ["running"]
    assert [b["type"] for b in message.edits[0].blocks] == ["section", "actions"]


async def test_update_refuses_other_posters_and_missing_messages(
    emu: SlackEmulator, client: AsyncWebClient
) -> None:
    emu.add_token("xoxb-other-app", "U0OTHERBOT", bot_id="B0OTHER")
    other = AsyncWebClient(token="xoxb-other-app", base_url=emu.api_url)
    foreign = await other.chat_postMessage(channel=CHANNEL, text="not yours")
    ephemeral = await client.chat_postEphemeral(channel=CHANNEL, user=USER, text="psst")

    async def update_error(ts: str) -> str:
        with pytest.raises(SlackApiError) as failure:
            await client.chat_update(channel=CHANNEL, ts=ts, text="edited")
        return str(failure.value.response["error"])

    assert await update_error(foreign["ts"]) == "cant_update_message"
    assert await update_error("1700000000.000001") == "message_not_found"
    assert await update_error(ephemeral["message_ts"]) == "message_not_found"
    assert emu.messages(CHANNEL)[0].text == "not yours"


async def test_ephemeral_message_is_for_one_user_only(
    emu: SlackEmulator, client: AsyncWebClient
) -> None:
    response = await client.chat_postEphemeral(channel=CHANNEL, user=USER, text="only you")

    [message] = emu.messages(CHANNEL)
    assert (message.ts, message.ephemeral_for) == (response["message_ts"], USER)
    assert emu.messages(CHANNEL, include_ephemeral=False) == []
    assert (await client.conversations_history(channel=CHANNEL))["messages"] == []


async def test_ephemeral_to_non_member_fails(emu: SlackEmulator, client: AsyncWebClient) -> None:
    emu.add_channel("C0SMALL", "small", members=[USER, emu.bot.user_id])
    with pytest.raises(SlackApiError) as failure:
        await client.chat_postEphemeral(channel="C0SMALL", user="U0STRANGER", text="hi")
    assert failure.value.response["error"] == "user_not_in_channel"


async def test_delete_removes_only_own_messages(emu: SlackEmulator, client: AsyncWebClient) -> None:
    emu.add_token("xoxp-alice", USER)
    alice = AsyncWebClient(token="xoxp-alice", base_url=emu.api_url)
    hers = await alice.chat_postMessage(channel=CHANNEL, text="mine")
    ours = await client.chat_postMessage(channel=CHANNEL, text="bot")

    await client.chat_delete(channel=CHANNEL, ts=ours["ts"])
    with pytest.raises(SlackApiError) as failure:
        await client.chat_delete(channel=CHANNEL, ts=hers["ts"])

    assert failure.value.response["error"] == "cant_delete_message"
    assert [m.text for m in emu.messages(CHANNEL)] == ["mine"]
    assert [m.text for m in emu.messages(CHANNEL, include_deleted=True)] == ["mine", "bot"]
    assert emu.calls_to("chat.delete")[0].transport == "query"


async def test_usergroup_members(emu: SlackEmulator, client: AsyncWebClient) -> None:
    emu.set_usergroup("S0ADMINS", [USER, "U0BOB"])

    assert (await client.usergroups_users_list(usergroup="S0ADMINS"))["users"] == [USER, "U0BOB"]
    with pytest.raises(SlackApiError) as failure:
        await client.usergroups_users_list(usergroup="S0NOPE")
    assert failure.value.response["error"] == "no_such_subteam"


async def test_auth_test_describes_the_bot(emu: SlackEmulator, client: AsyncWebClient) -> None:
    response = await client.auth_test()
    assert (response["user_id"], response["bot_id"], response["team_id"]) == (
        emu.bot.user_id,
        emu.bot.bot_id,
        emu.workspace.team_id,
    )


@pytest.mark.parametrize(
    ("token", "method", "error"),
    [
        ("xoxb-wrong", "chat.postMessage", "invalid_auth"),
        (None, "chat.postMessage", "not_authed"),
        (BOT, "chat.fly", "unknown_method"),
        (APP, "chat.postMessage", "not_allowed_token_type"),
        (BOT, "apps.connections.open", "not_allowed_token_type"),
    ],
)
async def test_auth_and_method_errors(
    emu: SlackEmulator, token: str | None, method: str, error: str
) -> None:
    web_client = AsyncWebClient(token=token, base_url=emu.api_url)
    with pytest.raises(SlackApiError) as failure:
        await web_client.api_call(method, json={"channel": CHANNEL, "text": "hi"})
    assert failure.value.response["error"] == error
    assert emu.messages() == []


async def test_form_body_with_token_field_is_accepted(emu: SlackEmulator) -> None:
    web_client = AsyncWebClient(token=None, base_url=emu.api_url)
    blocks = json.dumps(BUTTON_BLOCKS)
    await web_client.api_call(
        "chat.postMessage", data={"token": BOT, "channel": CHANNEL, "text": "t", "blocks": blocks}
    )

    call = emu.calls[-1]
    assert (call.ok, call.transport, call.user_id) == (True, "form", emu.bot.user_id)
    assert "token" not in call.args
    assert emu.messages(CHANNEL)[0].blocks[1]["elements"][0]["value"] == "env=uat;job=42"


@pytest.mark.parametrize(
    ("blocks", "error"),
    [
        ([{"type": "divider"}] * 51, "invalid_blocks"),
        ([{"type": "no_such_block"}], "invalid_blocks"),
        ([{"type": "header", "text": {"type": "plain_text", "text": "x" * 151}}], "invalid_blocks"),
        (
            [{"type": "section", "fields": [{"type": "mrkdwn", "text": "x" * 2001}]}],
            "invalid_blocks",
        ),
    ],
)
async def test_invalid_blocks_are_rejected(
    emu: SlackEmulator, client: AsyncWebClient, blocks: list[dict[str, Any]], error: str
) -> None:
    with pytest.raises(SlackApiError) as failure:
        await client.chat_postMessage(channel=CHANNEL, text="t", blocks=blocks)
    assert failure.value.response["error"] == error
    assert failure.value.response["errors"]
    assert emu.messages() == []


async def test_message_needs_content_and_known_channel_when_strict() -> None:
    async with SlackEmulator(bot_token=BOT, strict_channels=True) as emu:
        strict = AsyncWebClient(token=BOT, base_url=emu.api_url)
        emu.add_channel(CHANNEL)
        with pytest.raises(SlackApiError) as unknown:
            await strict.chat_postMessage(channel="C0NOWHERE", text="hi")
        with pytest.raises(SlackApiError) as empty:
            await strict.api_call("chat.postMessage", json={"channel": CHANNEL})
    assert unknown.value.response["error"] == "channel_not_found"
    assert empty.value.response["error"] == "no_text"


# ---- fault injection


async def test_injected_rate_limit_answers_429_with_retry_after(
    emu: SlackEmulator, client: AsyncWebClient
) -> None:
    emu.fail_next("chat.postMessage", retry_after=7)

    with pytest.raises(SlackApiError) as failure:
        await client.chat_postMessage(channel=CHANNEL, text="one")
    assert failure.value.response.status_code == 429
    assert failure.value.response.headers["Retry-After"] == "7"
    assert failure.value.response["error"] == "ratelimited"

    await client.chat_postMessage(channel=CHANNEL, text="two")
    assert [m.text for m in emu.messages(CHANNEL)] == ["two"]


async def test_rate_limit_retry_handler_retries_through_429(emu: SlackEmulator) -> None:
    emu.fail_next("chat.postMessage", retry_after=1)
    retrying = AsyncWebClient(
        token=BOT,
        base_url=emu.api_url,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)],
    )

    started = time.monotonic()
    response = await retrying.chat_postMessage(channel=CHANNEL, text="eventually")

    assert response["ok"] is True
    assert time.monotonic() - started >= 1.0  # it honoured Retry-After
    assert [c.status for c in emu.calls_to("chat.postMessage")] == [429, 200]
    assert [m.text for m in emu.messages(CHANNEL)] == ["eventually"]


async def test_generic_errors_for_the_next_n_calls(
    emu: SlackEmulator, client: AsyncWebClient
) -> None:
    emu.fail_next("chat.update", error="internal_error")
    emu.fail_next("chat.postMessage", error="internal_error", status=500, count=2)

    outcomes = []
    for _ in range(3):
        try:
            await client.chat_postMessage(channel=CHANNEL, text="x")
            outcomes.append((200, None))
        except SlackApiError as exc:
            outcomes.append((exc.response.status_code, exc.response["error"]))
    assert outcomes == [(500, "internal_error"), (500, "internal_error"), (200, None)]

    with pytest.raises(SlackApiError) as failure:
        await client.chat_update(channel=CHANNEL, ts=emu.messages()[0].ts, text="y")
    assert (failure.value.response.status_code, failure.value.response["error"]) == (
        200,
        "internal_error",
    )


def test_fail_next_rejects_methods_the_emulator_lacks() -> None:
    with pytest.raises(ValueError, match=r"chat\.postMesage"):
        SlackEmulator().fail_next("chat.postMesage")


# ---- response_url


async def respond(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = await AsyncWebhookClient(url).send_dict(body)
    return response.status_code, json.loads(response.body)


async def test_response_url_is_ephemeral_by_default(emu: SlackEmulator) -> None:
    url = emu.new_response_url(CHANNEL, USER)
    assert url.startswith(emu.base_url)

    assert await respond(url, {"text": "just you"}) == (200, {"ok": True})
    assert await respond(url, {"text": "everyone", "response_type": "in_channel"}) == (
        200,
        {"ok": True},
    )

    private, public = emu.messages(CHANNEL)
    assert (private.text, private.ephemeral_for, private.source) == (
        "just you",
        USER,
        "response_url",
    )
    assert (public.text, public.ephemeral_for, public.user) == ("everyone", None, emu.bot.user_id)


async def test_response_url_replace_and_delete_original(emu: SlackEmulator) -> None:
    url = emu.new_response_url(CHANNEL, USER)
    await respond(url, {"text": "working…"})
    await respond(url, {"text": "done", "replace_original": True})

    [message] = emu.messages(CHANNEL)
    assert message.text == "done"
    assert [v.text for v in message.edits] == ["working…"]

    await respond(url, {"delete_original": True})
    assert emu.messages(CHANNEL) == []


async def test_response_url_allows_five_posts(emu: SlackEmulator) -> None:
    url = emu.new_response_url(CHANNEL, USER)
    for i in range(5):
        assert (await respond(url, {"text": str(i)}))[0] == 200

    assert await respond(url, {"text": "sixth"}) == (404, {"ok": False, "error": "used_url"})
    assert len(emu.messages(CHANNEL)) == 5
    assert emu.calls_to("response_url")[-1].error == "used_url"


async def test_response_url_expires_after_30_minutes() -> None:
    now = [1_700_000_000.0]
    async with SlackEmulator(bot_token=BOT, clock=lambda: now[0]) as emu:
        url = emu.new_response_url(CHANNEL, USER)
        now[0] += 29 * 60
        assert (await respond(url, {"text": "in time"}))[0] == 200
        now[0] += 2 * 60
        assert await respond(url, {"text": "late"}) == (404, {"ok": False, "error": "expired_url"})
        assert [m.text for m in emu.messages()] == ["in time"]


async def test_response_url_rejects_content_without_text(emu: SlackEmulator) -> None:
    url = emu.new_response_url(CHANNEL, USER)
    assert await respond(url, {"response_type": "in_channel"}) == (
        400,
        {"ok": False, "error": "no_text", "errors": []},
    )


# ---- signatures and requests to the bot


def test_sign_matches_slack_sdk_verifier(emu: SlackEmulator) -> None:
    body = b"token=x&text=cancel+uat+42"
    now = int(time.time())
    verifier = SignatureVerifier(SECRET)

    assert verifier.is_valid(body, str(now), emu.sign(body, now))
    assert not verifier.is_valid(body + b"1", str(now), emu.sign(body, now))
    assert not SignatureVerifier("another").is_valid(body, str(now), emu.sign(body, now))


class Receiver:
    """A stand-in bot endpoint that keeps what it was sent; with a ``gate``, it answers only once
    the gate is set."""

    def __init__(
        self, answer: Callable[[], web.StreamResponse], gate: asyncio.Event | None = None
    ) -> None:
        self.answer = answer
        self.gate = gate
        self.requests: list[tuple[dict[str, str], bytes]] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((dict(request.headers), await request.read()))
        if self.gate is not None:
            await self.gate.wait()
        return self.answer()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Receiver], Any]]:
    runners: list[web.AppRunner] = []

    async def start(receiver: Receiver) -> str:
        app = web.Application()
        app.router.add_post("/slack/events", receiver.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        return f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events"

    yield start
    for runner in runners:
        await runner.cleanup()


COMMAND_FIELDS = [
    "token",
    "team_id",
    "team_domain",
    "channel_id",
    "channel_name",
    "user_id",
    "user_name",
    "command",
    "text",
    "api_app_id",
    "is_enterprise_install",
    "response_url",
    "trigger_id",
]


async def test_send_command_posts_signed_form_like_slack(
    emu: SlackEmulator, serve: Callable[[Receiver], Any]
) -> None:
    receiver = Receiver(lambda: web.json_response({"text": "On it"}))
    url = await serve(receiver)

    delivery = await emu.send_command(url, "cancel uat 42 & more", USER, CHANNEL)

    ((headers, body),) = receiver.requests
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert b"command=%2Fsandbox" in body and b"text=cancel+uat+42+%26+more" in body
    fields = parse_qsl(body.decode(), strict_parsing=True)
    assert [k for k, _ in fields] == COMMAND_FIELDS
    values = dict(fields)
    assert (values["user_id"], values["user_name"], values["channel_name"]) == (
        USER,
        "alice",
        "ops",
    )
    assert values["response_url"] == delivery.response_url
    verifier = SignatureVerifier(SECRET)
    assert verifier.is_valid(
        body, headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"]
    )
    assert (delivery.status, delivery.json()) == (200, {"text": "On it"})
    assert 0 < delivery.elapsed < 3
    # the immediate answer is shown to the user as an ephemeral message ...
    [ack] = emu.messages(CHANNEL)
    assert (ack.text, ack.ephemeral_for, ack.source) == ("On it", USER, "ack")
    # ... and is the original a response_url replace acts on
    assert delivery.response_url is not None
    await respond(delivery.response_url, {"text": "Cancelled", "replace_original": True})
    assert [m.text for m in emu.messages(CHANNEL)] == ["Cancelled"]


@pytest.mark.parametrize("mode", ["bad_signature", "stale", "missing"])
async def test_send_command_can_sign_wrongly(
    emu: SlackEmulator, serve: Callable[[Receiver], Any], mode: Any
) -> None:
    receiver = Receiver(lambda: web.Response(status=401))
    url = await serve(receiver)

    delivery = await emu.send_command(url, "status", USER, CHANNEL, sign_mode=mode)

    ((headers, body),) = receiver.requests
    assert delivery.status == 401
    assert emu.messages() == []
    if mode == "missing":
        assert "X-Slack-Signature" not in headers
        assert "X-Slack-Request-Timestamp" not in headers
        return
    timestamp = int(headers["X-Slack-Request-Timestamp"])
    assert (
        abs(timestamp - time.time()) > 300 if mode == "stale" else abs(timestamp - time.time()) < 5
    )
    assert not SignatureVerifier(SECRET).is_valid(
        body, str(timestamp), headers["X-Slack-Signature"]
    )


async def test_send_command_gives_up_like_slack_after_timeout(
    emu: SlackEmulator, serve: Callable[[Receiver], Any]
) -> None:
    never = asyncio.Event()  # the receiver answers only after the emulator gave up
    url = await serve(Receiver(lambda: web.json_response({"text": "too late"}), gate=never))
    try:
        delivery = await emu.send_command(url, "status", USER, CHANNEL, timeout=0.1)
    finally:
        never.set()  # let the receiver finish, so its server stops at once

    assert delivery.timed_out
    assert 0.1 <= delivery.elapsed < 5  # it waited its timeout, then gave up (no answer came)
    assert emu.messages() == []


async def test_send_block_action_posts_payload_field(
    emu: SlackEmulator, client: AsyncWebClient, serve: Callable[[Receiver], Any]
) -> None:
    receiver = Receiver(lambda: web.Response(status=200))
    url = await serve(receiver)
    card = await client.chat_postMessage(
        channel=CHANNEL,
        text="Job 42",
        blocks=BUTTON_BLOCKS,
        metadata={"event_type": "job_card", "event_payload": {"job": "42"}},
    )

    delivery = await emu.send_block_action(url, USER, "cancel_job", None, CHANNEL)

    ((headers, body),) = receiver.requests
    [(name, raw)] = parse_qsl(body.decode())
    assert name == "payload"
    payload = json.loads(raw)
    assert SignatureVerifier(SECRET).is_valid(
        body, headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"]
    )
    assert payload["type"] == "block_actions"
    assert payload["user"]["id"] == USER
    assert payload["container"] == {
        "type": "message",
        "message_ts": card["ts"],
        "channel_id": CHANNEL,
        "is_ephemeral": False,
    }
    assert payload["message"]["ts"] == card["ts"]
    assert "metadata" not in payload["message"]
    [action] = payload["actions"]
    assert (action["action_id"], action["block_id"], action["value"], action["type"]) == (
        "cancel_job",
        "job-actions",
        "env=uat;job=42",
        "button",
    )
    assert delivery.status == 200

    # the interaction's response_url edits the clicked message
    await respond(payload["response_url"], {"text": "Cancelled", "replace_original": True})
    message = emu.message(CHANNEL, card["ts"])
    assert message is not None
    assert (message.text, message.blocks, message.ephemeral_for) == ("Cancelled", [], None)


async def test_block_action_on_ephemeral_message_has_no_message(
    emu: SlackEmulator, client: AsyncWebClient
) -> None:
    sent = await client.chat_postEphemeral(
        channel=CHANNEL, user=USER, text="Confirm?", blocks=BUTTON_BLOCKS
    )

    payload = emu.block_action_payload(USER, "cancel_job", "override", CHANNEL)

    assert payload["container"]["is_ephemeral"] is True
    assert payload["container"]["message_ts"] == sent["message_ts"]
    assert "message" not in payload
    assert payload["actions"][0]["value"] == "override"


# ---- Socket Mode


@pytest.fixture
async def socket_client(emu: SlackEmulator) -> AsyncIterator[tuple[SocketModeClient, list[Any]]]:
    seen: list[Any] = []
    sm = SocketModeClient(
        app_token=APP,
        web_client=AsyncWebClient(base_url=emu.api_url),
        auto_reconnect_enabled=False,
    )

    async def on_message(_: Any, message: dict[str, Any], raw: str | None) -> None:
        seen.append(message)

    async def on_request(sm_client: SocketModeClient, request: SocketModeRequest) -> None:
        seen.append(request)
        if request.type == "slash_commands":
            reply = {"text": f"got {request.payload['text']}"}
            response = SocketModeResponse(envelope_id=request.envelope_id, payload=reply)
        else:
            response = SocketModeResponse(envelope_id=request.envelope_id)
        await sm_client.send_socket_mode_response(response)

    sm.message_listeners.append(on_message)
    sm.socket_mode_request_listeners.append(on_request)
    await sm.connect()
    try:
        yield sm, seen
    finally:
        await sm.close()


async def test_socket_mode_delivers_command_and_returns_ack(
    emu: SlackEmulator, socket_client: tuple[SocketModeClient, list[Any]]
) -> None:
    sm, seen = socket_client
    await emu.wait_for_socket(timeout=10)
    await emu.wait_for(lambda: seen, timeout=10)
    assert seen[0]["type"] == "hello"
    assert seen[0]["connection_info"] == {"app_id": emu.app_id}
    # the client pings on connect; the emulator's pong is what it counts as liveness
    await emu.wait_for(lambda: sm.last_ping_pong_time is not None, timeout=10)

    ack = await emu.socket_send_command("status uat", USER, CHANNEL, timeout=10)

    request = next(r for r in seen if isinstance(r, SocketModeRequest))
    assert request.type == "slash_commands"
    assert request.accepts_response_payload is True
    assert request.payload["command"] == "/sandbox"
    assert request.payload["response_url"].startswith(emu.base_url)
    assert ack == {"envelope_id": request.envelope_id, "payload": {"text": "got status uat"}}
    [shown] = emu.messages(CHANNEL)
    assert (shown.text, shown.ephemeral_for) == ("got status uat", USER)


async def test_socket_mode_delivers_block_action(
    emu: SlackEmulator,
    client: AsyncWebClient,
    socket_client: tuple[SocketModeClient, list[Any]],
) -> None:
    _, seen = socket_client
    await emu.wait_for_socket(timeout=10)
    card = await client.chat_postMessage(channel=CHANNEL, text="Job 42", blocks=BUTTON_BLOCKS)

    ack = await emu.socket_send_block_action(
        USER, "cancel_job", None, CHANNEL, card["ts"], timeout=10
    )

    request = next(r for r in seen if isinstance(r, SocketModeRequest))
    assert request.type == "interactive"
    assert request.payload["actions"][0]["value"] == "env=uat;job=42"
    assert ack == {"envelope_id": request.envelope_id}


async def test_disconnect_makes_the_client_reconnect(
    emu: SlackEmulator, socket_client: tuple[SocketModeClient, list[Any]]
) -> None:
    await emu.wait_for_socket(timeout=10)
    assert len(emu.calls_to("apps.connections.open")) == 1

    await emu.socket_disconnect("refresh_requested")

    await emu.wait_for(lambda: len(emu.calls_to("apps.connections.open")) == 2, timeout=10)
    await emu.wait_for(lambda: emu.socket_connections == 1, timeout=10)
    ack = await emu.socket_send_command("status", USER, CHANNEL, timeout=10)
    assert ack["payload"] == {"text": "got status"}


async def test_socket_send_times_out_without_ack(emu: SlackEmulator) -> None:
    sm = SocketModeClient(
        app_token=APP, web_client=AsyncWebClient(base_url=emu.api_url), auto_reconnect_enabled=False
    )
    await sm.connect()  # no request listener: nothing acks
    try:
        await emu.wait_for_socket(timeout=10)
        with pytest.raises(TimeoutError):
            await emu.socket_send_command("status", USER, CHANNEL, timeout=0.2)
    finally:
        await sm.close()


async def test_socket_send_without_client_fails(emu: SlackEmulator) -> None:
    with pytest.raises(RuntimeError, match="no Socket Mode client"):
        await emu.socket_send_command("status", USER, CHANNEL)


async def test_connections_open_needs_the_app_token(emu: SlackEmulator) -> None:
    opened = await AsyncWebClient(base_url=emu.api_url).apps_connections_open(app_token=APP)
    assert opened["url"].startswith(f"ws://127.0.0.1:{emu.port}/link/?ticket=")
    with pytest.raises(SlackApiError) as failure:
        await AsyncWebClient(base_url=emu.api_url).apps_connections_open(app_token="xapp-wrong")
    assert failure.value.response["error"] == "invalid_auth"


# ---- waiting helpers


async def test_wait_for_message_and_call(emu: SlackEmulator, client: AsyncWebClient) -> None:
    async def later() -> None:
        await asyncio.sleep(0.05)
        await client.chat_postMessage(channel=CHANNEL, text="Job 42 cancelled")

    task = asyncio.create_task(later())
    message = await emu.wait_for_message(CHANNEL, lambda m: "cancelled" in m.text, timeout=10)
    call = await emu.wait_for_call("chat.postMessage", timeout=10)
    await task

    assert message.text == "Job 42 cancelled"
    assert call.args["text"] == "Job 42 cancelled"


async def test_wait_for_times_out(emu: SlackEmulator) -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await emu.wait_for_message(CHANNEL, timeout=0.1)
    assert time.monotonic() - started < 5  # it gave up at its timeout, not never
