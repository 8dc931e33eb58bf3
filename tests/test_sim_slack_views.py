"""The Slack emulator's users, direct messages, views and trigger_ids, driven by slack_sdk's client."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.sim.slack import SlackEmulator
from bot.sim.slack_views import ValueKey

BOT = "xoxb-test-bot"
SECRET = "test-signing-secret"
CHANNEL = "C0OPS"
USER = "U0ALICE"
TEAM = "T0EMULATOR"
SUMMER = datetime(2030, 7, 1, 12, tzinfo=UTC).timestamp()  # British Summer Time in London


class Stepped:
    """A monotonic clock a test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def monotonic() -> Stepped:
    return Stepped()


@pytest.fixture
async def emu(monotonic: Stepped) -> AsyncIterator[SlackEmulator]:
    async with SlackEmulator(
        bot_token=BOT, signing_secret=SECRET, clock=lambda: SUMMER, monotonic=monotonic
    ) as emulator:
        emulator.add_user(USER, "alice", real_name="Alice Example")
        emulator.add_channel(CHANNEL, "ops")
        yield emulator


@pytest.fixture
def client(emu: SlackEmulator) -> AsyncWebClient:
    return AsyncWebClient(token=BOT, base_url=emu.api_url)


async def error_of(call: Any) -> dict[str, Any]:
    """The Slack error answer of an awaited client call that must fail."""
    with pytest.raises(SlackApiError) as failure:
        await call
    response: dict[str, Any] = failure.value.response.data
    return response


def modal(title: str = "Refresh a sandbox", **fields: Any) -> dict[str, Any]:
    view: dict[str, Any] = {
        "type": "modal",
        "callback_id": "sandbox_refresh_form",
        "title": {"type": "plain_text", "text": title},
        "submit": {"type": "plain_text", "text": "Next"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "private_metadata": '{"step": 1}',
        "blocks": [
            {
                "type": "input",
                "block_id": "env",
                "label": {"type": "plain_text", "text": "Environment"},
                "element": {
                    "type": "static_select",
                    "action_id": "env",
                    "options": [
                        {"text": {"type": "plain_text", "text": "staging"}, "value": "staging"},
                        {"text": {"type": "plain_text", "text": "uat"}, "value": "uat"},
                    ],
                },
            }
        ],
    }
    view.update(fields)
    return view


HOME: dict[str, Any] = {
    "type": "home",
    "callback_id": "sandbox_home",
    "blocks": [
        {"type": "section", "text": {"type": "mrkdwn", "text": "*Environments*"}},
        {
            "type": "actions",
            "block_id": "home_actions",
            "elements": [
                {
                    "type": "button",
                    "action_id": "sandbox_refresh_open",
                    "text": {"type": "plain_text", "text": "Refresh…"},
                }
            ],
        },
    ],
}


def trigger(emu: SlackEmulator, user: str = USER) -> str:
    """A fresh trigger_id, as a slash command from `user` carries one."""
    return emu.command_payload("refresh", user, CHANNEL)["trigger_id"]


# ---- users.info


async def test_users_info_describes_a_full_member(
    emu: SlackEmulator, client: AsyncWebClient
) -> None:
    user = (await client.users_info(user=USER))["user"]

    assert (user["id"], user["team_id"], user["name"], user["real_name"]) == (
        USER,
        TEAM,
        "alice",
        "Alice Example",
    )
    assert (user["tz"], user["tz_label"], user["tz_offset"]) == (
        "Europe/London",
        "British Summer Time",
        3600,
    )
    assert user["is_bot"] is user["deleted"] is False
    assert user["is_restricted"] is user["is_ultra_restricted"] is False
    assert "is_stranger" not in user
    assert emu.calls[-1].method == "users.info" and emu.calls[-1].transport == "query"


async def test_users_info_flags_guests_as_slack_does(
    emu: SlackEmulator, client: AsyncWebClient
) -> None:
    emu.add_user("U0MULTI", "multi", guest="multi", tz="America/New_York")
    emu.add_user("U0SINGLE", "single", guest="single")

    multi = (await client.users_info(user="U0MULTI"))["user"]
    single = (await client.users_info(user="U0SINGLE"))["user"]

    assert (multi["is_restricted"], multi["is_ultra_restricted"]) == (True, False)
    assert (single["is_restricted"], single["is_ultra_restricted"]) == (True, True)
    assert (multi["tz_label"], multi["tz_offset"]) == ("Eastern Daylight Time", -4 * 3600)


async def test_users_info_marks_a_stranger_of_another_team(
    emu: SlackEmulator, client: AsyncWebClient
) -> None:
    emu.add_user("U0STRANGE", "stranger", team_id="T0OTHER")
    emu.add_user("U0PARTNER", "partner", team_id="T0OTHER")
    emu.add_channel("C0SHARED", "shared", members=["U0PARTNER", emu.bot.user_id])

    stranger = (await client.users_info(user="U0STRANGE"))["user"]
    partner = (await client.users_info(user="U0PARTNER"))["user"]

    assert (stranger["team_id"], stranger["is_stranger"]) == ("T0OTHER", True)
    # of another team, but in a shared channel the app sees: not a stranger
    assert partner["team_id"] == "T0OTHER" and "is_stranger" not in partner
    assert (await client.auth_test())["team_id"] == TEAM  # what a bot compares team_id with


async def test_users_info_for_unknown_users_and_the_bot(
    emu: SlackEmulator, client: AsyncWebClient
) -> None:
    assert (await error_of(client.users_info(user="U0NOBODY")))["error"] == "user_not_found"
    bot = (await client.users_info(user=emu.bot.user_id))["user"]
    assert bot["is_bot"] is True


# ---- direct messages


async def test_conversations_open_gives_the_dm_channel_once(
    emu: SlackEmulator, client: AsyncWebClient
) -> None:
    first = await client.conversations_open(users=USER)
    again = await client.conversations_open(users=USER, return_im=True)

    channel_id = first["channel"]["id"]
    assert channel_id.startswith("D") and channel_id == emu.dm_channel(USER)
    assert "already_open" not in first.data
    assert (again["already_open"], again["channel"]["id"]) == (True, channel_id)
    assert (again["channel"]["is_im"], again["channel"]["user"]) == (True, USER)
    unknown = await error_of(client.conversations_open(users="U0NOBODY"))
    assert unknown["error"] == "user_not_found"


async def test_posting_to_a_user_id_lands_in_their_dm(
    emu: SlackEmulator, client: AsyncWebClient
) -> None:
    posted = await client.chat_postMessage(channel=USER, text="Your refresh started")

    dm = emu.dm_channel(USER)
    assert posted["channel"] == dm
    assert [m.text for m in emu.messages(dm)] == ["Your refresh started"]
    assert [m.text for m in emu.messages(USER)] == ["Your refresh started"]  # readers resolve it
    found = await emu.wait_for_message(USER, lambda m: "started" in m.text, timeout=5)
    assert found.channel == dm
    opened = await client.conversations_open(users=USER)
    assert (opened["channel"]["id"], opened["already_open"]) == (dm, True)
    assert emu.command_payload("help", USER, dm)["channel_name"] == "directmessage"


async def test_conversations_open_for_several_users_and_without_creating(
    emu: SlackEmulator, client: AsyncWebClient
) -> None:
    emu.add_user("U0BOB", "bob")
    assert (await client.conversations_open(users="U0BOB", prevent_creation=True))["channel"] == {}
    group = await client.conversations_open(users=f"{USER},U0BOB", return_im=True)
    again = await client.conversations_open(users=f"U0BOB,{USER}")
    assert group["channel"]["id"].startswith("G") and group["channel"]["is_mpim"] is True
    assert (again["channel"]["id"], again["already_open"]) == (group["channel"]["id"], True)
    reopened = await client.conversations_open(channel=group["channel"]["id"])
    assert reopened["channel"]["id"] == group["channel"]["id"]
    assert (await error_of(client.conversations_open(channel=CHANNEL)))[
        "error"
    ] == "channel_not_found"


async def test_strict_channels_refuse_a_post_to_an_undeclared_user() -> None:
    async with SlackEmulator(bot_token=BOT, strict_channels=True) as strict:
        client = AsyncWebClient(token=BOT, base_url=strict.api_url)
        failure = await error_of(client.chat_postMessage(channel="U0NOBODY", text="hi"))
        assert failure["error"] == "channel_not_found"
        strict.add_user(USER, "alice")
        posted = await client.chat_postMessage(channel=USER, text="hi")
        assert posted["channel"] == strict.dm_channel(USER)


# ---- views.publish


async def test_publish_gives_the_home_tab_slacks_view_fields(
    emu: SlackEmulator, client: AsyncWebClient
) -> None:
    published = (await client.views_publish(user_id=USER, view=HOME))["view"]

    assert published["id"].startswith("V") and published["type"] == "home"
    assert (published["team_id"], published["app_id"], published["bot_id"]) == (
        TEAM,
        emu.app_id,
        emu.bot.bot_id,
    )
    assert published["root_view_id"] == published["id"]
    assert published["previous_view_id"] is None
    assert published["state"] == {"values": {}}
    assert published["hash"] and published["callback_id"] == "sandbox_home"
    assert all(block["block_id"] for block in published["blocks"])  # filled in, as Slack does
    home = emu.home_view(USER)
    assert home is not None and home.to_api() == published


async def test_publishing_again_keeps_the_id_and_a_stale_hash_conflicts(
    emu: SlackEmulator, client: AsyncWebClient
) -> None:
    first = (await client.views_publish(user_id=USER, view=json.dumps(HOME)))["view"]
    second = (await client.views_publish(user_id=USER, view=HOME, hash=first["hash"]))["view"]

    assert second["id"] == first["id"] and second["hash"] != first["hash"]
    stale = await error_of(client.views_publish(user_id=USER, view=HOME, hash=first["hash"]))
    assert stale["error"] == "hash_conflict"


async def test_publish_takes_only_home_views_for_real_users(client: AsyncWebClient) -> None:
    wrong_type = await error_of(client.views_publish(user_id=USER, view=modal()))
    assert wrong_type["error"] == "invalid_arguments"
    assert wrong_type["response_metadata"]["messages"] == [
        "[ERROR] must be `home` [json-pointer:/view/type]"
    ]
    no_user = await error_of(client.views_publish(user_id="not-a-user", view=HOME))
    assert no_user["response_metadata"]["messages"] == ["invalid `user_id`"]


# ---- views.open and trigger_ids


async def test_open_needs_a_fresh_trigger_id_used_once(
    emu: SlackEmulator, client: AsyncWebClient
) -> None:
    trigger_id = trigger(emu)

    opened = (await client.views_open(trigger_id=trigger_id, view=modal()))["view"]

    assert opened["type"] == "modal" and opened["root_view_id"] == opened["id"]
    assert opened["title"] == {"type": "plain_text", "text": "Refresh a sandbox"}
    assert opened["private_metadata"] == '{"step": 1}'
    assert opened["state"] == {
        "values": {"env": {"env": {"type": "static_select", "selected_option": None}}}
    }
    [shown] = emu.modal_stack(USER)
    assert shown.id == opened["id"] and shown.callback_id == "sandbox_refresh_form"
    again = await error_of(client.views_open(trigger_id=trigger_id, view=modal()))
    assert again["error"] == "exchanged_trigger_id"
    made_up = await error_of(client.views_open(trigger_id="1.2.abc", view=modal()))
    assert made_up["error"] == "invalid_trigger_id"
    missing = await error_of(client.views_open(trigger_id="", view=modal()))
    assert missing["error"] == "invalid_arguments"


async def test_a_trigger_id_expires_after_three_seconds(
    emu: SlackEmulator, client: AsyncWebClient, monotonic: Stepped
) -> None:
    in_time, late = trigger(emu), trigger(emu)
    monotonic.now += 3.0
    await client.views_open(trigger_id=in_time, view=modal())  # at 3 s exactly: still valid

    monotonic.now += 0.01
    expired = await error_of(client.views_open(trigger_id=late, view=modal()))

    assert expired["error"] == "expired_trigger_id"
    assert emu.trigger_seconds == 3.0


async def test_the_trigger_window_can_be_widened_for_a_busy_machine(
    emu: SlackEmulator, client: AsyncWebClient, monotonic: Stepped
) -> None:
    emu.trigger_seconds = 30.0
    trigger_id = trigger(emu)
    monotonic.now += 29.0
    await client.views_open(trigger_id=trigger_id, view=modal())
    emu.trigger_seconds = 0.5
    short = trigger(emu)
    monotonic.now += 0.6
    assert (await error_of(client.views_open(trigger_id=short, view=modal())))[
        "error"
    ] == "expired_trigger_id"


async def test_an_invalid_view_spends_no_trigger(
    emu: SlackEmulator, client: AsyncWebClient
) -> None:
    trigger_id = trigger(emu)
    bad = await error_of(client.views_open(trigger_id=trigger_id, view=modal("x" * 25)))
    assert bad["error"] == "invalid_arguments"
    await client.views_open(trigger_id=trigger_id, view=modal())
    assert len(emu.modal_stack(USER)) == 1


async def test_expiry_on_the_real_clock_is_reached_by_waiting_on_it() -> None:
    """With the real monotonic clock and a tiny window, a trigger is refused once the window has
    passed: the test waits for that moment, it does not sleep a guessed time."""
    async with SlackEmulator(bot_token=BOT, trigger_seconds=0.05) as emu:
        client = AsyncWebClient(token=BOT, base_url=emu.api_url)
        emu.add_user(USER, "alice")
        trigger_id = trigger(emu)
        issued = time.monotonic()  # no earlier than the trigger was issued
        await emu.wait_for(lambda: time.monotonic() - issued > 0.05, timeout=5)
        failure = await error_of(client.views_open(trigger_id=trigger_id, view=modal()))
        assert failure["error"] == "expired_trigger_id"


# ---- views.update and views.push


async def test_update_keeps_the_id_and_what_was_entered_in_kept_inputs(
    emu: SlackEmulator, client: AsyncWebClient
) -> None:
    opened = (await client.views_open(trigger_id=trigger(emu), view=modal()))["view"]
    emu.enter_values(USER, {"env": "uat"})

    updated = (
        await client.views_update(
            view_id=opened["id"], hash=opened["hash"], view=modal("Refresh uat?")
        )
    )["view"]

    assert updated["id"] == opened["id"] and updated["hash"] != opened["hash"]
    assert updated["title"]["text"] == "Refresh uat?"
    selected = updated["state"]["values"]["env"]["env"]["selected_option"]
    assert selected == {"text": {"type": "plain_text", "text": "uat"}, "value": "uat"}
    stale = await error_of(
        client.views_update(view_id=opened["id"], hash=opened["hash"], view=modal())
    )
    assert stale["error"] == "hash_conflict"
    # a new block_id is a new input: what was entered there is gone, as in Slack
    renamed = modal()
    renamed["blocks"][0]["block_id"] = "env2"
    fresh = (await client.views_update(view_id=opened["id"], view=renamed))["view"]
    assert fresh["state"]["values"] == {
        "env2": {"env": {"type": "static_select", "selected_option": None}}
    }


async def test_update_by_external_id_and_not_found_once_closed(
    emu: SlackEmulator, client: AsyncWebClient
) -> None:
    await client.views_open(trigger_id=trigger(emu), view=modal(external_id="refresh-U0ALICE"))
    other = await error_of(
        client.views_open(trigger_id=trigger(emu), view=modal(external_id="refresh-U0ALICE"))
    )
    assert other["error"] == "duplicate_external_id"

    updated = await client.views_update(external_id="refresh-U0ALICE", view=modal("Checked"))
    assert updated["view"]["title"]["text"] == "Checked"
    view_id = updated["view"]["id"]

    await emu.close_modal("http://127.0.0.1:9/never-called", USER)  # no notify_on_close: no request
    assert emu.modal_stack(USER) == []
    gone = await error_of(client.views_update(view_id=view_id, view=modal()))
    assert gone["error"] == "not_found"
    neither = await error_of(client.api_call("views.update", json={"view": modal()}))
    assert neither["error"] == "invalid_arguments"


async def test_push_stacks_up_to_three_views(emu: SlackEmulator, client: AsyncWebClient) -> None:
    root = (await client.views_open(trigger_id=trigger(emu), view=modal()))["view"]
    second = (await client.views_push(trigger_id=trigger(emu), view=modal("Second")))["view"]
    third = (await client.views_push(trigger_id=trigger(emu), view=modal("Third")))["view"]

    assert (second["root_view_id"], second["previous_view_id"]) == (root["id"], root["id"])
    assert (third["root_view_id"], third["previous_view_id"]) == (root["id"], second["id"])
    assert [v.title for v in emu.modal_stack(USER)] == ["Refresh a sandbox", "Second", "Third"]
    full = await error_of(client.views_push(trigger_id=trigger(emu), view=modal("Fourth")))
    assert full["error"] == "push_limit_reached"
    closed = await emu.close_modal("http://127.0.0.1:9/never-called", USER)
    assert [v.title for v in closed] == ["Third"]
    assert emu.modal(USER) is not None and emu.modal(USER).title == "Second"  # type: ignore[union-attr]
    nothing_open = await error_of(client.views_push(trigger_id=trigger(emu, "U0BOB"), view=modal()))
    assert nothing_open["error"] == "not_found"


async def test_open_replaces_a_stack_already_open(
    emu: SlackEmulator, client: AsyncWebClient
) -> None:
    first = (await client.views_open(trigger_id=trigger(emu), view=modal()))["view"]
    await client.views_open(trigger_id=trigger(emu), view=modal("Another"))
    assert [v.title for v in emu.modal_stack(USER)] == ["Another"]
    assert emu.view(first["id"]) is None


# ---- validation


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"title": {"type": "plain_text", "text": "x" * 25}}, "must be less than 25 characters [json-pointer:/view/title/text]"),
        ({"title": {"type": "mrkdwn", "text": "*x*"}}, "must be a plain_text text object [json-pointer:/view/title]"),
        ({"title": None}, "missing required field: title [json-pointer:/view]"),
        ({"submit": {"type": "plain_text", "text": "s" * 25}}, "must be less than 25 characters [json-pointer:/view/submit/text]"),
        ({"close": {"type": "plain_text", "text": "c" * 25}}, "must be less than 25 characters [json-pointer:/view/close/text]"),
        ({"submit": None}, "a view with input blocks must have a submit button [json-pointer:/view/submit]"),
        ({"private_metadata": "m" * 3001}, "must be less than 3001 characters [json-pointer:/view/private_metadata]"),
        ({"callback_id": "c" * 256}, "must be less than 256 characters [json-pointer:/view/callback_id]"),
        ({"blocks": [{"type": "divider"}] * 101}, "no more than 100 items allowed [json-pointer:/view/blocks]"),
        ({"blocks": [{"type": "divider", "block_id": "a"}, {"type": "divider", "block_id": "a"}]}, "duplicate block_id `a` [json-pointer:/view/blocks/1/block_id]"),
        ({"blocks": [{"type": "nonsense"}]}, "unsupported type `nonsense` [json-pointer:/view/blocks/0]"),
        ({"notify_on_close": "yes"}, "must be a boolean [json-pointer:/view/notify_on_close]"),
    ],
)  # fmt: skip
async def test_invalid_modals_are_refused_with_slacks_messages(
    emu: SlackEmulator, client: AsyncWebClient, change: dict[str, Any], message: str
) -> None:
    view = {k: v for k, v in {**modal(), **change}.items() if v is not None}

    failure = await error_of(client.views_open(trigger_id=trigger(emu), view=view))

    assert failure["error"] == "invalid_arguments"
    assert f"[ERROR] {message}" in failure["response_metadata"]["messages"]
    assert emu.modal_stack(USER) == []


async def test_a_modal_of_100_blocks_and_the_longest_fields_is_taken(
    emu: SlackEmulator, client: AsyncWebClient
) -> None:
    view = {
        "type": "modal",
        "title": {"type": "plain_text", "text": "t" * 24},
        "close": {"type": "plain_text", "text": "c" * 24},
        "private_metadata": "m" * 3000,
        "callback_id": "c" * 255,
        "blocks": [{"type": "divider"}] * 100,
    }
    opened = await client.views_open(trigger_id=trigger(emu), view=view)
    assert len(opened["view"]["blocks"]) == 100


async def test_home_views_take_no_submit_and_too_large_views_are_refused(
    emu: SlackEmulator, client: AsyncWebClient
) -> None:
    home = {**HOME, "submit": {"type": "plain_text", "text": "Go"}}
    failure = await error_of(client.views_publish(user_id=USER, view=home))
    assert failure["response_metadata"]["messages"] == [
        "[ERROR] not allowed in a home view [json-pointer:/view/submit]"
    ]
    section = {"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3000}}
    huge = {**HOME, "blocks": [section] * 90}
    assert (await error_of(client.views_publish(user_id=USER, view=huge)))[
        "error"
    ] == "view_too_large"


# ---- what users enter


async def test_entered_values_take_slacks_shapes(
    emu: SlackEmulator, client: AsyncWebClient
) -> None:
    radio_options = [
        {"text": {"type": "plain_text", "text": "Now"}, "value": "now"},
        {"text": {"type": "plain_text", "text": "Later"}, "value": "later"},
    ]
    form = modal(
        blocks=[
            *modal()["blocks"],
            {"type": "input", "block_id": "when", "label": {"type": "plain_text", "text": "When"},
             "element": {"type": "radio_buttons", "action_id": "when", "options": radio_options,
                         "initial_option": radio_options[0]}},
            {"type": "input", "block_id": "at", "optional": True, "label": {"type": "plain_text", "text": "At"},
             "element": {"type": "datetimepicker", "action_id": "at"}},
            {"type": "input", "block_id": "day", "optional": True, "label": {"type": "plain_text", "text": "Day"},
             "element": {"type": "datepicker", "action_id": "day"}},
            {"type": "input", "block_id": "time", "optional": True, "label": {"type": "plain_text", "text": "Time"},
             "element": {"type": "timepicker", "action_id": "time"}},
            {"type": "input", "block_id": "why", "optional": True, "label": {"type": "plain_text", "text": "Why"},
             "element": {"type": "plain_text_input", "action_id": "why"}},
        ]
    )  # fmt: skip
    await client.views_open(trigger_id=trigger(emu), view=form)
    untouched = emu.modal(USER)
    assert untouched is not None
    assert untouched.state_values()["when"]["when"]["selected_option"]["value"] == "now"
    assert untouched.state_values()["at"]["at"] == {
        "type": "datetimepicker",
        "selected_date_time": None,
    }
    assert untouched.state_values()["why"]["why"] == {"type": "plain_text_input", "value": None}

    view = emu.enter_values(
        USER,
        {
            "env": "staging",
            "when": "later",
            "at": datetime(2030, 7, 2, 22, tzinfo=UTC),
            ("day", "day"): "2030-07-02",
            "time": "22:00",
            "why": "quarterly",
        },
    )

    values = view.state_values()
    assert values["env"]["env"]["selected_option"]["value"] == "staging"
    assert values["when"]["when"]["selected_option"]["value"] == "later"
    assert values["at"]["at"] == {
        "type": "datetimepicker",
        "selected_date_time": int(datetime(2030, 7, 2, 22, tzinfo=UTC).timestamp()),
    }
    assert values["day"]["day"] == {"type": "datepicker", "selected_date": "2030-07-02"}
    assert values["time"]["time"] == {"type": "timepicker", "selected_time": "22:00"}
    assert values["why"]["why"] == {"type": "plain_text_input", "value": "quarterly"}
    wrong_values: list[tuple[dict[ValueKey, Any], str]] = [
        ({"env": "prod"}, "no option with value 'prod'"),
        ({"day": "2/7/2030"}, "YYYY-MM-DD"),
        ({"time": "25:00"}, "HH:MM"),
        ({"at": datetime(2030, 7, 2, 22)}, "aware datetime"),
        ({"nope": "x"}, "no element 'nope'"),
    ]
    for wrong, message in wrong_values:
        with pytest.raises(ValueError, match=message):
            emu.enter_values(USER, wrong)
