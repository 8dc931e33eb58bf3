"""`/metrics` after a cancel, read as Prometheus reads it (prometheus-client's text parser): every series the
performance issue lists is there, and the ones a cancel touches moved."""

from __future__ import annotations

import gc

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.runtime import Runtime
from bot.sim.clock import ManualClock
from bot.sim.slack import SlackEmulator
from bot.sim.zuora_seed import JOB_CANCELLABLE
from tests.conftest import ALLOWED, CHANNEL, StartBot
from tests.e2e import until_handled

pytestmark = pytest.mark.usefixtures("no_secrets_logged")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(bot: Runtime) -> tuple[Samples, set[str]]:
    """Every sample of `/metrics` by (name, labels), and the names of the metric families."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{bot.port}/metrics") as response,
    ):
        assert response.status == 200
        text = await response.text()
    samples: Samples = {}
    families = set()
    for family in text_string_to_metric_families(text):
        families.add(family.name)
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples, families


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every sample of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, have), v in samples.items() if n == name and wanted <= have)


async def test_metrics_after_a_cancel(
    start_bot: StartBot, slack: SlackEmulator, clock: ManualClock
) -> None:
    bot = await start_bot(sandbox_poll_seconds=0.1)
    before, families = await scrape(bot)
    # Every series of the performance issue is exposed before anything happened.
    assert {
        "sandbox_commands",
        "sandbox_zuora_calls",
        "sandbox_zuora_call_seconds",
        "sandbox_ack_seconds",
        "sandbox_acks_over_1s",
        "sandbox_cards_followed",
        "sandbox_zuora_token_requests",
        "sandbox_slack_calls",
        "sandbox_deliveries_given_up",
    } <= families
    assert value(before, "sandbox_cards_followed") == 0
    assert total(before, "sandbox_zuora_token_requests_total") == 0

    delivery = await slack.send_command(
        bot.events_url, f"cancel staging {JOB_CANCELLABLE}", ALLOWED, CHANNEL
    )
    assert delivery.status == 200
    await until_handled(slack, bot, "cancel")
    after, _ = await scrape(bot)

    assert value(after, "sandbox_commands_total", command="cancel", outcome="ok") == 1
    assert total(after, "sandbox_commands_total") == 1
    cancel = {"operation": "performActionOfJob"}
    assert value(after, "sandbox_zuora_calls_total", **cancel, status="200") == 1
    assert value(after, "sandbox_zuora_call_seconds_count", **cancel) == 1
    assert value(after, "sandbox_zuora_call_seconds_bucket", **cancel, le="+Inf") == 1
    # One token for the cancel, issued at the first call.
    assert value(after, "sandbox_zuora_token_requests_total", outcome="ok") == 1
    assert total(after, "sandbox_zuora_token_requests_total") == 1
    # The channel card, the notification card and its audit line: Slack calls that went through.
    posted = {"method": "chat.postMessage", "outcome": "ok"}
    assert total(before, "sandbox_slack_calls_total", **posted) == 0
    assert value(after, "sandbox_slack_calls_total", **posted) == 3
    # The CANCELLING job is followed until it ends.
    assert bot.cards.following
    assert value(after, "sandbox_cards_followed") == len(bot.cards.following) >= 1
    # The ack was timed from its arrival at the server, and it was not slow.
    assert value(after, "sandbox_ack_seconds_count") == 1
    assert value(after, "sandbox_acks_over_1s_total") == 0
    assert value(after, "sandbox_deliveries_given_up_total") == 0

    # The garbage collector, paused while the request waited for its ack, runs again.
    await slack.wait_for(lambda: not bot.components.listeners.acks.collector_paused)
    assert gc.isenabled()

    # Once the job has ended nothing is followed, and the gauge says so.
    clock.advance(120)  # CANCELLING -> CANCELLED
    await slack.wait_for(lambda: not bot.cards.following)
    ended, _ = await scrape(bot)
    assert value(ended, "sandbox_cards_followed") == 0
    # The polling used the same token.
    assert total(ended, "sandbox_zuora_token_requests_total") == 1
