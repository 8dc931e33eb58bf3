"""Records the bot keeps as replies in a notification card's thread, with Slack message metadata: post one
(also sent to the channel when asked: `reply_broadcast`), and read back, with `conversations.replies`, the
ones of an event type that this bot wrote.

Reminders keep what they sent this way (`bot.reminders`), so a restarted bot learns it from Slack alone, as
the cards themselves are known again from the channel's history (`bot.notification_channel`). Nothing here
raises on a post: the caller decides what a failure means (`Shown`, classified as `SlackSurface` does).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.blocks import Message
from bot.metrics import Metrics
from bot.slack_surface import Shown, is_passing, slack_error

log = logging.getLogger(__name__)

THREAD_PAGE = 200
THREAD_PAGES = 5  # a card's thread holds a line per action and a few reminders: far less than 1000


class CardThreads:
    def __init__(self, client: AsyncWebClient, metrics: Metrics | None = None) -> None:
        """`client` is the bot's Web API client (its kept-alive session is set by `SlackSurface.open`)."""
        self._client = client
        self._metrics = metrics
        self._bot_id: str | None = None

    async def post(
        self,
        channel: str,
        thread_ts: str,
        message: Message,
        *,
        metadata: Mapping[str, Any],
        broadcast: bool = False,
    ) -> Shown:
        """A reply in the thread of `thread_ts`, with `metadata`; `broadcast`: also sent to the channel."""
        try:
            response = await self._client.chat_postMessage(
                channel=channel,
                thread_ts=thread_ts,
                reply_broadcast=broadcast,
                metadata=dict(metadata),
                **message.as_kwargs(),
            )
        except Exception as error:  # refused, or Slack unreachable after the client's retries
            log.warning(
                "thread reply not posted",
                extra={"channel": channel, "thread_ts": thread_ts, "error": slack_error(error)},
            )
            self._count("chat.postMessage", "error")
            return Shown(None, taken=False, retry=is_passing(error))
        self._count("chat.postMessage", "ok")
        return Shown(str(response["ts"]), taken=True)

    async def read(self, channel: str, thread_ts: str, event_type: str) -> list[Mapping[str, Any]]:
        """The metadata payloads of `event_type` on the replies this bot posted in the thread, oldest first.
        Raises when Slack does not answer (the caller tries again later)."""
        bot_id = await self._own_bot_id()
        payloads: list[Mapping[str, Any]] = []
        cursor: str | None = None
        for _page in range(THREAD_PAGES):
            response = await self._client.conversations_replies(
                channel=channel,
                ts=thread_ts,
                limit=THREAD_PAGE,
                include_all_metadata=True,
                cursor=cursor,
            )
            self._count("conversations.replies", "ok")
            for message in response.get("messages") or []:
                metadata = message.get("metadata") or {}
                payload = metadata.get("event_payload")
                if (
                    message.get("bot_id") == bot_id
                    and message.get("ts") != thread_ts  # the card itself
                    and metadata.get("event_type") == event_type
                    and isinstance(payload, Mapping)
                ):
                    payloads.append(payload)
            cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                break
        return payloads

    async def _own_bot_id(self) -> str:
        """The bot's own bot_id (one `auth.test` per process): only its own records are believed."""
        if self._bot_id is None:
            identity = await self._client.auth_test()
            bot_id = identity.get("bot_id")
            if not bot_id:
                raise RuntimeError("auth.test gave no bot_id: the bot's own replies are unknown")
            self._bot_id = str(bot_id)
        return self._bot_id

    def _count(self, method: str, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.slack_calls.labels(method, outcome).inc()
