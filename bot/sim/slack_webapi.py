"""The Web API half of the Slack emulator: `POST|GET /api/{method}`.

It accepts what slack_sdk's AsyncWebClient sends: a Bearer token header, and arguments as a JSON
body (chat.postMessage, chat.update, chat.postEphemeral, views.*), as query parameters (chat.delete,
conversations.*, usergroups.users.list, users.info, auth.test, apps.connections.open) or as a form
body. Errors come back the way Slack reports them: HTTP 200 with `{"ok": false, "error": ...}`,
except injected faults, which may use any status (429 with `Retry-After` for `ratelimited`).

A message posted to a user ID (`U…`/`W…`) lands in the bot's direct message channel with that
user (`D…`, as `conversations.open` returns it), and the answer names that channel, as in Slack.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiohttp import web

from bot.sim.slack_state import (
    JSON,
    Channel,
    Identity,
    Message,
    RecordedCall,
    TokenKind,
    User,
    Workspace,
)
from bot.sim.slack_validate import (
    ContentError,
    check_attachments,
    check_blocks,
    check_metadata,
    check_text,
    check_view,
)
from bot.sim.slack_views import View, ViewError, Views

Transport = Literal["json", "form", "query"]
Handler = Callable[[JSON, Identity], JSON]

READ_TOKENS: frozenset[TokenKind] = frozenset({"bot", "user"})
APP_TOKENS: frozenset[TokenKind] = frozenset({"app"})
HOME: frozenset[str] = frozenset({"home"})
MODAL: frozenset[str] = frozenset({"modal"})
MAX_MPIM_USERS = 8
# Long names Slack shows for the abbreviations of common zones (`tz_label`); others show the abbreviation.
TZ_LABELS = {
    "GMT": "Greenwich Mean Time",
    "BST": "British Summer Time",
    "UTC": "Coordinated Universal Time",
    "CET": "Central European Time",
    "CEST": "Central European Summer Time",
    "EET": "Eastern European Time",
    "EEST": "Eastern European Summer Time",
    "EST": "Eastern Standard Time",
    "EDT": "Eastern Daylight Time",
    "CST": "Central Standard Time",
    "CDT": "Central Daylight Time",
    "MST": "Mountain Standard Time",
    "MDT": "Mountain Daylight Time",
    "PST": "Pacific Standard Time",
    "PDT": "Pacific Daylight Time",
    "IST": "India Standard Time",
    "JST": "Japan Standard Time",
    "AEST": "Australian Eastern Standard Time",
    "AEDT": "Australian Eastern Daylight Time",
}


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
        views: Views,
    ) -> None:
        self.ws = workspace
        self.tokens = tokens
        self.faults = faults
        self.strict_channels = strict_channels
        self.issue_socket_url = issue_socket_url
        self.views = views
        self.methods: dict[str, tuple[frozenset[TokenKind], Handler]] = {
            "auth.test": (READ_TOKENS, self.auth_test),
            "chat.postMessage": (READ_TOKENS, self.chat_post_message),
            "chat.update": (READ_TOKENS, self.chat_update),
            "chat.postEphemeral": (READ_TOKENS, self.chat_post_ephemeral),
            "chat.delete": (READ_TOKENS, self.chat_delete),
            "conversations.history": (READ_TOKENS, self.conversations_history),
            "conversations.replies": (READ_TOKENS, self.conversations_replies),
            "usergroups.users.list": (READ_TOKENS, self.usergroups_users_list),
            "users.info": (READ_TOKENS, self.users_info),
            "conversations.open": (READ_TOKENS, self.conversations_open),
            "views.publish": (READ_TOKENS, self.views_publish),
            "views.open": (READ_TOKENS, self.views_open),
            "views.update": (READ_TOKENS, self.views_update),
            "views.push": (READ_TOKENS, self.views_push),
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
        except ViewError as exc:
            body = {"ok": False, "error": exc.error}
            if exc.messages:
                body["response_metadata"] = {"messages": exc.messages}
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
        if channel is None and self._is_user_id(channel_id):
            channel = self.ws.dm_channel(channel_id, who.user_id)  # a DM, as Slack posts it
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

    def _is_user_id(self, value: str) -> bool:
        """A known user, or in the lenient mode any `U…`/`W…` ID (undeclared users exist there)."""
        if value in self.ws.users:
            return True
        return not self.strict_channels and value[:1] in ("U", "W") and value[1:].isalnum()

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

    # ---- users and direct messages

    def users_info(self, args: JSON, who: Identity) -> JSON:
        user = self.ws.users.get(str(args.get("user") or ""))
        if user is None:
            raise ApiError("user_not_found")
        return {
            "ok": True,
            "user": user_object(self.ws, user, locale=flag(args.get("include_locale"))),
        }

    def conversations_open(self, args: JSON, who: Identity) -> JSON:
        """A direct message channel (`D…`) with one user; with several, a group DM (`G…`)."""
        if args.get("channel"):
            channel = self.ws.channel(str(args["channel"]))
            if channel is None or not (channel.is_im or channel.id.startswith("G")):
                raise ApiError("channel_not_found")
            return self._opened(channel, True, flag(args.get("return_im")))
        users = [u.strip() for u in str(args.get("users") or "").split(",") if u.strip()]
        if not users:
            raise ApiError("users_list_not_supplied")
        if len(users) > MAX_MPIM_USERS:
            raise ApiError("too_many_users")
        for user_id in users:
            if user_id not in self.ws.users:
                raise ApiError("user_not_found")
        if len(users) == 1:
            existing = self.ws.dm_channel(users[0], who.user_id, create=False)
            if existing is None and flag(args.get("prevent_creation")):
                return {"ok": True, "channel": {}}
            channel = self.ws.dm_channel(users[0], who.user_id)
            assert channel is not None  # created on demand
            return self._opened(channel, existing is not None, flag(args.get("return_im")))
        members = {*users, who.user_id}
        for channel in self.ws.channels.values():
            if channel.id.startswith("G") and channel.members == members:
                return self._opened(channel, True, flag(args.get("return_im")))
        channel = Channel(
            f"G{len(self.ws.channels):08d}MPIM",
            "mpdm-" + "--".join(sorted(self.ws.user_name(u) for u in members)) + "-1",
            is_private=True,
            members=members,
            created=int(self.ws.clock()),
        )
        self.ws.channels[channel.id] = channel
        self.ws.notify()
        return self._opened(channel, False, flag(args.get("return_im")))

    def _opened(self, channel: Channel, already: bool, full: bool) -> JSON:
        shown: JSON = {"id": channel.id}
        if full:
            shown.update(
                {
                    "created": channel.created,
                    "is_im": channel.is_im,
                    "is_mpim": not channel.is_im,
                    "is_org_shared": False,
                    "priority": 0,
                }
            )
            if channel.is_im:
                shown["user"] = channel.im_user
                shown["is_user_deleted"] = bool(
                    (user := self.ws.users.get(str(channel.im_user))) and user.deleted
                )
        body: JSON = {"ok": True}
        if already:
            body.update({"no_op": True, "already_open": True})
        body["channel"] = shown
        return body

    # ---- views

    def views_publish(self, args: JSON, who: Identity) -> JSON:
        user_id = args.get("user_id")
        if not isinstance(user_id, str) or not self._is_user_id(user_id):
            raise ViewError("invalid_arguments", ["invalid `user_id`"])
        body = self._view(args, HOME)
        view = self.views.publish(user_id, body, who.app_id, who.bot_id, args.get("hash"))
        return {"ok": True, "view": view.to_api()}

    def views_open(self, args: JSON, who: Identity) -> JSON:
        body = self._view(args, MODAL)
        trigger = self.views.triggers.check(
            args.get("trigger_id") or args.get("interactivity_pointer")
        )
        view = self.views.open_modal(trigger.user_id, body, who.app_id, who.bot_id)
        trigger.used = True
        return {"ok": True, "view": view.to_api()}

    def views_push(self, args: JSON, who: Identity) -> JSON:
        body = self._view(args, MODAL)
        trigger = self.views.triggers.check(
            args.get("trigger_id") or args.get("interactivity_pointer")
        )
        view = self.views.push(trigger.user_id, body, who.app_id, who.bot_id)
        trigger.used = True
        return {"ok": True, "view": view.to_api()}

    def views_update(self, args: JSON, who: Identity) -> JSON:
        view: View | None
        if args.get("view_id"):
            view = self.views.find(str(args["view_id"]))
        elif args.get("external_id"):
            view = self.views.by_external_id(str(args["external_id"]))
        else:
            raise ViewError(
                "invalid_arguments", ["[ERROR] either view_id or external_id is required"]
            )
        if view is None:
            raise ViewError("not_found")
        body = self._view(args, HOME if view.type == "home" else MODAL)
        self.views.update(view, body, args.get("hash"))
        return {"ok": True, "view": view.to_api()}

    @staticmethod
    def _view(args: JSON, kinds: frozenset[str]) -> JSON:
        if args.get("view") in (None, ""):
            raise ViewError("invalid_arguments", ["[ERROR] missing required field: view"])
        try:
            return check_view(args["view"], kinds)
        except ContentError as exc:
            raise ViewError(exc.error, [f"[ERROR] {d}" for d in exc.details]) from None


def user_object(ws: Workspace, user: User, *, locale: bool = False) -> JSON:
    """A user as `users.info` shows them, with the time zone's label and offset at the
    workspace's time."""
    zone_name, label, offset = _zone(user.tz, ws.clock())
    team_id = user.team_id or ws.team_id
    real_name = user.real_name if user.real_name is not None else user.name
    profile: JSON = {
        "real_name": real_name,
        "display_name": user.name,
        "real_name_normalized": real_name,
        "display_name_normalized": user.name,
        "team": team_id,
    }
    body: JSON = {
        "id": user.id,
        "team_id": team_id,
        "name": user.name,
        "deleted": user.deleted,
        "real_name": real_name,
        "tz": zone_name,
        "tz_label": label,
        "tz_offset": offset,
        "profile": profile,
        "is_admin": False,
        "is_owner": False,
        "is_primary_owner": False,
        "is_restricted": user.guest is not None,
        "is_ultra_restricted": user.guest == "single",
        "is_bot": user.is_bot,
        "is_app_user": False,
        "updated": int(ws.clock()),
    }
    if ws.is_stranger(user):
        body["is_stranger"] = True
    if locale:
        body["locale"] = "en-US"
    return body


def _zone(name: str, when: float) -> tuple[str, str, int]:
    """(tz, tz_label, tz_offset in seconds) of a zone name at unix time `when`."""
    try:
        zone = ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        zone, name = ZoneInfo("UTC"), "UTC"
    moment = datetime.fromtimestamp(when, zone)
    offset = moment.utcoffset()
    seconds = int(offset.total_seconds()) if offset is not None else 0
    abbreviation = moment.tzname() or "UTC"
    return name, TZ_LABELS.get(abbreviation, abbreviation), seconds


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
