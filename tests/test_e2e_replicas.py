"""Several replicas with identical settings sharing a real Redis (tests/redis_server.py), the Slack emulator and
the Zuora simulator: one card per job, one Zuora action for a double click split across replicas, a leader
killed with SIGKILL replaced by another that watches and keeps the dead one's cards current, and Redis going
away and coming back: refusals while it is down, nothing done twice, recovery after."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.coordination import RedisStore
from bot.leadership import LEASE
from bot.runtime import Runtime
from bot.sim.clock import ManualClock
from bot.sim.slack import SlackEmulator
from bot.sim.slack_state import Message
from bot.sim.zuora import ZuoraSimulator
from bot.sim.zuora_seed import ENV_QA, JOB_CANCELLABLE
from tests.conftest import ALLOWED, CHANNEL, NOTIFY, StartBot, bot_settings
from tests.e2e import action_values, free_port, reply_to, text_of, until_handled, zuora_calls
from tests.programs import needs_redis_server
from tests.redis_server import RedisServer

pytestmark = [needs_redis_server(), pytest.mark.usefixtures("no_secrets_logged")]

INTERVAL = 3.0  # the watch interval, and so the leader's lease


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(tmp_path / "redis") as server:
        yield server


def replica_settings(redis: RedisServer, **more: Any) -> dict[str, Any]:
    return {
        "sandbox_redis_url": redis.url,
        "sandbox_watch_environments": f"staging,uat,{ENV_QA}",
        "sandbox_watch_seconds": INTERVAL,
        "sandbox_poll_seconds": 0.2,
        **more,
    }


async def replicas(start_bot: StartBot, redis: RedisServer, count: int) -> list[Runtime]:
    return [await start_bot(**replica_settings(redis)) for _ in range(count)]


def leader_of(bots: list[Runtime]) -> Runtime:
    (leader,) = [b for b in bots if b.components.leadership and b.components.leadership.leading]
    return leader


def cards_of(slack: SlackEmulator, job_id: str) -> list[Message]:
    """The notification cards (top-level messages) in NOTIFY that show `job_id`."""
    return [
        m
        for m in slack.messages(NOTIFY)
        if m.thread_ts in (None, m.ts) and m.metadata and job_id in json.dumps(m.metadata)
    ]


async def test_one_card_per_job_and_only_the_leader_watches(
    start_bot: StartBot, slack: SlackEmulator, zuora: ZuoraSimulator, redis: RedisServer
) -> None:
    bots = await replicas(start_bot, redis, 3)
    leader = leader_of(bots)
    assert leader.components.watch is not None
    await slack.wait_for(lambda: leader.components.watch.rounds >= 2)  # type: ignore[union-attr]
    assert len(cards_of(slack, JOB_CANCELLABLE)) == 1
    for other in bots:
        if other is not leader:
            assert other.components.watch is not None and other.components.watch.rounds == 0
    # A cancel through a replica that did not post the card edits that card: still one card.
    other = next(b for b in bots if b is not leader)
    await slack.send_command(
        other.events_url, f"cancel staging {JOB_CANCELLABLE}", ALLOWED, CHANNEL
    )
    await until_handled(slack, other, "cancel")
    await slack.wait_for(
        lambda: any("CANCELLING" in text_of(m) for m in cards_of(slack, JOB_CANCELLABLE))
    )
    assert len(cards_of(slack, JOB_CANCELLABLE)) == 1


async def test_a_double_click_split_across_replicas_makes_one_zuora_action(
    start_bot: StartBot, slack: SlackEmulator, zuora: ZuoraSimulator, redis: RedisServer
) -> None:
    first, second = await replicas(start_bot, redis, 2)
    await slack.send_command(
        first.events_url, f"status staging {JOB_CANCELLABLE}", ALLOWED, CHANNEL
    )
    card = await reply_to(slack, CHANNEL, ALLOWED, "sandbox_cancel_job")
    (value,) = action_values(card, "sandbox_cancel_job")
    hold = zuora.hold("performActionOfJob")
    await slack.send_block_action(
        first.events_url, ALLOWED, "sandbox_cancel_job", value, CHANNEL, card.ts
    )
    await slack.wait_for(lambda: hold.reached)
    await slack.send_block_action(
        second.events_url, ALLOWED, "sandbox_cancel_job", value, CHANNEL, card.ts
    )
    await reply_to(slack, CHANNEL, ALLOWED, "already on")
    hold.release()
    await until_handled(slack, first, "button_cancel")
    assert len(zuora_calls(zuora, "performActionOfJob")) == 1


async def test_redis_down_refuses_actions_keeps_reads_and_recovers(
    start_bot: StartBot, slack: SlackEmulator, zuora: ZuoraSimulator, redis: RedisServer
) -> None:
    (bot,) = await replicas(start_bot, redis, 1)
    redis.stop()
    await slack.send_command(bot.events_url, f"cancel staging {JOB_CANCELLABLE}", ALLOWED, CHANNEL)
    refusal = await reply_to(slack, CHANNEL, ALLOWED, "coordination store")
    assert "Nothing was sent to Zuora" in text_of(refusal)
    assert zuora_calls(zuora, "performActionOfJob") == []
    await slack.send_command(bot.events_url, "envs", ALLOWED, CHANNEL)
    await reply_to(slack, CHANNEL, ALLOWED, "Test environments")  # reads keep working
    health = bot.components.health
    assert health.redis is not None
    await health.redis.probe()
    status, body = await health.report()
    assert status == 200 and body["status"] == "degraded"
    assert body["checks"]["redis"]["status"] == "degraded"
    redis.start()
    await health.redis.probe()
    assert (await health.report())[1]["checks"]["redis"]["status"] == "ok"
    await slack.send_command(bot.events_url, f"cancel staging {JOB_CANCELLABLE}", ALLOWED, CHANNEL)
    await reply_to(slack, CHANNEL, ALLOWED, "CANCELLING")
    assert len(zuora_calls(zuora, "performActionOfJob")) == 1


# -- a leader killed with SIGKILL ---------------------------------------------------------------------------------


async def until(read: Callable[[], Awaitable[Any]], what: str, timeout: float = 20.0) -> Any:
    """Wait until `read()` (a call to the store) returns something truthy."""
    deadline = time.monotonic() + timeout
    while not (found := await read()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)  # polling Redis, as a replica's next round would
    return found


@contextlib.asynccontextmanager
async def replica_process(
    slack: SlackEmulator, zuora: ZuoraSimulator, redis: RedisServer, log: Path
) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """`python -m bot` with the replicas' settings, in its own process (so that it can be killed)."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "ZUORA_", "SANDBOX_"))
    }
    settings = bot_settings(zuora, slack, **replica_settings(redis), port=free_port())
    env.update({name.upper(): str(value) for name, value in settings.items()})
    env.update({"HOST": "127.0.0.1", "LOG_LEVEL": "WARNING"})
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", env=env, stdout=out, stderr=out, cwd=log.parent
        )
    url = f"http://127.0.0.1:{settings['port']}"
    try:
        deadline = time.monotonic() + 60
        async with aiohttp.ClientSession() as session:
            while True:
                assert process.returncode is None, log.read_text()
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(url + "/healthz") as response:
                        if response.status == 200:
                            break
                assert time.monotonic() < deadline, "the replica did not become ready"
                await asyncio.sleep(0.1)  # a readiness probe's polling interval
        yield process, url + "/slack/events"
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


async def test_a_killed_leader_is_replaced_and_its_cards_kept_current(
    start_bot: StartBot,
    slack: SlackEmulator,
    zuora: ZuoraSimulator,
    clock: ManualClock,
    redis: RedisServer,
    tmp_path: Path,
) -> None:
    store = RedisStore(redis.url)
    try:
        async with replica_process(slack, zuora, redis, tmp_path / "leader.log") as (process, url):
            first = await store.holder(LEASE)
            assert first is not None  # the only replica leads
            (survivor,) = await replicas(start_bot, redis, 1)
            assert survivor.components.leadership is not None
            assert not survivor.components.leadership.leading
            # The leader posts a card and follows the job; then it dies without a word.
            await slack.send_command(url, f"cancel staging {JOB_CANCELLABLE}", ALLOWED, CHANNEL)
            card = await slack.wait_for_message(
                CHANNEL, lambda m: m.ephemeral_for is None and "CANCELLING" in text_of(m)
            )
            await slack.wait_for(lambda: bool(cards_of(slack, JOB_CANCELLABLE)))
            await until(lambda: store.followed(), "the job to be shared as followed")
            process.send_signal(signal.SIGKILL)
            killed_at = time.monotonic()
            await process.wait()
        await survivor.components.leadership.wait_until_leading()
        new_job = zuora.add_job(ENV_QA, status="QUEUED")
        await slack.wait_for(lambda: bool(cards_of(slack, new_job["id"])))
        announced_after = time.monotonic() - killed_at
        # Within two watch intervals (the lease's life and a third, then the first round; a second of slack
        # for a busy machine).
        assert announced_after < 2 * INTERVAL + 1.0, announced_after
        # The dead leader's card is kept current by the survivor, to CANCELLED.
        clock.advance(3600)
        await slack.wait_for(
            lambda: "CANCELLED" in text_of(slack.message(CHANNEL, card.ts)),
            timeout=30,
        )
        assert action_values(slack.message(CHANNEL, card.ts), "sandbox_cancel_job") == []
    finally:
        await store.close()


async def test_a_refresh_confirmed_twice_across_replicas_creates_one_job(
    start_bot: StartBot, slack: SlackEmulator, zuora: ZuoraSimulator, redis: RedisServer
) -> None:
    first, second = await replicas(start_bot, redis, 2)
    await slack.send_command(first.events_url, f"refresh {ENV_QA}", ALLOWED, CHANNEL)
    asked = await reply_to(slack, CHANNEL, ALLOWED, "sandbox_refresh_confirm")
    (value,) = action_values(asked, "sandbox_refresh_confirm")
    block_id = next(b["block_id"] for b in asked.blocks if b["type"] == "actions")
    for bot in (first, second):
        await slack.send_block_action(
            bot.events_url, ALLOWED, "sandbox_refresh_confirm", value, CHANNEL, asked.ts,
            block_id=block_id,
        )  # fmt: skip
    await until_handled(slack, first, "refresh_confirm")
    await until_handled(slack, second, "refresh_confirm")
    assert len(zuora_calls(zuora, "createTestEnvironmentJob")) == 1
    await reply_to(slack, CHANNEL, ALLOWED, "already")  # the second click is told it was used
