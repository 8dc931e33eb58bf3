"""Live job cards: one poller per job keeps every card of that job current until the job ends.

A card posted with chat.postMessage is edited in place with chat.update. A card that went out through
response_url (the bot may not post in that channel) cannot be edited, so a change of status is posted there as
a new message, within response_url's budget. When the job ends, a reply goes into the thread of each edited
card. Failures to reach Zuora back off (up to `max_backoff`) and say so on the card; watching stops after
`max_watch` seconds with a note that the *Refresh status* button still works.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot import blocks
from bot.cards import CARD_GONE, is_passing
from bot.commands import EnvRef, escape_mrkdwn
from bot.zuora.client import ZuoraClient
from bot.zuora.errors import ZuoraError, ZuoraNotFoundError
from bot.zuora.models import Job, JobStatus
from bot.zuora.trackid import new_track_id

log = logging.getLogger(__name__)

RESPONSE_URL_POSTS = 4  # response_url takes 5 posts; the first one showed the card
SCHEDULED_POLL_SECONDS = 300.0
TERMINAL_CATCH_UPS = 3


@dataclass
class Placement:
    """One card of a job: where it is and how it can be changed."""

    channel: str
    ts: str | None = None  # editable with chat.update when set
    response_url: str | None = None  # otherwise, new messages through response_url
    note: str | None = None  # kept at the head of the card across updates
    requested_by: str | None = None
    posts_left: int = RESPONSE_URL_POSTS


@dataclass
class _Watch:
    env: EnvRef
    job_id: str
    last: Job | None
    placements: list[Placement] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
    behind: bool = False  # a card did not take the last state: show it again at the next poll
    catch_ups: int = 0  # polls since the job ended


# Told every fresh view of a followed job (the notification card keeps up through it); False when it could
# not show it, so the poller offers it again.
OnJob = Callable[[EnvRef, Job, str], Awaitable[bool]]


class LiveCards:
    def __init__(
        self,
        *,
        zuora: ZuoraClient,
        slack: AsyncWebClient,
        poll_seconds: float,
        max_watch: float = 24 * 3600,
        max_backoff: float = 300.0,
        on_job: OnJob | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """`clock` measures intervals; `now` is the time of day, to compare with Zuora's times."""
        self._zuora = zuora
        self._on_job = on_job
        self._slack = slack
        self._poll = poll_seconds
        self._max_watch = max_watch
        self._max_backoff = max_backoff
        self._sleep = sleep
        self._clock = clock
        self._now = now
        self._watches: dict[tuple[str, str], _Watch] = {}
        self._closed = False

    @property
    def watching(self) -> set[tuple[str, str]]:
        return set(self._watches)

    def follow(
        self, env: EnvRef, job_id: str, placement: Placement | None, *, job: Job | None = None
    ) -> None:
        """Keep `placement` (if any) current; a job already followed gains a card, not a second poller.

        With no placement the job is still polled, for `on_job` (its notification card)."""
        if self._closed or (job is not None and job.is_terminal):
            return
        key = (env.id, job_id)
        watch = self._watches.get(key)
        if watch is None:
            watch = _Watch(env, job_id, job)
            self._watches[key] = watch
            watch.task = asyncio.create_task(self._run(watch), name=f"live-card:{job_id}")
        known = {(p.channel, p.ts) for p in watch.placements if p.ts is not None}
        if placement is not None and (
            placement.ts is None or (placement.channel, placement.ts) not in known
        ):
            watch.placements.append(placement)

    async def close(self) -> None:
        """Stop every poller (on shutdown); cards keep their last state and their Refresh status button."""
        self._closed = True
        tasks = [w.task for w in self._watches.values() if w.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._watches.clear()

    # -- the poller ----------------------------------------------------------------------------------------------

    async def _run(self, watch: _Watch) -> None:
        try:
            await self._poll_until_done(watch)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("live card poller failed", extra={"job": watch.job_id})
        finally:
            self._watches.pop((watch.env.id, watch.job_id), None)

    def _delay_for(self, job: Job | None) -> float:
        """A job scheduled for later changes nothing until its time: poll it every few minutes, not every
        SANDBOX_POLL_SECONDS, so a refresh scheduled days ahead does not cost thousands of calls."""
        if job is not None and job.status == JobStatus.SCHEDULED:
            return max(self._poll, SCHEDULED_POLL_SECONDS)
        return self._poll

    async def _poll_until_done(self, watch: _Watch) -> None:
        deadline = self._clock() + self._max_watch
        delay = self._delay_for(watch.last)
        failures = 0
        while True:
            await self._sleep(delay)
            if self._clock() >= deadline:
                await self._update_all(
                    watch,
                    watch.last,
                    track_id=None,
                    warning=(
                        "This card stopped following the job after a long time; use *Refresh status* for news."
                    ),
                )
                return
            track_id = new_track_id()
            try:
                job = await self._zuora.get_job(watch.env.id, watch.job_id, track_id=track_id)
            except ZuoraNotFoundError:
                log.info(
                    "live card: the job is gone from Zuora; stopped following",
                    extra={"job": watch.job_id},
                )
                return
            except ZuoraError as error:
                failures += 1
                delay = min(self._poll * 2**failures, self._max_backoff)
                log.warning(
                    "live card could not refresh",
                    extra={"job": watch.job_id, "status": error.status, "track_id": error.track_id},
                )
                await self._update_all(
                    watch,
                    watch.last,
                    track_id=error.track_id,
                    warning=(
                        f"Could not refresh from Zuora: {escape_mrkdwn(error.summary)}"
                        f"{f' (HTTP {error.status})' if error.status else ''}; trying again in {int(delay)} s."
                    ),
                )
                continue
            observed = True
            if self._on_job is not None:
                try:
                    observed = await self._on_job(watch.env, job, track_id)
                except Exception:
                    log.exception("live card observer failed", extra={"job": watch.job_id})
                    observed = False
            recovered = failures > 0
            failures, delay = 0, self._delay_for(job)
            changed = _changed(watch.last, job)
            status_changed = watch.last is None or watch.last.status != job.status
            watch.last = job
            if job.status == JobStatus.SCHEDULED and job.scheduled_refresh_time is not None:
                # Follow a scheduled refresh until its time, then for the usual span after it.
                wait = (job.scheduled_refresh_time - self._now()).total_seconds()
                deadline = max(deadline, self._clock() + max(0.0, wait) + self._max_watch)
            shown = True
            if changed or recovered or watch.behind:
                shown = await self._update_all(
                    watch, job, track_id=track_id, status_changed=status_changed
                )
            # A card Slack did not take this time is shown again at the next poll, even if nothing changed:
            # the last state of a job (its end above all) must reach every card.
            watch.behind = not (shown and observed)
            if job.is_terminal:
                watch.catch_ups += 1
                # Once every card took the end, or after a few tries (Slack keeps failing), the job is
                # done: it does not change any more, so there is nothing to poll for.
                if not watch.behind or watch.catch_ups > TERMINAL_CATCH_UPS:
                    await self._announce_end(watch, job)
                    return

    # -- Slack side ----------------------------------------------------------------------------------------------

    async def _update_all(
        self,
        watch: _Watch,
        job: Job | None,
        *,
        track_id: str | None,
        warning: str | None = None,
        status_changed: bool = False,
    ) -> bool:
        """Show `job` on every card of the watch; False when Slack did not take one of them."""
        if job is None:
            return True
        all_shown = True
        for placement in watch.placements:
            card = blocks.job_card(
                job, watch.env, requested_by=placement.requested_by, track_id=track_id,
                note=placement.note, warning=warning,
            )  # fmt: skip
            all_shown = await self._show(placement, card, new_message=status_changed) and all_shown
        return all_shown

    async def _show(self, placement: Placement, card: blocks.Message, *, new_message: bool) -> bool:
        if placement.ts is not None:
            try:
                await self._slack.chat_update(
                    channel=placement.channel, ts=placement.ts, **card.as_kwargs()
                )
                return True
            except Exception as error:  # refused, or Slack unreachable after the client's retries
                if is_passing(error):
                    log.info("chat.update failed this time", extra={"error": _slack_error(error)})
                    return False
                if _slack_error(error) not in CARD_GONE:
                    # A lasting refusal: showing it again would not help.
                    log.error("live card refused by Slack", extra={"error": _slack_error(error)})
                    return True
                log.info("the card is gone; posting it anew", extra={"error": _slack_error(error)})
            try:
                response = await self._slack.chat_postMessage(
                    channel=placement.channel, **card.as_kwargs()
                )
                placement.ts = str(response["ts"])
                return True
            except Exception as error:
                log.warning("live card could not be posted", extra={"error": _slack_error(error)})
                placement.ts = None
        if placement.response_url and new_message and placement.posts_left > 0:
            placement.posts_left -= 1
            webhook = AsyncWebhookClient(placement.response_url)
            try:
                await webhook.send(
                    response_type="in_channel", replace_original=False, **card.as_kwargs()
                )
            except Exception:
                log.warning("live card could not be posted through response_url", exc_info=True)
        return True  # response_url cards are best effort: nothing more to retry

    async def _announce_end(self, watch: _Watch, job: Job) -> None:
        ended = blocks.job_ended(job, watch.env)
        for placement in watch.placements:
            if placement.ts is None:
                continue
            try:
                await self._slack.chat_postMessage(
                    channel=placement.channel, thread_ts=placement.ts, **ended.as_kwargs()
                )
            except Exception as error:
                log.warning("end of job not posted in thread", extra={"error": _slack_error(error)})


def _slack_error(error: Exception) -> str:
    return (
        str(error.response.get("error"))
        if isinstance(error, SlackApiError)
        else type(error).__name__
    )


def _changed(before: Job | None, after: Job) -> bool:
    if before is None:
        return True
    return (before.status, before.progress_percentage, before.job_end_time) != (
        after.status,
        after.progress_percentage,
        after.job_end_time,
    )
