"""response_url handling in the Slack emulator.

Slack's rules: a response_url accepts at most 5 posts within 30 minutes of its creation. A post is
ephemeral to the invoking user unless `response_type` is `in_channel`; `replace_original` edits
and `delete_original` deletes the message the URL belongs to (the message whose button was
clicked, or for a slash command the first message the command produced); `thread_ts` posts into a
thread. Spent and expired URLs answer 404 with `used_url` and `expired_url`.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from aiohttp import web

from bot.sim.slack_state import JSON, Identity, Message, RecordedCall, Workspace
from bot.sim.slack_validate import ContentError, check_attachments, check_blocks, check_text
from bot.sim.slack_webapi import Faults, flag

MAX_POSTS = 5
VALID_SECONDS = 30 * 60
METHOD = "response_url"  # the name used in `calls` and for `fail_next`

UrlKind = Literal["commands", "actions"]


@dataclass
class ResponseUrl:
    channel_id: str
    user_id: str
    created_at: float
    original_ts: str | None = None
    posts: int = 0


class ResponseUrls:
    def __init__(
        self,
        workspace: Workspace,
        bot: Identity,
        faults: Faults,
        base_url: Callable[[], str],
    ) -> None:
        self.ws = workspace
        self.bot = bot
        self.faults = faults
        self.base_url = base_url
        self._urls: dict[str, ResponseUrl] = {}

    def new(
        self,
        channel_id: str,
        user_id: str,
        *,
        kind: UrlKind = "commands",
        original_ts: str | None = None,
    ) -> str:
        """A fresh URL shaped like Slack's `https://hooks.slack.com/commands/T…/…/…`."""
        key = f"{kind}/{self.ws.team_id}/{secrets.randbelow(10**13):013d}/{secrets.token_hex(12)}"
        self._urls[key] = ResponseUrl(channel_id, user_id, self.ws.clock(), original_ts)
        return f"{self.base_url()}{key}"

    def adopt(self, url: str, message: Message) -> None:
        """Make `message` the original of `url` if it has none (the ack of a slash command)."""
        entry = self._urls.get(url.removeprefix(self.base_url()))
        if entry is not None and entry.original_ts is None:
            entry.original_ts = message.ts

    async def handle(self, request: web.Request) -> web.Response:
        key = f"{request.match_info['kind']}/{request.match_info['rest']}"
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = None
        args: JSON = body if isinstance(body, dict) else {"raw": raw.decode(errors="replace")}
        status, response, headers = self._post(key, body)
        self.ws.record(RecordedCall(METHOD, args, None, "json", status, response))
        return web.json_response(response, status=status, headers=headers)

    def _post(self, key: str, body: object) -> tuple[int, JSON, dict[str, str]]:
        entry = self._urls.get(key)
        if entry is None:
            return 404, {"ok": False, "error": "invalid_url"}, {}
        if self.ws.clock() - entry.created_at > VALID_SECONDS:
            return 404, {"ok": False, "error": "expired_url"}, {}
        if entry.posts >= MAX_POSTS:
            return 404, {"ok": False, "error": "used_url"}, {}
        fault = self.faults.take(METHOD)
        if fault is not None:
            return fault.status, {"ok": False, "error": fault.error}, Faults.headers(fault)
        if not isinstance(body, dict):
            return 400, {"ok": False, "error": "invalid_payload"}, {}
        entry.posts += 1
        try:
            return 200, self._apply(entry, body), {}
        except ContentError as exc:
            return 400, {"ok": False, "error": exc.error, "errors": exc.details}, {}

    def _apply(self, entry: ResponseUrl, body: JSON) -> JSON:
        original = (
            self.ws.find(entry.channel_id, entry.original_ts, ephemeral=None)
            if entry.original_ts
            else None
        )
        if flag(body.get("delete_original")):
            if original is None:
                raise ContentError("message_not_found")
            original.deleted = True
            self.ws.changed(original)
            return {"ok": True}
        text = check_text(body["text"]) if "text" in body else None
        blocks = check_blocks(body["blocks"]) if body.get("blocks") is not None else None
        attachments = (
            check_attachments(body["attachments"]) if body.get("attachments") is not None else None
        )
        if not text and not blocks and not attachments:
            raise ContentError("no_text")
        if flag(body.get("replace_original")) and original is not None:
            # Slack replaces the whole content: what the post leaves out is gone.
            self.ws.edit(
                original, text=text or "", blocks=blocks or [], attachments=attachments or []
            )
            return {"ok": True}
        in_channel = body.get("response_type") == "in_channel"
        thread_ts = body.get("thread_ts")
        message = self.ws.add_message(
            Message(
                channel=entry.channel_id,
                ts=self.ws.next_ts(),
                user=self.bot.user_id,
                text=text or "",
                blocks=blocks or [],
                attachments=attachments or [],
                bot_id=self.bot.bot_id,
                app_id=self.bot.app_id,
                thread_ts=str(thread_ts) if thread_ts else None,
                ephemeral_for=None if in_channel else entry.user_id,
                source="response_url",
                unfurl_links=flag(body["unfurl_links"]) if "unfurl_links" in body else None,
                unfurl_media=flag(body["unfurl_media"]) if "unfurl_media" in body else None,
            )
        )
        if entry.original_ts is None:
            entry.original_ts = message.ts
        return {"ok": True}
