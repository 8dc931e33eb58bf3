"""The `/sandbox` slash command: ack at once, then run the use case and deliver its reply."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot.commands import COMMAND, SUBCOMMANDS, normalise
from bot.job_cards import Origin
from bot.listeners.context import ListenerContext


def metric_name(text: str) -> str:
    words = normalise(text).split()
    if not words:
        return "help"
    first = words[0].casefold()
    return first if first in SUBCOMMANDS else "invalid"


def register(app: AsyncApp, ctx: ListenerContext) -> None:
    @app.command(COMMAND)
    async def sandbox_command(
        ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond
    ) -> None:
        await ack()
        user_id = str(command.get("user_id", ""))
        text = str(command.get("text", ""))
        await ctx.reply(
            metric_name(text),
            lambda: ctx.operations.command(user_id, text),
            respond=respond,
            origin=Origin(command.get("channel_id"), command.get("response_url")),
        )
