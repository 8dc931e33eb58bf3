"""What a request from Slack must pass before anything reads it, and the memory of requests already handled.

`inspect` works on the raw bytes: the signature (HMAC-SHA256 `v0` over `v0:{timestamp}:{body}`, the timestamp
within 5 minutes) is checked before the body is parsed, so an unsigned request costs one HMAC and a log line,
never a parse or a traceback. Only then is the body checked to be something Slack sends (UTF-8, a form or a
JSON object, not absurdly nested).

`ReplayWindow` remembers what was handled (a digest of the payload) for the signing window, so a request Slack
delivers again (its retries, or a captured request replayed inside the window) is acted on once.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from bot.coordination import CoordinationUnavailable, Store

SIGNING_WINDOW = 300  # seconds, as Slack documents
MAX_BODY = 1024 * 1024
MAX_JSON_DEPTH = 64
REPLAY_ENTRIES = 20_000


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a request is turned away: the HTTP status and a short reason for the log (no request content)."""

    status: int
    reason: str


def inspect(
    *,
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    now: float | None = None,
) -> Rejection | None:
    """None when the request is signed by Slack and well formed; otherwise why not (401, 400 or 413)."""
    if len(body) > MAX_BODY:
        return Rejection(413, "body over 1 MiB")
    timestamp = headers.get("X-Slack-Request-Timestamp", "")
    signature = headers.get("X-Slack-Signature", "")
    if not timestamp or not signature:
        return Rejection(401, "unsigned")
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        return Rejection(401, "timestamp is not a number")
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > SIGNING_WINDOW:
        return Rejection(401, "stale timestamp")
    base = b"v0:" + timestamp.encode() + b":" + body
    expected = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
        return Rejection(401, "bad signature")
    problem = _malformed(headers.get("Content-Type", ""), body)
    return Rejection(400, problem) if problem else None


def _malformed(content_type: str, body: bytes) -> str | None:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return "body is not UTF-8"
    # Bolt reads a body as JSON when it says so, and also whenever it starts with `{`, whatever it says.
    if content_type.startswith("application/json") or text.startswith("{"):
        return _json_problem(text)
    if not text:
        return None
    # A form is `name=value` pairs joined by `&` (what `parse_qsl(strict_parsing=True)` refuses is a field
    # without `=`). Only the `payload` field is decoded here: Bolt parses the form itself, and decoding every
    # field twice was a fifth of the ack's own work. Of several `payload` fields Bolt reads the last.
    payload: str | None = None
    for field in text.split("&"):
        name, equals, value = field.partition("=")
        if not equals:
            return "body is not a form"
        if _field_name(name) == "payload":
            payload = unquote_plus(value)
    return _json_problem(payload) if payload is not None else None


def _field_name(raw: str) -> str:
    return unquote_plus(raw) if "%" in raw or "+" in raw else raw


def _json_problem(text: str) -> str | None:
    if _depth(text) > MAX_JSON_DEPTH:
        return "JSON nested too deeply"
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return "body is not JSON"
    return None if isinstance(value, dict) else "JSON is not an object"


def _depth(text: str) -> int:
    """How deeply brackets nest, counted without parsing (strings included: an over-estimate is fine)."""
    depth = deepest = 0
    for char in text:
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def digest_of(payload: str | dict[str, Any]) -> str:
    """A request's digest: of its raw body as signed (HTTP mode: a string, hashed as it is, a tenth of the cost
    of serialising the parsed form again), or of a parsed payload as canonical JSON (Socket Mode)."""
    if isinstance(payload, str):
        return hashlib.sha256(payload.encode()).hexdigest()
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


class ReplayWindow:
    """Digests of payloads handled in the last `window` seconds, at most `entries` of them (oldest first out).

    The digest covers the whole payload (`digest_of`: the raw body in HTTP mode, the parsed payload in Socket
    Mode): Slack's retries and replays repeat it exactly, and two genuine requests never do (each carries its
    own trigger_id, action_ts or event_id)."""

    def __init__(
        self,
        *,
        window: float = SIGNING_WINDOW,
        entries: int = REPLAY_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._window = window
        self._entries = entries
        self._clock = clock
        self._seen: OrderedDict[str, float] = OrderedDict()

    async def first_time(self, payload: str | dict[str, Any]) -> bool:
        """True the first time a payload is seen within the window (and remembers it); False for a repeat."""
        return self.first_time_here(digest_of(payload))

    def first_time_here(self, digest: str) -> bool:
        """The same, in this process only."""
        now = self._clock()
        while self._seen:
            oldest, when = next(iter(self._seen.items()))
            if now - when <= self._window and len(self._seen) < self._entries:
                break
            del self._seen[oldest]
        if digest in self._seen:
            return False
        self._seen[digest] = now
        return True


REPLAY_DEADLINE = 0.5


class SharedReplayWindow(ReplayWindow):
    """The replay window of every replica, in the coordination store: a request Slack delivers again to
    another replica is not acted on twice. While the store cannot be reached, this replica's own window
    answers (an action's own claims still refuse it, so nothing is done twice)."""

    def __init__(
        self, store: Store, *, window: float = SIGNING_WINDOW, deadline: float = REPLAY_DEADLINE
    ) -> None:
        super().__init__(window=window)
        self._store = store
        self._deadline = deadline

    async def first_time(self, payload: str | dict[str, Any]) -> bool:
        """First here and first for every replica. The store gets `deadline` seconds (it is on the ack's
        path, within Slack's 3 s): a slow or unreachable store leaves this replica's window to answer."""
        digest = digest_of(payload)
        here = self.first_time_here(digest)
        try:
            async with asyncio.timeout(self._deadline):
                return await self._store.claim(f"replay:{digest}", self._window) and here
        except (CoordinationUnavailable, TimeoutError):
            return here
