"""What the bot knows of the notification channel: which message is the card of which job.

Each card carries Slack message metadata (event type `sandbox_job_card`: environment, job, status, progress,
who asked, the note, the scheduled time) so that after a restart the cards are known again from the channel's
own history, read once before the first card is published. That keeps the bot free of local state (no file,
no database, several replicas alike). `JobCards` is the only user of this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bot.commands import ID_PATTERN
from bot.slack_surface import SlackSurface, slack_error
from bot.zuora.statuses import is_terminal

if TYPE_CHECKING:
    # Types only: the models (and pydantic) are loaded when Zuora first answers, not at start-up.
    from bot.zuora.models import Job


log = logging.getLogger(__name__)

EVENT_TYPE = "sandbox_job_card"
HISTORY_PAGES = 10  # 10 x 200 messages: far more than a notification channel shows between restarts
MAX_CARDS = 5000  # beyond this, cards of ended jobs are forgotten first (they no longer change)
LOAD_RETRY_PAUSES = (0.5, 2.0)
LOAD_COOLDOWN = 60.0
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,20}$")

Key = tuple[str, str]  # (environment ID, job ID)


@dataclass(slots=True)
class CardRef:
    """A job's card in the notification channel, as last shown."""

    channel: str
    ts: str
    status: str | None
    progress: int | None = None
    note: str | None = None
    requested_by: str | None = None
    updated: datetime | None = None  # Zuora's updateTime of the job as shown
    scheduled: datetime | None = None  # its scheduledRefreshTime as shown (a move is news)

    def shows(self, job: Job, note: str | None) -> bool:
        """Whether the card already shows what a reader would see of `job` with `note`."""
        return (self.status, self.progress, self.note, self.scheduled) == (
            str(job.status or ""),
            job.progress_percentage,
            note,
            job.scheduled_refresh_time,
        )

    def is_newer_than(self, job: Job) -> bool:
        """An older view of the job than the card shows (a listing that raced a cancel, say)."""
        if is_terminal(self.status) and not job.is_terminal:
            return True
        return (
            self.updated is not None
            and job.update_time is not None
            and job.update_time < self.updated
        )


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
    if job.scheduled_refresh_time is not None:
        payload["scheduled"] = int(job.scheduled_refresh_time.timestamp())
    return {"event_type": EVENT_TYPE, "event_payload": payload}


class NotificationChannel:
    """The cards of the notification channel by job, recovered from the channel's history after a restart.

    `lock_for(key)` serialises the changes to one job's card (JobCards holds it while it shows that card), so
    a slow or rate-limited Slack call for one job never holds up another job's card or a reply."""

    def __init__(self, *, slack: SlackSurface, channel: str) -> None:
        self._slack = slack
        self.channel = channel
        self._history_lock = asyncio.Lock()
        self._job_locks: dict[Key, tuple[asyncio.Lock, int]] = {}  # lock, holders and waiters
        self._cards: dict[Key, CardRef] = {}
        self._loaded = False
        self._failed_at: float | None = None

    @contextlib.asynccontextmanager
    async def lock_for(self, key: Key) -> AsyncIterator[None]:
        lock, users = self._job_locks.get(key, (asyncio.Lock(), 0))
        self._job_locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._job_locks[key]
            if users == 1:
                del self._job_locks[
                    key
                ]  # nobody holds or awaits it: the map is as small as the work
            else:
                self._job_locks[key] = (lock, users - 1)

    def get(self, key: Key) -> CardRef | None:
        return self._cards.get(key)

    def put(self, key: Key, card: CardRef) -> None:
        self._cards[key] = card
        if len(self._cards) > MAX_CARDS:
            for old in [k for k, c in self._cards.items() if is_terminal(c.status)]:
                del self._cards[old]
                if len(self._cards) <= MAX_CARDS * 3 // 4:
                    break

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
            async with self._history_lock:
                if await self._load_once(force=patient):
                    return True
        return False

    async def _load_once(self, *, force: bool) -> bool:
        """Under the lock. Skips the attempt within `LOAD_COOLDOWN` of a failure unless `force`."""
        if self._loaded:
            return True
        now = time.monotonic()
        if not force and self._failed_at is not None and now - self._failed_at < LOAD_COOLDOWN:
            return False
        try:
            bot_id = await self._slack.bot_id()
            async for message in self._slack.history(self.channel, pages=HISTORY_PAGES):
                self._remember(message, bot_id)
        except Exception as error:
            self._failed_at = now
            log.warning(
                "notification channel history unavailable; cards announced before the restart are unknown",
                extra={"channel": self.channel, "error": slack_error(error)},
            )
            return False
        self._loaded = True
        log.info("notification cards recovered from the channel", extra={"cards": len(self._cards)})
        return True

    def _remember(self, message: Mapping[str, Any], bot_id: str) -> None:
        """One card from the history (newest first wins), if it is one of ours and well formed."""
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
        note, requested_by, progress, scheduled = (
            payload.get("note"),
            payload.get("requested_by"),
            payload.get("progress"),
            payload.get("scheduled"),
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
            scheduled=_moment(scheduled),
        )


def _moment(value: Any) -> datetime | None:
    """A time kept in metadata as Unix seconds; anything else is unknown."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None
