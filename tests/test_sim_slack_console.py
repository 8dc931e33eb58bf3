"""The console's App Home, shortcuts and modals: its JSON API, and the page in a real browser (Debian's
chromium driven by Playwright; those tests are skipped without it, except in CI). A small Bolt app in
the test plays the bot: it publishes a Home tab, opens a form from a button or the shortcut, answers
a submission with errors or a confirmation step, and sends a direct message when confirmed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from aiohttp import web
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.sim.slack import SlackEmulator
from bot.sim.slack_console import API, Persona, SlackConsole
from tests.programs import require

try:
    from playwright.async_api import Page, async_playwright
except ImportError:  # pragma: no cover - depends on the machine
    async_playwright = None  # type: ignore[assignment]

BOT = "xoxb-console-views"
SECRET = "console-views-signing-secret"
ALICE, BOB = "U0ALICE", "U0BOB"
WORK = "C0WORK"
FORM_ID = "sandbox_refresh_form"
SHORTCUT = "sandbox_refresh_shortcut"
ZONE = "Europe/London"
CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]

OPTIONS = [
    {"text": {"type": "plain_text", "text": name}, "value": name} for name in ("staging", "uat")
]
WHEN = [
    {"text": {"type": "plain_text", "text": "Now"}, "value": "now"},
    {"text": {"type": "plain_text", "text": "At a time"}, "value": "at"},
]
HOME: dict[str, Any] = {
    "type": "home",
    "blocks": [
        {"type": "header", "text": {"type": "plain_text", "text": "Sandboxes"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "*staging* is ACTIVE"}},
        {"type": "actions", "block_id": "home", "elements": [
            {"type": "button", "action_id": "sandbox_refresh_open", "style": "primary",
             "text": {"type": "plain_text", "text": "Refresh…"},
             "confirm": {"title": {"type": "plain_text", "text": "Open the form?"},
                         "text": {"type": "plain_text", "text": "It asks which one."},
                         "confirm": {"type": "plain_text", "text": "Open"},
                         "deny": {"type": "plain_text", "text": "Not now"}}},
            {"type": "button", "action_id": "sandbox_home_reload",
             "text": {"type": "plain_text", "text": "Reload"}},
        ]},
    ],
}  # fmt: skip
FORM: dict[str, Any] = {
    "type": "modal",
    "callback_id": FORM_ID,
    "title": {"type": "plain_text", "text": "Refresh a sandbox"},
    "submit": {"type": "plain_text", "text": "Next"},
    "close": {"type": "plain_text", "text": "Cancel"},
    "blocks": [
        {"type": "input", "block_id": "env", "label": {"type": "plain_text", "text": "Environment"},
         "element": {"type": "static_select", "action_id": "env", "options": OPTIONS,
                     "placeholder": {"type": "plain_text", "text": "Choose one"}}},
        {"type": "input", "block_id": "when", "label": {"type": "plain_text", "text": "When"},
         "element": {"type": "radio_buttons", "action_id": "when", "options": WHEN, "initial_option": WHEN[0]}},
        {"type": "input", "block_id": "at", "optional": True, "label": {"type": "plain_text", "text": "At"},
         "element": {"type": "datetimepicker", "action_id": "at"}},
    ],
}  # fmt: skip
CONFIRM: dict[str, Any] = {
    "type": "modal",
    "callback_id": FORM_ID,
    "private_metadata": "confirm",
    "title": {"type": "plain_text", "text": "Confirm the refresh"},
    "submit": {"type": "plain_text", "text": "Refresh"},
    "close": {"type": "plain_text", "text": "Back"},
    "blocks": [
        {"type": "section", "text": {"type": "mrkdwn", "text": "This overwrites *staging*."}}
    ],
}


class StandInBot:
    """The bot's side of the App Home and the refresh form, and what it was sent."""

    def __init__(self, emulator: SlackEmulator) -> None:
        self.app = AsyncApp(
            client=AsyncWebClient(token=BOT, base_url=emulator.api_url), signing_secret=SECRET
        )
        self.bodies: list[dict[str, Any]] = []
        self.url = ""
        app = self.app

        @app.event("app_home_opened")
        async def home(event: dict[str, Any], client: AsyncWebClient) -> None:
            self.bodies.append(event)
            if event["tab"] == "home":
                await client.views_publish(user_id=event["user"], view=HOME)

        @app.action("sandbox_refresh_open")
        @app.shortcut(SHORTCUT)
        async def open_form(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
            await ack()
            self.bodies.append(body)
            await client.views_open(trigger_id=body["trigger_id"], view=FORM)

        @app.action("sandbox_home_reload")
        async def reload(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
            await ack()
            self.bodies.append(body)
            await client.views_publish(user_id=body["user"]["id"], view=HOME)

        @app.view(FORM_ID)
        async def submitted(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
            self.bodies.append(body)
            view = body["view"]
            if view["private_metadata"] == "confirm":
                await ack(response_action="clear")
                await client.chat_postMessage(channel=body["user"]["id"], text="Refresh started")
                return
            env = view["state"]["values"]["env"]["env"]["selected_option"]["value"]
            if env == "uat":
                await ack(response_action="errors", errors={"env": "uat was refreshed 3 days ago"})
                return
            await ack(response_action="update", view=CONFIRM)

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [b for b in self.bodies if b.get("type") == kind]


@pytest.fixture
async def setup() -> AsyncIterator[tuple[SlackConsole, StandInBot]]:
    emulator = SlackEmulator(bot_token=BOT, signing_secret=SECRET, trigger_seconds=60)
    emulator.add_user(ALICE, "alice", tz=ZONE)
    emulator.add_user(BOB, "bob")
    emulator.add_channel(WORK, "work")
    console = SlackConsole(
        emulator,
        personas=[Persona(ALICE, "allowed"), Persona(BOB, "not allowed")],
        channels=[WORK],
    )
    await emulator.start()
    bot = StandInBot(emulator)
    runner = web.AppRunner(bot.app.web_app())
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    bot.url = f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events"
    console.attach(bot.url)
    try:
        yield console, bot
    finally:
        await runner.cleanup()
        await emulator.stop()


async def call(console: SlackConsole, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(console.url.rstrip("/") + API + path, json=body) as response,
    ):
        return response.status, await response.json()


async def poll(console: SlackConsole, params: dict[str, str]) -> Any:
    async with (
        aiohttp.ClientSession() as session,
        session.get(console.url.rstrip("/") + API + "messages", params=params) as response,
    ):
        assert response.status == 200
        return await response.json()


# ---- the JSON API


async def test_the_workspace_names_the_app_and_its_shortcut(
    setup: tuple[SlackConsole, StandInBot],
) -> None:
    console, _ = setup
    async with (
        aiohttp.ClientSession() as session,
        session.get(console.url.rstrip("/") + API + "workspace") as response,
    ):
        workspace = await response.json()
    assert workspace["app"] == {"id": console.emulator.app_id, "name": "sandbox-bot"}
    assert workspace["shortcuts"] == [
        {
            "callback_id": SHORTCUT,
            "name": "Refresh a sandbox",
            "description": "Start a refresh of a test environment",
        }
    ]


async def test_opening_the_app_sends_the_event_and_shows_the_home_tab(
    setup: tuple[SlackConsole, StandInBot],
) -> None:
    console, bot = setup
    status, answer = await call(console, "app", {"user": ALICE, "tab": "home"})

    assert (status, answer["ok"]) == (200, True)
    dm = answer["channel"]
    assert dm == console.emulator.dm_channel(ALICE)
    [event] = [b for b in bot.bodies if b.get("type") == "app_home_opened"]
    assert (event["tab"], event["channel"]) == ("home", dm)
    await console.emulator.wait_for_home(ALICE)
    shown = await poll(console, {"channel": dm, "user": ALICE})
    assert shown["home"]["blocks"][0]["type"] == "header"
    assert shown["modals"] == []
    # someone else's direct message channel is not one the console shows this user
    refused = await call(console, "app", {"user": ALICE, "tab": "elsewhere"})
    assert refused[0] == 400
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            console.url.rstrip("/") + API + "messages", params={"channel": dm, "user": BOB}
        ) as response,
    ):
        assert response.status == 400


async def test_the_refresh_form_from_home_through_errors_to_confirmation(
    setup: tuple[SlackConsole, StandInBot],
) -> None:
    console, bot = setup
    emulator = console.emulator
    await call(console, "app", {"user": ALICE, "tab": "home"})
    home = await emulator.wait_for_home(ALICE)

    status, clicked = await call(
        console,
        "view_action",
        {
            "user": ALICE,
            "view_id": home.id,
            "block_id": "home",
            "action_id": "sandbox_refresh_open",
        },
    )
    assert (status, clicked["ok"]) == (200, True)
    form = await emulator.wait_for_modal(ALICE)

    nothing = await call(console, "view_submit", {"user": ALICE, "view_id": form.id, "values": {}})
    assert nothing[1]["sent"] is False and nothing[1]["errors"] == {
        "env": "Please complete this required field."
    }
    refused = await call(
        console,
        "view_submit",
        {"user": ALICE, "view_id": form.id, "values": {"env": {"env": "uat"}}},
    )
    assert refused[1]["response_action"] == "errors"
    shown = await poll(console, {"channel": WORK, "user": ALICE})
    assert shown["modals"][0]["errors"] == {"env": "uat was refreshed 3 days ago"}

    at = int(datetime(2030, 7, 2, 22, tzinfo=ZoneInfo(ZONE)).timestamp())
    values = {"env": {"env": "staging"}, "when": {"when": "at"}, "at": {"at": at}}
    step = await call(console, "view_submit", {"user": ALICE, "view_id": form.id, "values": values})
    assert step[1]["response_action"] == "update"
    submitted = bot.of_type("view_submission")[-1]["view"]["state"]["values"]
    assert submitted["at"]["at"] == {"type": "datetimepicker", "selected_date_time": at}
    confirm = emulator.modal(ALICE)
    assert confirm is not None and confirm.title == "Confirm the refresh"

    done = await call(console, "view_submit", {"user": ALICE, "view_id": form.id, "values": {}})
    assert (done[1]["response_action"], done[1]["closed"]) == ("clear", True)
    message = await emulator.wait_for_message(ALICE, lambda m: m.text == "Refresh started")
    assert message.channel == emulator.dm_channel(ALICE)


async def test_shortcut_close_and_bad_requests(setup: tuple[SlackConsole, StandInBot]) -> None:
    console, _ = setup
    emulator = console.emulator
    status, answer = await call(console, "shortcut", {"user": BOB, "callback_id": SHORTCUT})
    assert (status, answer["ok"]) == (200, True)
    form = await emulator.wait_for_modal(BOB)

    assert (await call(console, "shortcut", {"user": BOB, "callback_id": "nope"}))[0] == 404
    assert (await call(console, "view_close", {"user": ALICE, "view_id": form.id}))[0] == 404
    bad = await call(
        console,
        "view_submit",
        {"user": BOB, "view_id": form.id, "values": {"env": {"env": "prod"}}},
    )
    assert bad[0] == 400 and "no option" in bad[1]["error"]
    status, closed = await call(console, "view_close", {"user": BOB, "view_id": form.id})
    assert (status, closed["closed"]) == (200, [form.id])
    assert emulator.modal_stack(BOB) == []


async def test_a_view_change_wakes_the_long_poll(setup: tuple[SlackConsole, StandInBot]) -> None:
    console, _ = setup
    before = await poll(console, {"channel": WORK, "user": ALICE})

    waiting = asyncio.ensure_future(
        poll(console, {"channel": WORK, "user": ALICE, "after": str(before["version"])})
    )
    await console.emulator.wait_for(lambda: console.long_polls, 10)
    await call(console, "app", {"user": ALICE, "tab": "home"})

    woken = await asyncio.wait_for(waiting, 20)
    assert woken["version"] > before["version"] and woken["home"] is not None


# ---- the page in a browser


@pytest.fixture
async def page(tmp_path: Path) -> AsyncIterator[tuple[Page, list[str]]]:
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=FLAGS,
            viewport={"width": 1280, "height": 900},
            locale="en-GB",
            timezone_id=ZONE,
        )
        try:
            browser_page = context.pages[0] if context.pages else await context.new_page()
            browser_page.set_default_timeout(10_000)
            errors: list[str] = []
            browser_page.on("pageerror", lambda error: errors.append(str(error)))
            yield browser_page, errors
        finally:
            await context.close()


browser = require(
    async_playwright is not None and CHROMIUM.exists(),
    "Debian's chromium and Playwright",
    "`apt-get install -y chromium` (Playwright comes with the dev dependencies)",
)


@browser
async def test_home_tab_modal_errors_confirmation_and_the_dm_in_a_browser(
    setup: tuple[SlackConsole, StandInBot], page: tuple[Page, list[str]]
) -> None:
    console, bot = setup
    browser_page, errors = page
    await browser_page.goto(console.url)
    await browser_page.locator("#connection.live").wait_for()

    await (
        browser_page.get_by_role("navigation", name="Apps")
        .get_by_role("button", name="sandbox-bot")
        .click()
    )
    home = browser_page.get_by_role("region", name="Home")
    await home.get_by_role("heading", name="Sandboxes").wait_for()
    await home.get_by_role("button", name="Refresh…").click()
    confirm = browser_page.get_by_role("dialog", name="Open the form?")
    await confirm.get_by_role("button", name="Open").click()

    modal = browser_page.get_by_role("dialog", name="Refresh a sandbox")
    await modal.wait_for()
    await modal.get_by_label("Environment").select_option("uat")
    await modal.get_by_role("button", name="Next").click()
    await modal.get_by_role("alert").get_by_text("uat was refreshed 3 days ago").wait_for()

    await modal.get_by_label("Environment").select_option("staging")
    await modal.get_by_role("radio", name="At a time").check()
    await modal.get_by_label("At", exact=True).fill("2030-07-02T22:00")
    await modal.get_by_role("button", name="Next").click()
    step = browser_page.get_by_role("dialog", name="Confirm the refresh")
    await step.get_by_text("This overwrites").wait_for()
    values = bot.of_type("view_submission")[-1]["view"]["state"]["values"]
    assert values["env"]["env"]["selected_option"]["value"] == "staging"
    assert values["when"]["when"]["selected_option"]["value"] == "at"
    at = int(datetime(2030, 7, 2, 22, tzinfo=ZoneInfo(ZONE)).timestamp())
    assert values["at"]["at"]["selected_date_time"] == at

    await step.get_by_role("button", name="Refresh").click()
    await step.wait_for(state="hidden")
    await browser_page.get_by_role("tab", name="Messages").click()
    log = browser_page.get_by_role("log", name="Messages")
    await log.get_by_text("Refresh started").wait_for()
    assert not errors


@browser
async def test_the_shortcut_menu_opens_the_form_and_cancel_closes_it(
    setup: tuple[SlackConsole, StandInBot], page: tuple[Page, list[str]]
) -> None:
    console, bot = setup
    browser_page, errors = page
    await browser_page.goto(console.url)
    await browser_page.locator("#connection.live").wait_for()

    await browser_page.get_by_role("button", name="Shortcuts").click()
    await browser_page.get_by_role("menuitem", name="Refresh a sandbox").click()
    modal = browser_page.get_by_role("dialog", name="Refresh a sandbox")
    await modal.wait_for()
    [shortcut] = bot.of_type("shortcut")
    assert shortcut["callback_id"] == SHORTCUT and shortcut["user"]["id"] == ALICE

    await modal.get_by_role("button", name="Cancel").click()
    await modal.wait_for(state="hidden")
    await console.emulator.wait_for_no_modal(ALICE)
    assert console.emulator.modal_stack(ALICE) == []
    assert not errors
