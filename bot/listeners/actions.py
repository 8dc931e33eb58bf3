"""Buttons: every click is authorised like a typed command, and its value is validated like typed text."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot.blocks import (
    ACTION_CANCEL_JOB,
    ACTION_JOB_STATUS,
    ACTION_REFRESH_ABORT,
    ACTION_REFRESH_CONFIRM,
)
from bot.listeners.context import ListenerContext
from bot.operations import Click
from bot.outcomes import Outcome
from bot.slack_surface import Origin

UseCase = Callable[[Click], Awaitable[Outcome]]


def _where(body: dict[str, Any]) -> tuple[str | None, str | None]:
    """(channel, message ts) of the clicked message."""
    container = body.get("container") or {}
    channel = (body.get("channel") or {}).get("id") or container.get("channel_id")
    return channel, container.get("message_ts")


def _click(body: dict[str, Any]) -> Click:
    action = (body.get("actions") or [{}])[0]
    return Click(
        user_id=str((body.get("user") or {}).get("id", "")),
        value=str(action.get("value", "")),
        block_id=str(action.get("block_id", "")),
    )


def register(app: AsyncApp, ctx: ListenerContext) -> None:
    def handler(name: str, use_case: UseCase) -> Callable[..., Awaitable[None]]:
        async def on_click(ack: AsyncAck, body: dict[str, Any]) -> None:
            await ack()
            click = _click(body)
            channel_id, message_ts = _where(body)
            user_id = str((body.get("user") or {}).get("id", "")) or None
            await ctx.reply(
                name,
                lambda: use_case(click),
                origin=Origin(
                    channel_id,
                    body.get("response_url"),
                    message_ts,
                    bool((body.get("container") or {}).get("is_ephemeral")),
                    user_id,
                    trigger_id=body.get("trigger_id"),
                    home=(body.get("view") or {}).get("type") == "home",
                ),
            )

        return on_click

    operations = ctx.operations
    app.action(ACTION_CANCEL_JOB)(handler("button_cancel", operations.click_cancel))
    app.action(ACTION_JOB_STATUS)(handler("button_status", operations.click_status))
    app.action(ACTION_REFRESH_CONFIRM)(handler("refresh_confirm", operations.click_refresh_confirm))
    app.action(ACTION_REFRESH_ABORT)(handler("refresh_abort", operations.click_refresh_abort))
