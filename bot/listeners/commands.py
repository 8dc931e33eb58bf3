"""The `/sandbox` slash command: ack at once, then run the use case and deliver its reply."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot.commands import COMMAND, SUBCOMMANDS, normalise
from bot.listeners.context import ListenerContext
from bot.slack_surface import Origin


def metric_name(text: str) -> str:
    words = normalise(text).split()
    if not words:
        return "help"
    first = words[0].casefold()
    return first if first in SUBCOMMANDS else "invalid"


def register(app: AsyncApp, ctx: ListenerContext) -> None:
    @app.command(COMMAND)
    async def sandbox_command(ack: AsyncAck, command: dict[str, Any]) -> None:
        await ack()
        user_id = str(command.get("user_id", ""))
        text = str(command.get("text", ""))
        await ctx.reply(
            metric_name(text),
            lambda: ctx.operations.command(user_id, text),
            origin=Origin(
                command.get("channel_id"),
                command.get("response_url"),
                user_id=user_id or None,
                trigger_id=command.get("trigger_id"),
            ),
        )
