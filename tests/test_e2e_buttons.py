"""Buttons on job cards: the clicker is authorised on every click, the value is untrusted, the card updates."""

from __future__ import annotations

import pytest

from bot.commands import encode_job_value
from bot.runtime import Runtime
from bot.sim.slack import SlackEmulator
from bot.sim.zuora import ZuoraSimulator
from bot.sim.zuora_seed import ENV_STAGING, ENV_UAT, JOB_CANCELLABLE, JOB_PAST_RESETTING
from tests.blockkit import assert_valid_blocks
from tests.conftest import ALLOWED, CHANNEL, NOTIFY, STRANGER
from tests.e2e import action_values, api_calls, reply_to, text_of, until_handled, zuora_calls

pytestmark = pytest.mark.usefixtures("no_secrets_logged")


async def status_card(
    bot: Runtime, slack: SlackEmulator, job: str = JOB_CANCELLABLE, env: str = "staging"
) -> object:
    await slack.send_command(bot.events_url, f"status {env} {job}", ALLOWED, CHANNEL)
    return await reply_to(slack, CHANNEL, ALLOWED, "sandbox_job_status")


async def test_status_card_then_cancel_click_replaces_the_card(
    bot: Runtime, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    card = await status_card(bot, slack)
    assert "EXPORTING" in text_of(card)
    (value,) = action_values(card, "sandbox_cancel_job")
    await slack.send_block_action(
        bot.events_url, ALLOWED, "sandbox_cancel_job", value, CHANNEL, card.ts
    )  # type: ignore[attr-defined]

    updated = await slack.wait_for(
        lambda: (
            (m := slack.message(CHANNEL, card.ts)) is not None and "CANCELLING" in text_of(m) and m
        )  # type: ignore[attr-defined]
    )
    assert_valid_blocks(updated.blocks)
    assert action_values(updated, "sandbox_cancel_job") == []
    (request,) = zuora_calls(zuora, "performActionOfJob")
    assert request.path.endswith(f"/{ENV_STAGING}/jobs/{JOB_CANCELLABLE}/actions")
    await reply_to(slack, NOTIFY, ALLOWED, "cancelled")


async def test_click_by_a_user_who_is_not_allowed_never_reaches_zuora(
    bot: Runtime, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    card = await status_card(bot, slack)
    before = len(api_calls(zuora))
    (value,) = action_values(card, "sandbox_cancel_job")
    await slack.send_block_action(
        bot.events_url, STRANGER, "sandbox_cancel_job", value, CHANNEL, card.ts
    )  # type: ignore[attr-defined]
    await reply_to(slack, CHANNEL, STRANGER, "Refresh Central Sandbox")
    assert len(api_calls(zuora)) == before
    assert zuora_calls(zuora, "performActionOfJob") == []


@pytest.mark.parametrize(
    "value",
    [
        "not json",
        '{"env": "../../oauth", "job": "x"}',
        '{"env": "' + ENV_STAGING + '", "job": "<!channel>"}',
        '{"env": "' + ENV_STAGING + '", "job": "a", "extra": 1}',
        '["' + ENV_STAGING + '", "a"]',
        "",
    ],
)
async def test_tampered_button_value_never_reaches_zuora(
    bot: Runtime, slack: SlackEmulator, zuora: ZuoraSimulator, value: str
) -> None:
    card = await status_card(bot, slack)
    before = len(api_calls(zuora))
    await slack.send_block_action(
        bot.events_url, ALLOWED, "sandbox_cancel_job", value, CHANNEL, card.ts
    )  # type: ignore[attr-defined]
    answer = await slack.wait_for_message(
        CHANNEL,
        lambda m: m.ts != card.ts and m.ephemeral_for == ALLOWED and "damaged" in text_of(m),  # type: ignore[attr-defined]
    )
    assert "<!channel>" not in text_of(answer)
    await until_handled(slack, bot, "button_cancel")
    assert len(api_calls(zuora)) == before
    assert zuora_calls(zuora, "performActionOfJob") == []


async def test_click_on_a_job_no_longer_cancellable_gets_a_clear_answer(
    bot: Runtime, slack: SlackEmulator, zuora: ZuoraSimulator
) -> None:
    card = await status_card(bot, slack)  # stale: the click below names a job that has moved on
    value = encode_job_value(ENV_UAT, JOB_PAST_RESETTING)
    await slack.send_block_action(
        bot.events_url, ALLOWED, "sandbox_cancel_job", value, CHANNEL, card.ts
    )  # type: ignore[attr-defined]
    answer = await reply_to(slack, CHANNEL, ALLOWED, "Could not cancel")
    assert answer.ephemeral_for == ALLOWED
    assert "reset stage" in text_of(answer)


async def test_status_button_fetches_the_job_again(
    bot: Runtime, slack: SlackEmulator, zuora: ZuoraSimulator, clock: object
) -> None:
    card = await status_card(bot, slack)
    clock.advance(3 * 3600)  # type: ignore[attr-defined]
    (value,) = action_values(card, "sandbox_job_status")
    await slack.send_block_action(
        bot.events_url, ALLOWED, "sandbox_job_status", value, CHANNEL, card.ts
    )  # type: ignore[attr-defined]
    updated = await slack.wait_for(
        lambda: (
            (m := slack.message(CHANNEL, card.ts)) is not None
            and "EXPORTING" not in text_of(m)
            and m
        )  # type: ignore[attr-defined]
    )
    assert zuora.job(ENV_STAGING, JOB_CANCELLABLE)["status"] in text_of(updated)
    assert len(zuora_calls(zuora, "getJobOfTestEnvironment")) == 2
