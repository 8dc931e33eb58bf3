"""The watch: announce every job of the watched environments in the notification channel, however it was
started (Zuora's UI, the API, another tool), and keep its card current until the job ends.

Each round lists the jobs of each watched environment through the shared `EnvironmentView` (at most one
request per environment per interval, shared with the pollers of job cards; no retries inside a round: the
next round is the retry) and reports every job to `JobCards.observe`, which posts a card for a new job and
edits the card of a job whose status or progress changed. Rounds run one after another,
never two at once; a round in which nothing could be listed doubles the pause before the next, up to
`max_backoff` (one failing environment alone does not slow the others).

The first listing of an environment after a start announces only jobs that are not terminal, so a new
installation does not flood the channel with history; the exception is a job created after the newest card
of that environment (it started and ended while the bot was down), which is announced. Cards announced before a restart are known again from the channel's history
(`JobCards.ensure_loaded`): an unchanged job is not posted again, a job that changed while the bot was down
gets its card updated.

With reminders (`bot.reminders`), each job seen, with its card, also goes to `Reminders.consider`, and the
pause between two rounds ends early when the next reminder falls due, so a reminder is not late by up to an
interval: such a round reads the listings the view already holds (they are younger than an interval), so it
costs Zuora nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from bot.backoff import next_delay
from bot.commands import EnvRef
from bot.env_view import EnvironmentView
from bot.job_cards import JobCards
from bot.reminders import Reminders
from bot.tasks import cancel_and_wait
from bot.zuora.client import ZuoraClient
from bot.zuora.errors import ZuoraError
from bot.zuora.retry import NO_RETRY
from bot.zuora.statuses import is_terminal
from bot.zuora.trackid import new_track_id

log = logging.getLogger(__name__)

ALL = "all"
# How far back after a restart a job that came and went is still announced.
CATCH_UP_LIMIT = 7 * 24 * 3600
# The shortest pause before a round woken for a reminder, and how far past the reminder's moment it wakes
# (a timer that fires a little early would find it not yet due).
MIN_WAKE_SECONDS = 0.5
WAKE_MARGIN_SECONDS = 0.05


class JobWatch:
    def __init__(
        self,
        *,
        zuora: ZuoraClient,
        view: EnvironmentView,
        cards: JobCards,
        targets: Sequence[str],
        aliases: dict[str, str],
        interval: float,
        max_backoff: float | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        reminders: Reminders | None = None,
        leading: Callable[[], bool] = lambda: True,
        standby_pause: float | None = None,
    ) -> None:
        """`targets` are aliases, environment IDs or "all", as in SANDBOX_WATCH_ENVIRONMENTS; `reminders`:
        None when SANDBOX_REMIND_BEFORE is empty."""
        self._zuora = zuora
        self._view = view
        self._cards = cards
        self._all = any(t.lower() == ALL for t in targets)
        self._aliases = {alias.lower(): env_id for alias, env_id in aliases.items()}
        self._targets = [self._aliases.get(t.lower(), t) for t in targets if t.lower() != ALL]
        self._interval = interval
        self._max_backoff = max_backoff if max_backoff is not None else max(interval * 10, 600.0)
        self._sleep = sleep
        self._reminders = reminders
        # Only the leader watches (and reminds); the others look again every `standby_pause` seconds, so a
        # replica taking over watches within that time of becoming the leader.
        self._leading = leading
        self._standby_pause = standby_pause if standby_pause is not None else interval / 3
        # Jobs that had ended when the watch first saw their environment: history, never announced.
        self._ignored: set[tuple[str, str]] = set()
        self._seen_environments: set[str] = set()  # environments listed successfully at least once
        self._task: asyncio.Task[None] | None = None
        self.rounds = 0
        self.failed_rounds = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="job-watch")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self) -> None:
        failures = 0
        while True:
            if not self._leading():
                await self._sleep(self._standby_pause)
                continue
            try:
                ok = await self.round()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("watch round failed")
                ok = False
            failures = 0 if ok else failures + 1
            await self._sleep(self._pause(failures))

    def _pause(self, failures: int) -> float:
        """The pause before the next round: the interval (backed off after failures), or less when a
        reminder falls due sooner."""
        delay = next_delay(self._interval, failures, self._max_backoff)
        if failures or self._reminders is None:
            return delay
        due = self._reminders.seconds_until_next_due()
        if due is None:
            return delay
        return min(delay, max(MIN_WAKE_SECONDS, due + WAKE_MARGIN_SECONDS))

    async def round(self) -> bool:
        """One round over every watched environment. False when nothing could be listed: the watch then
        backs off. One broken environment (a wrong ID, a deleted sandbox) does not slow the others."""
        started = time.perf_counter()
        if not await self._cards.ensure_loaded():
            # Without the history the round cannot tell announced jobs from new ones: wait and retry rather
            # than post duplicates.
            self.failed_rounds += 1
            return False
        environments = await self._environments()
        if environments is None:
            self.failed_rounds += 1
            return False
        results = [
            await self._watch_environment(self._cards.env(env_id)) for env_id in environments
        ]
        ok = any(results) or not results
        if ok:
            self.rounds += 1
        else:
            self.failed_rounds += 1
        log.debug(
            "watch round",
            extra={
                "environments": len(environments),
                "ok": ok,
                "seconds": round(time.perf_counter() - started, 3),
            },
        )
        return ok

    async def _environments(self) -> list[str] | None:
        if not self._all:
            return list(dict.fromkeys(self._targets))
        try:
            found = await self._zuora.list_test_environments(
                track_id=new_track_id(), retry=NO_RETRY
            )
        except ZuoraError as error:
            log.warning(
                "watch: could not list environments",
                extra={"status": error.status, "track_id": error.track_id},
            )
            return None
        return list(dict.fromkeys([*(env.id for env in found if env.id), *self._targets]))

    async def _watch_environment(self, env: EnvRef) -> bool:
        try:
            listing = await self._view.jobs(env.id, max_age=self._interval)
        except ZuoraError as error:
            log.warning(
                "watch: could not list jobs",
                extra={
                    "env": env.id,
                    "status": error.status,
                    "track_id": error.track_id,
                    "request_id": error.request_id,
                },
            )
            return False
        first_listing = env.id not in self._seen_environments
        # After a restart, the newest card of this environment says until when the channel is up to date:
        # a job created after it that has already ended came and went while the bot was down.
        caught_up_to = self._cards.newest_card_time(env.id) if first_listing else None
        if caught_up_to is not None and time.time() - caught_up_to > CATCH_UP_LIMIT:
            caught_up_to = None  # too long ago to tell a missed job from history
        track_id = listing.track_id
        for job in sorted(
            listing.jobs, key=lambda j: j.create_time.timestamp() if j.create_time else 0.0
        ):
            if not job.id:
                continue
            key = (env.id, job.id)
            if key in self._ignored:
                continue
            if self._cards.announced(env.id, job.id) is None and job.is_terminal and first_listing:
                missed = (
                    caught_up_to is not None
                    and job.create_time is not None
                    and job.create_time.timestamp() > caught_up_to
                )
                if not missed:  # history from before the bot watched: not announced
                    self._ignored.add(key)
                    continue
            card = await self._cards.observe(env, job, track_id)
            if card is not None and self._reminders is not None:
                try:
                    await self._reminders.consider(env, job, card)
                except Exception:  # a bug in reminders must not stop the announcements
                    log.exception("reminder not considered", extra={"job": job.id})
            if job.is_terminal and card is not None and is_terminal(card.status):
                # Its card shows the end: the job never changes again, so it is not looked at any more
                # (even once its card is forgotten). Until then, each round offers it again.
                self._ignored.add(key)
        # Only after the whole listing was handled: an interrupted first listing is done again.
        self._seen_environments.add(env.id)
        return True
