"""What keeps the audit trail whole and the notification channel at one card per job when Slack or the bot
itself misbehaves: a failing response_url, a shutdown mid-action, passing chat.update errors, a history that
cannot be read at first, a command typed in the notification channel, and many cards."""

from __future__ import annotations

from typing import Any

import pytest

from bot.runtime import Runtime
from bot.sim.slack import SlackEmulator
from bot.sim.zuora import ZuoraSimulator
from bot.sim.zuora_seed import ENV_QA, ENV_STAGING, ENV_UAT, JOB_CANCELLABLE
from tests.conftest import ALLOWED, CHANNEL, NOTIFY, StartBot
from tests.e2e import action_values, reply_to, text_of, until_handled, zuora_calls

pytestmark = pytest.mark.usefixtures("no_secrets_logged")

CANCEL = "performActionOfJob"


def top_level_cards(slack: SlackEmulator, job_id: str) -> list[Any]:
    return [
        m
        for m in slack.messages(NOTIFY, include_ephemeral=False)
        if m.metadata
        and not m.is_reply
        and (m.metadata.get("event_payload") or {}).get("job") == job_id
    ]


async def test_a_failing_response_url_still_leaves_the_notification_and_the_audit_line(
    bot: Runtime, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    await slack.send_command(bot.events_url, f"status staging {JOB_CANCELLABLE}", ALLOWED, CHANNEL)
    card = await reply_to(slack, CHANNEL, ALLOWED, "sandbox_cancel_job")
    (value,) = action_values(card, "sandbox_cancel_job")
    slack.fail_next("response_url", error="internal_error", status=500, count=5)
    await slack.send_block_action(
        bot.events_url, ALLOWED, "sandbox_cancel_job", value, CHANNEL, card.ts
    )
    await slack.wait_for(lambda: zuora_calls(zuora, CANCEL))
    (notification,) = await slack.wait_for(lambda: top_level_cards(slack, JOB_CANCELLABLE))
    assert "cancelled this job" in text_of(notification)
    await slack.wait_for_message(
        NOTIFY, lambda m: m.thread_ts == notification.ts and "cancelled job" in text_of(m)
    )


async def test_shutdown_lets_a_cancel_in_progress_finish_and_be_recorded(
    bot: Runtime, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    zuora.inject("latency", operation=CANCEL, seconds=1.0)
    await slack.send_command(bot.events_url, f"cancel staging {JOB_CANCELLABLE}", ALLOWED, CHANNEL)
    await slack.wait_for(lambda: zuora_calls(zuora, CANCEL))  # the cancel is on its way to Zuora
    await bot.stop()
    assert zuora.job(ENV_STAGING, JOB_CANCELLABLE)["status"] == "CANCELLING"
    card = await reply_to(slack, CHANNEL, ALLOWED, "CANCELLING")
    assert "Could not" not in text_of(card)
    (notification,) = top_level_cards(slack, JOB_CANCELLABLE)
    assert "cancelled this job" in text_of(notification)
    assert not [m for m in slack.messages(NOTIFY) if "tried to cancel" in text_of(m)]


async def told_when_cut_short(
    bot: Runtime, slack: SlackEmulator, zuora: ZuoraSimulator, operation: str, text: str
) -> str:
    """What the user of command `text` is told when the bot stops (with no drain budget at all) while Zuora
    holds its call of `operation`."""
    hold = zuora.hold(operation)
    await slack.send_command(bot.events_url, text, ALLOWED, CHANNEL)
    await slack.wait_for(lambda: hold.reached)
    await bot.stop(drain_seconds=0)
    hold.release()
    return text_of(await reply_to(slack, CHANNEL, ALLOWED, "stopped"))


async def test_a_request_a_shutdown_cuts_short_tells_its_user_so(
    bot: Runtime, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    """Past the drain's budget (here none at all) the cancel still waiting for Zuora is given up, and its
    user hears that the bot stopped before it finished, while the Slack client is still open."""
    told = await told_when_cut_short(bot, slack, zuora, CANCEL, f"cancel staging {JOB_CANCELLABLE}")
    assert "before it finished this request" in told
    assert "may or may not have reached Zuora" in told
    assert bot.metrics.commands.labels("cancel", "unavailable")._value.get() == 1


async def test_a_read_cut_short_by_a_shutdown_says_nothing_was_changed(
    bot: Runtime, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    told = await told_when_cut_short(
        bot, slack, zuora, "getJobOfTestEnvironment", f"status staging {JOB_CANCELLABLE}"
    )
    assert "Nothing was changed" in told
    assert "Zuora" not in told


async def test_a_reply_delivering_zuora_s_answer_is_not_cut_short(
    bot: Runtime, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    """Zuora has answered and the cards are being posted (Slack slow) when the drain's budget ends: the card,
    the notification card and its audit line are all written, and nobody is told the bot stopped."""
    slack.slow("chat.postMessage", 0.3)
    await slack.send_command(bot.events_url, f"cancel staging {JOB_CANCELLABLE}", ALLOWED, CHANNEL)
    await slack.wait_for(lambda: slack.calls_to("chat.postMessage"))
    await bot.stop(drain_seconds=0)
    assert zuora.job(ENV_STAGING, JOB_CANCELLABLE)["status"] == "CANCELLING"
    card = await reply_to(slack, CHANNEL, ALLOWED, "CANCELLING")
    assert "stopped" not in text_of(card)
    (notification,) = top_level_cards(slack, JOB_CANCELLABLE)
    assert any(
        m.thread_ts == notification.ts and "cancelled job" in text_of(m)
        for m in slack.messages(NOTIFY)
    )
    assert not [m for m in slack.messages(CHANNEL) if "stopped (a restart" in text_of(m)]
    assert bot.metrics.commands.labels("cancel", "ok")._value.get() == 1


async def test_a_command_typed_in_the_notification_channel_makes_one_card_there(
    bot: Runtime, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    await slack.send_command(bot.events_url, f"cancel staging {JOB_CANCELLABLE}", ALLOWED, NOTIFY)
    await until_handled(slack, bot, "cancel")
    cards_there = [
        m for m in slack.messages(NOTIFY) if not m.is_reply and JOB_CANCELLABLE in text_of(m)
    ]
    assert len(cards_there) == 1


async def test_a_passing_chat_update_failure_does_not_post_a_second_card(
    start_bot: StartBot, slack: SlackEmulator, zuora: ZuoraSimulator, clock: Any
) -> None:
    bot = await start_bot(sandbox_poll_seconds=0.1)
    await slack.send_command(bot.events_url, f"cancel staging {JOB_CANCELLABLE}", ALLOWED, CHANNEL)
    await slack.wait_for(lambda: top_level_cards(slack, JOB_CANCELLABLE))
    slack.fail_next("chat.update", error="internal_error", count=2)
    clock.advance(120)  # CANCELLING -> CANCELLED: the cards are edited (the first tries fail)
    await slack.wait_for(
        lambda: "CANCELLED" in text_of(top_level_cards(slack, JOB_CANCELLABLE)[0]), timeout=10
    )
    assert len(top_level_cards(slack, JOB_CANCELLABLE)) == 1
    channel_cards = [m for m in slack.messages(CHANNEL) if not m.is_reply and not m.ephemeral_for]
    assert len(channel_cards) == 1


async def test_history_unreadable_at_first_after_a_restart_still_gives_one_card(
    start_bot: StartBot, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    first = await start_bot()
    await slack.send_command(
        first.events_url, f"cancel staging {JOB_CANCELLABLE}", ALLOWED, CHANNEL
    )
    await slack.wait_for(lambda: top_level_cards(slack, JOB_CANCELLABLE))
    await first.stop()
    slack.fail_next("conversations.history", error="internal_error", count=1)
    second = await start_bot()
    await slack.send_command(
        second.events_url, f"cancel staging {JOB_CANCELLABLE}", ALLOWED, CHANNEL
    )
    await slack.wait_for(lambda: len(zuora_calls(zuora, CANCEL)) == 2)
    await slack.wait_for(
        lambda: (
            len([m for m in slack.messages(NOTIFY) if m.is_reply and "cancelled job" in text_of(m)])
            == 2
        ),
        timeout=10,
    )
    assert len(top_level_cards(slack, JOB_CANCELLABLE)) == 1


async def test_status_click_on_a_notification_card_after_a_restart_keeps_the_card(
    start_bot: StartBot, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    first = await start_bot()
    await slack.send_command(
        first.events_url, f"cancel staging {JOB_CANCELLABLE}", ALLOWED, CHANNEL
    )
    (notification,) = await slack.wait_for(lambda: top_level_cards(slack, JOB_CANCELLABLE))
    await first.stop()
    second = await start_bot()
    (value,) = action_values(notification, "sandbox_job_status")
    await slack.send_block_action(
        second.events_url, ALLOWED, "sandbox_job_status", value, NOTIFY, notification.ts
    )
    await until_handled(slack, second, "button_status")
    assert len(zuora_calls(zuora, "getJobOfTestEnvironment")) >= 1
    (card,) = top_level_cards(slack, JOB_CANCELLABLE)
    assert "cancelled this job" in text_of(card)  # its note and metadata were not replaced
    assert card.metadata["event_payload"]["job"] == JOB_CANCELLABLE


async def test_forgetting_old_cards_does_not_make_the_watch_post_them_again(
    start_bot: StartBot,
    slack: SlackEmulator,
    zuora: ZuoraSimulator,
    clock: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("bot.notification_channel.MAX_CARDS", 1)
    bot = await start_bot(
        sandbox_environments=f"staging={ENV_STAGING},uat={ENV_UAT},qa={ENV_QA}",
        sandbox_watch_environments="qa",
        sandbox_watch_seconds=0.1,
    )
    first = zuora.add_job(ENV_QA, status="QUEUED")
    await slack.wait_for(lambda: top_level_cards(slack, first["id"]))
    clock.advance(3 * 3600)  # it completes
    await slack.wait_for(
        lambda: "COMPLETED" in text_of(top_level_cards(slack, first["id"])[0]), timeout=10
    )
    assert bot.watch is not None
    done = bot.watch.rounds
    await slack.wait_for(lambda: bot.watch is not None and bot.watch.rounds >= done + 5)
    assert len(top_level_cards(slack, first["id"])) == 1


async def test_a_command_in_the_notification_channel_is_answered_even_if_the_card_cannot_be_posted(
    bot: Runtime, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    slack.fail_next("chat.postMessage", error="internal_error", count=10)
    await slack.send_command(bot.events_url, f"cancel staging {JOB_CANCELLABLE}", ALLOWED, NOTIFY)
    answer = await slack.wait_for_message(
        NOTIFY, lambda m: m.ephemeral_for is None and "CANCELLING" in text_of(m), timeout=8
    )
    assert answer.metadata is None  # the response_url answer, since the card could not be posted
    assert len(zuora_calls(zuora, CANCEL)) == 1


async def test_a_refresh_whose_answer_was_lost_and_whose_job_is_not_seen_says_it_may_have_started(
    start_bot: StartBot, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    """Zuora answered 500 and shows no new job when asked: the truth is that it may still start. (When the job
    does show, it is reported as started: tests/test_e2e_faults.py.)"""
    bot = await start_bot(sandbox_environments=f"qa={ENV_QA}")
    zuora.inject("status", operation="createTestEnvironmentJob", status=500, body="system")
    await slack.send_command(bot.events_url, "refresh qa", ALLOWED, CHANNEL)
    confirmation = await reply_to(slack, CHANNEL, ALLOWED, "sandbox_refresh_confirm")
    (value,) = action_values(confirmation, "sandbox_refresh_confirm")
    await slack.send_block_action(
        bot.events_url, ALLOWED, "sandbox_refresh_confirm", value, CHANNEL, confirmation.ts
    )
    answer = await reply_to(slack, CHANNEL, ALLOWED, "Could not refresh")
    assert "may have started anyway" in text_of(answer)
    assert "Try again shortly" not in text_of(answer)
