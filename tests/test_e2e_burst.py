"""A burst: 200 cancels at once, each of a job of its own environment, against a Zuora that takes a second
for each. Every command is acked, every cancel reaches Zuora once, and every result is delivered exactly once:
one card in the channel and one audit line per job."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from bot.sim.slack import SlackEmulator
from bot.sim.zuora import ZuoraSimulator
from tests.conftest import ALLOWED, CHANNEL, NOTIFY, StartBot
from tests.e2e import text_of, until_handled, zuora_calls

BURST = 200
CANCEL = "performActionOfJob"


@pytest.mark.usefixtures("no_secrets_logged")
async def test_two_hundred_cancels_at_once_each_answered_exactly_once(
    start_bot: StartBot, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    targets = []
    for number in range(BURST):
        env_id = str(zuora.add_environment(name=f"Burst {number}")["id"])
        targets.append((env_id, str(zuora.add_job(env_id, status="EXPORTING")["id"])))
    zuora.inject("latency", operation=CANCEL, seconds=1.0, count=BURST)
    bot = await start_bot(sandbox_poll_seconds=3600)  # the cards, not their polling, are under test
    deliveries = await asyncio.gather(
        *(
            slack.send_command(
                bot.events_url, f"cancel {env} {job}", ALLOWED, CHANNEL, timeout=None
            )
            for env, job in targets
        )
    )
    assert [d.status for d in deliveries] == [200] * BURST
    await until_handled(slack, bot, "cancel", BURST)
    cancelled = Counter(r.path.split("/")[4] for r in zuora_calls(zuora, CANCEL))
    assert cancelled == Counter({job: 1 for _env, job in targets})
    cards = Counter(
        job
        for message in slack.messages(CHANNEL, include_ephemeral=False)
        for _env, job in targets
        if job in text_of(message) and "CANCELLING" in text_of(message)
    )
    assert cards == Counter({job: 1 for _env, job in targets})
    lines = Counter(
        job
        for message in slack.messages(NOTIFY)
        if message.is_reply and "cancelled job" in text_of(message)
        for _env, job in targets
        if job in text_of(message)
    )
    assert lines == Counter({job: 1 for _env, job in targets})
    assert bot.cards.retries_pending == 0
