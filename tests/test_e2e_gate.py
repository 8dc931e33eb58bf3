"""The way in: the signature is checked on the raw bytes before anything is parsed, malformed and oversized
requests are refused with one WARNING line each, and a request Slack delivers again is acted on once."""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp
import pytest

from bot import server
from bot.runtime import Runtime
from bot.sim.slack import SlackEmulator
from bot.sim.slack_sender import command_body, signed_headers
from bot.sim.zuora import ZuoraSimulator
from bot.sim.zuora_seed import JOB_CANCELLABLE
from tests.conftest import ALLOWED, APP_TOKEN, CHANNEL, NOTIFY, SIGNING_SECRET, StartBot
from tests.e2e import handled, reply_to, text_of, until_handled, zuora_calls

pytestmark = pytest.mark.usefixtures("no_secrets_logged")
CANCEL = "performActionOfJob"


async def post_raw(url: str, body: bytes, headers: dict[str, str]) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=headers) as r,
    ):
        return r.status


def signed(body: bytes, timestamp: int | None = None, **extra: str) -> dict[str, str]:
    headers = signed_headers(SIGNING_SECRET, body, "valid", timestamp)
    return {**headers, **extra}


@pytest.mark.parametrize(
    ("what", "headers"),
    [
        ("unsigned", {"Content-Type": "application/x-www-form-urlencoded"}),
        ("bad signature", {"X-Slack-Request-Timestamp": "{now}", "X-Slack-Signature": "v0=00"}),
        ("stale", "stale"),
        (
            "timestamp not a number",
            {"X-Slack-Request-Timestamp": "1e9", "X-Slack-Signature": "v0=00"},
        ),
    ],
)
async def test_forged_requests_get_401_before_anything_is_parsed(
    bot: Runtime,
    zuora: ZuoraSimulator,
    caplog: pytest.LogCaptureFixture,
    what: str,
    headers: object,
) -> None:
    body = b"\xff\xfe" + b"[" * 200_000  # neither UTF-8 nor parseable: never looked at
    if headers == "stale":
        sent = signed(body, int(time.time()) - 600)
    else:
        assert isinstance(headers, dict)
        sent = {k: v.replace("{now}", str(int(time.time()))) for k, v in headers.items()}
    assert await post_raw(bot.events_url, body, sent) == 401
    rejected = [r for r in caplog.records if r.getMessage() == "slack request rejected"]
    assert len(rejected) == 1 and rejected[0].levelno == logging.WARNING
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert zuora.requests == []


@pytest.mark.parametrize(
    "body",
    [
        b"\xff\xfe not utf-8",
        b"payload=" + b"%5B" * 100_000,  # a JSON payload nested 100k deep
        b"payload=%7Bnot-json",
        b"payload=%7B%7D&payload=%5B1%5D",  # Bolt reads the last payload field: a list, not an object
        b"{=",  # Bolt reads a body starting with a brace as JSON, whatever its content type
    ],
)
async def test_signed_but_malformed_gets_400(
    bot: Runtime, zuora: ZuoraSimulator, caplog: pytest.LogCaptureFixture, body: bytes
) -> None:
    assert await post_raw(bot.events_url, body, signed(body)) == 400
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert zuora.requests == []


async def test_a_signed_body_bolt_cannot_read_gets_400_even_past_the_gate(
    bot: Runtime,
    zuora: ZuoraSimulator,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Should the gate ever let through a body that Bolt's own parser raises on, the server still answers 400
    with one WARNING line, not a 500 and a traceback."""
    monkeypatch.setattr(server, "inspect", lambda **_: None)
    body = b"payload=%5B1%5D"
    assert await post_raw(bot.events_url, body, signed(body)) == 400
    rejected = [r for r in caplog.records if r.getMessage() == "slack request rejected"]
    assert [r.levelno for r in rejected] == [logging.WARNING]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert zuora.requests == []


async def test_a_request_whose_connection_closes_before_its_ack_is_handled_with_one_warning(
    bot: Runtime, slack: SlackEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    """Slack gives up on an ack after 3 s and closes the connection: the command is still carried out, and the
    ack that can no longer be sent is one WARNING line, not aiohttp's traceback of a write to a closed socket."""
    body = command_body(slack.command_payload("help", ALLOWED, CHANNEL))
    host, port = "127.0.0.1", bot.port
    head = "".join(
        [
            "POST /slack/events HTTP/1.1\r\n",
            f"Host: {host}:{port}\r\n",
            "Content-Type: application/x-www-form-urlencoded\r\n",
            f"Content-Length: {len(body)}\r\n",
            *(
                f"{name}: {value}\r\n"
                for name, value in signed(body).items()
                if name != "Content-Type"
            ),
            "\r\n",
        ]
    )
    _reader, writer = await asyncio.open_connection(host, port)
    writer.write(head.encode() + body)
    await writer.drain()
    writer.close()  # gone before the ack: Bolt takes at least one 10 ms pass to produce it
    await writer.wait_closed()
    await until_handled(slack, bot, "help")
    await slack.wait_for(
        lambda: any(
            r.getMessage() == "ack not sent: the connection was closed" for r in caplog.records
        )
    )
    warned = [
        r for r in caplog.records if r.getMessage() == "ack not sent: the connection was closed"
    ]
    assert [r.levelno for r in warned] == [logging.WARNING]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


async def test_a_body_over_one_mebibyte_gets_413(bot: Runtime, zuora: ZuoraSimulator) -> None:
    body = b"text=" + b"a" * (1024 * 1024)
    assert await post_raw(bot.events_url, body, signed(body)) == 413
    assert zuora.requests == []


async def test_a_request_delivered_three_times_is_acted_on_once(
    bot: Runtime, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    fields = slack.command_payload(f"cancel staging {JOB_CANCELLABLE}", ALLOWED, CHANNEL)
    body = command_body(fields)
    now = int(time.time())
    statuses = [
        await post_raw(bot.events_url, body, signed(body, now)),
        await post_raw(bot.events_url, body, signed(body, now, **{"X-Slack-Retry-Num": "1"})),
        await post_raw(bot.events_url, body, signed(body, now + 2)),  # a replay, re-signed later
    ]
    assert statuses == [200, 200, 200]
    await reply_to(slack, CHANNEL, ALLOWED, "CANCELLING")
    await until_handled(slack, bot, "cancel")
    # A genuine second command is still acted on: its trigger is its own.
    await slack.send_command(bot.events_url, "help", ALLOWED, CHANNEL)
    await until_handled(slack, bot, "help")
    assert handled(bot, "cancel") == 1
    assert len(zuora_calls(zuora, CANCEL)) == 1
    audit = [m for m in slack.messages(NOTIFY) if "cancelled job" in text_of(m)]
    assert len(audit) == 1
    assert bot.metrics.duplicate_deliveries._value.get() == 2


async def test_an_envelope_delivered_again_over_socket_mode_is_acted_on_once(
    start_bot: StartBot, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    bot = await start_bot(slack_app_token=APP_TOKEN, slack_signing_secret=None)
    await slack.wait_for_socket()
    fields = slack.command_payload(f"cancel staging {JOB_CANCELLABLE}", ALLOWED, CHANNEL)
    await slack.socket_send_command("", ALLOWED, CHANNEL, fields=dict(fields))
    await slack.socket_send_command("", ALLOWED, CHANNEL, fields=dict(fields))
    await reply_to(slack, CHANNEL, ALLOWED, "CANCELLING")
    await until_handled(slack, bot, "cancel")
    await slack.socket_send_command("help", ALLOWED, CHANNEL)
    await until_handled(slack, bot, "help")
    assert handled(bot, "cancel") == 1
    assert len(zuora_calls(zuora, CANCEL)) == 1
