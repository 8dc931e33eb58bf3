"""The few Slack calls the job cards make, and the one way a card is shown: edit it, or post it anew.

Every failure of Slack is classified here once: *passing* (rate limited, Slack's own trouble, no answer: worth
another try later), *gone* (the message or channel no longer exists for the bot: post a new card) or *lasting*
(any other refusal: trying again would not help). Nothing here raises: the callers decide what a failure means
for their card.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.blocks import Message
from bot.metrics import Metrics

log = logging.getLogger(__name__)

# Errors worth another try later; any other refusal will not go away by itself.
PASSING_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
# chat.update errors that mean the card no longer exists (deleted, or the bot lost access): post a new one.
CARD_GONE = frozenset(
    {"message_not_found", "cant_update_message", "channel_not_found", "is_archived"}
)
HISTORY_PAGE = 200

Metadata = dict[str, Any]


def slack_error(error: BaseException) -> str:
    """Slack's error code for a refusal, or the exception's type when Slack did not answer."""
    response = getattr(error, "response", None)
    if response is not None and hasattr(response, "get"):
        return str(response.get("error"))
    return type(error).__name__


def is_passing(error: BaseException) -> bool:
    """A Slack failure that may go away: a refusal naming a passing cause, or no answer at all."""
    response = getattr(error, "response", None)
    if response is None or not hasattr(response, "get"):
        return True  # connection errors, timeouts
    return str(response.get("error")) in PASSING_ERRORS


@dataclass(frozen=True, slots=True)
class Shown:
    """Where a message is after `post` or `show`: `ts` (None when it could not be posted anywhere), whether
    Slack took this version, and, when it did not, whether another try later may succeed (`retry`)."""

    ts: str | None
    taken: bool
    retry: bool = False
    channel: str | None = None  # the conversation it is in (a DM's D…, when posted to a user ID)


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a request came from: the channel, who sent it, its response_url, and the clicked message."""

    channel_id: str | None
    response_url: str | None = None
    message_ts: str | None = None
    is_ephemeral: bool = False
    user_id: str | None = None
    trigger_id: str | None = None  # to open a modal (good once, for 3 s)
    home: bool = False  # a click on the user's App Home tab: it is published again after the action


class SlackSurface:
    """What the job cards need from Slack's Web API and response URLs."""

    def __init__(self, client: AsyncWebClient, metrics: Metrics | None = None) -> None:
        self._client = client
        self._metrics = metrics
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        """One HTTP session, kept alive, for every Web API call and response_url post: without it slack_sdk
        opens (and closes) a TCP connection for each call."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
            self._client.session = self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._client.session = None
            self._session = None

    async def post(
        self,
        channel: str,
        message: Message,
        *,
        thread_ts: str | None = None,
        metadata: Metadata | None = None,
    ) -> Shown:
        """chat.postMessage: the new message's ts, or why not (logged)."""
        try:
            response = await self._client.chat_postMessage(
                channel=channel, thread_ts=thread_ts, metadata=metadata, **message.as_kwargs()
            )
        except Exception as error:  # refused, or Slack unreachable after the client's retries
            log.warning(
                "message not posted",
                extra={"channel": channel, "thread_ts": thread_ts, "error": slack_error(error)},
            )
            return Shown(None, taken=False, retry=is_passing(error))
        self._count("chat.postMessage", "ok")
        return Shown(str(response["ts"]), taken=True, channel=response.get("channel") or channel)

    async def show(
        self,
        channel: str,
        ts: str | None,
        message: Message,
        *,
        metadata: Metadata | None = None,
    ) -> Shown:
        """The one update-or-repost path: edit the card `ts` in place; when it is gone (or there is none yet),
        post it anew. A passing failure leaves the card as it was, for a later try."""
        if ts is not None:
            try:
                await self._client.chat_update(
                    channel=channel, ts=ts, metadata=metadata, **message.as_kwargs()
                )
                self._count("chat.update", "ok")
                return Shown(ts, taken=True)
            except Exception as error:
                code = slack_error(error)
                if is_passing(error):
                    log.info("card not edited this time", extra={"channel": channel, "error": code})
                    return Shown(ts, taken=False, retry=True)
                if code not in CARD_GONE:
                    # invalid_blocks, token_revoked, ...: showing it again would not help.
                    log.error("card refused by Slack", extra={"channel": channel, "error": code})
                    return Shown(ts, taken=True)
                log.info(
                    "the card is gone; posting it anew", extra={"channel": channel, "error": code}
                )
        return await self.post(channel, message, metadata=metadata)

    async def reply(
        self,
        origin: Origin,
        message: Message,
        *,
        replace_original: bool = False,
        ephemeral: bool = True,
    ) -> bool:
        """Answer the user where they asked: through the request's response_url (replacing the clicked message,
        for them alone, or for the channel). When that fails (expired, refused, unreachable) the answer goes by
        the Web API instead: chat.postEphemeral to them in that channel (chat.postMessage there when it was for
        everyone), else a direct message. Logged and counted; False only when nothing reached them."""
        if origin.response_url and await self.respond(
            origin.response_url, message, replace_original=replace_original, ephemeral=ephemeral
        ):
            return True
        if origin.response_url:
            self._count("reply_fallback", "used")
            log.warning(
                "reply through response_url failed; answering by the Web API",
                extra={"channel": origin.channel_id, "user": origin.user_id},
            )
        public = origin.channel_id and not ephemeral and not replace_original
        if public and origin.channel_id and (await self.post(origin.channel_id, message)).taken:
            return True
        if origin.channel_id and origin.user_id:
            try:
                await self._client.chat_postEphemeral(
                    channel=origin.channel_id, user=origin.user_id, **message.as_kwargs()
                )
                return True
            except Exception as error:
                log.warning("chat.postEphemeral failed", extra={"error": slack_error(error)})
        if origin.user_id and (await self.post(origin.user_id, message)).taken:
            return True  # a direct message from the bot
        self._count("reply", "lost")
        log.error(
            "the answer reached nobody",
            extra={"channel": origin.channel_id, "user": origin.user_id, "text": message.text},
        )
        return False

    # -- views: the App Home tab and modals -------------------------------------------------------------------

    async def open_view(self, trigger_id: str, view: Mapping[str, Any]) -> tuple[str, str] | None:
        """views.open: the modal's (id, hash), or None when Slack refused it (an expired trigger: logged)."""
        try:
            response = await self._client.views_open(trigger_id=trigger_id, view=dict(view))
        except Exception as error:
            self._count("views.open", "error")
            log.warning("modal not opened", extra={"error": slack_error(error)})
            return None
        self._count("views.open", "ok")
        opened = response.get("view") or {}
        return str(opened.get("id", "")), str(opened.get("hash", ""))

    async def update_view(
        self, view_id: str, view: Mapping[str, Any], *, hash_: str | None = None
    ) -> bool:
        """views.update; with `hash_`, only if the user has not moved the view on meanwhile."""
        try:
            await self._client.views_update(view_id=view_id, view=dict(view), hash=hash_)
        except Exception as error:
            code = slack_error(error)
            self._count("views.update", "error")
            log.log(
                logging.INFO if code == "hash_conflict" else logging.WARNING,
                "modal not updated",
                extra={"error": code},
            )
            return False
        self._count("views.update", "ok")
        return True

    async def publish_home(self, user_id: str, view: Mapping[str, Any]) -> bool:
        """views.publish of the user's App Home tab."""
        try:
            await self._client.views_publish(user_id=user_id, view=dict(view))
        except Exception as error:
            self._count("views.publish", "error")
            log.warning("home tab not published", extra={"error": slack_error(error)})
            return False
        self._count("views.publish", "ok")
        return True

    async def time_zone(self, user_id: str) -> str | None:
        """The user's time zone (an IANA name) from users.info, or None when Slack does not say."""
        try:
            response = await self._client.users_info(user=user_id)
        except Exception as error:
            log.info("users.info failed", extra={"error": slack_error(error)})
            return None
        tz = (response.get("user") or {}).get("tz")
        return str(tz) if tz else None

    def _count(self, method: str, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.slack_calls.labels(method, outcome).inc()

    async def respond(
        self,
        response_url: str,
        message: Message,
        *,
        replace_original: bool,
        ephemeral: bool = False,
    ) -> bool:
        """Through a response_url: the replacement of the original message, or a new message for everyone
        in the channel (`ephemeral`: for the user alone). False (logged) when it did not arrive."""
        # Replacing keeps the original's visibility: no response_type then, as Slack documents.
        kind = None if replace_original else "ephemeral" if ephemeral else "in_channel"
        try:
            response = await AsyncWebhookClient(response_url, session=self._session).send(
                response_type=kind, replace_original=replace_original, **message.as_kwargs()
            )
        except Exception as error:
            log.warning("response_url post failed", extra={"error": slack_error(error)})
            self._count("response_url", "error")
            return False
        if response.status_code != 200:
            log.warning(
                "response_url post refused",
                extra={"status": response.status_code, "error": str(response.body)[:200]},
            )
            self._count("response_url", str(response.status_code))
            return False
        self._count("response_url", "ok")
        return True

    async def bot_id(self) -> str:
        identity = await self._client.auth_test()
        bot_id = identity.get("bot_id")
        if not bot_id:
            raise RuntimeError("auth.test returned no bot_id: cannot tell the bot's own messages")
        return str(bot_id)

    async def history(self, channel: str, *, pages: int) -> AsyncIterator[Mapping[str, Any]]:
        """The channel's messages, newest first, with their metadata; at most `pages` pages. Raises when
        Slack does not answer."""
        cursor: str | None = None
        for _page in range(pages):
            response = await self._client.conversations_history(
                channel=channel, limit=HISTORY_PAGE, include_all_metadata=True, cursor=cursor
            )
            for message in response.get("messages") or []:
                yield message
            cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                return
