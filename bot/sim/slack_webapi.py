"""The Web API half of the Slack emulator: `POST|GET /api/{method}`.

It accepts what slack_sdk's AsyncWebClient sends: a Bearer token header, and arguments as a JSON
body (chat.postMessage, chat.update, chat.postEphemeral), as query parameters (chat.delete,
conversations.*, usergroups.users.list, auth.test, apps.connections.open) or as a form body.
Errors come back the way Slack reports them: HTTP 200 with `{"ok": false, "error": ...}`,
except injected faults, which may use any status (429 with `Retry-After` for `ratelimited`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web

from bot.sim.slack_state import JSON, Channel, Identity, Message, RecordedCall, TokenKind, Workspace
from bot.sim.slack_validate import (
    ContentError,
    check_attachments,
    check_blocks,
    check_metadata,
    check_text,
)

Transport = Literal["json", "form", "query"]
Handler = Callable[[JSON, Identity], JSON]

READ_TOKENS: frozenset[TokenKind] = frozenset({"bot", "user"})
APP_TOKENS: frozenset[TokenKind] = frozenset({"app"})


class ApiError(Exception):
    """A Slack error code, answered as `{"ok": false, "error": code, **extra}`."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


@dataclass
class Fault:
    error: str
    status: int
    retry_after: int | None
    remaining: int


class Faults:
    """Errors queued for the next calls of a method (`fail_next`)."""

    def __init__(self) -> None:
        self._pending: dict[str, list[Fault]] = {}
        self.delays: dict[
            str, float
        ] = {}  # method -> seconds every call of it waits before its answer

    def add(
        self, method: str, error: str, status: int | None, retry_after: int | None, count: int
    ) -> None:
        if count < 1:
            raise ValueError("count must be at least 1")
        if status is None:
            status = 429 if error == "ratelimited" else 200
        self._pending.setdefault(method, []).append(
            Fault(error=error, status=status, retry_after=retry_after, remaining=count)
        )

    def take(self, method: str) -> Fault | None:
        queue = self._pending.get(method)
        if not queue:
            return None
        fault = queue[0]
        fault.remaining -= 1
        if fault.remaining == 0:
            queue.pop(0)
        return fault

    @staticmethod
    def headers(fault: Fault) -> dict[str, str]:
        if fault.status == 429 and fault.retry_after is not None:
            return {"Retry-After": str(fault.retry_after)}
        return {}


def ts_micros(value: Any, error: str) -> int:
    """A Slack timestamp (`"1700000000.000100"`) as an int, exact where float is not."""
    try:
        seconds, _, fraction = str(value).partition(".")
        if not seconds.isdigit() or (fraction and not fraction.isdigit()):
            raise ValueError
        return int(seconds) * 1_000_000 + int((fraction or "0").ljust(6, "0")[:6])
    except ValueError:
        raise ApiError(error) from None


def flag(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() in {"1", "true"})


def encode_cursor(ts: str) -> str:
    return base64.b64encode(f"next_ts:{ts}".encode()).decode()


def decode_cursor(cursor: str) -> int:
    try:
        text = base64.b64decode(cursor, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise ApiError("invalid_cursor") from None
    if not text.startswith("next_ts:"):
        raise ApiError("invalid_cursor")
    return ts_micros(text.removeprefix("next_ts:"), "invalid_cursor")


def int_arg(value: Any, default: int, low: int, high: int) -> int:
    try:
        number = int(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        raise ApiError("invalid_limit") from None
    return max(low, min(high, number))


class WebApi:
    def __init__(
        self,
        workspace: Workspace,
        tokens: dict[str, Identity],
        faults: Faults,
        *,
        strict_channels: bool,
        issue_socket_url: Callable[[], str],
    ) -> None:
        self.ws = workspace
        self.tokens = tokens
        self.faults = faults
        self.strict_channels = strict_channels
        self.issue_socket_url = issue_socket_url
        self.methods: dict[str, tuple[frozenset[TokenKind], Handler]] = {
            "auth.test": (READ_TOKENS, self.auth_test),
            "chat.postMessage": (READ_TOKENS, self.chat_post_message),
            "chat.update": (READ_TOKENS, self.chat_update),
            "chat.postEphemeral": (READ_TOKENS, self.chat_post_ephemeral),
            "chat.delete": (READ_TOKENS, self.chat_delete),
            "conversations.history": (READ_TOKENS, self.conversations_history),
            "conversations.replies": (READ_TOKENS, self.conversations_replies),
            "usergroups.users.list": (READ_TOKENS, self.usergroups_users_list),
            "apps.connections.open": (APP_TOKENS, self.apps_connections_open),
        }

    # ---- HTTP

    async def handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args, transport, token, parse_error = await _read_request(request)
        identity = self.tokens.get(token) if token else None
        status, headers = 200, {}
        try:
            entry = self.methods.get(method)
            if entry is None:
                raise ApiError("unknown_method", req_method=method)
            if token is None:
                raise ApiError("not_authed")
            if identity is None:
                raise ApiError("invalid_auth")
            allowed, handler = entry
            if identity.kind not in allowed:
                raise ApiError("not_allowed_token_type")
            delay = self.faults.delays.get(method)
            if delay:
                await asyncio.sleep(delay)
            fault = self.faults.take(method)
            if fault is not None:
                status, headers = fault.status, Faults.headers(fault)
                raise ApiError(fault.error)
            if parse_error is not None:
                raise ApiError(parse_error)
            body = handler(args, identity)
        except ApiError as exc:
            body = {"ok": False, "error": exc.error, **exc.extra}
        except ContentError as exc:
            body = {"ok": False, "error": exc.error}
            if exc.details:
                body["errors"] = exc.details
                body["response_metadata"] = {"messages": [f"[ERROR] {d}" for d in exc.details]}
        user_id = identity.user_id if identity else None
        self.ws.record(RecordedCall(method, args, user_id, transport, status, body))
        return web.json_response(body, status=status, headers=headers)

    # ---- shared argument handling

    def _channel(self, args: JSON, who: Identity) -> Channel:
        channel_id = args.get("channel")
        if not isinstance(channel_id, str) or not channel_id:
            raise ApiError("channel_not_found")
        channel = self.ws.channel(channel_id)
        if channel is None:
            if self.strict_channels or channel_id.startswith("#"):
                raise ApiError("channel_not_found")
            channel = self.ws.ensure_channel(channel_id)
        if (
            channel.is_private
            and channel.members is not None
            and who.user_id not in channel.members
        ):
            raise ApiError("channel_not_found")
        return channel

    def _thread(self, channel: str, thread_ts: Any) -> str | None:
        """Replies to a reply land in the parent's thread, as in Slack."""
        if thread_ts in (None, ""):
            return None
        parent = self.ws.find(channel, str(thread_ts))
        if parent is not None and parent.is_reply:
            return parent.thread_ts
        return str(thread_ts)

    @staticmethod
    def _content(
        args: JSON,
    ) -> tuple[str | None, list[JSON] | None, list[JSON] | None, JSON | None]:
        text = check_text(args["text"]) if "text" in args else None
        blocks = check_blocks(args["blocks"]) if args.get("blocks") not in (None, "") else None
        attachments = (
            check_attachments(args["attachments"])
            if args.get("attachments") not in (None, "")
            else None
        )
        metadata = check_metadata(args["metadata"]) if args.get("metadata") else None
        if not text and not blocks and not attachments:
            raise ApiError("no_text")
        return text, blocks, attachments, metadata

    def _own_message(self, args: JSON, who: Identity, denied: str) -> Message:
        channel = self._channel(args, who)
        ts = args.get("ts")
        message = self.ws.find(channel.id, str(ts)) if ts else None
        if message is None:
            raise ApiError("message_not_found")
        if message.user != who.user_id:
            raise ApiError(denied)
        return message

    # ---- methods

    def auth_test(self, args: JSON, who: Identity) -> JSON:
        body: JSON = {
            "ok": True,
            "url": f"https://{self.ws.team_domain}.slack.com/",
            "team": self.ws.team_domain,
            "user": who.name or self.ws.user_name(who.user_id),
            "team_id": self.ws.team_id,
            "user_id": who.user_id,
            "is_enterprise_install": False,
        }
        if who.bot_id:
            body["bot_id"] = who.bot_id
        return body

    def chat_post_message(self, args: JSON, who: Identity) -> JSON:
        channel = self._channel(args, who)
        text, blocks, attachments, metadata = self._content(args)
        message = self.ws.add_message(
            Message(
                channel=channel.id,
                ts=self.ws.next_ts(),
                user=who.user_id,
                text=text or "",
                blocks=blocks or [],
                attachments=attachments or [],
                bot_id=who.bot_id,
                app_id=who.app_id,
                thread_ts=self._thread(channel.id, args.get("thread_ts")),
                metadata=metadata,
                reply_broadcast=flag(args.get("reply_broadcast")),
                unfurl_links=flag(args["unfurl_links"]) if "unfurl_links" in args else None,
                unfurl_media=flag(args["unfurl_media"]) if "unfurl_media" in args else None,
            )
        )
        return {
            "ok": True,
            "channel": channel.id,
            "ts": message.ts,
            "message": self.ws.to_api(message),
        }

    def chat_update(self, args: JSON, who: Identity) -> JSON:
        message = self._own_message(args, who, "cant_update_message")
        text, blocks, attachments, metadata = self._content(args)
        self.ws.edit(message, text=text, blocks=blocks, attachments=attachments, metadata=metadata)
        return {
            "ok": True,
            "channel": message.channel,
            "ts": message.ts,
            "text": message.text,
            "message": self.ws.to_api(message),
        }

    def chat_post_ephemeral(self, args: JSON, who: Identity) -> JSON:
        channel = self._channel(args, who)
        user = args.get("user")
        if not isinstance(user, str) or not user:
            raise ApiError("user_not_in_channel")
        if channel.members is not None and user not in channel.members:
            raise ApiError("user_not_in_channel")
        text, blocks, attachments, _ = self._content(args)
        message = self.ws.add_message(
            Message(
                channel=channel.id,
                ts=self.ws.next_ts(),
                user=who.user_id,
                text=text or "",
                blocks=blocks or [],
                attachments=attachments or [],
                bot_id=who.bot_id,
                app_id=who.app_id,
                thread_ts=self._thread(channel.id, args.get("thread_ts")),
                ephemeral_for=user,
            )
        )
        return {"ok": True, "message_ts": message.ts}

    def chat_delete(self, args: JSON, who: Identity) -> JSON:
        message = self._own_message(args, who, "cant_delete_message")
        message.deleted = True
        self.ws.changed(message)
        return {"ok": True, "channel": message.channel, "ts": message.ts}

    def conversations_history(self, args: JSON, who: Identity) -> JSON:
        channel = self._channel(args, who)
        limit = int_arg(args.get("limit"), 100, 1, 999)
        inclusive = flag(args.get("inclusive"))
        latest = ts_micros(args["latest"], "invalid_ts_latest") if args.get("latest") else None
        oldest = ts_micros(args.get("oldest") or "0", "invalid_ts_oldest")
        if args.get("cursor"):
            latest, inclusive = decode_cursor(str(args["cursor"])), False
        with_metadata = flag(args.get("include_all_metadata"))

        def in_window(message: Message) -> bool:
            ts = ts_micros(message.ts, "invalid_ts")
            if latest is not None and (ts > latest or (ts == latest and not inclusive)):
                return False
            return ts > oldest or (ts == oldest and inclusive)

        visible = [
            m
            for m in self.ws.messages(channel.id, include_ephemeral=False)
            if (not m.is_reply or m.reply_broadcast) and in_window(m)
        ]
        visible.reverse()  # newest first, as Slack returns history
        return self._page(visible, limit, with_metadata)

    def conversations_replies(self, args: JSON, who: Identity) -> JSON:
        channel = self._channel(args, who)
        ts = args.get("ts")
        if not ts:
            raise ApiError("thread_not_found")
        parent = self.ws.find(channel.id, str(ts))
        if parent is not None and parent.is_reply and parent.thread_ts:
            parent = self.ws.find(channel.id, parent.thread_ts)
        if parent is None:
            raise ApiError("thread_not_found")
        thread = [parent, *self.ws.replies(parent)]
        if args.get("cursor"):
            after = decode_cursor(str(args["cursor"]))
            thread = [m for m in thread if ts_micros(m.ts, "invalid_ts") >= after]
        limit = int_arg(args.get("limit"), 1000, 1, 1000)
        return self._page(thread, limit, flag(args.get("include_all_metadata")), forward=True)

    def _page(
        self, messages: list[Message], limit: int, metadata: bool, forward: bool = False
    ) -> JSON:
        page = messages[:limit]
        body: JSON = {
            "ok": True,
            "messages": [self.ws.to_api(m, include_metadata=metadata) for m in page],
            "has_more": len(messages) > limit,
        }
        if len(messages) > limit:
            # history pages go backwards (exclusive of the last ts); replies forwards (from the next)
            body["response_metadata"] = {
                "next_cursor": encode_cursor(messages[limit].ts if forward else page[-1].ts)
            }
        else:
            body["response_metadata"] = {"next_cursor": ""}
        return body

    def usergroups_users_list(self, args: JSON, who: Identity) -> JSON:
        group = args.get("usergroup")
        if not isinstance(group, str) or group not in self.ws.usergroups:
            raise ApiError("no_such_subteam")
        return {"ok": True, "users": list(self.ws.usergroups[group])}

    def apps_connections_open(self, args: JSON, who: Identity) -> JSON:
        return {"ok": True, "url": self.issue_socket_url()}


async def _read_request(
    request: web.Request,
) -> tuple[JSON, Transport, str | None, str | None]:
    """Arguments, how they came, the token, and a body parse error (reported after auth)."""
    args: JSON = dict(request.query)
    transport: Transport = "query"
    parse_error = None
    if request.method == "POST" and request.body_exists:
        if request.content_type == "application/json":
            try:
                body = json.loads(await request.read())
            except ValueError:
                body = None
            if isinstance(body, dict):
                body.pop("token", None)  # Slack reads tokens from JSON bodies nowhere
                args.update(body)
                transport = "json"
            else:
                parse_error = "invalid_json"
        else:
            form = await request.post()
            fields = {k: v for k, v in form.items() if isinstance(v, str)}
            if fields:
                args.update(fields)
                transport = "form"
    form_token = args.pop("token", None)
    header = request.headers.get("Authorization", "")
    token: str | None = None
    if header.startswith("Bearer "):
        token = header.removeprefix("Bearer ").strip() or None
    elif isinstance(form_token, str) and form_token:
        token = form_token
    return args, transport, token, parse_error
