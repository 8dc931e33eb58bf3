"""Notification cards: one job card per job in SANDBOX_NOTIFY_CHANNEL, updated in place.

Every path that knows something new about a job (an action through the bot, a live card's poll, the watch)
calls `publish`; it posts the job's card once, edits it when its status or progress changed, and replies in its
thread when the job ends. Each card carries Slack message metadata (event type `sandbox_job_card`: environment,
job, status) so that after a restart `load` rebuilds what was announced from the channel's own history. That
keeps the bot free of local state, as the architecture asks (no file, no database, several replicas alike).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot import blocks
from bot.commands import ID_PATTERN, EnvRef
from bot.zuora.models import Job, is_terminal

log = logging.getLogger(__name__)

EVENT_TYPE = "sandbox_job_card"
HISTORY_PAGES = 10  # 10 x 200 messages: far more than a notification channel shows between restarts


@dataclass
class CardRef:
    channel: str
    ts: str
    status: str | None
    progress: int | None = None
    note: str | None = None
    requested_by: str | None = None


Key = tuple[str, str]


def card_metadata(
    env_id: str, job: Job, note: str | None, requested_by: str | None
) -> dict[str, Any]:
    payload: dict[str, Any] = {"env": env_id, "job": job.id, "status": str(job.status or "")}
    if job.progress_percentage is not None:
        payload["progress"] = job.progress_percentage
    if note:
        payload["note"] = note
    if requested_by:
        payload["requested_by"] = requested_by
    return {"event_type": EVENT_TYPE, "event_payload": payload}


class NotificationCards:
    def __init__(self, *, slack: AsyncWebClient, channel: str, aliases: Mapping[str, str]) -> None:
        self._slack = slack
        self.channel = channel
        self._aliases = {env_id: alias for alias, env_id in aliases.items()}
        self._cards: dict[Key, CardRef] = {}
        self._lock = asyncio.Lock()

    def env(self, env_id: str) -> EnvRef:
        return EnvRef(id=env_id, alias=self._aliases.get(env_id))

    def get(self, env_id: str, job_id: str) -> CardRef | None:
        return self._cards.get((env_id, job_id))

    def is_card(self, channel: str | None, ts: str | None) -> bool:
        return channel == self.channel and any(card.ts == ts for card in self._cards.values())

    async def publish(
        self,
        env: EnvRef,
        job: Job,
        *,
        note: str | None = None,
        requested_by: str | None = None,
        track_id: str | None = None,
        create: bool = True,
    ) -> CardRef | None:
        """Post or update the job's card; no Slack call when nothing a reader would see has changed."""
        if not job.id:
            return None
        key = (env.id, job.id)
        async with self._lock:
            card = self._cards.get(key)
            if card is None and not create:
                return None
            note = note or (card.note if card else None)
            requested_by = requested_by or (card.requested_by if card else None)
            if card is not None and (card.status, card.progress, card.note) == (
                str(job.status or ""),
                job.progress_percentage,
                note,
            ):
                return card
            was_terminal = card is not None and is_terminal(card.status)
            message = blocks.job_card(
                job, env, requested_by=requested_by, track_id=track_id, note=note
            )
            metadata = card_metadata(env.id, job, note, requested_by)
            card = await self._show(card, message, metadata)
            if card is None:
                return None
            card.status, card.progress, card.note, card.requested_by = (
                str(job.status or ""), job.progress_percentage, note, requested_by,
            )  # fmt: skip
            self._cards[key] = card
            if job.is_terminal and not was_terminal:
                await self._reply_ended(card, job, env)
            return card

    async def _show(
        self, card: CardRef | None, message: blocks.Message, metadata: dict[str, Any]
    ) -> CardRef | None:
        if card is not None:
            try:
                await self._slack.chat_update(
                    channel=card.channel, ts=card.ts, metadata=metadata, **message.as_kwargs()
                )
                return card
            except SlackApiError as error:
                log.warning(
                    "notification card could not be edited; posting it anew",
                    extra={"error": error.response.get("error")},
                )
        try:
            response = await self._slack.chat_postMessage(
                channel=self.channel, metadata=metadata, **message.as_kwargs()
            )
        except SlackApiError as error:
            log.error(
                "notification card not posted",
                extra={"channel": self.channel, "error": error.response.get("error")},
            )
            return None
        return CardRef(channel=str(response["channel"]), ts=str(response["ts"]), status=None)

    async def _reply_ended(self, card: CardRef, job: Job, env: EnvRef) -> None:
        try:
            await self._slack.chat_postMessage(
                channel=card.channel, thread_ts=card.ts, **blocks.job_ended(job, env).as_kwargs()
            )
        except SlackApiError as error:
            log.warning(
                "end of job not posted in the notification thread",
                extra={"error": error.response.get("error")},
            )

    async def load(self) -> int:
        """Rebuild the announced cards from the channel's history (newest first wins). Returns how many."""
        identity = await self._slack.auth_test()
        bot_id = identity.get("bot_id")
        cursor: str | None = None
        for _page in range(HISTORY_PAGES):
            response = await self._slack.conversations_history(
                channel=self.channel, limit=200, include_all_metadata=True, cursor=cursor
            )
            for message in response.get("messages") or []:
                self._remember(message, bot_id)
            cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                break
        return len(self._cards)

    def _remember(self, message: Mapping[str, Any], bot_id: str | None) -> None:
        metadata = message.get("metadata") or {}
        if metadata.get("event_type") != EVENT_TYPE or (bot_id and message.get("bot_id") != bot_id):
            return
        payload = metadata.get("event_payload") or {}
        env_id, job_id = str(payload.get("env", "")), str(payload.get("job", ""))
        if not (ID_PATTERN.fullmatch(env_id) and ID_PATTERN.fullmatch(job_id)):
            return
        key = (env_id, job_id)
        if key in self._cards or message.get("thread_ts") not in (None, message.get("ts")):
            return
        note, requested_by = payload.get("note"), payload.get("requested_by")
        progress = payload.get("progress")
        self._cards[key] = CardRef(
            channel=self.channel,
            ts=str(message.get("ts")),
            status=str(payload.get("status") or "") or None,
            progress=progress if isinstance(progress, int) else None,
            note=str(note) if note else None,
            requested_by=str(requested_by) if requested_by else None,
        )
