"""The fault matrix: every fault the Zuora simulator and the Slack emulator can inject, on the bot's most
consequential action (a cancel), end to end. Each case asserts a true answer to the user, an audit line in the
notification channel, no action done twice, and a bot that keeps serving."""

from __future__ import annotations

from typing import Any

import pytest

from bot.runtime import Runtime
from bot.sim.slack import SlackEmulator
from bot.sim.zuora import ZuoraSimulator
from bot.sim.zuora_seed import ENV_STAGING, JOB_CANCELLABLE
from tests.conftest import ALLOWED, CHANNEL, NOTIFY, StartBot
from tests.e2e import handled, reply_to, text_of, until_handled, zuora_calls

pytestmark = pytest.mark.usefixtures("no_secrets_logged")
CANCEL = "performActionOfJob"
TYPED = f"cancel staging {JOB_CANCELLABLE}"


def audit_lines(slack: SlackEmulator) -> list[Any]:
    return [
        m
        for m in slack.messages(NOTIFY)
        if (JOB_CANCELLABLE in text_of(m) and ("cancel" in text_of(m)) and m.is_reply)
        or "tried to cancel" in text_of(m)
    ]


async def still_serving(bot: Runtime, slack: SlackEmulator) -> None:
    before = handled(bot, "help")
    await slack.send_command(bot.events_url, "help", ALLOWED, CHANNEL)
    await until_handled(slack, bot, "help", int(before) + 1)


# (fault, its parameters, what the user must be told, cancels Zuora may receive, whether Zuora applied it)
ZUORA_FAULTS = [
    ("status", {"status": 400, "body": "classic"}, "HTTP 400", 1, False),
    ("status", {"status": 403, "body": "classic"}, "HTTP 403", 1, False),
    ("status", {"status": 404, "body": "classic"}, "HTTP 404", 1, False),
    ("status", {"status": 500, "body": "system"}, "may still have been applied", 1, False),
    (
        "status",
        {"status": 503, "body": "empty"},
        "CANCELLING",
        2,
        True,
    ),  # retried: Zuora did not act
    ("rate_limit", {"retry_after": 1}, "CANCELLING", 2, True),
    ("garbage", {}, "may still have been applied", 1, False),
    ("drop", {}, "may still have been applied", 1, False),
    (
        "drop_after",
        {},
        "CANCELLING",
        1,
        True,
    ),  # applied, then the connection dropped: it is cancelling
]


@pytest.mark.parametrize(
    ("fault", "params", "told", "sent", "applied"),
    ZUORA_FAULTS,
    ids=[f"{f}-{p.get('status', '')}" for f, p, *_ in ZUORA_FAULTS],
)
async def test_each_zuora_fault_ends_in_a_true_answer(
    bot: Runtime,
    slack: SlackEmulator,
    zuora: ZuoraSimulator,
    fault: str,
    params: dict[str, Any],
    told: str,
    sent: int,
    applied: bool,
) -> None:
    zuora.inject(fault, operation=CANCEL, count=1, **params)  # type: ignore[arg-type]
    await slack.send_command(bot.events_url, TYPED, ALLOWED, CHANNEL)
    answer = await reply_to(slack, CHANNEL, ALLOWED, told)
    await until_handled(slack, bot, "cancel")
    cancels = zuora_calls(zuora, CANCEL)
    assert len(cancels) == sent  # nothing sent again that may have been applied
    status = zuora.job(ENV_STAGING, JOB_CANCELLABLE)["status"]
    assert (status in ("CANCELLING", "CANCELLED")) == applied
    if not applied:
        assert "Could not cancel" in text_of(answer)
        assert cancels[0].headers["Zuora-Track-Id"] in text_of(answer)
    else:
        assert "Could not" not in text_of(answer) and answer.ephemeral_for is None
    assert audit_lines(slack), "the action is in the audit trail"
    await still_serving(bot, slack)


async def test_an_applied_cancel_whose_answer_was_lost_is_followed_to_its_end(
    start_bot: StartBot, slack: SlackEmulator, zuora: ZuoraSimulator, clock: Any
) -> None:
    bot = await start_bot(sandbox_poll_seconds=0.1)
    zuora.inject("drop_after", operation=CANCEL, count=1)
    await slack.send_command(bot.events_url, TYPED, ALLOWED, CHANNEL)
    card = await reply_to(slack, CHANNEL, ALLOWED, "CANCELLING")
    assert "could not reach Zuora" not in text_of(card)
    clock.advance(120)
    await slack.wait_for(
        lambda: (m := slack.message(CHANNEL, card.ts)) and "CANCELLED" in text_of(m)
    )
    notes = [m for m in slack.messages(NOTIFY) if not m.is_reply and JOB_CANCELLABLE in text_of(m)]
    assert len(notes) == 1 and "cancelled this job" in text_of(notes[0])


async def test_a_cancel_that_may_not_have_been_applied_gets_a_card_that_follows_the_job(
    bot: Runtime, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    zuora.inject("status", operation=CANCEL, status=500, body="system", count=1)
    await slack.send_command(bot.events_url, TYPED, ALLOWED, CHANNEL)
    answer = await reply_to(slack, CHANNEL, ALLOWED, "may still have been applied")
    assert "EXPORTING" in text_of(answer)  # what Zuora showed when read back
    card = await slack.wait_for_message(
        CHANNEL, lambda m: m.ephemeral_for is None and "EXPORTING" in text_of(m)
    )
    assert f"<@{ALLOWED}>" in text_of(card)
    await slack.wait_for(lambda: (ENV_STAGING, JOB_CANCELLABLE) in bot.cards.following)


# -- Slack faults ------------------------------------------------------------------------------------------------


async def test_server_errors_on_posting_still_deliver_the_card_and_the_audit_line(
    bot: Runtime, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    # The channel card, the notification card and its first retry all get Slack's 500.
    slack.fail_next("chat.postMessage", error="internal_error", status=500, count=3)
    await slack.send_command(bot.events_url, TYPED, ALLOWED, CHANNEL)
    await reply_to(slack, CHANNEL, ALLOWED, "CANCELLING")  # through response_url meanwhile
    note = await slack.wait_for_message(
        NOTIFY, lambda m: not m.is_reply and JOB_CANCELLABLE in text_of(m)
    )
    line = await slack.wait_for_message(
        NOTIFY, lambda m: m.thread_ts == note.ts and "cancelled job" in text_of(m)
    )
    assert f"<@{ALLOWED}>" in text_of(line)
    await slack.wait_for(lambda: bot.cards.retries_pending == 0)
    assert len(zuora_calls(zuora, CANCEL)) == 1
    assert bot.metrics.deliveries_given_up._value.get() == 0


async def test_an_expired_response_url_still_answers_the_user(
    bot: Runtime, slack: SlackEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    slack.fail_next("response_url", error="expired_url", status=404)
    await slack.send_command(bot.events_url, f"status staging {JOB_CANCELLABLE}", ALLOWED, CHANNEL)
    card = await reply_to(slack, CHANNEL, ALLOWED, "EXPORTING")
    assert card.ephemeral_for == ALLOWED  # by chat.postEphemeral, still for them alone
    assert slack.calls_to("chat.postEphemeral")
    assert any("reply through response_url failed" in r.getMessage() for r in caplog.records)
    fallbacks = bot.metrics.slack_calls.labels("reply_fallback", "used")._value.get()
    assert fallbacks == 1


async def test_a_refresh_applied_whose_answer_was_lost_is_reported_as_started(
    start_bot: StartBot, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    from bot.sim.zuora_seed import ENV_QA
    from tests.test_e2e_console import ask_refresh

    bot = await start_bot(sandbox_environments=f"qa={ENV_QA}")
    zuora.inject("drop_after", operation="createTestEnvironmentJob", count=1)
    confirmation = await ask_refresh(bot, slack, "refresh qa")
    await confirmation.click()
    card = await reply_to(slack, CHANNEL, ALLOWED, "Refresh job")
    assert card.ephemeral_for is None and "Could not" not in text_of(card)
    assert len(zuora_calls(zuora, "createTestEnvironmentJob")) == 1  # read back, not sent again
    await slack.wait_for_message(NOTIFY, lambda m: m.is_reply and "started job" in text_of(m))
