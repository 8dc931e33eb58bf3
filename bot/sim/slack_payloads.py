"""Interaction payloads the Slack emulator sends to a bot: slash commands and button clicks.

Field names and order follow what Slack sends; the same payloads travel over signed HTTP and in
Socket Mode envelopes.
"""

from __future__ import annotations

import time

from bot.sim.slack_response_url import ResponseUrls
from bot.sim.slack_sender import trigger_id
from bot.sim.slack_state import JSON, Message, Workspace


class Payloads:
    def __init__(
        self,
        workspace: Workspace,
        app_id: str,
        verification_token: str,
        response_urls: ResponseUrls,
    ) -> None:
        self.ws = workspace
        self.app_id = app_id
        self.verification_token = verification_token
        self.response_urls = response_urls

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
        channel = self.ws.channel(channel_id)
        return {
            "token": self.verification_token,
            "team_id": self.ws.team_id,
            "team_domain": self.ws.team_domain,
            "channel_id": channel_id,
            "channel_name": channel.name if channel else channel_id.lower(),
            "user_id": user_id,
            "user_name": self.ws.user_name(user_id),
            "command": command,
            "text": text,
            "api_app_id": self.app_id,
            "is_enterprise_install": "false",
            "response_url": response_url or self.response_urls.new(channel_id, user_id),
            "trigger_id": trigger_id(),
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
        channel = self.ws.channel(channel_id)
        name = self.ws.user_name(user_id)
        payload: JSON = {
            "type": "block_actions",
            "user": {
                "id": user_id,
                "username": name,
                "name": name,
                "team_id": self.ws.team_id,
            },
            "api_app_id": self.app_id,
            "token": self.verification_token,
            "container": {
                "type": "message",
                "message_ts": message_ts,
                "channel_id": channel_id,
                "is_ephemeral": ephemeral,
            },
            "trigger_id": trigger_id(),
            "team": {"id": self.ws.team_id, "domain": self.ws.team_domain},
            "enterprise": None,
            "is_enterprise_install": False,
            "channel": {"id": channel_id, "name": channel.name if channel else channel_id.lower()},
        }
        if message is not None and not ephemeral:
            payload["message"] = self.ws.to_api(message, include_metadata=False)
        payload["state"] = {"values": {}}
        payload["response_url"] = response_url or self.response_urls.new(
            channel_id, user_id, kind="actions", original_ts=message_ts
        )
        payload["actions"] = [action]
        return payload

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
