"""Helpers for end-to-end tests: what Zuora received and what Slack would show."""

from __future__ import annotations

import json
from typing import Any

from bot.sim.slack import SlackEmulator
from bot.sim.zuora import RecordedRequest, ZuoraSimulator


def text_of(message: Any) -> str:
    """Everything a reader would see in a message (blocks and fallback text), as one string."""
    return json.dumps(message.blocks, ensure_ascii=False) + "\n" + message.text


def zuora_calls(zuora: ZuoraSimulator, operation: str) -> list[RecordedRequest]:
    return [r for r in zuora.requests if r.operation == operation]


def api_calls(zuora: ZuoraSimulator) -> list[RecordedRequest]:
    """Every request other than token requests."""
    return [r for r in zuora.requests if r.operation not in (None, "createToken")]


async def reply_to(
    slack: SlackEmulator, channel: str, user: str, contains: str, timeout: float = 5.0
) -> Any:
    """The first message in `channel` visible to `user` whose text contains `contains`."""

    def visible(message: Any) -> bool:
        return (message.ephemeral_for in (None, user)) and contains in text_of(message)

    return await slack.wait_for_message(channel, visible, timeout=timeout)


def action_values(message: Any, action_id: str) -> list[str]:
    """Values of the buttons with `action_id`, in actions blocks and section accessories."""
    elements = []
    for block in message.blocks:
        elements.extend(block.get("elements", []) if block.get("type") == "actions" else [])
        if isinstance(block.get("accessory"), dict):
            elements.append(block["accessory"])
    return [e.get("value", "") for e in elements if e.get("action_id") == action_id]
