"""The watch end to end: jobs started anywhere are announced in the notification channel, one card per job,
kept current, with the same rules for its buttons; restarts do not repost; Zuora failures only delay it."""

from __future__ import annotations

from typing import Any

import pytest

from bot.runtime import Runtime
from bot.sim.clock import ManualClock
from bot.sim.slack import SlackEmulator
from bot.sim.zuora import ZuoraSimulator
from bot.sim.zuora_seed import (
    ENV_QA,
    ENV_STAGING,
    ENV_UAT,
    JOB_CANCELLABLE,
    JOB_CANCELLED,
    JOB_PAST_RESETTING,
    JOB_STAGING_COMPLETED,
)
from tests.blockkit import assert_valid_blocks
from tests.conftest import ALLOWED, CHANNEL, NOTIFY, STRANGER, StartBot
from tests.e2e import action_values, reply_to, text_of, zuora_calls
from tests.e2e import watch_rounds as rounds

pytestmark = pytest.mark.usefixtures("no_secrets_logged")

INTERVAL = 0.2
ALIASES = f"staging={ENV_STAGING},uat={ENV_UAT},qa={ENV_QA}"


def cards(slack: SlackEmulator, job_id: str | None = None) -> list[Any]:
    """Top-level job cards in the notification channel (optionally of one job)."""
    found = []
    for message in slack.messages(NOTIFY, include_ephemeral=False):
        payload = (message.metadata or {}).get("event_payload") or {}
        if message.is_reply or not payload:
            continue
        if job_id is None or payload.get("job") == job_id:
            found.append(message)
    return found


def posts(slack: SlackEmulator) -> int:
    return len(
        [
            c
            for c in slack.calls_to("chat.postMessage")
            if c.args.get("channel") == NOTIFY and not c.args.get("thread_ts")
        ]
    )


async def watching(start_bot: StartBot, **overrides: Any) -> Runtime:
    settings: dict[str, Any] = {
        "sandbox_environments": ALIASES,
        "sandbox_watch_environments": "staging,uat",
        "sandbox_watch_seconds": INTERVAL,
        "sandbox_poll_seconds": 0.1,
    }
    settings.update(overrides)
    return await start_bot(**settings)


async def test_first_round_announces_only_jobs_that_are_not_terminal(
    start_bot: StartBot, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    bot = await watching(start_bot)
    await rounds(slack, bot, 2)
    announced = {c.metadata["event_payload"]["job"] for c in cards(slack)}
    assert announced == {JOB_CANCELLABLE, JOB_PAST_RESETTING}
    assert JOB_CANCELLED not in announced and JOB_STAGING_COMPLETED not in announced
    for card in cards(slack):
        assert_valid_blocks(card.blocks)
    (running,) = cards(slack, JOB_CANCELLABLE)
    assert action_values(running, "sandbox_cancel_job")  # still cancellable: the button is there
    (past,) = cards(slack, JOB_PAST_RESETTING)
    assert not action_values(past, "sandbox_cancel_job")
    assert action_values(past, "sandbox_job_status")


async def test_job_started_in_zuora_ui_gets_exactly_one_card_and_updates(
    start_bot: StartBot, slack: SlackEmulator, zuora: ZuoraSimulator, clock: ManualClock
) -> None:
    bot = await watching(start_bot, sandbox_watch_environments="all")
    await rounds(slack, bot, 1)
    job = zuora.add_job(ENV_QA, status="QUEUED", created_by="0123456789abcdef0123456789abcdef")
    await rounds(slack, bot, 2)  # within two watch intervals
    (card,) = cards(slack, job["id"])
    shown = text_of(card)
    for expected in (
        "QUEUED",
        "qa",
        ENV_QA,
        job["id"],
        "0123456789abcdef0123456789abcdef",
        "sandbox_cancel_job",
    ):
        assert expected in shown
    before = posts(slack)

    clock.advance(600)  # QUEUED -> on through the stages
    await rounds(slack, bot, 2)
    status = zuora.job(ENV_QA, job["id"])["status"]
    assert status != "QUEUED"
    (updated,) = cards(slack, job["id"])
    assert updated.ts == card.ts and status in text_of(updated)
    assert posts(slack) == before  # updated in place, nothing new

    clock.advance(3 * 3600)
    await slack.wait_for(lambda: "COMPLETED" in text_of(cards(slack, job["id"])[0]))
    await slack.wait_for_message(
        NOTIFY, lambda m: m.thread_ts == card.ts and "has ended" in text_of(m)
    )
    await rounds(slack, bot, 2)
    assert len(cards(slack, job["id"])) == 1


async def test_cancel_from_the_notification_card(
    start_bot: StartBot, slack: SlackEmulator, zuora: ZuoraSimulator, clock: ManualClock
) -> None:
    bot = await watching(start_bot)
    await rounds(slack, bot, 1)
    (card,) = cards(slack, JOB_CANCELLABLE)
    (value,) = action_values(card, "sandbox_cancel_job")

    await slack.send_block_action(
        bot.events_url, STRANGER, "sandbox_cancel_job", value, NOTIFY, card.ts
    )
    await reply_to(slack, NOTIFY, STRANGER, "Refresh Central Sandbox")
    assert zuora_calls(zuora, "performActionOfJob") == []

    await slack.send_block_action(
        bot.events_url, ALLOWED, "sandbox_cancel_job", value, NOTIFY, card.ts
    )
    await slack.wait_for(lambda: "CANCELLING" in text_of(cards(slack, JOB_CANCELLABLE)[0]))
    assert f"<@{ALLOWED}> cancelled this job" in text_of(cards(slack, JOB_CANCELLABLE)[0])
    assert len(zuora_calls(zuora, "performActionOfJob")) == 1
    clock.advance(120)
    await slack.wait_for(lambda: "CANCELLED" in text_of(cards(slack, JOB_CANCELLABLE)[0]))
    (final,) = cards(slack, JOB_CANCELLABLE)
    assert final.ts == card.ts
    assert final.metadata["event_payload"]["status"] == "CANCELLED"  # kept for restarts


async def test_restart_posts_nothing_for_unchanged_jobs_and_catches_up_on_changed_ones(
    start_bot: StartBot, slack: SlackEmulator, zuora: ZuoraSimulator, clock: ManualClock
) -> None:
    first = await watching(start_bot)
    await rounds(slack, first, 2)
    assert len(cards(slack)) == 2
    await first.stop()
    before = posts(slack)

    zuora.fail_job(ENV_UAT, JOB_PAST_RESETTING)  # changes while the bot is down
    second = await watching(start_bot)
    await rounds(slack, second, 3)
    assert posts(slack) == before  # no card posted again
    (uat_card,) = cards(slack, JOB_PAST_RESETTING)
    assert "FAILED" in text_of(uat_card)
    await slack.wait_for_message(
        NOTIFY, lambda m: m.thread_ts == uat_card.ts and "has ended" in text_of(m)
    )
    (staging_card,) = cards(slack, JOB_CANCELLABLE)
    assert "EXPORTING" in text_of(staging_card)


async def test_zuora_failing_delays_the_watch_without_crashing_it(
    start_bot: StartBot, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    zuora.inject("status", operation="getAllJobsOfTestEnvironment", status=503, count=4)
    bot = await watching(start_bot)
    await slack.wait_for(lambda: cards(slack))
    assert (
        bot.watch is not None and bot.watch.failed_rounds == 2
    )  # announced after two failed rounds
    await slack.wait_for(lambda: len(cards(slack)) == 2)
    # One request per environment per round: the failures were not retried inside a round.
    assert len(zuora_calls(zuora, "getAllJobsOfTestEnvironment")) >= 4


async def test_job_started_through_the_bot_has_one_notification_card(
    start_bot: StartBot, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    bot = await watching(start_bot, sandbox_watch_environments="qa")
    await rounds(slack, bot, 1)
    await slack.send_command(bot.events_url, "refresh qa", ALLOWED, CHANNEL)
    confirmation = await reply_to(slack, CHANNEL, ALLOWED, "sandbox_refresh_confirm")
    (value,) = action_values(confirmation, "sandbox_refresh_confirm")
    await slack.send_block_action(
        bot.events_url, ALLOWED, "sandbox_refresh_confirm", value, CHANNEL, confirmation.ts
    )
    await reply_to(slack, CHANNEL, ALLOWED, "Refresh job")
    (request,) = zuora_calls(zuora, "createTestEnvironmentJob")
    await rounds(slack, bot, 3)
    qa_cards = [c for c in cards(slack) if c.metadata["event_payload"]["env"] == ENV_QA]
    assert len(qa_cards) == 1
    assert f"<@{ALLOWED}> started this job" in text_of(qa_cards[0])
    assert request.headers["Zuora-Track-Id"] in text_of(qa_cards[0])


async def test_one_broken_environment_does_not_hold_back_the_others(
    start_bot: StartBot, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    bot = await watching(
        start_bot, sandbox_watch_environments="staging,qa,0000000000000000deadbeef00000000"
    )
    await rounds(slack, bot, 3)
    assert bot.watch is not None and bot.watch.failed_rounds == 0  # no backoff for the whole watch
    assert [c.metadata["event_payload"]["job"] for c in cards(slack)] == [JOB_CANCELLABLE]
    job = zuora.add_job(ENV_QA, status="QUEUED")
    await rounds(slack, bot, 2)
    assert len(cards(slack, job["id"])) == 1


async def test_an_older_view_never_takes_a_card_back(
    start_bot: StartBot, slack: SlackEmulator, zuora: ZuoraSimulator, clock: ManualClock
) -> None:
    """A watch round that listed the jobs before a cancel must not put CANCELLING back to EXPORTING."""
    bot = await watching(start_bot)
    await rounds(slack, bot, 1)
    before = zuora.job(ENV_STAGING, JOB_CANCELLABLE)
    await slack.send_command(bot.events_url, f"cancel staging {JOB_CANCELLABLE}", ALLOWED, CHANNEL)
    # The clock moves once Zuora has the cancel (the work after the ack may wait for other acks first).
    await slack.wait_for(lambda: zuora_calls(zuora, "performActionOfJob"))
    clock.advance(120)
    await slack.wait_for(lambda: "CANCELLED" in text_of(cards(slack, JOB_CANCELLABLE)[0]))
    from bot.zuora.models import Job

    await bot.cards.observe(bot.cards.env(ENV_STAGING), Job.model_validate(before), None)
    (card,) = cards(slack, JOB_CANCELLABLE)
    assert "CANCELLED" in text_of(card) and "EXPORTING" not in text_of(card)
    endings = [
        m for m in slack.messages(NOTIFY) if m.thread_ts == card.ts and "has ended" in text_of(m)
    ]
    assert len(endings) == 1


async def test_a_job_that_came_and_went_while_the_bot_was_down_is_announced(
    start_bot: StartBot, slack: SlackEmulator, zuora: ZuoraSimulator, clock: ManualClock
) -> None:
    first = await watching(start_bot, sandbox_watch_environments="qa")
    job = zuora.add_job(ENV_QA, status="QUEUED")
    await slack.wait_for(lambda: cards(slack, job["id"]))
    await first.stop()
    clock.advance(3 * 3600)  # the first job ends while the bot is down...
    missed = zuora.add_job(ENV_QA, status="QUEUED")  # ...and another one starts
    zuora.fail_job(ENV_QA, missed["id"])  # and fails, all while the bot is down
    second = await watching(start_bot, sandbox_watch_environments="qa")
    await rounds(slack, second, 2)
    (card,) = cards(slack, missed["id"])
    assert "FAILED" in text_of(card)
    (old,) = cards(slack, job["id"])
    assert "COMPLETED" in text_of(old)


async def test_a_card_slack_did_not_take_at_the_end_is_shown_by_a_later_round(
    start_bot: StartBot, slack: SlackEmulator, zuora: ZuoraSimulator, clock: ManualClock
) -> None:
    bot = await watching(start_bot, sandbox_watch_environments="qa")
    job = zuora.add_job(ENV_QA, status="QUEUED")
    await slack.wait_for(lambda: cards(slack, job["id"]))
    slack.fail_next("chat.update", error="internal_error", count=2)
    clock.advance(3 * 3600)  # it completes; the first edits fail
    await rounds(slack, bot, 4)
    (card,) = cards(slack, job["id"])
    assert "COMPLETED" in text_of(card)
    await slack.wait_for_message(
        NOTIFY, lambda m: m.thread_ts == card.ts and "has ended" in text_of(m)
    )
