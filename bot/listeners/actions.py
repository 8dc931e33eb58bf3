"""Buttons: every click is authorised like a typed command, and its value is validated like typed text."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.blocks import ACTION_CANCEL_JOB, ACTION_JOB_STATUS
from bot.listeners.context import ListenerContext
from bot.operations import Reply


def _click(body: dict[str, Any]) -> tuple[str, str, str | None, str | None]:
    """(user, value, channel, message ts) from a block_actions payload."""
    action = (body.get("actions") or [{}])[0]
    container = body.get("container") or {}
    channel = (body.get("channel") or {}).get("id") or container.get("channel_id")
    return (
        str((body.get("user") or {}).get("id", "")),
        str(action.get("value", "")),
        channel,
        container.get("message_ts"),
    )


def register(app: AsyncApp, ctx: ListenerContext) -> None:
    def handler(
        name: str, use_case: Callable[[str, str], Awaitable[Reply]]
    ) -> Callable[..., Awaitable[None]]:
        async def on_click(
            ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
        ) -> None:
            await ack()
            user_id, value, channel_id, message_ts = _click(body)
            await ctx.reply(
                name,
                lambda: use_case(user_id, value),
                client=client,
                respond=respond,
                channel_id=channel_id,
                message_ts=message_ts,
            )

        return on_click

    app.action(ACTION_CANCEL_JOB)(handler("button_cancel", ctx.operations.click_cancel))
    app.action(ACTION_JOB_STATUS)(handler("button_status", ctx.operations.click_status))
