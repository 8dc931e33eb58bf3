"""The rest of the console end to end: jobs, envs, refresh with confirmation, followed job cards, help."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import pytest

from bot.commands import encode_refresh_value
from bot.runtime import Runtime
from bot.sim.clock import ManualClock
from bot.sim.slack import SlackEmulator
from bot.sim.zuora import ZuoraSimulator
from bot.sim.zuora_seed import (
    ENV_DEV,
    ENV_QA,
    ENV_STAGING,
    ENV_UAT,
    JOB_CANCELLABLE,
    JOB_CANCELLED,
    JOB_STAGING_COMPLETED,
)
from tests.blockkit import assert_valid_blocks
from tests.conftest import ALLOWED, CHANNEL, GROUP, GROUP_MEMBER, NOTIFY, STRANGER, StartBot
from tests.e2e import action_values, api_calls, reply_to, text_of, until_handled, zuora_calls

pytestmark = pytest.mark.usefixtures("no_secrets_logged")

CREATE = "createTestEnvironmentJob"
READ_ENV = "getTestEnvironment"
QA_ALIASES = f"staging={ENV_STAGING},uat={ENV_UAT},qa={ENV_QA},dev={ENV_DEV}"


# -- jobs and envs ---------------------------------------------------------------------------------------------


async def test_jobs_lists_active_first_then_newest_with_cancel_buttons(
    bot: Runtime, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    await slack.send_command(bot.events_url, "jobs staging", ALLOWED, CHANNEL)
    listing = await reply_to(slack, CHANNEL, ALLOWED, "Jobs of staging")
    assert listing.ephemeral_for == ALLOWED
    assert_valid_blocks(listing.blocks)
    shown = text_of(listing)
    positions = [
        shown.index(job) for job in (JOB_CANCELLABLE, JOB_CANCELLED, JOB_STAGING_COMPLETED)
    ]
    assert positions == sorted(
        positions
    )  # running first, then cancelled 10 days ago, then 45 days ago
    (value,) = action_values(listing, "sandbox_cancel_job")
    assert JOB_CANCELLABLE in value
    (request,) = zuora_calls(zuora, "getAllJobsOfTestEnvironment")
    assert request.path == f"/test-environments/{ENV_STAGING}/jobs"


async def test_jobs_list_is_capped_with_a_count_of_the_rest(
    bot: Runtime, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    for _ in range(45):
        zuora.add_job(ENV_UAT, status="COMPLETED")
    await slack.send_command(bot.events_url, "jobs uat", ALLOWED, CHANNEL)
    listing = await reply_to(slack, CHANNEL, ALLOWED, "Jobs of uat")
    assert_valid_blocks(listing.blocks)
    assert "older jobs not shown" in text_of(listing)


async def test_cancel_from_the_job_list(
    bot: Runtime, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    await slack.send_command(bot.events_url, "jobs staging", ALLOWED, CHANNEL)
    listing = await reply_to(slack, CHANNEL, ALLOWED, "Jobs of staging")
    (value,) = action_values(listing, "sandbox_cancel_job")
    await slack.send_block_action(
        bot.events_url, ALLOWED, "sandbox_cancel_job", value, CHANNEL, listing.ts
    )
    await slack.wait_for(lambda: zuora_calls(zuora, "performActionOfJob"))
    await reply_to(slack, NOTIFY, ALLOWED, "cancelled this job")
    assert zuora.job(ENV_STAGING, JOB_CANCELLABLE)["status"] == "CANCELLING"
    # The clicker's list shows the result in place; the team gets a card in the channel.
    await slack.wait_for(
        lambda: (m := slack.message(CHANNEL, listing.ts)) and "CANCELLING" in text_of(m)
    )
    team_card = await slack.wait_for_message(
        CHANNEL, lambda m: m.ephemeral_for is None and "CANCELLING" in text_of(m)
    )
    assert JOB_CANCELLABLE in text_of(team_card)


async def test_envs_lists_environments_with_status_and_refresh_times(
    start_bot: StartBot, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    bot = await start_bot(sandbox_environments=QA_ALIASES)
    await slack.send_command(bot.events_url, "envs", GROUP_MEMBER, CHANNEL)
    listing = await reply_to(slack, CHANNEL, GROUP_MEMBER, "Test environments")
    assert listing.ephemeral_for == GROUP_MEMBER
    assert_valid_blocks(listing.blocks)
    shown = text_of(listing)
    for expected in (
        "staging",
        "uat",
        "qa",
        "dev",
        ENV_DEV,
        "PROCESSING",
        "ACTIVE",
        "DEVELOPER",
        "<!date^",
    ):
        assert expected in shown
    assert len(zuora_calls(zuora, "getAllTestEnvironments")) == 1


async def test_envs_and_jobs_refused_for_a_stranger(
    bot: Runtime, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    for text in ("envs", "jobs staging", "status staging x1", "refresh qa"):
        await slack.send_command(bot.events_url, text, STRANGER, CHANNEL)
    await slack.wait_for(
        lambda: (
            len([m for m in slack.messages(CHANNEL) if "Refresh Central Sandbox" in text_of(m)])
            == 4
        )
    )
    assert api_calls(zuora) == []


# -- refresh --------------------------------------------------------------------------------------------------


class Confirmation:
    """A refresh confirmation as its requester sees it; its buttons stay clickable in tests even after the
    message was replaced, as from a Slack client that has not refreshed yet."""

    def __init__(self, bot: Runtime, slack: SlackEmulator, message: Any) -> None:
        self.bot, self.slack, self.message, self.ts = bot, slack, message, message.ts
        (self.value,) = action_values(message, "sandbox_refresh_confirm")
        self.block_id = next(b["block_id"] for b in message.blocks if b["type"] == "actions")

    async def click(
        self,
        action: str = "sandbox_refresh_confirm",
        *,
        user: str = ALLOWED,
        block_id: str | None = None,
    ) -> None:
        await self.slack.send_block_action(
            self.bot.events_url,
            user,
            action,
            self.value,
            CHANNEL,
            self.ts,
            block_id=block_id or self.block_id,
        )

    def now_shows(self, text: str) -> bool:
        message = self.slack.message(CHANNEL, self.ts)
        return message is not None and text in text_of(message)


async def ask_refresh(
    bot: Runtime, slack: SlackEmulator, text: str = "refresh qa", user: str = ALLOWED
) -> Confirmation:
    await slack.send_command(bot.events_url, text, user, CHANNEL)
    return Confirmation(bot, slack, await reply_to(slack, CHANNEL, user, "sandbox_refresh_confirm"))


@pytest.fixture
async def qa_bot(start_bot: StartBot) -> Runtime:
    return await start_bot(sandbox_environments=QA_ALIASES, sandbox_poll_seconds=0.1)


async def test_refresh_asks_for_confirmation_before_calling_zuora(
    qa_bot: Runtime, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    confirmation = await ask_refresh(qa_bot, slack)
    assert confirmation.message.ephemeral_for == ALLOWED
    assert_valid_blocks(confirmation.message.blocks)
    shown = text_of(confirmation.message)
    for expected in (
        "qa",
        ENV_QA,
        "This is a *Central Sandbox*: Zuora allows one refresh every *28 days*.",
        "replaces everything",
        "sandbox_refresh_abort",
        "Refresh now",
    ):
        assert expected in shown
    # Zuora was read (the type and the dates), not asked to do anything.
    (read,) = zuora_calls(zuora, READ_ENV)
    assert read.path == f"/test-environments/{ENV_QA}"
    assert zuora_calls(zuora, CREATE) == []

    await confirmation.click()
    card = await reply_to(slack, CHANNEL, ALLOWED, "Refresh job")
    assert card.ephemeral_for is None
    (request,) = zuora_calls(zuora, CREATE)
    assert request.body == {"jobType": "REFRESH"}
    assert request.path == f"/test-environments/{ENV_QA}/jobs"
    await reply_to(slack, NOTIFY, ALLOWED, "started this job")
    await slack.wait_for(lambda: confirmation.now_shows("requested"))
    assert not confirmation.now_shows("sandbox_refresh_confirm")


async def test_scheduled_refresh_sends_the_time(
    qa_bot: Runtime, slack: SlackEmulator, zuora: ZuoraSimulator, clock: ManualClock
) -> None:
    at = (clock.now() + timedelta(days=30)).replace(second=0)
    confirmation = await ask_refresh(qa_bot, slack, f"refresh qa at {at:%Y-%m-%dT%H:%MZ}")
    await confirmation.click()
    await reply_to(slack, CHANNEL, ALLOWED, "SCHEDULED")
    (request,) = zuora_calls(zuora, CREATE)
    assert request.body["scheduledRefreshTime"].startswith(f"{at:%Y-%m-%dT%H:%M:00}")


async def test_abort_drops_the_refresh(
    qa_bot: Runtime, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    confirmation = await ask_refresh(qa_bot, slack)
    await confirmation.click("sandbox_refresh_abort")
    await slack.wait_for(lambda: confirmation.now_shows("nothing was sent"))
    assert zuora_calls(zuora, CREATE) == []


async def test_double_clicked_refresh_starts_one_refresh(
    qa_bot: Runtime, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    zuora.inject("latency", operation=CREATE, seconds=0.5)
    confirmation = await ask_refresh(qa_bot, slack)
    await asyncio.gather(confirmation.click(), confirmation.click())
    await reply_to(slack, CHANNEL, ALLOWED, "Refresh job")

    def answered_again() -> list[object]:
        return [
            m
            for m in slack.messages(CHANNEL)
            if m.ephemeral_for == ALLOWED and "already" in text_of(m)
        ]

    # The second click is answered, not sent.
    await slack.wait_for(lambda: len(answered_again()) == 1)
    # A third click from a client still showing the old confirmation.
    await confirmation.click()
    await slack.wait_for(lambda: len(answered_again()) == 2)
    assert len(zuora_calls(zuora, CREATE)) == 1


async def test_only_the_requester_can_confirm(
    qa_bot: Runtime, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    confirmation = await ask_refresh(qa_bot, slack)
    assert confirmation.value == encode_refresh_value(ENV_QA, None)
    assert confirmation.block_id.startswith(f"refresh:{ALLOWED}:")
    await confirmation.click(user=GROUP_MEMBER)
    await reply_to(slack, CHANNEL, GROUP_MEMBER, "who asked for this refresh")
    assert zuora_calls(zuora, CREATE) == []


async def test_confirmation_expires_after_ten_minutes(
    qa_bot: Runtime, slack: SlackEmulator, zuora: ZuoraSimulator, clock: ManualClock
) -> None:
    confirmation = await ask_refresh(qa_bot, slack)
    clock.advance(11 * 60)
    await confirmation.click()
    await slack.wait_for(lambda: confirmation.now_shows("expired"))
    assert zuora_calls(zuora, CREATE) == []


async def test_refresh_within_the_period_says_when_the_next_is_possible(
    qa_bot: Runtime, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    """Zuora could not be read before the confirmation (so it was offered, with the generic limit, saying it
    was not checked); the click gets Zuora's 403, and the answer says when the next refresh is possible."""
    zuora.inject("status", operation=READ_ENV, status=500)
    confirmation = await ask_refresh(qa_bot, slack, "refresh dev")
    shown = text_of(confirmation.message)
    assert "every *28 days* for a Central Sandbox (14 for a Developer Sandbox)" in shown
    assert "could not check its type and when its next refresh is possible" in shown
    await confirmation.click()
    answer = await reply_to(slack, CHANNEL, ALLOWED, "Could not refresh")
    shown = text_of(answer)
    assert "HTTP 403" in shown and "next refresh is possible <!date^" in shown
    assert len(zuora_calls(zuora, CREATE)) == 1


def next_possible(zuora: ZuoraSimulator, env_id: str) -> datetime:
    return datetime.fromisoformat(zuora.environment(env_id)["nextRefreshTime"])


async def test_refresh_confirmation_for_an_environment_zuora_will_refuse_shows_the_date_and_no_refresh_now(
    qa_bot: Runtime, slack: SlackEmulator, zuora: ZuoraSimulator, clock: ManualClock
) -> None:
    """dev, a Developer Sandbox, was refreshed 3 days ago: Zuora allows the next one in 11 days."""
    possible = next_possible(zuora, ENV_DEV)
    assert possible > clock.now()
    await slack.send_command(qa_bot.events_url, "refresh dev", ALLOWED, CHANNEL)
    answer = await reply_to(slack, CHANNEL, ALLOWED, "will not refresh")
    await until_handled(slack, qa_bot, "refresh")
    assert answer.ephemeral_for == ALLOWED
    assert_valid_blocks(answer.blocks)
    shown = text_of(answer)
    assert f"next refresh possible <!date^{int(possible.timestamp())}^" in shown
    assert "This is a *Developer Sandbox*: Zuora allows one refresh every *14 days*." in shown
    assert "`/sandbox refresh dev at &lt;time&gt;`" in shown
    assert not any(
        b["type"] == "actions" for b in answer.blocks
    )  # no Refresh now, nothing to click
    assert "Refresh now" not in shown
    assert len(zuora_calls(zuora, READ_ENV)) == 1
    assert zuora_calls(zuora, CREATE) == []


async def test_a_refresh_scheduled_for_when_zuora_allows_it_is_offered_and_accepted(
    qa_bot: Runtime, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    possible = next_possible(zuora, ENV_DEV)
    confirmation = await ask_refresh(qa_bot, slack, f"refresh dev at {possible:%Y-%m-%dT%H:%M:%SZ}")
    shown = text_of(confirmation.message)
    assert "Schedule refresh" in shown and "Refresh now" not in shown
    assert "*Developer Sandbox*" in shown
    await confirmation.click()
    await reply_to(slack, CHANNEL, ALLOWED, "SCHEDULED")
    (request,) = zuora_calls(zuora, CREATE)
    assert request.body["scheduledRefreshTime"].startswith(f"{possible:%Y-%m-%dT%H:%M:%S}")


async def test_a_refresh_scheduled_before_zuora_allows_it_says_when_and_offers_nothing(
    qa_bot: Runtime, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    possible = next_possible(zuora, ENV_DEV)
    at = possible - timedelta(minutes=1)
    await slack.send_command(
        qa_bot.events_url, f"refresh dev at {at:%Y-%m-%dT%H:%M:%SZ}", ALLOWED, CHANNEL
    )
    answer = await reply_to(slack, CHANNEL, ALLOWED, "will not refresh")
    await until_handled(slack, qa_bot, "refresh")
    shown = text_of(answer)
    assert f"at <!date^{int(at.timestamp())}^" in shown
    assert f"next refresh possible <!date^{int(possible.timestamp())}^" in shown
    assert action_values(answer, "sandbox_refresh_confirm") == []
    assert action_values(answer, "sandbox_refresh_abort") == []
    assert zuora_calls(zuora, CREATE) == []


# -- followed job cards --------------------------------------------------------------------------------------------


async def test_cancelled_job_card_follows_cancelling_to_cancelled(
    qa_bot: Runtime, slack: SlackEmulator, zuora: ZuoraSimulator, clock: ManualClock
) -> None:
    await slack.send_command(
        qa_bot.events_url, f"cancel staging {JOB_CANCELLABLE}", ALLOWED, CHANNEL
    )
    card = await reply_to(slack, CHANNEL, ALLOWED, "CANCELLING")
    clock.advance(120)
    updated = await slack.wait_for(
        lambda: (m := slack.message(CHANNEL, card.ts)) and "CANCELLED" in text_of(m) and m
    )
    assert_valid_blocks(updated.blocks)
    assert "sandbox_cancel_job" not in text_of(updated)
    thread = await slack.wait_for_message(
        CHANNEL, lambda m: m.thread_ts == card.ts and "has ended" in text_of(m)
    )
    assert "CANCELLED" in text_of(thread)
    # The notification card follows too, with its audit note, and gets its own thread reply.
    note = await reply_to(slack, NOTIFY, ALLOWED, "cancelled this job")
    await slack.wait_for(
        lambda: (
            (m := slack.message(NOTIFY, note.ts))
            and "CANCELLED" in text_of(m)
            and "cancelled this job" in text_of(m)
        )
    )
    await slack.wait_for_message(
        NOTIFY, lambda m: m.thread_ts == note.ts and "has ended" in text_of(m)
    )
    await slack.wait_for(lambda: not qa_bot.cards.following)


async def test_live_card_reports_zuora_failures_and_keeps_trying(
    qa_bot: Runtime, slack: SlackEmulator, zuora: ZuoraSimulator, clock: ManualClock
) -> None:
    await slack.send_command(
        qa_bot.events_url, f"cancel staging {JOB_CANCELLABLE}", ALLOWED, CHANNEL
    )
    card = await reply_to(slack, CHANNEL, ALLOWED, "CANCELLING")
    # The cards read the environment's job list (one call for every card of the environment).
    zuora.inject("status", operation="getAllJobsOfTestEnvironment", status=500, count=2)
    failing = await slack.wait_for(
        lambda: (
            (m := slack.message(CHANNEL, card.ts))
            and "Could not refresh from Zuora" in text_of(m)
            and m
        ),
        timeout=10,
    )
    assert "HTTP 500" in text_of(failing)
    clock.advance(120)
    await slack.wait_for(
        lambda: (m := slack.message(CHANNEL, card.ts)) and "CANCELLED" in text_of(m), timeout=10
    )
    recovered = slack.message(CHANNEL, card.ts)
    assert recovered is not None and "Could not refresh" not in text_of(recovered)


async def test_refresh_card_moves_through_the_stages(
    qa_bot: Runtime, slack: SlackEmulator, zuora: ZuoraSimulator, clock: ManualClock
) -> None:
    confirmation = await ask_refresh(qa_bot, slack)
    await confirmation.click()
    card = await reply_to(slack, CHANNEL, ALLOWED, "Refresh job")
    clock.advance(3 * 3600)
    done = await slack.wait_for(
        lambda: (m := slack.message(CHANNEL, card.ts)) and "COMPLETED" in text_of(m) and m
    )
    assert "100%" in text_of(done)


async def test_shutdown_stops_watching_cleanly(
    qa_bot: Runtime, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    await slack.send_command(
        qa_bot.events_url, f"cancel staging {JOB_CANCELLABLE}", ALLOWED, CHANNEL
    )
    await reply_to(slack, CHANNEL, ALLOWED, "CANCELLING")
    await slack.wait_for(lambda: qa_bot.cards.following)
    await qa_bot.stop()
    assert not qa_bot.cards.following


# -- help ----------------------------------------------------------------------------------------------------------


async def test_help_lists_commands_with_configured_aliases_for_allowed_users(
    bot: Runtime, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    await slack.send_command(bot.events_url, "help", ALLOWED, CHANNEL)
    answer = await reply_to(slack, CHANNEL, ALLOWED, "Usage")
    for expected in ("cancel", "status", "jobs", "envs", "refresh", "staging"):
        assert expected in text_of(answer)
    await slack.send_command(bot.events_url, "", STRANGER, CHANNEL)
    refusal = await reply_to(slack, CHANNEL, STRANGER, "only `/sandbox help`")
    assert "cancel &lt;env&gt;" not in text_of(refusal)
    # Whom to ask, as mentions; no configuration variable's name.
    assert f"To get it, ask <@{ALLOWED}> or a member of <!subteam^{GROUP}>." in text_of(refusal)
    assert "SANDBOX_" not in text_of(refusal)
    assert api_calls(zuora) == []


async def test_a_usage_error_says_each_thing_once(
    bot: Runtime, slack: SlackEmulator, zuora: ZuoraSimulator, clock: ManualClock
) -> None:
    await slack.send_command(bot.events_url, "jobs", ALLOWED, CHANNEL)
    missing = await reply_to(slack, CHANNEL, ALLOWED, "Missing")
    assert missing.blocks[0]["text"]["text"] == (
        ":information_source: Missing &lt;env&gt;.\nUsage: `/sandbox jobs &lt;env&gt;`"
    )
    await slack.send_command(bot.events_url, "nuke", ALLOWED, CHANNEL)
    unknown = await reply_to(slack, CHANNEL, ALLOWED, "Unknown subcommand")
    assert text_of(unknown).count("/sandbox help") == 1
    past = clock.now() - timedelta(hours=1)
    await slack.send_command(
        bot.events_url, f"refresh staging at {past:%Y-%m-%dT%H:%M:%SZ}", ALLOWED, CHANNEL
    )
    answer = await reply_to(slack, CHANNEL, ALLOWED, "not in the future")
    # The time in the reader's time zone, not "now: <UTC>".
    assert f"That is <!date^{int(past.timestamp())}^" in text_of(answer)
    assert "now:" not in text_of(answer)
    assert text_of(answer).count("Usage:") == 1
    assert api_calls(zuora) == []


async def test_refresh_that_may_have_started_is_not_sent_twice(
    qa_bot: Runtime, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    """A 500 from the create call leaves it unknown whether the refresh started: the same confirmation
    cannot send it again, and the message says to check the jobs first."""
    zuora.inject("status", operation=CREATE, status=500, body="system")
    confirmation = await ask_refresh(qa_bot, slack)
    await confirmation.click()
    answer = await reply_to(slack, CHANNEL, ALLOWED, "Could not refresh")
    assert "may have started anyway" in text_of(answer)
    await confirmation.click()
    await reply_to(slack, CHANNEL, ALLOWED, "already confirmed")
    assert len(zuora_calls(zuora, CREATE)) == 1
    line = await reply_to(slack, NOTIFY, ALLOWED, "tried to refresh")
    assert zuora_calls(zuora, CREATE)[0].headers["Zuora-Track-Id"] in text_of(line)


async def test_refresh_zuora_refused_outright_may_be_confirmed_again(
    qa_bot: Runtime, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    # A 429 whose Retry-After is beyond the wait cap: not retried, and Zuora did nothing.
    zuora.inject("rate_limit", operation=CREATE, retry_after=3600)
    confirmation = await ask_refresh(qa_bot, slack)
    await confirmation.click()
    await reply_to(slack, CHANNEL, ALLOWED, "HTTP 429")
    await confirmation.click()
    await reply_to(slack, CHANNEL, ALLOWED, "Refresh job")
    assert len(zuora_calls(zuora, CREATE)) == 2


async def test_refresh_status_keeps_who_asked_on_the_card(
    qa_bot: Runtime, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    await slack.send_command(
        qa_bot.events_url, f"cancel staging {JOB_CANCELLABLE}", ALLOWED, CHANNEL
    )
    card = await reply_to(slack, CHANNEL, ALLOWED, "CANCELLING")
    assert f"<@{ALLOWED}>" in text_of(card)
    (value,) = action_values(card, "sandbox_job_status")
    before = len(zuora_calls(zuora, "getJobOfTestEnvironment"))
    await slack.send_block_action(
        qa_bot.events_url, GROUP_MEMBER, "sandbox_job_status", value, CHANNEL, card.ts
    )
    await until_handled(slack, qa_bot, "button_status")
    assert len(zuora_calls(zuora, "getJobOfTestEnvironment")) > before
    refreshed = slack.message(CHANNEL, card.ts)
    assert refreshed is not None and f"<@{ALLOWED}>" in text_of(refreshed)


async def test_one_notification_card_per_job_across_a_restart_without_the_watch(
    start_bot: StartBot, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    first = await start_bot()
    await slack.send_command(
        first.events_url, f"cancel staging {JOB_CANCELLABLE}", ALLOWED, CHANNEL
    )
    await reply_to(slack, NOTIFY, ALLOWED, "cancelled this job")
    await first.stop()
    second = await start_bot()
    await slack.send_command(
        second.events_url, f"cancel staging {JOB_CANCELLABLE}", GROUP_MEMBER, CHANNEL
    )
    await reply_to(slack, NOTIFY, GROUP_MEMBER, f"<@{GROUP_MEMBER}> cancelled this job")
    top_level_cards = [
        m
        for m in slack.messages(NOTIFY)
        if m.metadata and not m.is_reply and JOB_CANCELLABLE in text_of(m)
    ]
    assert len(top_level_cards) == 1

    # Both actions are in that card's thread: the audit trail keeps each.
    def thread() -> list[object]:
        return [m for m in slack.messages(NOTIFY) if m.thread_ts == top_level_cards[0].ts]

    await slack.wait_for(lambda: any(f"<@{GROUP_MEMBER}>" in text_of(m) for m in thread()))
    assert any(f"<@{ALLOWED}>" in text_of(m) for m in thread())


async def test_the_notification_card_keeps_who_asked_when_someone_else_cancels(
    qa_bot: Runtime, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    """alice starts a refresh, bob cancels it: the card still says alice asked; its thread says who did what."""
    confirmation = await ask_refresh(qa_bot, slack)
    await confirmation.click()
    card = await reply_to(slack, CHANNEL, ALLOWED, "Refresh job")
    (value,) = action_values(card, "sandbox_cancel_job")
    await slack.send_block_action(
        qa_bot.events_url, GROUP_MEMBER, "sandbox_cancel_job", value, CHANNEL, card.ts
    )
    await until_handled(slack, qa_bot, "button_cancel")
    (note,) = [m for m in slack.messages(NOTIFY) if not m.is_reply and "Refresh job" in text_of(m)]
    shown = text_of(note)
    assert f"*Requested in Slack by*\\n<@{ALLOWED}>" in shown
    assert f"<@{GROUP_MEMBER}> cancelled this job" in shown
    thread = [text_of(m) for m in slack.messages(NOTIFY) if m.thread_ts == note.ts and m.is_reply]
    assert any(f"<@{ALLOWED}> started job" in t for t in thread)
    assert any(f"<@{GROUP_MEMBER}> cancelled job" in t for t in thread)
