"""Reminders before scheduled refreshes, end to end over loopback: the watch reminds in the card's thread (also
sent to the channel) once per lead time, with SANDBOX_NOTIFY_MENTION and *Cancel job*; a restarted bot reads
back what it sent; lead times missed while it was down get one catch-up reminder; a moved job is reminded for
its new time; its start is told; a card past its reset stage says it can no longer be cancelled; the first
card of a job started outside the bot mentions SANDBOX_NOTIFY_MENTION."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest

from bot.runtime import Runtime
from bot.sim.clock import ManualClock
from bot.sim.slack import SlackEmulator
from bot.sim.zuora import ZuoraSimulator
from bot.sim.zuora_seed import ENV_QA, ENV_STAGING, ENV_UAT, JOB_CANCELLABLE, JOB_PAST_RESETTING
from tests.blockkit import assert_valid_blocks
from tests.conftest import ALLOWED, CHANNEL, GROUP, NOTIFY, STRANGER, StartBot
from tests.e2e import action_values, reply_to, text_of, until_handled, zuora_calls
from tests.e2e import watch_rounds as rounds

pytestmark = pytest.mark.usefixtures("no_secrets_logged")

ALIASES = f"staging={ENV_STAGING},uat={ENV_UAT},qa={ENV_QA}"
MENTION = f"{GROUP},{ALLOWED}"
DAY, HOUR = 24 * 3600, 3600


async def watching(start_bot: StartBot, **overrides: Any) -> Runtime:
    settings: dict[str, Any] = {
        "sandbox_environments": ALIASES,
        "sandbox_watch_environments": "qa",
        "sandbox_watch_seconds": 0.2,
        "sandbox_poll_seconds": 0.1,
        "sandbox_notify_mention": MENTION,
    }
    settings.update(overrides)
    return await start_bot(**settings)


def payload(message: Any) -> dict[str, Any]:
    return dict((message.metadata or {}).get("event_payload") or {})


def card_of(slack: SlackEmulator, job_id: str) -> Any:
    """The job's notification card (top level, with the card's metadata)."""
    (card,) = [
        m
        for m in slack.messages(NOTIFY, include_ephemeral=False)
        if not m.is_reply
        and (m.metadata or {}).get("event_type") == "sandbox_job_card"
        and payload(m).get("job") == job_id
    ]
    return card


def thread_records(slack: SlackEmulator, job_id: str, kind: str) -> list[Any]:
    """The bot's reminder records of `kind` ("reminder", "started") about the job, oldest first."""
    return [
        m
        for m in slack.messages(NOTIFY, include_ephemeral=False)
        if (m.metadata or {}).get("event_type") == "sandbox_reminder"
        and payload(m).get("job") == job_id
        and payload(m).get("kind") == kind
    ]


def reminders(slack: SlackEmulator, job_id: str) -> list[Any]:
    return thread_records(slack, job_id, "reminder")


async def reminder_number(slack: SlackEmulator, job_id: str, count: int) -> Any:
    """Wait for the job's `count`-th reminder and return it."""
    found = await slack.wait_for(lambda: (r := reminders(slack, job_id)) and len(r) >= count and r)
    return found[count - 1]


def sent_total(bot: Runtime) -> float:
    return bot.metrics.registry.get_sample_value("sandbox_reminders_total") or 0.0


def date_of(moment: datetime) -> str:
    return f"<!date^{int(moment.timestamp())}^"


def scheduled_job(zuora: ZuoraSimulator, clock: ManualClock, ahead: float) -> tuple[str, datetime]:
    """A refresh scheduled `ahead` seconds from now in Zuora's UI, on qa (the one free environment)."""
    at = clock.now() + timedelta(seconds=ahead)
    job = zuora.add_job(ENV_QA, status="SCHEDULED", scheduled_refresh_time=at)
    return str(job["id"]), at


async def test_a_scheduled_job_gets_one_reminder_per_lead_time_none_again_after_a_restart(
    start_bot: StartBot, slack: SlackEmulator, zuora: ZuoraSimulator, clock: ManualClock
) -> None:
    job_id, at = scheduled_job(zuora, clock, 2 * DAY)
    bot = await watching(start_bot)
    await rounds(slack, bot, 2)
    card = card_of(slack, job_id)
    # The first card of a job started outside the bot tells SANDBOX_NOTIFY_MENTION; nothing is due yet.
    assert f"<!subteam^{GROUP}>" in text_of(card) and f"<@{ALLOWED}>" in text_of(card)
    assert reminders(slack, job_id) == []

    clock.advance(DAY + 1)  # a second past the 24h moment
    first = await reminder_number(slack, job_id, 1)
    assert (
        first.thread_ts == card.ts and first.reply_broadcast
    )  # in the thread, also in the channel
    assert_valid_blocks(first.blocks)
    shown = text_of(first)
    for expected in (f"<!subteam^{GROUP}>", f"<@{ALLOWED}>", "*qa*", ENV_QA, "Acme QA", job_id):
        assert expected in shown
    assert date_of(at) in shown and "in 23h59m" in shown
    (value,) = action_values(first, "sandbox_cancel_job")
    assert json.loads(value) == {"env": ENV_QA, "job": job_id}
    (button,) = [e for b in first.blocks if b["type"] == "actions" for e in b["elements"]]
    assert button["confirm"]["confirm"]["text"] == "Cancel job"  # behind a confirm dialog
    assert payload(first) == {
        "kind": "reminder",
        "env": ENV_QA,
        "job": job_id,
        "scheduled": int(at.timestamp()),
        "leads": [DAY],
    }
    await rounds(slack, bot, 3)
    assert len(reminders(slack, job_id)) == 1

    clock.advance(23 * HOUR)  # a second past the 1h moment
    second = await reminder_number(slack, job_id, 2)
    assert payload(second)["leads"] == [HOUR] and "in 59m" in text_of(second)
    await rounds(slack, bot, 3)
    assert len(reminders(slack, job_id)) == 2
    assert sent_total(bot) == 2

    # A new bot on the same Slack reads its thread back and sends nothing again.
    await bot.stop()
    replies_before = len(slack.calls_to("conversations.replies"))
    restarted = await watching(start_bot)
    await rounds(slack, restarted, 3)
    assert len(slack.calls_to("conversations.replies")) > replies_before
    assert len(reminders(slack, job_id)) == 2
    assert sent_total(restarted) == 0

    # The job starts at its time: its thread says so, once, and the card follows.
    clock.advance(HOUR)
    started = await slack.wait_for(lambda: thread_records(slack, job_id, "started"))
    assert started[0].thread_ts == card.ts and not started[0].reply_broadcast
    assert "has started" in text_of(started[0]) and "QUEUED" in text_of(started[0])
    await slack.wait_for(lambda: "QUEUED" in text_of(card_of(slack, job_id)))
    await rounds(slack, restarted, 3)
    assert len(thread_records(slack, job_id, "started")) == 1
    assert len(reminders(slack, job_id)) == 2


async def test_lead_times_missed_while_the_bot_was_down_get_one_catch_up_reminder(
    start_bot: StartBot, slack: SlackEmulator, zuora: ZuoraSimulator, clock: ManualClock
) -> None:
    job_id, at = scheduled_job(zuora, clock, 2 * DAY)
    bot = await watching(start_bot)
    await rounds(slack, bot, 2)
    assert reminders(slack, job_id) == []
    await bot.stop()

    clock.advance(2 * DAY - 30 * 60)  # the 24h and the 1h moments pass while no bot runs
    restarted = await watching(start_bot)
    catch_up = await reminder_number(slack, job_id, 1)
    assert payload(catch_up)["leads"] == [DAY, HOUR]  # one reminder for both
    assert "in 30m" in text_of(catch_up) and date_of(at) in text_of(catch_up)
    assert catch_up.thread_ts == card_of(slack, job_id).ts
    await rounds(slack, restarted, 3)
    assert len(reminders(slack, job_id)) == 1
    assert sent_total(restarted) == 1


async def test_a_moved_job_is_reminded_for_its_new_time(
    start_bot: StartBot, slack: SlackEmulator, zuora: ZuoraSimulator, clock: ManualClock
) -> None:
    job_id, _at = scheduled_job(zuora, clock, 2 * DAY)
    bot = await watching(start_bot)
    clock.advance(DAY + 1)
    await reminder_number(slack, job_id, 1)

    later = clock.now() + timedelta(days=3)
    zuora.reschedule_job(ENV_QA, job_id, later)
    # The card shows the new time (in place); nothing is due for it yet.
    await slack.wait_for(lambda: date_of(later) in text_of(card_of(slack, job_id)))
    await rounds(slack, bot, 3)
    assert len(reminders(slack, job_id)) == 1

    clock.advance(2 * DAY + 1)  # 24h before the new time
    second = await reminder_number(slack, job_id, 2)
    assert payload(second)["scheduled"] == int(later.timestamp())
    assert payload(second)["leads"] == [DAY] and date_of(later) in text_of(second)

    sooner = clock.now() + timedelta(
        minutes=10
    )  # moved within its lead times: one reminder at once
    zuora.reschedule_job(ENV_QA, job_id, sooner)
    third = await reminder_number(slack, job_id, 3)
    assert payload(third)["scheduled"] == int(sooner.timestamp())
    assert payload(third)["leads"] == [DAY, HOUR] and "in 10m" in text_of(third)
    await rounds(slack, bot, 3)
    assert len(reminders(slack, job_id)) == 3


async def test_the_cancel_button_of_a_reminder_is_checked_like_any_click(
    start_bot: StartBot, slack: SlackEmulator, zuora: ZuoraSimulator, clock: ManualClock
) -> None:
    job_id, _at = scheduled_job(zuora, clock, 20 * 60)
    bot = await watching(start_bot)
    reminder = await reminder_number(slack, job_id, 1)
    (value,) = action_values(reminder, "sandbox_cancel_job")

    await slack.send_block_action(
        bot.events_url, STRANGER, "sandbox_cancel_job", value, NOTIFY, reminder.ts
    )
    await reply_to(slack, NOTIFY, STRANGER, "Refresh Central Sandbox")
    assert zuora_calls(zuora, "performActionOfJob") == []

    await slack.send_block_action(
        bot.events_url, ALLOWED, "sandbox_cancel_job", value, NOTIFY, reminder.ts
    )
    await slack.wait_for(lambda: "CANCELLING" in text_of(card_of(slack, job_id)))
    assert f"<@{ALLOWED}> cancelled this job" in text_of(card_of(slack, job_id))
    assert len(zuora_calls(zuora, "performActionOfJob")) == 1
    clock.advance(120)
    await slack.wait_for(lambda: "CANCELLED" in text_of(card_of(slack, job_id)))
    await rounds(slack, bot, 3)
    # Cancelled before its time: no more reminders, and it never started.
    assert len(reminders(slack, job_id)) == 1
    assert thread_records(slack, job_id, "started") == []


async def test_a_card_past_the_reset_stage_says_it_can_no_longer_be_cancelled(
    start_bot: StartBot, slack: SlackEmulator, clock: ManualClock
) -> None:
    bot = await watching(start_bot, sandbox_watch_environments="staging,uat")
    await rounds(slack, bot, 2)
    importing = card_of(slack, JOB_PAST_RESETTING)
    assert "can no longer be cancelled" in text_of(importing)
    assert not action_values(importing, "sandbox_cancel_job")
    running = card_of(slack, JOB_CANCELLABLE)
    assert "can no longer be cancelled" not in text_of(running)
    assert action_values(running, "sandbox_cancel_job")

    clock.advance(3300)  # EXPORTING and SCRUBBING are over: RESETTING
    await slack.wait_for(lambda: "RESETTING" in text_of(card_of(slack, JOB_CANCELLABLE)))
    reset = card_of(slack, JOB_CANCELLABLE)
    assert reset.ts == running.ts  # edited in place
    assert "can no longer be cancelled" in text_of(reset)
    assert not action_values(reset, "sandbox_cancel_job")
    assert action_values(reset, "sandbox_job_status")
    assert_valid_blocks(reset.blocks)


async def test_a_job_started_through_the_bot_mentions_nobody_but_the_requester(
    start_bot: StartBot, slack: SlackEmulator
) -> None:
    # A long watch interval: the bot's own card is posted when the job starts, before the watch sees it.
    bot = await watching(start_bot, sandbox_watch_seconds=30)
    await rounds(slack, bot, 1)
    await slack.send_command(bot.events_url, "refresh qa", ALLOWED, CHANNEL)
    confirmation = await reply_to(slack, CHANNEL, ALLOWED, "sandbox_refresh_confirm")
    (value,) = action_values(confirmation, "sandbox_refresh_confirm")
    await slack.send_block_action(
        bot.events_url, ALLOWED, "sandbox_refresh_confirm", value, CHANNEL, confirmation.ts
    )
    await until_handled(slack, bot, "refresh_confirm")
    card = await slack.wait_for_message(
        NOTIFY,
        lambda m: (m.metadata or {}).get("event_type") == "sandbox_job_card" and not m.is_reply,
    )
    assert f"<!subteam^{GROUP}>" not in text_of(card)
    assert f"<@{ALLOWED}>" in text_of(card)  # the requester, as always


async def test_no_reminders_when_sandbox_remind_before_is_empty(
    start_bot: StartBot, slack: SlackEmulator, zuora: ZuoraSimulator, clock: ManualClock
) -> None:
    job_id, _at = scheduled_job(zuora, clock, 30 * 60)
    bot = await watching(start_bot, sandbox_remind_before="")
    await rounds(slack, bot, 3)
    assert f"<!subteam^{GROUP}>" in text_of(
        card_of(slack, job_id)
    )  # the mention setting stands alone
    clock.advance(30 * 60)  # it starts
    await slack.wait_for(lambda: "QUEUED" in text_of(card_of(slack, job_id)))
    await rounds(slack, bot, 3)
    assert reminders(slack, job_id) == [] and thread_records(slack, job_id, "started") == []
    assert slack.calls_to("conversations.replies") == []
    assert sent_total(bot) == 0
