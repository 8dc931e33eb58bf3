"""Helpers for end-to-end tests: what Zuora received and what Slack would show."""

from __future__ import annotations

import json
import socket
from typing import Any

from bot.runtime import Runtime
from bot.sim.slack import WAIT_SECONDS, SlackEmulator
from bot.sim.zuora import RecordedRequest, ZuoraSimulator


def free_port() -> int:
    """A loopback port nothing listens on now (bound, then released: a small race, harmless on loopback)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def text_of(message: Any) -> str:
    """Everything a reader would see in a message (blocks and fallback text), as one string."""
    return json.dumps(message.blocks, ensure_ascii=False) + "\n" + message.text


def zuora_calls(zuora: ZuoraSimulator, operation: str) -> list[RecordedRequest]:
    return [r for r in zuora.requests if r.operation == operation]


def api_calls(zuora: ZuoraSimulator) -> list[RecordedRequest]:
    """Every request other than token requests."""
    return [r for r in zuora.requests if r.operation not in (None, "createToken")]


async def reply_to(
    slack: SlackEmulator, channel: str, user: str, contains: str, timeout: float = WAIT_SECONDS
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


def handled(bot: Runtime, command: str) -> float:
    """How many requests for `command` (a subcommand, or `button_cancel`, `button_status`, ...) the bot has
    finished: reply delivered, notification and audit line written, whatever the outcome."""
    return sum(
        sample.value
        for metric in bot.metrics.commands.collect()
        for sample in metric.samples
        if sample.name.endswith("_total") and sample.labels["command"] == command
    )


async def until_handled(slack: SlackEmulator, bot: Runtime, command: str, count: int = 1) -> None:
    """Wait until the bot has finished `count` requests for `command`: then what did not happen, did not."""
    await slack.wait_for(lambda: handled(bot, command) >= count)


async def watch_rounds(slack: SlackEmulator, bot: Runtime, count: int) -> None:
    """Wait until `count` more watch rounds have run (each counts once: done or failed): what they would have
    posted, they have."""
    watch = bot.watch
    assert watch is not None
    target = watch.rounds + watch.failed_rounds + count
    await slack.wait_for(lambda: watch.rounds + watch.failed_rounds >= target)
