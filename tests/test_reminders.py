"""The due-lead rule of reminders (property tests), `Reminders` against a fake card thread (what is read
back, when, and what a failure means), and the messages reminders and mentions are made of."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot import blocks
from bot.card_thread import CardThreads
from bot.commands import EnvRef
from bot.metrics import Metrics
from bot.notification_channel import CardRef
from bot.reminders import EVENT_TYPE, Reminders, due_leads, next_due
from bot.slack_surface import Shown
from bot.zuora.models import Job
from tests.blockkit import assert_valid_blocks

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DAY, HOUR = 86400.0, 3600.0
ENV = EnvRef("c0ffee00000000000000000000000003", "qa")
JOB_ID = "c0ffee03-0000-4000-8000-0000000000aa"

lead_sets = st.sets(st.integers(min_value=1, max_value=30 * 86400), min_size=1, max_size=6).map(
    lambda leads: tuple(sorted((float(lead) for lead in leads), reverse=True))
)
offsets = st.lists(st.integers(min_value=0, max_value=31 * 86400), max_size=40).map(sorted)


def simulate(
    leads: tuple[float, ...], scheduled: datetime, looks: list[datetime]
) -> list[tuple[datetime, tuple[float, ...]]]:
    """Look at the job at each moment, sending what is due: the reminders, as (when, leads covered)."""
    sent: set[float] = set()
    posted = []
    for now in looks:
        due = due_leads(leads, scheduled, now, sent)
        if due:
            posted.append((now, due))
            sent.update(due)
    return posted


# -- the rule ----------------------------------------------------------------------------------------------------


@given(leads=lead_sets, ahead=st.integers(min_value=1, max_value=31 * 86400), looks=offsets)
def test_each_lead_time_is_covered_once_and_only_once_its_moment_has_passed(
    leads: tuple[float, ...], ahead: int, looks: list[int]
) -> None:
    scheduled = START + timedelta(seconds=ahead)
    moments = [START + timedelta(seconds=offset) for offset in looks]
    posted = simulate(leads, scheduled, moments)
    covered = [lead for _when, due in posted for lead in due]
    assert len(covered) == len(set(covered))  # no lead time twice
    assert len(posted) <= len(leads)
    for when, due in posted:
        assert when < scheduled  # never at or after its time
        assert all(scheduled - timedelta(seconds=lead) <= when for lead in due)
    # After each look before the time, nothing is left due: a missed lead time is caught up at once.
    sent: set[float] = set()
    for now in moments:
        sent.update(due_leads(leads, scheduled, now, sent))
        assert due_leads(leads, scheduled, now, sent) == ()


@given(leads=lead_sets)
def test_looking_at_every_lead_moment_sends_exactly_one_reminder_per_lead(
    leads: tuple[float, ...],
) -> None:
    scheduled = START + timedelta(days=40)
    moments = sorted(scheduled - timedelta(seconds=lead) for lead in leads)
    posted = simulate(leads, scheduled, moments)
    assert [due for _when, due in posted] == [(lead,) for lead in leads]


@given(leads=lead_sets, before=st.integers(min_value=1, max_value=31 * 86400))
def test_a_first_look_late_sends_one_catch_up_for_every_lead_passed(
    leads: tuple[float, ...], before: int
) -> None:
    scheduled = START + timedelta(days=40)
    now = scheduled - timedelta(seconds=before)
    passed = tuple(lead for lead in leads if lead >= before)
    posted = simulate(leads, scheduled, [now, now, now + timedelta(seconds=before / 2)])
    if passed:
        assert posted[0] == (now, passed)
    later = [lead for _when, due in posted[1 if passed else 0 :] for lead in due]
    assert not set(later) & set(passed)  # the catch-up stood for those


@given(leads=lead_sets, looks=offsets, sent=st.sets(st.integers(1, 30 * 86400), max_size=3))
def test_next_due_is_the_moment_the_rule_next_gives_something(
    leads: tuple[float, ...], looks: list[int], sent: set[int]
) -> None:
    scheduled = START + timedelta(days=31)
    kept = {float(lead) for lead in sent}
    for offset in looks:
        now = START + timedelta(seconds=offset)
        if due_leads(leads, scheduled, now, kept):
            continue
        moment = next_due(leads, scheduled, now, kept)
        if moment is None:
            # Nothing will ever be due again for this scheduled time.
            last = max(now, scheduled - timedelta(microseconds=1))
            assert now >= scheduled or due_leads(leads, scheduled, last, kept) == ()
            continue
        assert now < moment < scheduled
        assert due_leads(leads, scheduled, moment, kept)
        assert not due_leads(leads, scheduled, moment - timedelta(microseconds=1), kept)


def test_a_shorter_lead_sent_stands_for_the_longer_ones() -> None:
    scheduled = START + timedelta(days=2)
    late = scheduled - timedelta(minutes=30)
    # The 1h reminder went out (say the 24h one was added to SANDBOX_REMIND_BEFORE later): no 24h now.
    assert due_leads((DAY, HOUR), scheduled, late, {HOUR}) == ()
    assert due_leads((DAY, HOUR, 900.0), scheduled, late, {HOUR}) == ()
    assert due_leads((DAY, HOUR, 900.0), scheduled, scheduled - timedelta(minutes=10), {HOUR}) == (
        900.0,
    )
    assert due_leads((DAY, HOUR), scheduled, scheduled, set()) == ()  # its time has come


# -- Reminders, against a fake thread ------------------------------------------------------------------------------


@dataclass
class FakeThreads:
    """The card threads as `Reminders` sees them: what was posted, what a read returns, and failures."""

    records: list[Mapping[str, Any]] = field(default_factory=list)  # read back
    posted: list[tuple[Any, Mapping[str, Any], bool]] = field(default_factory=list)
    reads: int = 0
    read_fails: int = 0
    post_answers: list[Shown] = field(default_factory=list)  # next answers; then taken

    async def post(
        self,
        channel: str,
        thread_ts: str,
        message: Any,
        *,
        metadata: Mapping[str, Any],
        broadcast: bool = False,
    ) -> Shown:
        answer = self.post_answers.pop(0) if self.post_answers else Shown("2.0", taken=True)
        if answer.taken:
            self.posted.append((message, metadata, broadcast))
            self.records.append(metadata["event_payload"])
        return answer

    async def read(self, channel: str, thread_ts: str, event_type: str) -> list[Mapping[str, Any]]:
        assert event_type == EVENT_TYPE
        self.reads += 1
        if self.read_fails:
            self.read_fails -= 1
            raise ConnectionError("Slack is away")
        return list(self.records)


class Now:
    def __init__(self) -> None:
        self.at = START

    def __call__(self) -> datetime:
        return self.at


CARD = CardRef(channel="C0AUDITLOG", ts="1.0", status="SCHEDULED", requested_by="U0ALLOWED1")


def scheduled(at: datetime, status: str = "SCHEDULED") -> Job:
    return Job.model_validate(
        {"id": JOB_ID, "status": status, "jobType": "REFRESH", "scheduledRefreshTime": at}
    )


def reminders(threads: FakeThreads, now: Now, **options: Any) -> Reminders:
    return Reminders(
        threads=cast(CardThreads, threads),
        leads=options.pop("leads", (DAY, HOUR)),
        now=now,
        mention_ids=("S0PLATFORM",),
        **options,
    )


async def test_the_thread_is_read_only_when_a_reminder_is_due_and_then_once() -> None:
    threads, now = FakeThreads(), Now()
    subject = reminders(threads, now)
    job = scheduled(START + timedelta(days=3))
    await subject.consider(ENV, job, CARD)
    assert (threads.reads, threads.posted) == (0, [])  # nothing due: Slack is not asked
    assert subject.seconds_until_next_due() == 2 * DAY
    now.at += timedelta(days=2)
    await subject.consider(ENV, job, CARD)
    now.at += timedelta(hours=23)
    await subject.consider(ENV, job, CARD)
    await subject.consider(ENV, job, CARD)
    assert threads.reads == 1
    assert [
        (meta["event_payload"]["leads"], broadcast) for _m, meta, broadcast in threads.posted
    ] == [
        ([86400], True),
        ([3600], True),
    ]
    assert subject.seconds_until_next_due() is None


async def test_what_an_earlier_process_sent_is_believed_and_malformed_records_are_not() -> None:
    at = START + timedelta(hours=2)
    stamp = int(at.timestamp())
    threads = FakeThreads(
        records=[
            {
                "kind": "reminder",
                "env": ENV.id,
                "job": JOB_ID,
                "scheduled": stamp,
                "leads": [86400],
            },
            {
                "kind": "reminder",
                "env": ENV.id,
                "job": "another",
                "scheduled": stamp,
                "leads": [3600],
            },
            {
                "kind": "reminder",
                "env": ENV.id,
                "job": JOB_ID,
                "scheduled": "soon",
                "leads": [3600],
            },
            {"kind": "reminder", "env": ENV.id, "job": JOB_ID, "scheduled": stamp, "leads": "all"},
            {"kind": "reminder", "env": ENV.id, "job": JOB_ID, "scheduled": True, "leads": [3600]},
        ]
    )
    now = Now()
    subject = reminders(threads, now)
    await subject.consider(ENV, scheduled(at), CARD)
    assert threads.posted == []  # the 24h one was sent; the 1h one is not due yet
    now.at += timedelta(hours=1, seconds=1)
    await subject.consider(ENV, scheduled(at), CARD)
    ((_message, metadata, _broadcast),) = threads.posted
    assert metadata["event_payload"]["leads"] == [3600]


async def test_an_unreadable_thread_sends_nothing_until_it_can_be_read() -> None:
    threads, now = FakeThreads(read_fails=1), Now()
    subject = reminders(threads, now)
    job = scheduled(START + timedelta(minutes=30))
    await subject.consider(ENV, job, CARD)
    assert threads.posted == []
    await subject.consider(ENV, job, CARD)
    ((_message, metadata, _broadcast),) = threads.posted
    assert metadata["event_payload"]["leads"] == [86400, 3600]  # one catch-up


async def test_a_passing_failure_is_posted_at_the_next_look_a_lasting_one_is_not_repeated() -> None:
    metrics = Metrics()
    threads, now = FakeThreads(post_answers=[Shown(None, taken=False, retry=True)]), Now()
    subject = reminders(threads, now, metrics=metrics)
    job = scheduled(START + timedelta(minutes=30))
    await subject.consider(ENV, job, CARD)
    assert threads.posted == []
    await subject.consider(ENV, job, CARD)
    assert len(threads.posted) == 1
    assert metrics.registry.get_sample_value("sandbox_reminders_total") == 1

    other = FakeThreads(post_answers=[Shown(None, taken=False, retry=False)])
    refused = reminders(other, now)
    await refused.consider(ENV, job, CARD)
    await refused.consider(ENV, job, CARD)
    assert other.posted == [] and other.reads == 1


async def test_the_start_of_a_job_reminded_about_is_told_once_and_of_others_never() -> None:
    threads, now = FakeThreads(), Now()
    subject = reminders(threads, now)
    at = START + timedelta(minutes=30)
    await subject.consider(ENV, scheduled(at), CARD)
    now.at = at
    for _ in range(3):
        await subject.consider(ENV, scheduled(at, "QUEUED"), CARD)
    kinds = [meta["event_payload"]["kind"] for _m, meta, _b in threads.posted]
    assert kinds == ["reminder", "started"]
    assert threads.posted[1][2] is False  # in the thread only

    # A new process reads the start note back; a job never reminded about gets none.
    again = reminders(threads, now)
    await again.consider(ENV, scheduled(at, "EXPORTING"), CARD)
    assert len(threads.posted) == 2
    quiet = FakeThreads()
    fresh = reminders(quiet, now)
    await fresh.consider(ENV, scheduled(at, "EXPORTING"), CARD)
    await fresh.consider(ENV, scheduled(at, "EXPORTING"), CARD)
    assert quiet.posted == [] and quiet.reads == 1


async def test_a_job_that_ended_or_was_never_scheduled_costs_nothing() -> None:
    threads, now = FakeThreads(), Now()
    subject = reminders(threads, now)
    running = Job.model_validate({"id": JOB_ID, "status": "EXPORTING", "jobType": "REFRESH"})
    await subject.consider(ENV, running, CARD)
    await subject.consider(ENV, scheduled(START - timedelta(hours=1), "COMPLETED"), CARD)
    assert (threads.reads, threads.posted) == (0, [])


async def test_no_lead_times_no_reminders() -> None:
    threads, now = FakeThreads(), Now()
    subject = reminders(threads, now, leads=())
    await subject.consider(ENV, scheduled(START + timedelta(minutes=5)), CARD)
    assert (threads.reads, threads.posted, subject.seconds_until_next_due()) == (0, [], None)


# -- the messages ---------------------------------------------------------------------------------------------------


def test_mentions_are_made_of_configured_ids_only() -> None:
    assert blocks.mentions(["S0PLATFORM", "U0ALLOWED1", "W0ENTERPR1"]) == (
        "<!subteam^S0PLATFORM> <@U0ALLOWED1> <@W0ENTERPR1>"
    )
    assert blocks.mentions(["<!channel>", "here", "S0<x>", "C0CHANNEL1"]) == ""
    card = blocks.job_card(scheduled(START), ENV)
    assert blocks.with_mentions(card, []) == card
    told = blocks.with_mentions(card, ["S0PLATFORM"])
    assert told.blocks[0] == card.blocks[0] and "<!subteam^S0PLATFORM>" in str(told.blocks[1])
    assert told.text.startswith("<!subteam^S0PLATFORM> ")
    assert_valid_blocks(told.blocks)


@given(
    name=st.text(max_size=400),
    alias=st.none() | st.text(min_size=1, max_size=80),
    ahead=st.integers(min_value=0, max_value=40 * 86400),
)
def test_a_reminder_is_valid_block_kit_and_outside_text_mentions_nobody(
    name: str, alias: str | None, ahead: int
) -> None:
    env = EnvRef(ENV.id, alias)
    at = START + timedelta(seconds=ahead)
    message = blocks.reminder(
        scheduled(at),
        env,
        scheduled=at,
        now=START,
        leads=(DAY, HOUR),
        mention_ids=("S0PLATFORM",),
        name=name,
        requested_by="U0ALLOWED1",
    )
    assert_valid_blocks(message.blocks)
    shown = str(message.blocks) + message.text
    assert re.findall(r"<[!@][^>]*>", shown.replace("<!date^", "DATE^")) == [
        "<!subteam^S0PLATFORM>"
    ] * shown.count("<!subteam^S0PLATFORM>")
    assert shown.count("<!subteam^S0PLATFORM>") >= 1


def test_a_reminder_says_what_is_overwritten_when_and_how_soon() -> None:
    at = START + timedelta(hours=1)
    message = blocks.reminder(
        scheduled(at), ENV, scheduled=at, now=START, leads=(DAY, HOUR), name="Acme QA"
    )
    text = str(message.blocks)
    assert f"<!date^{int(at.timestamp())}^" in text and "in 1h" in text
    assert "*qa*" in text and ENV.id in text and "Acme QA" in text
    assert "reminder 1d and 1h before" in text
    assert "<!subteam" not in text and "<@" not in text  # no one to mention: no one mentioned
    assert message.text == (
        f"Scheduled refresh of qa ({ENV.id}) (Acme QA) at 2026-03-02 10:00 UTC, in 1h: "
        "the sandbox will be overwritten."
    )


@pytest.mark.parametrize(
    ("status", "note"),
    [
        ("SCRUBBING", False),
        ("RESETTING", True),
        ("IMPORTING", True),
        ("FINALIZING", True),
        ("COMPLETED", False),
    ],
)
def test_a_refresh_card_past_its_reset_stage_says_it_can_no_longer_be_cancelled(
    status: str, note: bool
) -> None:
    card = blocks.job_card(scheduled(START, status), ENV)
    assert ("can no longer be cancelled" in str(card.blocks)) is note
    create = Job.model_validate({"id": JOB_ID, "status": status, "jobType": "CREATE"})
    assert "can no longer be cancelled" not in str(blocks.job_card(create, ENV).blocks)
