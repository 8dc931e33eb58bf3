"""Payloads the Slack emulator sends to a bot: slash commands, button clicks, events and views.

Field names and order follow what Slack sends; the same payloads travel over signed HTTP and in
Socket Mode envelopes. Every trigger_id in them comes from the emulator's `Triggers`, so that it can
be exchanged once, in time, for the user who acted.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from typing import Literal

from bot.sim.slack_response_url import ResponseUrls
from bot.sim.slack_state import JSON, Identity, Message, Workspace
from bot.sim.slack_views import STATE_FIELDS, Triggers, View

HomeTab = Literal["home", "messages"]


class Payloads:
    def __init__(
        self,
        workspace: Workspace,
        app_id: str,
        verification_token: str,
        response_urls: ResponseUrls,
        triggers: Triggers,
        bot: Identity,
    ) -> None:
        self.ws = workspace
        self.app_id = app_id
        self.verification_token = verification_token
        self.response_urls = response_urls
        self.triggers = triggers
        self.bot = bot

    # ---- who and where

    def user(self, user_id: str) -> JSON:
        """The `user` of an interaction payload (the user is made to exist: Slack sent it)."""
        name = self.ws.ensure_user(user_id).name
        return {"id": user_id, "username": name, "name": name, "team_id": self.ws.team_of(user_id)}

    def team(self, user_id: str) -> JSON:
        team_id = self.ws.team_of(user_id)
        domain = self.ws.team_domain if team_id == self.ws.team_id else team_id.lower()
        return {"id": team_id, "domain": domain}

    def channel_name(self, channel_id: str) -> str:
        channel = self.ws.channel(channel_id)
        if channel is None:
            return channel_id.lower()
        return "directmessage" if channel.is_im else channel.name

    def command(
        self,
        text: str,
        user_id: str,
        channel_id: str,
        command: str = "/sandbox",
        *,
        response_url: str | None = None,
    ) -> dict[str, str]:
        """A slash command's fields, in Slack's order."""
        self.ws.ensure_user(user_id)
        return {
            "token": self.verification_token,
            "team_id": self.ws.team_id,
            "team_domain": self.ws.team_domain,
            "channel_id": channel_id,
            "channel_name": self.channel_name(channel_id),
            "user_id": user_id,
            "user_name": self.ws.user_name(user_id),
            "command": command,
            "text": text,
            "api_app_id": self.app_id,
            "is_enterprise_install": "false",
            "response_url": response_url or self.response_urls.new(channel_id, user_id),
            "trigger_id": self.triggers.issue(user_id),
        }

    def block_actions(
        self,
        user_id: str,
        action_id: str,
        value: str | None,
        channel_id: str,
        message_ts: str | None = None,
        *,
        block_id: str | None = None,
        is_ephemeral: bool | None = None,
        response_url: str | None = None,
    ) -> JSON:
        """A block_actions payload for a button click.

        Without `message_ts` the newest message in the channel (visible to the user) holding a
        button with `action_id` is clicked. The button's block_id, text and value fill what the
        caller leaves out. As far as we know Slack leaves message metadata out of this payload, so
        the emulator does too."""
        message = self._clicked_message(channel_id, user_id, action_id, message_ts)
        button = _find_button(message.blocks, action_id, block_id) if message else None
        if message is not None:
            message_ts = message.ts
            if is_ephemeral is None:
                is_ephemeral = message.is_ephemeral
        if message_ts is None:
            raise ValueError(f"no message in {channel_id} has a button {action_id!r}")
        ephemeral = bool(is_ephemeral)
        action: JSON = {
            "action_id": action_id,
            "block_id": block_id or (button or {}).get("block_id") or "emulator",
            "text": (button or {}).get("text")
            or {"type": "plain_text", "text": action_id, "emoji": True},
            "type": "button",
            "action_ts": f"{time.time():.6f}",
        }
        if value is None and button is not None:
            value = button.get("value")
        if value is not None:
            action["value"] = value
        payload: JSON = {
            "type": "block_actions",
            "user": self.user(user_id),
            "api_app_id": self.app_id,
            "token": self.verification_token,
            "container": {
                "type": "message",
                "message_ts": message_ts,
                "channel_id": channel_id,
                "is_ephemeral": ephemeral,
            },
            "trigger_id": self.triggers.issue(user_id),
            "team": self.team(user_id),
            "enterprise": None,
            "is_enterprise_install": False,
            "channel": {"id": channel_id, "name": self.channel_name(channel_id)},
        }
        if message is not None and not ephemeral:
            payload["message"] = self.ws.to_api(message, include_metadata=False)
        payload["state"] = {"values": {}}
        payload["response_url"] = response_url or self.response_urls.new(
            channel_id, user_id, kind="actions", original_ts=message_ts
        )
        payload["actions"] = [action]
        return payload

    # ---- events

    def event_callback(self, event: JSON) -> JSON:
        """The Events API body around `event` (the `events_api` envelope's payload)."""
        now = time.time()
        context = json.dumps({"tid": self.ws.team_id, "aid": self.app_id, "bid": self.bot.bot_id})
        return {
            "token": self.verification_token,
            "team_id": self.ws.team_id,
            "context_team_id": self.ws.team_id,
            "context_enterprise_id": None,
            "api_app_id": self.app_id,
            "event": event,
            "type": "event_callback",
            "event_id": f"Ev{secrets.token_hex(5).upper()}",
            "event_time": int(now),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": self.ws.team_id,
                    "user_id": self.bot.user_id,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
            "event_context": "4-" + base64.urlsafe_b64encode(context.encode()).decode().rstrip("="),
        }

    def app_home_opened(self, user_id: str, tab: HomeTab, home: View | None) -> JSON:
        """`app_home_opened`: the user opened the app's Home or Messages tab; `view` is the Home
        tab's view when one is published for them."""
        self.ws.ensure_user(user_id)
        channel = self.ws.dm_channel(user_id, self.bot.user_id)
        assert channel is not None  # made on demand
        event: JSON = {
            "type": "app_home_opened",
            "user": user_id,
            "channel": channel.id,
            "tab": tab,
            "event_ts": f"{time.time():.6f}",
        }
        if home is not None:
            event["view"] = home.to_api()
        return self.event_callback(event)

    # ---- shortcuts and views

    def shortcut(self, user_id: str, callback_id: str) -> JSON:
        """A global shortcut, chosen from the shortcuts menu (no channel, no response_url)."""
        return {
            "type": "shortcut",
            "token": self.verification_token,
            "action_ts": f"{time.time():.6f}",
            "team": self.team(user_id),
            "user": self.user(user_id),
            "is_enterprise_install": False,
            "enterprise": None,
            "callback_id": callback_id,
            "trigger_id": self.triggers.issue(user_id),
        }

    def view_block_actions(self, user_id: str, view: View, action: JSON) -> JSON:
        """block_actions from an element of a Home tab or a modal: the view with its state, and
        no response_url (a view has no channel)."""
        return {
            "type": "block_actions",
            "user": self.user(user_id),
            "api_app_id": self.app_id,
            "token": self.verification_token,
            "container": {"type": "view", "view_id": view.id},
            "trigger_id": self.triggers.issue(user_id, view_id=view.id),
            "team": self.team(user_id),
            "enterprise": None,
            "is_enterprise_install": False,
            "view": view.to_api(),
            "actions": [action],
        }

    def view_submission(self, user_id: str, view: View) -> JSON:
        return {
            "type": "view_submission",
            "team": self.team(user_id),
            "user": self.user(user_id),
            "api_app_id": self.app_id,
            "token": self.verification_token,
            "trigger_id": self.triggers.issue(user_id, view_id=view.id),
            "view": view.to_api(),
            "response_urls": [],
            "is_enterprise_install": False,
            "enterprise": None,
        }

    def view_closed(self, user_id: str, view: View, is_cleared: bool) -> JSON:
        return {
            "type": "view_closed",
            "team": self.team(user_id),
            "user": self.user(user_id),
            "api_app_id": self.app_id,
            "token": self.verification_token,
            "view": view.to_api(),
            "is_cleared": is_cleared,
            "is_enterprise_install": False,
            "enterprise": None,
        }

    def _clicked_message(
        self, channel_id: str, user_id: str, action_id: str, message_ts: str | None
    ) -> Message | None:
        if message_ts is not None:
            return self.ws.find(channel_id, message_ts, ephemeral=None)
        for message in reversed(self.ws.messages(channel_id)):
            visible = message.ephemeral_for in (None, user_id)
            if visible and _find_button(message.blocks, action_id, None) is not None:
                return message
        return None


def _find_button(blocks: list[JSON], action_id: str, block_id: str | None) -> JSON | None:
    """The button with `action_id` (in actions or section accessories), with its block_id."""
    for block in blocks:
        if block_id is not None and block.get("block_id") != block_id:
            continue
        elements = list(block.get("elements") or [])
        if isinstance(block.get("accessory"), dict):
            elements.append(block["accessory"])
        for element in elements:
            if isinstance(element, dict) and element.get("action_id") == action_id:
                return {**element, "block_id": block.get("block_id")}
    return None


def view_action(block: JSON, element: JSON, entry: JSON | None) -> JSON:
    """One action of a view's block_actions: a button's text and value, or the element's new
    state (`selected_option`, `selected_date`, ...), as Slack describes it."""
    kind = str(element.get("type"))
    action: JSON = {
        "type": kind,
        "block_id": block.get("block_id"),
        "action_id": element.get("action_id"),
    }
    if kind == "button":
        action["text"] = element.get("text") or {"type": "plain_text", "text": "", "emoji": True}
        if "value" in element:
            action["value"] = element["value"]
        if "style" in element:
            action["style"] = element["style"]
    elif kind in STATE_FIELDS and entry is not None:
        action.update({k: v for k, v in entry.items() if k != "type"})
        initial = STATE_FIELDS[kind][1]
        if initial in element:
            action[initial] = element[initial]
    if isinstance(element.get("placeholder"), dict):
        action["placeholder"] = element["placeholder"]
    action["action_ts"] = f"{time.time():.6f}"
    return action
