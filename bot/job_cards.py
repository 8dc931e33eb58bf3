"""Every card of every job, kept current until the job ends: the one owner of job cards.

A job has cards in the channels where someone acted on it or looked at it, and one card in the notification
channel (the audit trail: its thread holds a line per action and a reply when the job ends). The operations
report what they did (`present`, `record`), the watch reports what it saw (`observe`); neither knows how a card
is kept current. That is done here:

- Showing a card goes through `SlackSurface.show` (edit in place, or post anew when the card is gone). A card
  that went out through a response_url (the bot may not post in that channel) cannot be edited: a change of
  status is posted there as a new message, within response_url's budget.
- Following a job: one task (`bot.poll_rounds`) reads, through the shared `EnvironmentView`, the jobs of
  every environment with a followed job, each every `poll_seconds` (every few minutes while all of them are
  only scheduled), and shows what changed on every card of each job. Failures back off (`bot.backoff`) and say
  so on the cards; a job is followed for at most `max_follow` seconds (past its scheduled time), then its cards
  say that *Refresh status* still works. When a job ends, each editable card gets a reply in its thread.
- The notification card of a job is posted once, edited when what it shows changed, never taken back by an
  older view of the job, and known again after a restart from the channel's history
  (`NotificationChannel`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from bot import blocks
from bot.backoff import next_delay
from bot.commands import EnvRef
from bot.coordination import CoordinationUnavailable
from bot.env_view import EnvironmentView
from bot.notification_channel import CardRef, Key, NotificationChannel, card_metadata
from bot.outcomes import AuditLine, JobActed, JobLooked, JobOutcome
from bot.poll_rounds import PollRounds
from bot.shared_cards import SharedCards
from bot.slack_surface import Origin, SlackSurface
from bot.tasks import cancel_and_wait
from bot.zuora.errors import ZuoraError, ZuoraNotFoundError
from bot.zuora.statuses import JobStatus, is_terminal

if TYPE_CHECKING:
    # Types only: the models (and pydantic) are loaded when Zuora first answers, not at start-up.
    from bot.zuora.models import Job


log = logging.getLogger(__name__)

__all__ = ["ChannelCard", "JobCards", "Origin"]

RESPONSE_URL_POSTS = 4  # response_url takes 5 posts; the first one showed the card
# A notification card or audit line Slack did not take for a passing reason (429, 5xx, no answer) is tried
# again in the background after these pauses (about 10 minutes in all), then given up: an ERROR log line with
# the whole record, and the deliveries_given_up metric.
DELIVERY_RETRY_PAUSES = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 180.0, 200.0)
SCHEDULED_POLL_SECONDS = 300.0
STARTED = frozenset({"started", "scheduled"})  # the verbs of the actions that ask for a job
# At most this many jobs followed at once (Zuora holds one active job per environment: far more than a tenant
# has); beyond it a card is shown but not kept current, and a WARNING says so.
MAX_FOLLOWED = 1000
# A job followed this recently is kept even if the shared list does not show it yet (its record is on its way).
ADOPT_GRACE = 30.0
TERMINAL_CATCH_UPS = 3


@dataclass(slots=True)
class ChannelCard:
    """One card of a job outside the notification channel: where it is and how it can be changed."""

    channel: str
    ts: str | None = None  # editable with chat.update when set
    response_url: str | None = None  # otherwise, new messages through response_url
    requested_by: str | None = None
    posts_left: int = RESPONSE_URL_POSTS


class _Followed:
    """A followed job: its cards, and the last state they show.

    A job may be followed for a day, a thousand of them at once; its last state is kept as the JSON Zuora
    sent (about 400 bytes) rather than as a `Job` (about 1.5 KB, a dozen objects), and read again when asked
    for: once a round, or when a card is drawn."""

    __slots__ = (
        "_last",
        "behind",
        "cards",
        "catch_ups",
        "deadline",
        "env",
        "job_id",
        "replaced",
        "since",
        "status",
    )

    def __init__(
        self, env: EnvRef, job_id: str, last: Job | None, *, deadline: float, since: float
    ) -> None:
        self.env = env
        self.job_id = job_id
        self.deadline = deadline
        # When it was first followed: a listing asked for before then may not show it yet.
        self.since = since
        self.cards: list[ChannelCard] = []
        self.behind = False  # a card did not take the last state: show it again at the next poll
        self.catch_ups = 0  # polls since the job ended
        self.replaced: list[tuple[str, str]] = []  # (channel, ts) of cards posted anew
        self._last: bytes | None = None
        self.status: str | None = None  # the last state's, without reading it again
        self.last = last

    @property
    def last(self) -> Job | None:
        # Imported here, once loaded a dictionary lookup: the models bring pydantic, which start-up does not need.
        from bot.zuora.models import Job

        return None if self._last is None else Job.model_validate_json(self._last)

    @last.setter
    def last(self, job: Job | None) -> None:
        self._last = (
            None if job is None else job.model_dump_json(by_alias=True, exclude_none=True).encode()
        )
        self.status = None if job is None or job.status is None else str(job.status)


class JobCards:
    def __init__(
        self,
        *,
        slack: SlackSurface,
        view: EnvironmentView,
        notify_channel: str | None,
        aliases: Mapping[str, str],
        poll_seconds: float,
        max_follow: float = 24 * 3600,
        max_backoff: float = 300.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_given_up: Callable[[], None] | None = None,
        notify_mention: Sequence[str] = (),
        shared: SharedCards | None = None,
        leading: Callable[[], bool] = lambda: True,
    ) -> None:
        """`clock` measures intervals; `now` is the time of day, to compare with Zuora's times;
        `on_given_up` is told of every record that could not be delivered (a metric); `notify_mention`
        (SANDBOX_NOTIFY_MENTION) is mentioned in the first card of a job started outside the bot; `shared`:
        what the replicas share of the cards (`bot.shared_cards`); `leading`: whether this replica keeps the
        cards current now (the leader does; the others record what they follow for it)."""
        self._shared = shared
        self._leading = leading
        self._sharing: set[asyncio.Task[None]] = set()
        self._slack = slack
        self._on_given_up = on_given_up
        self._notify_mention = tuple(notify_mention)
        self._retries: set[asyncio.Task[None]] = set()
        self._view = view
        self.notification = (
            NotificationChannel(slack=slack, channel=notify_channel) if notify_channel else None
        )
        self._aliases = {env_id: alias for alias, env_id in aliases.items()}
        self._poll = poll_seconds
        self._max_follow = max_follow
        self._max_backoff = max_backoff
        self._sleep = sleep
        self._clock = clock
        self._now = now
        self._followed: dict[Key, _Followed] = {}
        # One task polls every environment with a followed job (`bot.poll_rounds`).
        self._rounds = PollRounds(self._round, sleep=sleep, clock=clock, name="job-cards-poller")
        # Environments whose last listings failed, and how many in a row.
        self._failures: dict[str, int] = {}
        self._closed = False

    def env(self, env_id: str) -> EnvRef:
        return EnvRef(id=env_id, alias=self._aliases.get(env_id))

    @property
    def following(self) -> set[Key]:
        """The jobs whose cards are being kept current."""
        return set(self._followed)

    # -- what the operations report -------------------------------------------------------------------------------

    async def present(self, outcome: JobOutcome, origin: Origin) -> None:
        """Show a job to whoever asked or acted, then keep the records: the notification card, the audit line,
        and the following of the job. The records are kept even when showing failed: an action Zuora carried
        out is never missing from the audit trail because Slack hiccupped."""
        notification = self.notification
        in_notification_channel = (
            notification is not None and origin.channel_id == notification.channel
        )
        if notification is not None and in_notification_channel:
            # So that a notification card clicked after a restart is known as one.
            await notification.ensure_loaded()
        acted = isinstance(outcome, JobActed)
        requested_by = outcome.actor if isinstance(outcome, JobActed) else outcome.requested_by
        # The job's card in the notification channel is shown there: a click on it, or an action typed in
        # that channel, never makes a second card.
        clicked_card = notification is not None and notification.is_card(
            origin.channel_id, origin.message_ts
        )
        if notification is not None and in_notification_channel and not clicked_card:
            shared = await self._shared_card((outcome.env.id, outcome.job.id or ""))
            clicked_card = shared is not None and shared.ts == origin.message_ts
        left_to_notification = notification is not None and (
            clicked_card or (in_notification_channel and acted)
        )
        # A card only a viewer sees has no Cancel job; a shared message shows everyone the same buttons.
        private = origin.message_ts is None or origin.is_ephemeral
        act = not isinstance(outcome, JobLooked) or outcome.may_act or not private
        card = blocks.job_card(
            outcome.job, outcome.env, requested_by=requested_by, track_id=outcome.track_id, act=act
        )
        placed: ChannelCard | None = None
        try:
            placed = await self._show_to_user(outcome, origin, card, left_to_notification)
        except Exception:
            log.exception("the job card could not be shown")
        finally:
            shown_there = await self._keep_records(outcome, requested_by, placed)
        if left_to_notification and not shown_there:
            # The notification card did not take it: never leave the user without an answer.
            await self._slack.reply(origin, card, ephemeral=False)

    async def record(self, line: AuditLine) -> None:
        """An action taken through the bot: in its job card's thread, or in the channel without a card. Tried
        once now; if Slack did not take it for a passing reason, again in the background."""
        if self.notification is None:
            return
        await self.notification.ensure_loaded()
        if await self._post_line(line) == "retry":
            self._retry_later(lambda: self._post_line(line), line.message.text)

    @property
    def retries_pending(self) -> int:
        """Records waiting for another try (tests and shutdown look at it)."""
        return len(self._retries)

    # -- what the watch reports -------------------------------------------------------------------------------------

    async def ensure_loaded(self) -> bool:
        return self.notification is None or await self.notification.ensure_loaded()

    def newest_card_time(self, env_id: str) -> float | None:
        return self.notification.newest_card_time(env_id) if self.notification else None

    def announced(self, env_id: str, job_id: str) -> CardRef | None:
        return self.notification.get((env_id, job_id)) if self.notification else None

    async def observe(self, env: EnvRef, job: Job, track_id: str | None) -> CardRef | None:
        """A job seen on a watched environment: its notification card is posted or brought up to date. A
        card posted here is of a job started outside the bot (the bot's own get theirs when they start)."""
        card, _retry = await self._publish(env, job, track_id=track_id, create=True, outside=True)
        return card  # the watch's next round is its retry

    # -- lifecycle --------------------------------------------------------------------------------------------------

    async def close(self, *, records_budget: float = 10.0) -> None:
        """Stop following (on shutdown); cards keep their last state and their Refresh status button. Records
        still being retried get `records_budget` seconds more; what is left then is logged as lost."""
        self._closed = True
        if self._retries:
            _done, left = await asyncio.wait(set(self._retries), timeout=records_budget)
            for task in left:
                await cancel_and_wait(task)
        await self._rounds.close()
        self._followed.clear()
        if self._sharing:  # what the other replicas should know, told before leaving
            await asyncio.wait(set(self._sharing), timeout=2.0)

    # -- showing a job to the user ---------------------------------------------------------------------------------

    async def _show_to_user(
        self, outcome: JobOutcome, origin: Origin, card: blocks.Message, left_to_notification: bool
    ) -> ChannelCard | None:
        """Where the user sees the card; returns the card that can be kept current, if any."""
        acted = isinstance(outcome, JobActed)
        if isinstance(outcome, JobActed) and outcome.done is not None:
            # A confirmed refresh: the confirmation says so, and the card goes to the channel.
            await self._slack.reply(origin, outcome.done, replace_original=True)
        elif origin.message_ts is not None:
            # A click on a card or a list: the answer takes the clicked message's place.
            if left_to_notification:
                return None
            await self._slack.reply(origin, card, replace_original=True)
            if origin.channel_id and not origin.is_ephemeral:
                return ChannelCard(origin.channel_id, origin.message_ts)
            if not (origin.channel_id and acted):
                return None
            # An action taken from an ephemeral card or list: the clicker sees the result in place, and
            # the team gets the card that stays current.
        elif not acted:
            await self._slack.reply(origin, card)
            return None
        if left_to_notification or not origin.channel_id:
            return None
        return await self._post_in_channel(origin, card)

    async def _post_in_channel(self, origin: Origin, card: blocks.Message) -> ChannelCard:
        """chat.postMessage, so the card can be edited later; where the bot may not post (a private channel it
        is not in, a DM), response_url's in_channel answer still shows it to everyone there."""
        assert origin.channel_id is not None
        posted = await self._slack.post(origin.channel_id, card)
        if posted.ts is not None:
            return ChannelCard(posted.channel or origin.channel_id, posted.ts)
        await self._slack.reply(origin, card, ephemeral=False)
        return ChannelCard(origin.channel_id, None, origin.response_url)

    async def _keep_records(
        self, outcome: JobOutcome, requested_by: str | None, placed: ChannelCard | None
    ) -> bool:
        """Each step on its own: one failing cannot skip the next. True when the notification card shows the
        job as the user's card does."""
        acted = outcome if isinstance(outcome, JobActed) else None
        shown = False
        note = blocks.acted_note(acted.actor, acted.verb, acted.track_id) if acted else None
        line = (
            AuditLine(
                acted.env,
                acted.job.id,
                blocks.action_notification(
                    actor=acted.actor,
                    verb=acted.verb,
                    job=acted.job,
                    env=acted.env,
                    track_id=acted.track_id,
                ),
            )
            if acted
            else None
        )

        async def publish() -> Literal["done", "retry", "lost"]:
            card, retry = await self._publish(
                outcome.env,
                outcome.job,
                note=note,
                # Whoever started or scheduled the job asked for it; someone who cancels it did not.
                requested_by=requested_by if acted is None or acted.verb in STARTED else None,
                track_id=outcome.track_id,
                create=acted is not None,
            )
            return "done" if card is not None else "retry" if retry else "lost"

        try:
            published = await publish()
            shown = published == "done"
            if published == "retry" and acted is not None:
                # The card first, then its audit line in its thread: both in the background.
                self._retry_later(publish, note or "", then=line)
                line = None
        except Exception:
            log.exception("notification card not kept")
        if line is not None:
            try:
                await self.record(line)
            except Exception:
                log.exception("audit line not posted")
        if placed is not None:
            placed.requested_by = requested_by
        if placed is not None or self.announced(outcome.env.id, outcome.job.id or ""):
            self._follow(outcome.env, outcome.job, placed)
        return shown

    # -- the notification card ---------------------------------------------------------------------------------------

    async def _publish(
        self,
        env: EnvRef,
        job: Job,
        *,
        note: str | None = None,
        requested_by: str | None = None,
        track_id: str | None = None,
        create: bool = True,
        outside: bool = False,
    ) -> tuple[CardRef | None, bool]:
        """Post or update the job's notification card; no Slack call when nothing a reader would see has
        changed. (the card, False), or (None, whether another try may succeed) when there is no card for it
        (and `create` is False) or Slack did not take it. The first card of a job started `outside` the
        bot mentions SANDBOX_NOTIFY_MENTION (an edit does not mention anyone again)."""
        notification = self.notification
        if notification is None or not job.id:
            return None, False
        key = (env.id, job.id)
        await notification.ensure_loaded(patient=create and notification.get(key) is None)
        async with notification.lock_for(key):
            card = notification.get(key)
            if self._shared is not None:
                try:
                    # What the replicas last showed wins over this replica's memory, which may be old.
                    card = await self._shared.card(key) or card
                except CoordinationUnavailable:
                    pass  # this replica's memory, then
                else:
                    if card is None and create:
                        waited = await self._shared.may_post(key)
                        card = waited if isinstance(waited, CardRef) else None
            if card is None and not create:
                return None, False
            if card is not None and card.is_newer_than(job):
                return card, False
            note = note or (card.note if card else None)
            # Who asked for the job stays who asked: a later action by someone else is told by the note.
            requested_by = (card.requested_by if card else None) or requested_by
            if card is not None and card.shows(job, note):
                return card, False
            was_terminal = card is not None and is_terminal(card.status)
            message = blocks.job_card(
                job, env, requested_by=requested_by, track_id=track_id, note=note
            )
            if card is None and outside and self._notify_mention:
                message = blocks.with_mentions(message, self._notify_mention)
            shown = await self._slack.show(
                notification.channel,
                card.ts if card else None,
                message,
                metadata=card_metadata(env.id, job, note, requested_by),
            )
            if not shown.taken or shown.ts is None:
                return None, shown.retry
            if card is None or card.ts != shown.ts:
                card = CardRef(channel=notification.channel, ts=shown.ts, status=None)
            card.status, card.progress, card.note = (
                str(job.status or ""),
                job.progress_percentage,
                note,
            )
            card.requested_by, card.updated = requested_by, job.update_time or card.updated
            card.scheduled = job.scheduled_refresh_time
            notification.put(key, card)
            if self._shared is not None:
                await self._shared.remember_card(key, card)
            if job.is_terminal and not was_terminal:
                await self._slack.post(
                    notification.channel, blocks.job_ended(job, env), thread_ts=card.ts
                )
            return card, False

    async def _post_line(self, line: AuditLine) -> Literal["done", "retry", "lost"]:
        """One try at an audit line: in its job card's thread, or in the channel without a card."""
        assert self.notification is not None
        card = self.notification.get((line.env.id, line.job_id)) if line.job_id else None
        posted = await self._slack.post(
            self.notification.channel, line.message, thread_ts=card.ts if card else None
        )
        return "done" if posted.taken else "retry" if posted.retry else "lost"

    def _retry_later(
        self,
        attempt: Callable[[], Awaitable[Literal["done", "retry", "lost"]]],
        record: str,
        *,
        then: AuditLine | None = None,
    ) -> None:
        """Try `attempt` again in the background until it is done, with pauses, for a bounded time; then
        record `then` (the audit line that belongs in the card's thread). Never under a lock a reply waits on."""

        async def keep_trying() -> None:
            result: str = "retry"
            try:
                for pause in DELIVERY_RETRY_PAUSES:
                    await self._sleep(pause)
                    result = await attempt()
                    if result != "retry":
                        break
            finally:
                if result != "done":
                    self._given_up(record)
            if then is not None:
                await self.record(then)

        task = asyncio.create_task(keep_trying(), name="job-cards-delivery")
        self._retries.add(task)
        task.add_done_callback(self._retries.discard)

    def _given_up(self, record: str) -> None:
        log.error("notification not delivered; given up", extra={"record": record})
        if self._on_given_up is not None:
            self._on_given_up()

    # -- following a job -------------------------------------------------------------------------------------------

    def _follow(self, env: EnvRef, job: Job, card: ChannelCard | None) -> None:
        """Keep `card` (if any) and the notification card of `job` current; a job already followed gains a
        card, not a second poller."""
        if self._closed or not job.id or job.is_terminal:
            return
        key = (env.id, job.id)
        followed = self._followed.get(key)
        if followed is None and len(self._followed) >= MAX_FOLLOWED:
            log.warning(
                "too many jobs followed; this one is not kept current", extra={"job": job.id}
            )
            return
        if followed is None:
            now = self._clock()
            followed = _Followed(env, job.id, job, deadline=now + self._max_follow, since=now)
            self._extend_for_schedule(followed, job)
            self._followed[key] = followed
        known = {(c.channel, c.ts) for c in followed.cards if c.ts is not None}
        if card is not None and (card.ts is None or (card.channel, card.ts) not in known):
            followed.cards.append(card)
        self._share(followed)
        if self._shared is not None and not self._leading():
            # The leader keeps it current (it adopts what is shared); nothing to poll here.
            self._followed.pop(key, None)
            return
        if env.id not in self._rounds:
            delay = self._delay(env.id)
            self._rounds.schedule(env.id, delay, wakeable=delay > self._poll)
        elif job.status != JobStatus.SCHEDULED:
            # An environment with only scheduled jobs is read every few minutes: a running one needs it now.
            self._rounds.wake(env.id)

    def _on(self, env_id: str) -> list[_Followed]:
        return [f for (env, _job), f in self._followed.items() if env == env_id]

    def _stop_following(self, followed: _Followed) -> None:
        key = (followed.env.id, followed.job_id)
        if self._followed.pop(key, None) is not None and self._shared is not None:
            self._in_background(self._shared.unfollow(key))

    async def _shared_card(self, key: Key) -> CardRef | None:
        if self._shared is None:
            return None
        try:
            return await self._shared.card(key)
        except CoordinationUnavailable:
            return None

    def _share(self, followed: _Followed) -> None:
        """Record the followed job and its editable cards for the other replicas (in the background)."""
        if self._shared is None:
            return
        record = {
            "alias": followed.env.alias,
            "job": followed.last.model_dump(mode="json", by_alias=True) if followed.last else None,
            "cards": [
                {"channel": c.channel, "ts": c.ts, "requested_by": c.requested_by}
                for c in followed.cards
                if c.ts is not None
            ],
            "replaced": [list(r) for r in followed.replaced],
        }
        ttl = max(1.0, followed.deadline - self._clock())
        self._in_background(self._shared.follow((followed.env.id, followed.job_id), record, ttl))

    def _in_background(self, work: Awaitable[None]) -> None:
        async def run() -> None:
            try:
                await work
            except Exception:
                log.exception("sharing with the other replicas failed")

        task = asyncio.ensure_future(run())
        self._sharing.add(task)
        task.add_done_callback(self._sharing.discard)

    async def adopt(self) -> None:
        """The leader's round: follow every job another replica follows (also one that died), with its
        cards. Raises `CoordinationUnavailable` when the store cannot be read (the next round tries again)."""
        if self._shared is None or self._closed:
            return
        from bot.zuora.models import Job

        records = await self._shared.followed()
        settled = self._clock() - ADOPT_GRACE
        for key, followed in list(self._followed.items()):
            if key not in records and followed.since < settled:
                # Ended and let go by another leader meanwhile (or never shared): the store is the truth.
                self._followed.pop(key, None)
        for (env_id, job_id), record in records.items():
            try:
                job = Job.model_validate(record.get("job") or {"id": job_id})
            except ValueError:
                continue
            env = EnvRef(id=env_id, alias=record.get("alias") or self._aliases.get(env_id))
            job = job if job.id else job.model_copy(update={"id": job_id})
            cards = record.get("cards") or []
            local = self._followed.get((env_id, job_id))
            before = local is not None
            replaced = {tuple(r) for r in record.get("replaced") or [] if isinstance(r, list)}
            if local is not None:
                replaced |= set(local.replaced)
                covered = {c.channel for c in local.cards}
                cards = [
                    c for c in cards if isinstance(c, dict) and c.get("channel") not in covered
                ]
            for entry in cards:
                if (
                    isinstance(entry, dict)
                    and entry.get("channel")
                    and entry.get("ts")
                    and (entry["channel"], entry["ts"]) not in replaced
                ):
                    card = ChannelCard(
                        str(entry["channel"]), str(entry["ts"]),
                        requested_by=entry.get("requested_by"),
                    )  # fmt: skip
                    self._follow(env, job, card)
            if not cards:
                self._follow(env, job, None)
            if not before and (env_id, job_id) in self._followed:
                log.info("following a job another replica followed", extra={"job": job_id})

    def _delay(self, env_id: str) -> float:
        """A job scheduled for later changes nothing until its time: an environment whose followed jobs are all
        scheduled is read every few minutes, not every SANDBOX_POLL_SECONDS."""
        followed = self._on(env_id)
        if followed and all(f.status == JobStatus.SCHEDULED for f in followed):
            return max(self._poll, SCHEDULED_POLL_SECONDS)
        return self._poll

    def _extend_for_schedule(self, followed: _Followed, job: Job) -> None:
        """Follow a scheduled refresh until its time, then for the usual span after it."""
        if job.status == JobStatus.SCHEDULED and job.scheduled_refresh_time is not None:
            wait = (job.scheduled_refresh_time - self._now()).total_seconds()
            followed.deadline = max(
                followed.deadline, self._clock() + max(0.0, wait) + self._max_follow
            )

    async def _round(self, env_id: str) -> tuple[float, bool] | None:
        """One round of an environment's polling: the pause before the next one (and whether a followed job
        that is running may end it early), or None when none of its jobs is followed any more."""
        try:
            next_round = await self._poll_environment(env_id)
        except Exception:
            log.exception("job card poller failed", extra={"env": env_id})
            for followed in self._on(env_id):
                self._stop_following(followed)
            next_round = None
        if next_round is None:
            self._failures.pop(env_id, None)
        return next_round

    async def _poll_environment(self, env_id: str) -> tuple[float, bool] | None:
        failures = self._failures.get(env_id, 0)
        # Only the leader keeps the cards current; another replica records what it follows.
        if self._leading():
            for followed in self._on(env_id):
                if self._clock() >= followed.deadline:
                    await self._show_all(
                        followed, followed.last, track_id=None, warning=blocks.follow_stopped()
                    )
                    self._stop_following(followed)
            if not self._on(env_id):
                return None
            try:
                listing = await self._view.jobs(
                    env_id,
                    max_age=self._poll,
                    asked_after=max(f.since for f in self._on(env_id)),
                )
            except ZuoraNotFoundError:
                log.info("the environment is gone from Zuora; stopped following its jobs")
                for followed in self._on(env_id):
                    self._stop_following(followed)
                return None
            except ZuoraError as error:
                failures = self._failures[env_id] = failures + 1
                delay = next_delay(self._poll, failures, self._max_backoff)
                log.warning(
                    "job cards could not refresh",
                    extra={"env": env_id, "status": error.status, "track_id": error.track_id},
                )
                for followed in self._on(env_id):
                    await self._show_all(
                        followed,
                        followed.last,
                        track_id=error.track_id,
                        warning=blocks.poll_failed(error, delay),
                    )
                return (delay, False) if self._on(env_id) else None
            recovered, failures = failures > 0, 0
            self._failures.pop(env_id, None)
            for followed in self._on(env_id):
                job = listing.job(followed.job_id) or await self._read_missing(followed)
                if job is not None:
                    await self._seen(followed, job, listing.track_id, recovered=recovered)
        if not self._on(env_id):
            return None
        if failures:
            return next_delay(self._poll, failures, self._max_backoff), False
        delay = self._delay(env_id)
        return delay, delay > self._poll

    async def _read_missing(self, followed: _Followed) -> Job | None:
        """A followed job the listing does not show: asked alone. Gone (404): no longer followed."""
        try:
            return await self._view.job(followed.env.id, followed.job_id)
        except ZuoraNotFoundError:
            log.info(
                "the job is gone from Zuora; stopped following", extra={"job": followed.job_id}
            )
            self._stop_following(followed)
        except ZuoraError as error:
            log.warning(
                "a followed job could not be read",
                extra={"job": followed.job_id, "status": error.status, "track_id": error.track_id},
            )
        return None

    async def _seen(self, followed: _Followed, job: Job, track_id: str, *, recovered: bool) -> None:
        """A fresh view of a followed job: every card of it shows it (an older view changes nothing)."""
        last = followed.last
        if last is not None and _older(job, last):
            return
        observed = True
        key = (followed.env.id, followed.job_id)
        if self.announced(*key) is not None or await self._shared_card(key) is not None:
            try:
                published, _retry = await self._publish(
                    followed.env, job, track_id=track_id, create=False
                )
                observed = published is not None  # if not, the next poll shows it again
            except Exception:
                log.exception("notification card not kept", extra={"job": followed.job_id})
                observed = False
        changed = _changed(last, job)
        status_changed = last is None or last.status != job.status
        followed.last = job
        self._extend_for_schedule(followed, job)
        shown = True
        if changed or recovered or followed.behind:
            shown = await self._show_all(
                followed, job, track_id=track_id, status_changed=status_changed
            )
        # A card Slack did not take this time is shown again at the next poll, even if nothing changed: the
        # last state of a job (its end above all) must reach every card.
        followed.behind = not (shown and observed)
        if job.is_terminal:
            followed.catch_ups += 1
            # Once every card took the end, or after a few tries (Slack keeps failing), the job is done: it
            # does not change any more, so there is nothing to poll for.
            if not followed.behind or followed.catch_ups > TERMINAL_CATCH_UPS:
                await self._announce_end(followed, job)
                self._stop_following(followed)

    async def _show_all(
        self,
        followed: _Followed,
        job: Job | None,
        *,
        track_id: str | None,
        warning: str | None = None,
        status_changed: bool = False,
    ) -> bool:
        """Show `job` on every channel card of the job; False when Slack did not take one of them."""
        if job is None:
            return True
        all_taken = True
        before = [(card.channel, card.ts) for card in followed.cards]
        for card in followed.cards:
            message = blocks.job_card(
                job, followed.env, requested_by=card.requested_by, track_id=track_id,
                warning=warning,
            )  # fmt: skip
            taken = await self._show_card(card, message, new_message=status_changed)
            all_taken = taken and all_taken
        moved = [
            old
            for old, card in zip(before, followed.cards, strict=True)
            if old[1] is not None and card.ts != old[1]
        ]
        if moved:  # a card was posted anew: the other replicas must not bring the old one back
            followed.replaced.extend((str(c), str(t)) for c, t in moved)
            self._share(followed)
        return all_taken

    async def _show_card(
        self, card: ChannelCard, message: blocks.Message, *, new_message: bool
    ) -> bool:
        if card.ts is not None:
            shown = await self._slack.show(card.channel, card.ts, message)
            card.ts = shown.ts
            if shown.ts is not None:
                return shown.taken
        if card.response_url and new_message and card.posts_left > 0:
            card.posts_left -= 1
            await self._slack.respond(card.response_url, message, replace_original=False)
        return True  # response_url cards are best effort: nothing more to retry

    async def _announce_end(self, followed: _Followed, job: Job) -> None:
        ended = blocks.job_ended(job, followed.env)
        for card in followed.cards:
            if card.ts is not None:
                await self._slack.post(card.channel, ended, thread_ts=card.ts)


def _older(job: Job, shown: Job) -> bool:
    """A view of the job older than the one shown (a listing that raced an action)."""
    if shown.is_terminal and not job.is_terminal:
        return True
    return (
        shown.update_time is not None
        and job.update_time is not None
        and job.update_time < shown.update_time
    )


def _changed(before: Job | None, after: Job) -> bool:
    if before is None:
        return True
    return (
        before.status,
        before.progress_percentage,
        before.job_end_time,
        before.scheduled_refresh_time,
    ) != (after.status, after.progress_percentage, after.job_end_time, after.scheduled_refresh_time)
