"""manifest.yml matches the code: command, interactivity, scopes, request URLs and the Socket Mode switch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bot.commands import COMMAND, SUBCOMMANDS, usage_hint
from bot.runtime import EVENTS_PATH

MANIFEST = Path(__file__).resolve().parent.parent / "manifest.yml"


def load() -> dict[str, Any]:
    data = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_slash_command_is_the_one_the_bot_listens_to() -> None:
    (command,) = load()["features"]["slash_commands"]
    assert command["command"] == COMMAND
    assert command["url"].endswith(EVENTS_PATH)
    assert (
        command["should_escape"] is False
    )  # the parser expects raw <@U…> forms to refuse them by name
    for sub in SUBCOMMANDS:
        assert sub in command["usage_hint"]
    assert command["usage_hint"] == usage_hint()  # derived from the subcommands' definitions
    assert len(command["description"]) <= 100


def test_interactivity_points_at_the_events_endpoint() -> None:
    interactivity = load()["settings"]["interactivity"]
    assert interactivity["is_enabled"] is True
    assert interactivity["request_url"].endswith(EVENTS_PATH)


def test_scopes_cover_every_web_api_method_the_bot_calls() -> None:
    scopes = set(load()["oauth_config"]["scopes"]["bot"])
    # chat.postMessage/chat.update: chat:write; posting where not a member: chat:write.public;
    # usergroups.users.list: usergroups:read; the slash command: commands; the watch reads its notification
    # cards back after a restart with conversations.history: channels:history and groups:history; users.info
    # (SANDBOX_VIEWER_USERS=*, the form's time zone): users:read. views.publish/open/update need no scope, and a
    # direct message to a user ID is the app's own conversation (chat:write).
    assert scopes == {
        "commands",
        "chat:write",
        "chat:write.public",
        "usergroups:read",
        "channels:history",
        "groups:history",
        "users:read",
    }


def test_the_home_tab_its_event_and_the_shortcut_are_the_ones_the_bot_handles() -> None:
    from bot.view_blocks import SHORTCUT_CALLBACK

    data = load()
    assert data["features"]["app_home"]["home_tab_enabled"] is True
    events = data["settings"]["event_subscriptions"]
    assert events["bot_events"] == ["app_home_opened"]
    assert events["request_url"].endswith(EVENTS_PATH)
    (shortcut,) = data["features"]["shortcuts"]
    assert shortcut["type"] == "global" and shortcut["callback_id"] == SHORTCUT_CALLBACK
    assert shortcut["name"] == "Refresh a sandbox"
    assert len(shortcut["description"]) <= 150
