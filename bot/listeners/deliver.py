"""Delivering a `Reply` to Slack: a card in the channel, an ephemeral answer, a replaced card, a notification."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from slack_bolt.async_app import AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.operations import Follow, Reply

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Posted:
    """Where a card ended up: `ts` is None when it went through response_url and cannot be edited."""

    channel: str
    ts: str | None
    response_url: str | None = None


# Called after an action's cards are posted, so that they stay current (live cards).
OnFollow = Callable[[Follow, Posted | None, Posted | None], Awaitable[None]]


async def deliver(
    reply: Reply,
    *,
    client: AsyncWebClient,
    respond: AsyncRespond,
    channel_id: str | None,
    notify_channel: str | None,
    response_url: str | None = None,
    message_ts: str | None = None,
    on_follow: OnFollow | None = None,
) -> None:
    message = reply.message.as_kwargs()
    card: Posted | None = None
    if reply.replacement is not None:
        await respond(replace_original=True, **reply.replacement.as_kwargs())
    if reply.replace_original and reply.replacement is None:
        await respond(replace_original=True, **message)
        if channel_id and message_ts:
            card = Posted(channel_id, message_ts)
    elif reply.visibility == "in_channel" and channel_id:
        card = await _post_in_channel(client, respond, channel_id, message, response_url)
    else:
        await respond(response_type="ephemeral", replace_original=False, **message)
    notice = None
    if reply.notification is not None and notify_channel:
        try:
            response = await client.chat_postMessage(
                channel=notify_channel, **reply.notification.as_kwargs()
            )
            notice = Posted(str(response["channel"]), str(response["ts"]))
        except SlackApiError as error:
            # The action itself succeeded and is in the audit log; tell the operator, not the user.
            log.error(
                "notification not posted",
                extra={"channel": notify_channel, "error": error.response.get("error")},
            )
    if reply.follow is not None and on_follow is not None:
        await on_follow(reply.follow, card, notice)


async def _post_in_channel(
    client: AsyncWebClient,
    respond: AsyncRespond,
    channel_id: str,
    message: dict[str, Any],
    response_url: str | None,
) -> Posted:
    """chat.postMessage, so the card can be edited later; where the bot may not post (a private channel it is
    not in, a DM), response_url's in_channel answer still shows it to everyone there."""
    try:
        response = await client.chat_postMessage(channel=channel_id, **message)
        return Posted(str(response["channel"]), str(response["ts"]))
    except SlackApiError as error:
        log.info(
            "chat.postMessage refused, answering through response_url",
            extra={"error": error.response.get("error")},
        )
        await respond(response_type="in_channel", replace_original=False, **message)
        return Posted(channel_id, None, response_url)
