"""Delivering a `Reply` to Slack: a card in the channel, an ephemeral answer, a replaced card, a notification."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from slack_bolt.async_app import AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.cards import NotificationCards
from bot.operations import Follow, Reply

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Posted:
    """Where a card ended up: `ts` is None when it went through response_url and cannot be edited."""

    channel: str
    ts: str | None
    response_url: str | None = None


# Called after a reply about a job is delivered, with the channel card if there is one (live cards).
OnFollow = Callable[[Follow, Posted | None], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Origin:
    """Where the request came from: the channel, its response_url, and the clicked message, if any."""

    channel_id: str | None
    response_url: str | None = None
    message_ts: str | None = None
    is_ephemeral: bool = False


async def deliver(
    reply: Reply,
    *,
    client: AsyncWebClient,
    respond: AsyncRespond,
    origin: Origin,
    notifier: NotificationCards | None,
    on_follow: OnFollow | None = None,
) -> None:
    """Show the reply to the user, then keep the records: the notification card, the audit line, the live
    card. The records are kept even when showing the reply failed: an action Zuora carried out is never
    missing from the audit trail because Slack hiccupped."""
    follow = reply.follow
    if notifier is not None and follow is not None and origin.channel_id == notifier.channel:
        # So that a notification card clicked after a restart is known as one.
        await notifier.ensure_loaded()
    card: Posted | None = None
    left_to_notifier = False
    try:
        card, left_to_notifier = await _show(
            reply, client=client, respond=respond, origin=origin, notifier=notifier
        )
    except Exception:
        log.exception("the reply could not be shown", extra={"outcome": reply.outcome})
    finally:
        shown_by_notifier = await _keep_records(reply, card, notifier=notifier, on_follow=on_follow)
    if left_to_notifier and not shown_by_notifier:
        # The notification card did not take it: never leave the user without an answer.
        try:
            message = reply.message.as_kwargs()
            await respond(response_type="in_channel", replace_original=False, **message)
        except Exception:
            log.exception("the reply could not be shown", extra={"outcome": reply.outcome})


async def _show(
    reply: Reply,
    *,
    client: AsyncWebClient,
    respond: AsyncRespond,
    origin: Origin,
    notifier: NotificationCards | None,
) -> tuple[Posted | None, bool]:
    """Where the user sees the reply. Returns the channel card that can be kept current, if any, and
    whether the reply was left to the notification card."""
    message = reply.message.as_kwargs()
    follow = reply.follow
    in_notification_channel = notifier is not None and origin.channel_id == notifier.channel
    # The job's card in the notification channel is the notifier's: it edits it (keeping its metadata) or
    # posts it, so a click on it or a command typed there never makes a second card.
    notifier_shows_it = (
        notifier is not None
        and follow is not None
        and (
            notifier.is_card(origin.channel_id, origin.message_ts)
            or (in_notification_channel and follow.announce)
        )
    )
    if reply.replacement is not None:
        await respond(replace_original=True, **reply.replacement.as_kwargs())
    if reply.replace_original and reply.replacement is None:
        if notifier_shows_it:
            return None, True
        await respond(replace_original=True, **message)
        if origin.channel_id and origin.message_ts and not origin.is_ephemeral:
            return Posted(origin.channel_id, origin.message_ts), False
        if origin.channel_id and follow is not None and follow.announce:
            # An action taken from an ephemeral card or list: the clicker sees the result in place, and
            # the team gets the card that stays current.
            posted = await _post_in_channel(
                client, respond, origin.channel_id, message, origin.response_url
            )
            return posted, False
        return None, False
    if reply.visibility == "in_channel" and origin.channel_id:
        if notifier_shows_it:
            return None, True
        posted = await _post_in_channel(
            client, respond, origin.channel_id, message, origin.response_url
        )
        return posted, False
    await respond(response_type="ephemeral", replace_original=False, **message)
    return None, False


async def _keep_records(
    reply: Reply,
    card: Posted | None,
    *,
    notifier: NotificationCards | None,
    on_follow: OnFollow | None,
) -> bool:
    """Each step on its own: one failing cannot skip the next. True when the notification card shows
    the job as the reply does."""
    follow = reply.follow
    shown = False
    if follow is not None and notifier is not None:
        try:
            published = await notifier.publish(
                follow.env,
                follow.job,
                note=follow.note,
                requested_by=follow.requested_by,
                track_id=follow.track_id,
                create=follow.announce,
            )
            shown = published is not None
        except Exception:
            log.exception("notification card not kept")
    if reply.audit is not None and notifier is not None:
        try:
            await notifier.record(reply.audit.env, reply.audit.job_id, reply.audit.message)
        except Exception:
            log.exception("audit line not posted")
    if follow is not None and on_follow is not None:
        try:
            await on_follow(follow, card)
        except Exception:
            log.exception("live card not followed")
    return shown


async def _post_in_channel(
    client: AsyncWebClient,
    respond: AsyncRespond,
    channel_id: str,
    message: dict[str, Any],
    response_url: str | None,
) -> Posted:
    """chat.postMessage, so the card can be edited later; where the bot may not post (a private channel it
    is not in, a DM), response_url's in_channel answer still shows it to everyone there."""
    try:
        response = await client.chat_postMessage(channel=channel_id, **message)
        return Posted(str(response["channel"]), str(response["ts"]))
    except Exception as error:
        # Refused (SlackApiError), or Slack unreachable after the client's retries.
        reason = (
            error.response.get("error")
            if isinstance(error, SlackApiError)
            else type(error).__name__
        )
        log.info("chat.postMessage failed, answering through response_url", extra={"error": reason})
        await respond(response_type="in_channel", replace_original=False, **message)
        return Posted(channel_id, None, response_url)
