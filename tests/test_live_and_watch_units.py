"""LiveCards and JobWatch driven directly against the simulators: the caps, the backoff and the fallbacks
that the end-to-end tests cannot reach in reasonable time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from slack_sdk.web.async_client import AsyncWebClient

from bot.cards import NotificationCards
from bot.commands import EnvRef
from bot.live import LiveCards, Placement
from bot.sim.slack import SlackEmulator
from bot.sim.zuora import ZuoraSimulator
from bot.sim.zuora_seed import ENV_QA, ENV_STAGING, ENV_UAT, JOB_CANCELLABLE
from bot.watch import JobWatch
from bot.zuora.auth import StaticToken
from bot.zuora.client import ZuoraClient
from bot.zuora.models import Job
from bot.zuora.retry import RetryPolicy
from tests.conftest import BOT_TOKEN, CHANNEL, NOTIFY
from tests.e2e import text_of, zuora_calls

STAGING = EnvRef(ENV_STAGING, "staging")


class Sleeps:
    """Records the pauses asked for; lets time pass just enough for the loop to go round."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(0.01)


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
            auth=StaticToken(SecretStr(token)),
            http=http,
            retry=RetryPolicy(attempts=1),
        )


@pytest.fixture
def web(slack: SlackEmulator) -> AsyncWebClient:
    return AsyncWebClient(token=BOT_TOKEN, base_url=slack.api_url)


async def posted_card(web: AsyncWebClient, text: str = "card") -> str:
    response = await web.chat_postMessage(channel=CHANNEL, text=text)
    return str(response["ts"])


async def current(zuora: ZuoraSimulator) -> Job:
    return Job.model_validate(zuora.job(ENV_STAGING, JOB_CANCELLABLE))


async def test_a_live_card_stops_following_after_its_cap_and_says_so(
    zuora_client: ZuoraClient, web: AsyncWebClient, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    now = [0.0]
    sleeps = Sleeps()

    async def sleep(seconds: float) -> None:
        now[0] += seconds
        await sleeps(seconds)

    live = LiveCards(
        zuora=zuora_client,
        slack=web,
        poll_seconds=10,
        max_watch=35,
        sleep=sleep,
        clock=lambda: now[0],
    )
    ts = await posted_card(web)
    live.follow(
        STAGING, JOB_CANCELLABLE, Placement(channel=CHANNEL, ts=ts), job=await current(zuora)
    )
    await slack.wait_for(lambda: not live.watching)
    card = slack.message(CHANNEL, ts)
    assert card is not None and "stopped following the job" in text_of(card)
    assert (
        len(zuora_calls(zuora, "getJobOfTestEnvironment")) == 3
    )  # at 10, 20, 30 s; the cap at 40 s
    await live.close()


async def test_a_live_card_backs_off_on_errors_up_to_its_ceiling(
    zuora_client: ZuoraClient, web: AsyncWebClient, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    sleeps = Sleeps()
    zuora.inject("status", operation="getJobOfTestEnvironment", status=503, count=None)
    live = LiveCards(zuora=zuora_client, slack=web, poll_seconds=1, max_backoff=8, sleep=sleeps)
    ts = await posted_card(web)
    live.follow(
        STAGING, JOB_CANCELLABLE, Placement(channel=CHANNEL, ts=ts), job=await current(zuora)
    )
    await slack.wait_for(lambda: len(sleeps.delays) >= 7)
    await live.close()
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
    live = LiveCards(zuora=zuora_client, slack=web, poll_seconds=0.05)
    response_url = slack.new_response_url(CHANNEL, "U0ALLOWED1")
    job = await current(zuora)
    live.follow(
        STAGING, JOB_CANCELLABLE, Placement(channel=CHANNEL, response_url=response_url), job=job
    )
    clock.advance(3 * 3600)  # on to COMPLETED
    message = await slack.wait_for_message(
        CHANNEL, lambda m: m.ephemeral_for is None and "COMPLETED" in text_of(m), timeout=5
    )
    assert message.ephemeral_for is None  # in_channel, for everyone there
    await slack.wait_for(lambda: not live.watching)
    await live.close()


async def test_the_watch_lists_once_per_environment_per_round_and_backs_off_when_all_fail(
    zuora_client: ZuoraClient, web: AsyncWebClient, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    cards = NotificationCards(slack=web, channel=NOTIFY, aliases={"staging": ENV_STAGING})
    sleeps = Sleeps()
    watch = JobWatch(
        zuora=zuora_client,
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
    watch.start()
    await slack.wait_for(lambda: len(sleeps.delays) >= 5)
    await watch.stop()
    assert sleeps.delays[:5] == [10, 20, 40, 40, 40]
    calls = len(zuora_calls(zuora, "getAllJobsOfTestEnvironment"))
    # One request per environment per round, no retries (a round cut short by stop() may add up to 3).
    assert 3 * watch.failed_rounds <= calls - 3 <= 3 * (watch.failed_rounds + 1)


async def test_an_ended_job_is_not_polled_for_long_when_its_cards_keep_refusing(
    zuora_client: ZuoraClient,
    web: AsyncWebClient,
    slack: SlackEmulator,
    zuora: ZuoraSimulator,
    clock: Any,
) -> None:
    seen: list[str] = []

    async def never_shown(env: EnvRef, job: Job, track_id: str) -> bool:
        seen.append(str(job.status))
        return False  # the notification card never takes it (archived channel, bot removed, ...)

    live = LiveCards(zuora=zuora_client, slack=web, poll_seconds=0.01, on_job=never_shown)
    live.follow(STAGING, JOB_CANCELLABLE, None, job=await current(zuora))
    clock.advance(3 * 3600)
    await slack.wait_for(lambda: not live.watching)
    assert seen.count("COMPLETED") == 4  # the end, then three catch-up polls, then it stops
    await live.close()
