"""Notification cards: one job card per job in SANDBOX_NOTIFY_CHANNEL, updated in place, and the audit trail.

Every path that knows something new about a job (an action through the bot, a live card's poll, the watch)
calls `publish`; it posts the job's card once, edits it when its status or progress changed, and replies in its
thread when the job ends. Every action taken through the bot, successful or not, is also `record`ed: a line in
the job card's thread (or in the channel when the job has no card), so the channel is the full audit trail.

Each card carries Slack message metadata (event type `sandbox_job_card`: environment, job, status, progress,
who acted) so that after a restart the cards are known again from the channel's own history, read once before the
first card is published. That keeps the bot free of local state, as the architecture asks (no file, no
database, several replicas alike).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot import blocks
from bot.commands import ID_PATTERN, EnvRef
from bot.zuora.models import Job, is_terminal

log = logging.getLogger(__name__)

EVENT_TYPE = "sandbox_job_card"
HISTORY_PAGES = 10  # 10 x 200 messages: far more than a notification channel shows between restarts
MAX_CARDS = 5000  # beyond this, cards of ended jobs are forgotten first (they no longer change)
LOAD_RETRY_PAUSES = (0.5, 2.0)
LOAD_COOLDOWN = 60.0
# chat.update / chat.postMessage errors worth another try later; any other refusal will not go away.
PASSING_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
# chat.update errors that mean the card no longer exists (deleted, or the bot lost access): post a new one.
CARD_GONE = frozenset(
    {"message_not_found", "cant_update_message", "channel_not_found", "is_archived"}
)
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,20}$")


@dataclass
class CardRef:
    channel: str
    ts: str
    status: str | None
    progress: int | None = None
    note: str | None = None
    requested_by: str | None = None
    updated: datetime | None = None  # Zuora's updateTime of the job as shown


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


def _stale(card: CardRef, job: Job) -> bool:
    """An older view of the job than the card shows (a watch round that raced a cancel, say)."""
    if is_terminal(card.status) and not job.is_terminal:
        return True
    return (
        card.updated is not None and job.update_time is not None and job.update_time < card.updated
    )


class NotificationCards:
    def __init__(self, *, slack: AsyncWebClient, channel: str, aliases: Mapping[str, str]) -> None:
        self._slack = slack
        self.channel = channel
        self._aliases = {env_id: alias for alias, env_id in aliases.items()}
        self._cards: dict[Key, CardRef] = {}
        self._lock = asyncio.Lock()
        self._loaded = False
        self._failed_at: float | None = None

    def env(self, env_id: str) -> EnvRef:
        return EnvRef(id=env_id, alias=self._aliases.get(env_id))

    def get(self, env_id: str, job_id: str) -> CardRef | None:
        return self._cards.get((env_id, job_id))

    def newest_card_time(self, env_id: str) -> float | None:
        """When the newest known card of an environment was posted (its Slack ts), or None."""
        times = [float(card.ts) for (env, _job), card in self._cards.items() if env == env_id]
        return max(times, default=None)

    def is_card(self, channel: str | None, ts: str | None) -> bool:
        return channel == self.channel and any(card.ts == ts for card in self._cards.values())

    async def ensure_loaded(self, *, patient: bool = False) -> bool:
        """Read the channel's history once. True when done.

        After a failure it is tried again at most every `LOAD_COOLDOWN` seconds, so an unreadable channel
        (the bot not invited) does not cost two Slack calls per card update. `patient` tries now and then
        twice more with pauses, each outside the lock: for posting a new card, where missing the history
        could make a second card for a job announced before a restart."""
        if self._loaded:
            return True
        pauses = (0.0, *LOAD_RETRY_PAUSES) if patient else (0.0,)
        for pause in pauses:
            if pause:
                await asyncio.sleep(pause)
            async with self._lock:
                if await self._load_once(force=patient):
                    return True
        return False

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
        await self.ensure_loaded(patient=create and key not in self._cards)
        async with self._lock:
            card = self._cards.get(key)
            if card is None and not create:
                return None
            if card is not None and _stale(card, job):
                return card
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
            shown = await self._show(card, message, card_metadata(env.id, job, note, requested_by))
            if shown is None:
                return None
            shown.status, shown.progress, shown.note = (
                str(job.status or ""),
                job.progress_percentage,
                note,
            )
            shown.requested_by, shown.updated = requested_by, job.update_time or shown.updated
            self._cards[key] = shown
            self._prune()
            if job.is_terminal and not was_terminal:
                await self._post(blocks.job_ended(job, env), thread_ts=shown.ts)
            return shown

    async def record(self, env: EnvRef, job_id: str | None, line: blocks.Message) -> None:
        """An action taken through the bot: in the job card's thread, or in the channel without a card."""
        await self.ensure_loaded()
        async with self._lock:
            card = self._cards.get((env.id, job_id)) if job_id else None
            await self._post(line, thread_ts=card.ts if card else None)

    # -- Slack side ----------------------------------------------------------------------------------------------

    async def _show(
        self, card: CardRef | None, message: blocks.Message, metadata: dict[str, Any]
    ) -> CardRef | None:
        if card is not None:
            try:
                await self._slack.chat_update(
                    channel=card.channel, ts=card.ts, metadata=metadata, **message.as_kwargs()
                )
                return card
            except Exception as error:  # Slack refused, or could not be reached after its retries
                if is_passing(error):
                    # Leave the card as it is; the next publish edits it again.
                    log.warning(
                        "notification card not edited this time",
                        extra={"error": _slack_error(error)},
                    )
                    return None
                if _slack_error(error) not in CARD_GONE:
                    # A lasting refusal (invalid_blocks, token_revoked, ...): trying again would not help.
                    log.error(
                        "notification card refused by Slack", extra={"error": _slack_error(error)}
                    )
                    return card
                log.warning(
                    "notification card is gone; posting it anew",
                    extra={"error": _slack_error(error)},
                )
        try:
            response = await self._slack.chat_postMessage(
                channel=self.channel, metadata=metadata, **message.as_kwargs()
            )
        except Exception as error:
            log.error(
                "notification card not posted",
                extra={"channel": self.channel, "error": _slack_error(error)},
            )
            return None
        return CardRef(channel=str(response["channel"]), ts=str(response["ts"]), status=None)

    async def _post(self, message: blocks.Message, *, thread_ts: str | None) -> None:
        try:
            await self._slack.chat_postMessage(
                channel=self.channel, thread_ts=thread_ts, **message.as_kwargs()
            )
        except Exception as error:
            log.warning(
                "notification not posted",
                extra={"channel": self.channel, "error": _slack_error(error)},
            )

    def _prune(self) -> None:
        if len(self._cards) <= MAX_CARDS:
            return
        for key in [k for k, card in self._cards.items() if is_terminal(card.status)]:
            del self._cards[key]
            if len(self._cards) <= MAX_CARDS * 3 // 4:
                break

    # -- restart ---------------------------------------------------------------------------------------------------

    async def _load_once(self, *, force: bool = False) -> bool:
        """Under the lock. Skips the attempt within `LOAD_COOLDOWN` of a failure unless `force`."""
        if self._loaded:
            return True
        now = time.monotonic()
        if not force and self._failed_at is not None and now - self._failed_at < LOAD_COOLDOWN:
            return False
        try:
            count = await self._load()
        except Exception as error:
            self._failed_at = now
            log.warning(
                "notification channel history unavailable; cards announced before the restart are unknown",
                extra={"channel": self.channel, "error": _slack_error(error)},
            )
            return False
        self._loaded = True
        log.info("notification cards recovered from the channel", extra={"cards": count})
        return True

    async def _load(self) -> int:
        """Rebuild the announced cards from the channel's history (newest first wins). Returns how many."""
        identity = await self._slack.auth_test()
        bot_id = identity.get("bot_id")
        if not bot_id:
            raise RuntimeError("auth.test returned no bot_id: cannot tell the bot's own cards")
        cursor: str | None = None
        for _page in range(HISTORY_PAGES):
            response = await self._slack.conversations_history(
                channel=self.channel, limit=200, include_all_metadata=True, cursor=cursor
            )
            for message in response.get("messages") or []:
                self._remember(message, str(bot_id))
            cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                break
        return len(self._cards)

    def _remember(self, message: Mapping[str, Any], bot_id: str) -> None:
        """One card from the history, if it is one of ours and well formed (anything else is skipped)."""
        metadata = message.get("metadata") or {}
        if metadata.get("event_type") != EVENT_TYPE or message.get("bot_id") != bot_id:
            return
        payload = metadata.get("event_payload") or {}
        env_id, job_id = str(payload.get("env", "")), str(payload.get("job", ""))
        if not (ID_PATTERN.fullmatch(env_id) and ID_PATTERN.fullmatch(job_id)):
            return
        key = (env_id, job_id)
        if key in self._cards or message.get("thread_ts") not in (None, message.get("ts")):
            return
        note, requested_by, progress = (
            payload.get("note"),
            payload.get("requested_by"),
            payload.get("progress"),
        )
        self._cards[key] = CardRef(
            channel=self.channel,
            ts=str(message.get("ts")),
            status=str(payload.get("status") or "") or None,
            progress=progress if isinstance(progress, int) else None,
            note=note if isinstance(note, str) and len(note) <= 1000 else None,
            requested_by=requested_by
            if isinstance(requested_by, str) and _USER_ID.fullmatch(requested_by)
            else None,
        )


def is_passing(error: Exception) -> bool:
    """A Slack failure that may go away: a refusal naming a passing cause, or no answer at all."""
    response = getattr(error, "response", None)
    if response is None or not hasattr(response, "get"):
        return True  # connection errors, timeouts
    return str(response.get("error")) in PASSING_ERRORS


def _slack_error(error: Exception) -> str:
    response = getattr(error, "response", None)
    if response is not None and hasattr(response, "get"):
        return str(response.get("error"))
    return type(error).__name__
