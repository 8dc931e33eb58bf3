"""Reminders before a scheduled refresh overwrites a sandbox.

The watch hands every job it sees on a watched environment, with its notification card, to
`Reminders.consider`. For a SCHEDULED job, at each lead time of SANDBOX_REMIND_BEFORE before its
`scheduledRefreshTime`, a reply goes into the card's thread, also sent to the channel: which sandbox is
overwritten and when, SANDBOX_NOTIFY_MENTION, and *Cancel job*.

**The rule** (`due_leads`), applied each time a job is looked at: the lead times due are those whose moment
(scheduled − lead) has passed and for which no reminder, nor one for a shorter lead, was sent for this
scheduled time (a later reminder stands for the earlier ones). If any are due, the job is still SCHEDULED and
its time still ahead, **one** reminder covers them all. So a bot that was down, or that first sees a job
scheduled less than a lead time ahead, sends one catch-up reminder saying how soon the refresh starts, however
many lead times it missed; and a job whose scheduled time moves gets reminders for its new time (what was sent
is kept by scheduled time).

**Where the state is**: in Slack. Each reminder carries message metadata (event type `sandbox_reminder`:
environment, job, scheduled time, the lead times it covers), read back with `conversations.replies` of the
card's thread the first time this process needs it for a job (only when a reminder would be due, or when a job
that may have been reminded about starts), then kept in memory. When a job that was reminded about starts,
its thread says so, once (a `started` record, the same way).

**When**: the watch looks at each job every SANDBOX_WATCH_SECONDS, and also wakes up at the moment the next
reminder falls due (`seconds_until_next_due`), so a reminder is not late by a watch interval; the listing it
reads then may be up to one interval old (the environment view's), which only matters for a job cancelled
or moved within that interval. Time is the injected `now`, never the system clock directly.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter

from bot import blocks
from bot.card_thread import CardThreads
from bot.commands import EnvRef
from bot.coordination import CoordinationUnavailable
from bot.env_view import EnvironmentView
from bot.metrics import Metrics
from bot.notification_channel import CardRef, Key
from bot.zuora.errors import ZuoraError
from bot.zuora.statuses import RUNNING_STATUSES, JobStatus

if TYPE_CHECKING:
    # Types only: the models (and pydantic) are loaded when Zuora first answers, not at start-up.
    from bot.zuora.models import Job


log = logging.getLogger(__name__)

EVENT_TYPE = "sandbox_reminder"
# Jobs whose reminders are remembered at once (Zuora holds one active job per environment: plenty).
MAX_JOBS = 1000
NAMES_MAX_AGE = 3600.0  # environment names change rarely: one listing an hour at most
# A job has started once it is past waiting for its time (a cancelled or cancelling job has not).
STARTED = RUNNING_STATUSES | {JobStatus.QUEUED}


def due_leads(
    leads: Iterable[float], scheduled: datetime, now: datetime, sent: Collection[float]
) -> tuple[float, ...]:
    """The lead times a reminder is due for at `now` (longest first): their moment (`scheduled` − lead) has
    passed, and no reminder for them or for a shorter lead was `sent` for this scheduled time. None once the
    scheduled time has come."""
    if now >= scheduled:
        return ()
    covered = min(sent, default=math.inf)  # a reminder stands for every longer lead
    return tuple(
        sorted(
            (
                lead
                for lead in set(leads)
                if lead < covered and scheduled - timedelta(seconds=lead) <= now
            ),
            reverse=True,
        )
    )


def next_due(
    leads: Iterable[float], scheduled: datetime, now: datetime, sent: Collection[float]
) -> datetime | None:
    """When the next reminder falls due after `now` (the earliest moment of a lead not yet covered), or
    None."""
    covered = min(sent, default=math.inf)
    moments = [
        moment
        for lead in leads
        if lead < covered and (moment := scheduled - timedelta(seconds=lead)) > now
    ]
    return min(moments, default=None)


def stamp(moment: datetime) -> int:
    """A scheduled time as kept in metadata: Unix seconds."""
    return int(moment.timestamp())


@dataclass
class _Reminded:
    """What this process knows of one job's reminders."""

    loaded: bool = False  # its card's thread was read back
    # The leads sent, by scheduled time (its stamp): a moved job starts afresh.
    sent: dict[int, set[float]] = field(default_factory=dict)
    started_noted: bool = False  # its start was told in the thread (or nothing needs telling)
    scheduled: datetime | None = None  # while it is SCHEDULED: when (for the next wake-up)


class Reminders:
    def __init__(
        self,
        *,
        threads: CardThreads,
        leads: Sequence[float],
        now: Callable[[], datetime],
        mention_ids: Sequence[str] = (),
        view: EnvironmentView | None = None,
        metrics: Metrics | None = None,
        claim: Callable[[str], Awaitable[bool]] | None = None,
    ) -> None:
        """`leads`: SANDBOX_REMIND_BEFORE in seconds; `mention_ids`: SANDBOX_NOTIFY_MENTION; `view`: where the
        environments' names are read (None: reminders name the alias and ID only); `claim`: with several
        replicas, claims a reminder in the shared store before it is posted, so that a leader that changed
        (and back) never posts one twice; False: another replica posted it."""
        self._claim = claim
        self._threads = threads
        self._leads = tuple(sorted(set(leads), reverse=True))
        self._now = now
        self._mention_ids = tuple(mention_ids)
        self._view = view
        self._jobs: dict[Key, _Reminded] = {}
        self._counter: Counter | None = None
        if metrics is not None:
            self._counter = Counter(
                "sandbox_reminders",
                "Reminders posted before scheduled refreshes (a catch-up for several lead times counts once).",
                registry=metrics.registry,
            )

    async def consider(self, env: EnvRef, job: Job, card: CardRef) -> None:
        """A job as the watch saw it just now, and its notification card: remind, or tell that it started,
        when that is due. Never raises for Slack or Zuora failures: the next look tries again."""
        if not job.id or not self._leads:
            return
        key = (env.id, job.id)
        if job.is_terminal:
            self._jobs.pop(key, None)  # it never changes again: nothing more to tell
            return
        if job.status == JobStatus.SCHEDULED and job.scheduled_refresh_time is not None:
            await self._remind(key, env, job, card, job.scheduled_refresh_time)
            return
        known = self._jobs.get(key)
        if known is not None:
            known.scheduled = None
        if job.status in STARTED and (known is not None or job.scheduled_refresh_time is not None):
            await self._tell_start(key, env, job, card)

    def seconds_until_next_due(self) -> float | None:
        """How long until the next reminder of a known SCHEDULED job falls due (at least 0), or None."""
        now = self._now()
        moments = [
            moment
            for known in self._jobs.values()
            if known.scheduled is not None
            and (
                moment := next_due(
                    self._leads, known.scheduled, now, known.sent.get(stamp(known.scheduled), ())
                )
            )
            is not None
        ]
        if not moments:
            return None
        return max(0.0, (min(moments) - now).total_seconds())

    # -- reminding --------------------------------------------------------------------------------------------------

    async def _remind(
        self, key: Key, env: EnvRef, job: Job, card: CardRef, scheduled: datetime
    ) -> None:
        known = self._known(key)
        known.scheduled = scheduled
        at = stamp(scheduled)
        now = self._now()
        if not due_leads(self._leads, scheduled, now, known.sent.get(at, ())):
            return  # nothing due: no need to know what the thread holds yet
        if not known.loaded and not await self._load(key, known, card):
            return
        due = due_leads(self._leads, scheduled, now, known.sent.get(at, ()))
        if not due:
            return  # sent before a restart
        message = blocks.reminder(
            job,
            env,
            scheduled=scheduled,
            now=now,
            leads=due,
            mention_ids=self._mention_ids,
            name=await self._name(env.id),
            requested_by=card.requested_by,
        )
        metadata = _metadata(env.id, job.id or "", "reminder", scheduled=at, leads=list(due))
        if self._claim is not None:
            try:
                first = await self._claim(
                    f"reminder:{env.id}:{job.id}:{at}:{','.join(str(int(d)) for d in due)}"
                )
            except CoordinationUnavailable:
                return  # not known whether another replica posted it: the next look asks again
            if not first:
                known.sent.setdefault(at, set()).update(due)  # another replica posted it
                return
        posted = await self._threads.post(
            card.channel, card.ts, message, metadata=metadata, broadcast=True
        )
        if not posted.taken and posted.retry:
            return  # a passing failure: the next look posts it
        known.sent.setdefault(at, set()).update(due)
        if not posted.taken:
            # A lasting refusal: trying again each round would not help and would hammer Slack.
            log.error("reminder refused by Slack; not tried again", extra={"job": job.id})
            return
        if self._counter is not None:
            self._counter.inc()
        log.info(
            "reminder posted",
            extra={"env": env.id, "job": job.id, "leads": list(due), "scheduled": at},
        )

    async def _tell_start(self, key: Key, env: EnvRef, job: Job, card: CardRef) -> None:
        known = self._known(key)
        if known.started_noted:
            return
        if not known.loaded and not await self._load(key, known, card):
            return
        if known.started_noted or not any(known.sent.values()):
            known.started_noted = True  # told before a restart, or never reminded about
            return
        posted = await self._threads.post(
            card.channel,
            card.ts,
            blocks.reminder_started(job, env),
            metadata=_metadata(env.id, job.id or "", "started"),
        )
        if posted.taken or not posted.retry:
            known.started_noted = True

    # -- what the thread holds ----------------------------------------------------------------------------------

    def _known(self, key: Key) -> _Reminded:
        known = self._jobs.get(key)
        if known is None:
            if len(self._jobs) >= MAX_JOBS:
                # The one known longest: its reminders are long past.
                del self._jobs[next(iter(self._jobs))]
            known = self._jobs[key] = _Reminded()
        return known

    async def _load(self, key: Key, known: _Reminded, card: CardRef) -> bool:
        """Read back what the card's thread says was sent (after a restart). False when Slack did not answer:
        nothing is sent then, so a reminder is never sent twice for want of reading."""
        try:
            payloads = await self._threads.read(card.channel, card.ts, EVENT_TYPE)
        except Exception as error:
            log.warning(
                "reminders: the card's thread could not be read; trying again at the next look",
                extra={"job": key[1], "error": type(error).__name__},
            )
            return False
        for payload in payloads:
            _remember(known, key, payload)
        known.loaded = True
        return True

    async def _name(self, env_id: str) -> str | None:
        """The environment's name in Zuora (its tenant name), best effort: a reminder goes out without it."""
        if self._view is None:
            return None
        try:
            environments = await self._view.environments(max_age=NAMES_MAX_AGE)
        except ZuoraError as error:
            log.info("reminders: environment names unavailable", extra={"status": error.status})
            return None
        return next((e.tenant_name for e in environments if e.id == env_id), None)


def _metadata(
    env_id: str,
    job_id: str,
    kind: str,
    *,
    scheduled: int | None = None,
    leads: list[float] | None = None,
) -> dict[str, Any]:
    payload: dict[str, Any] = {"kind": kind, "env": env_id, "job": job_id}
    if scheduled is not None:
        payload["scheduled"] = scheduled
    if leads is not None:
        payload["leads"] = [int(lead) if float(lead).is_integer() else lead for lead in leads]
    return {"event_type": EVENT_TYPE, "event_payload": payload}


def _remember(known: _Reminded, key: Key, payload: Mapping[str, Any]) -> None:
    """One record read back from the thread, if it is about this job and well formed."""
    if (payload.get("env"), payload.get("job")) != key:
        return
    kind = payload.get("kind")
    if kind == "started":
        known.started_noted = True
        return
    scheduled, leads = payload.get("scheduled"), payload.get("leads")
    if kind != "reminder" or not isinstance(scheduled, int | float) or not _number(scheduled):
        return
    if not isinstance(leads, list):
        return
    sent = known.sent.setdefault(int(scheduled), set())
    sent.update(float(lead) for lead in leads if _number(lead) and lead > 0)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
