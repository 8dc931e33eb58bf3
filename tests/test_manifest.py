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
    # cards back after a restart with conversations.history: channels:history and groups:history.
    assert scopes == {
        "commands",
        "chat:write",
        "chat:write.public",
        "usergroups:read",
        "channels:history",
        "groups:history",
    }


def test_socket_mode_flag_and_bot_user() -> None:
    data = load()
    # HTTP mode by default: the request URLs are the way in; Socket Mode is the operator's switch.
    assert data["settings"]["socket_mode_enabled"] is False
    assert data["features"]["bot_user"]["display_name"]
    assert data["_metadata"]["major_version"] == 1
