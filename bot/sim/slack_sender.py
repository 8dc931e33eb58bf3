"""Requests the Slack emulator sends to a bot: slash commands, interactions and events, signed like Slack.

Slack posts `application/x-www-form-urlencoded` bodies for a slash command (its fields directly) and
an interaction (block_actions, shortcut, view_submission, view_closed: a single `payload` field
holding JSON), and `application/json` for the Events API (`event_callback`). Each request carries
`X-Slack-Request-Timestamp` and `X-Slack-Signature: v0=HMAC-SHA256(secret, "v0:{ts}:{body}")`.
"""

# ruff: noqa: ASYNC109  # waiting helpers take a timeout argument by design (test API)

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlencode

import aiohttp

JSON = dict[str, Any]

SignMode = Literal["valid", "bad_signature", "stale", "missing"]
"""How to sign: correctly, with a wrong secret, correctly but 6 minutes old, or not at all."""

USER_AGENT = "Slackbot 1.0 (+https://api.slack.com/robots)"
STALE_SECONDS = 6 * 60  # Slack's window, and what bots are told to enforce, is 5 minutes


def sign(secret: str, body: bytes, timestamp: int) -> str:
    base = b"v0:" + str(timestamp).encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def trigger_id() -> str:
    """A trigger_id in Slack's format that the emulator never issued (see `slack_views.Triggers`)."""
    return f"{secrets.randbelow(10**13)}.{secrets.randbelow(10**10)}.{secrets.token_hex(16)}"


@dataclass(frozen=True)
class Delivery:
    """What the bot answered to one request, and how long it took."""

    status: int | None  # None: no answer within the timeout (Slack shows the user an error)
    body: str
    elapsed: float
    headers: dict[str, str] = field(default_factory=dict)
    response_url: str | None = None
    payload: JSON = field(default_factory=dict)

    @property
    def timed_out(self) -> bool:
        return self.status is None

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


FORM = "application/x-www-form-urlencoded"


def signed_headers(
    secret: str,
    body: bytes,
    mode: SignMode,
    timestamp: int | None,
    content_type: str = FORM,
) -> JSON:
    headers: JSON = {"Content-Type": content_type, "User-Agent": USER_AGENT}
    if mode == "missing":
        return headers
    now = int(time.time()) if timestamp is None else timestamp
    if mode == "stale" and timestamp is None:
        now -= STALE_SECONDS
    key = secret if mode != "bad_signature" else secret + "-wrong"
    headers["X-Slack-Request-Timestamp"] = str(now)
    headers["X-Slack-Signature"] = sign(key, body, now)
    return headers


def command_body(fields: JSON) -> bytes:
    return urlencode(fields).encode()


def block_actions_body(payload: JSON) -> bytes:
    """Any interaction payload as Slack posts it: one `payload` form field holding JSON."""
    return urlencode({"payload": json.dumps(payload, separators=(",", ":"))}).encode()


def event_body(payload: JSON) -> bytes:
    """An Events API body: the `event_callback` JSON itself."""
    return json.dumps(payload, separators=(",", ":")).encode()


async def post(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    headers: JSON,
    timeout: float | None,
) -> tuple[int | None, str, dict[str, str], float]:
    """POST and measure; a request that outlives `timeout` is abandoned, as Slack does."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            async with session.post(url, data=body, headers=headers) as response:
                text = await response.text()
                return response.status, text, dict(response.headers), time.perf_counter() - started
    except TimeoutError:
        return None, "", {}, time.perf_counter() - started
