"""JobCards and JobWatch driven directly against the simulators: the caps, the backoff and the fallbacks
that the end-to-end tests cannot reach in reasonable time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.card_thread import CardThreads
from bot.commands import EnvRef
from bot.env_view import EnvironmentView
from bot.job_cards import JobCards, Origin
from bot.outcomes import JobActed, JobLooked
from bot.reminders import Reminders
from bot.secret import Secret
from bot.sim.clock import ManualClock
from bot.sim.slack import SlackEmulator
from bot.sim.zuora import ZuoraSimulator
from bot.sim.zuora_seed import ENV_QA, ENV_STAGING, ENV_UAT, JOB_CANCELLABLE
from bot.slack_surface import SlackSurface
from bot.watch import JobWatch
from bot.zuora.auth import StaticToken
from bot.zuora.client import ZuoraClient
from bot.zuora.models import Job
from bot.zuora.retry import RetryPolicy
from tests.conftest import ALLOWED, BOT_TOKEN, CHANNEL, NOTIFY
from tests.e2e import text_of, zuora_calls

STAGING = EnvRef(ENV_STAGING, "staging")


class Sleeps:
    """Records the pauses asked for and moves a clock of its own by them; lets real time pass just enough for
    the loop to go round."""

    def __init__(self, stop_after: int | None = None) -> None:
        """`stop_after`: that pause (and any later) never ends, so the loop goes round that often only."""
        self.delays: list[float] = []
        self.now = 0.0
        self._stop_after = stop_after

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        self.now += seconds
        await asyncio.sleep(0.01)
        if self._stop_after is not None and len(self.delays) >= self._stop_after:
            await asyncio.Event().wait()

    def clock(self) -> float:
        return self.now


@pytest.fixture
async def zuora_client(zuora: ZuoraSimulator) -> AsyncIterator[ZuoraClient]:
    async with httpx.AsyncClient() as http:
        # The simulator wants a token it issued: take one the way the bot would.
        token = (await http.post(zuora.base_url + "/oauth/token", data={
            "client_id": "0123abcd-0000-4000-8000-00000000c11d",
            "client_secret": "zuora-client-secret-never-logged",
            "grant_type": "client_credentials",
        })).json()["access_token"]  # fmt: skip
        yield ZuoraClient(
            base_url=zuora.base_url,
            auth=StaticToken(Secret(token)),
            http=http,
            retry=RetryPolicy(attempts=1),
        )


@pytest.fixture
def web(slack: SlackEmulator) -> AsyncWebClient:
    return AsyncWebClient(token=BOT_TOKEN, base_url=slack.api_url)


async def posted_card(web: AsyncWebClient, text: str = "card") -> str:
    response = await web.chat_postMessage(channel=CHANNEL, text=text)
    return str(response["ts"])


def job_cards(
    zuora_client: ZuoraClient,
    web: AsyncWebClient,
    sleeps: Sleeps,
    *,
    notify: str | None = None,
    **options: Any,
) -> JobCards:
    """JobCards whose pauses and clock are `sleeps`'s, reading Zuora through a view on the same clock."""
    return JobCards(
        slack=SlackSurface(web),
        view=EnvironmentView(zuora_client, clock=sleeps.clock),
        notify_channel=notify,
        aliases={"staging": ENV_STAGING},
        sleep=sleeps,
        clock=sleeps.clock,
        **options,
    )


async def current(zuora: ZuoraSimulator) -> Job:
    return Job.model_validate(zuora.job(ENV_STAGING, JOB_CANCELLABLE))


async def test_a_live_card_stops_following_after_its_cap_and_says_so(
    zuora_client: ZuoraClient, web: AsyncWebClient, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    sleeps = Sleeps()
    cards = job_cards(zuora_client, web, sleeps, poll_seconds=10, max_follow=35)
    await cards.present(
        JobLooked(STAGING, await current(zuora), "t-1"),
        Origin(CHANNEL, response_url=None, message_ts=await posted_card(web)),
    )
    ((_env, _job),) = cards.following
    await slack.wait_for(lambda: not cards.following)
    card = next(m for m in slack.messages(CHANNEL) if not m.is_reply)
    assert "stopped following the job" in text_of(card)
    assert (
        len(zuora_calls(zuora, "getAllJobsOfTestEnvironment")) == 3
    )  # at 10, 20, 30 s; the cap at 40 s
    await cards.close()


async def test_a_live_card_backs_off_on_errors_up_to_its_ceiling(
    zuora_client: ZuoraClient, web: AsyncWebClient, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    sleeps = Sleeps()
    zuora.inject("status", operation="getAllJobsOfTestEnvironment", status=503, count=None)
    cards = job_cards(zuora_client, web, sleeps, poll_seconds=1, max_backoff=8)
    ts = await posted_card(web)
    await cards.present(
        JobLooked(STAGING, await current(zuora), "t-1"), Origin(CHANNEL, message_ts=ts)
    )
    await slack.wait_for(lambda: len(sleeps.delays) >= 7)
    await cards.close()
    assert sleeps.delays[:6] == [1, 2, 4, 8, 8, 8]
    card = slack.message(CHANNEL, ts)
    assert (
        card is not None
        and "Could not refresh from Zuora" in text_of(card)
        and "HTTP 503" in text_of(card)
    )


async def test_a_card_that_cannot_be_edited_gets_new_messages_through_response_url(
    zuora_client: ZuoraClient,
    web: AsyncWebClient,
    slack: SlackEmulator,
    zuora: ZuoraSimulator,
    clock: Any,
) -> None:
    private = "C0PRIVATE1"
    slack.add_channel(private, is_private=True, members=[ALLOWED])  # the bot may not post there
    cards = JobCards(
        slack=SlackSurface(web),
        view=EnvironmentView(zuora_client),
        notify_channel=None,
        aliases={},
        poll_seconds=0.05,
    )
    response_url = slack.new_response_url(private, ALLOWED)
    job = await current(zuora)
    await cards.present(
        JobActed(STAGING, job, ALLOWED, "looked at", "t-1"), Origin(private, response_url)
    )
    clock.advance(3 * 3600)  # on to COMPLETED
    message = await slack.wait_for_message(
        private, lambda m: m.ephemeral_for is None and "COMPLETED" in text_of(m)
    )
    assert message.ephemeral_for is None  # in_channel, for everyone there
    await slack.wait_for(lambda: not cards.following)
    await cards.close()


async def test_the_watch_lists_once_per_environment_per_round_and_backs_off_when_all_fail(
    zuora_client: ZuoraClient, web: AsyncWebClient, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    sleeps = Sleeps()
    cards = job_cards(zuora_client, web, sleeps, notify=NOTIFY, poll_seconds=5)
    watch = JobWatch(
        zuora=zuora_client,
        view=EnvironmentView(zuora_client, clock=sleeps.clock),
        cards=cards,
        targets=["staging", ENV_UAT, ENV_QA],
        aliases={"staging": ENV_STAGING},
        interval=5,
        max_backoff=40,
        sleep=sleeps,
    )
    assert await watch.round()
    assert len(zuora_calls(zuora, "getAllJobsOfTestEnvironment")) == 3
    zuora.inject("status", operation="getAllJobsOfTestEnvironment", status=500, count=None)
    sleeps.now += 5  # the listings above are one interval old
    watch.start()
    await slack.wait_for(lambda: len(sleeps.delays) >= 5)
    await watch.stop()
    assert sleeps.delays[:5] == [10, 20, 40, 40, 40]
    calls = len(zuora_calls(zuora, "getAllJobsOfTestEnvironment"))
    # One request per environment per round, no retries (a round cut short by stop() may add up to 3).
    assert 3 * watch.failed_rounds <= calls - 3 <= 3 * (watch.failed_rounds + 1)
    await cards.close()


async def test_an_ended_job_is_not_polled_for_long_when_its_cards_keep_refusing(
    zuora_client: ZuoraClient,
    web: AsyncWebClient,
    slack: SlackEmulator,
    zuora: ZuoraSimulator,
    clock: Any,
) -> None:
    sleeps = Sleeps()
    cards = job_cards(zuora_client, web, sleeps, notify=NOTIFY, poll_seconds=1)
    await cards.present(
        JobActed(STAGING, await current(zuora), ALLOWED, "cancelled", "t-1"), Origin(CHANNEL)
    )
    assert cards.announced(ENV_STAGING, JOB_CANCELLABLE) is not None
    # From now on no card takes an edit (archived channel, bot removed, Slack in trouble, ...).
    slack.fail_next("chat.update", error="internal_error", count=1000)
    clock.advance(3 * 3600)
    before = len(zuora_calls(zuora, "getAllJobsOfTestEnvironment"))
    await slack.wait_for(lambda: not cards.following)
    after = len(zuora_calls(zuora, "getAllJobsOfTestEnvironment"))
    assert after - before == 4  # the end, then three catch-up polls, then it stops
    await cards.close()


async def test_a_record_slack_never_takes_is_given_up_loudly_after_its_retries(
    zuora_client: ZuoraClient,
    web: AsyncWebClient,
    slack: SlackEmulator,
    zuora: ZuoraSimulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sleeps = Sleeps()
    given_up: list[str] = []
    cards = job_cards(
        zuora_client,
        web,
        sleeps,
        notify=NOTIFY,
        poll_seconds=1,
        on_given_up=lambda: given_up.append("x"),
    )
    slack.fail_next("chat.postMessage", error="internal_error", status=500, count=1000)
    await cards.present(
        JobActed(STAGING, await current(zuora), ALLOWED, "cancelled", "t-1"), Origin(CHANNEL)
    )
    assert cards.retries_pending == 1
    await slack.wait_for(lambda: len(given_up) == 2)  # the card, then its audit line
    await slack.wait_for(lambda: cards.retries_pending == 0)
    lost = [r for r in caplog.records if r.getMessage() == "notification not delivered; given up"]
    assert [r.levelname for r in lost] == ["ERROR", "ERROR"]
    assert any("cancelled job" in str(getattr(r, "record", "")) for r in lost)
    await cards.close()


async def test_a_job_missing_from_an_older_listing_is_read_alone_not_dropped(
    zuora_client: ZuoraClient, web: AsyncWebClient, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    sleeps = Sleeps()
    cards = job_cards(zuora_client, web, sleeps, poll_seconds=1)
    view = cards._view
    await view.jobs(ENV_QA, max_age=60)  # the watch, say, listed qa just before the job was started
    job = Job.model_validate(zuora.add_job(ENV_QA, status="QUEUED"))
    await cards.present(
        JobActed(EnvRef(ENV_QA, "qa"), job, ALLOWED, "started", "t-1"), Origin(CHANNEL)
    )
    await slack.wait_for(lambda: len(sleeps.delays) >= 3)
    assert (ENV_QA, job.id) in cards.following  # still followed: never taken for gone
    await cards.close()


async def test_a_reader_that_stops_waiting_does_not_cancel_the_others() -> None:
    release = asyncio.Event()

    class SlowZuora:
        calls = 0

        async def list_jobs(self, env_id: str, **_: Any) -> list[Job]:
            SlowZuora.calls += 1
            await release.wait()
            return [Job(id="j1", status="QUEUED")]

    view = EnvironmentView(SlowZuora())  # type: ignore[arg-type]
    first = asyncio.ensure_future(view.jobs(ENV_QA, max_age=10))
    second = asyncio.ensure_future(view.jobs(ENV_QA, max_age=10))
    while not SlowZuora.calls:
        await asyncio.sleep(0)
    first.cancel()
    release.set()
    listing = await second
    assert [j.id for j in listing.jobs] == ["j1"] and SlowZuora.calls == 1
    assert first.cancelled()


async def test_a_running_job_ends_the_long_pause_of_an_environment_with_only_scheduled_jobs(
    zuora_client: ZuoraClient, web: AsyncWebClient, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    pauses: list[float] = []
    never = asyncio.Event()

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)
        if seconds >= 300:
            await never.wait()  # minutes, as far as this test is concerned
        else:
            await asyncio.sleep(0.01)

    cards = JobCards(
        slack=SlackSurface(web),
        view=EnvironmentView(zuora_client),
        notify_channel=None,
        aliases={},
        poll_seconds=1,
        sleep=sleep,
    )
    later = datetime.now(UTC) + timedelta(days=3)
    scheduled = Job.model_validate(
        zuora.add_job(ENV_QA, status="SCHEDULED", scheduled_refresh_time=later)
    )
    qa = EnvRef(ENV_QA, "qa")
    await cards.present(JobActed(qa, scheduled, ALLOWED, "scheduled", "t-1"), Origin(CHANNEL))
    await slack.wait_for(lambda: pauses == [300])
    before = len(zuora_calls(zuora, "getAllJobsOfTestEnvironment"))
    # Zuora holds one active job per environment; a job of another kind may still run beside it.
    running = Job(id="qa-other-job", status="QUEUED", jobType="EXPORT")
    await cards.present(
        JobLooked(qa, running, "t-2"), Origin(CHANNEL, message_ts=await posted_card(web))
    )
    await slack.wait_for(lambda: len(zuora_calls(zuora, "getAllJobsOfTestEnvironment")) > before)
    await cards.close()


async def test_an_environment_gone_from_zuora_stops_its_jobs_being_followed(
    zuora_client: ZuoraClient, web: AsyncWebClient, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    sleeps = Sleeps()
    cards = job_cards(zuora_client, web, sleeps, poll_seconds=1)
    zuora.inject("status", operation="getAllJobsOfTestEnvironment", status=404, count=None)
    await cards.present(
        JobActed(STAGING, await current(zuora), ALLOWED, "cancelled", "t-1"), Origin(CHANNEL)
    )
    await slack.wait_for(lambda: not cards.following)
    assert sleeps.delays == [1]  # one listing, no backoff for something that will not come back
    await cards.close()


async def test_the_watch_wakes_up_when_the_next_reminder_falls_due(
    zuora_client: ZuoraClient,
    web: AsyncWebClient,
    slack: SlackEmulator,
    zuora: ZuoraSimulator,
    clock: ManualClock,
) -> None:
    sleeps = Sleeps(stop_after=3)  # the third pause lasts: three rounds exactly
    at = clock.now() + timedelta(hours=1, seconds=10)
    zuora.add_job(ENV_QA, status="SCHEDULED", scheduled_refresh_time=at)
    cards = job_cards(zuora_client, web, sleeps, notify=NOTIFY, poll_seconds=5)
    reminders = Reminders(
        threads=CardThreads(web),
        leads=(3600.0,),
        now=lambda: (
            clock.now() + timedelta(seconds=sleeps.now)
        ),  # the time of day moves with sleeps
    )
    watch = JobWatch(
        zuora=zuora_client,
        view=EnvironmentView(zuora_client, clock=sleeps.clock),
        cards=cards,
        targets=[ENV_QA],
        aliases={},
        interval=60,
        sleep=sleeps,
        reminders=reminders,
    )
    watch.start()
    reminder = await slack.wait_for_message(
        NOTIFY, lambda m: (m.metadata or {}).get("event_type") == "sandbox_reminder"
    )
    await slack.wait_for(lambda: len(sleeps.delays) >= 3)
    await watch.stop()
    # Not a whole interval: the watch woke just after the reminder's moment (1h before), then no sooner.
    assert sleeps.delays[:3] == [pytest.approx(10.05), 60, 60]
    assert reminder.reply_broadcast and "in 59m" in text_of(reminder)
    # The round woken early read the listing the view held: no Zuora call of its own.
    assert watch.rounds == 3
    assert len(zuora_calls(zuora, "getAllJobsOfTestEnvironment")) == 2
    await cards.close()


async def test_jobs_followed_on_many_environments_are_polled_by_one_task(
    zuora_client: ZuoraClient, web: AsyncWebClient, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    """A sleeping task per environment cost 1.5 KB each; a thousand followed jobs held 2 MB that way."""
    pauses: list[float] = []
    go = asyncio.Event()
    now = [0.0]  # a clock that moves by the pauses, when they end

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) > 1:
            await asyncio.Event().wait()  # later pauses last: one round of every environment
        await go.wait()  # the first lasts until the test says
        now[0] += seconds

    cards = JobCards(
        slack=SlackSurface(web),
        view=EnvironmentView(zuora_client),
        notify_channel=None,
        aliases={},
        poll_seconds=10,
        sleep=sleep,
        clock=lambda: now[0],
    )
    envs = [zuora.add_environment()["id"] for _ in range(12)]
    for env_id in envs:
        job = Job.model_validate(zuora.add_job(env_id, status="QUEUED"))
        await cards.present(
            JobLooked(EnvRef(env_id, None), job, "t-1"),
            Origin(CHANNEL, message_ts=await posted_card(web)),
        )
    assert len(cards.following) == 12

    def pollers() -> list[asyncio.Task[Any]]:
        return [t for t in asyncio.all_tasks() if t.get_name().startswith("job-cards-poller")]

    def polled() -> set[str]:
        return {c.path.split("/")[2] for c in zuora_calls(zuora, "getAllJobsOfTestEnvironment")}

    assert len(pollers()) == 1 and pauses == [
        10
    ]  # twelve environments waiting: one task, one pause
    assert not polled() & set(envs)
    go.set()
    await slack.wait_for(lambda: polled() >= set(envs))
    await cards.close()
    assert all(t.done() for t in pollers())
