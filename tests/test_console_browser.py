"""The demo console in a real browser: Debian's chromium, headless, driven by Playwright.

Skipped when either is missing, except in CI, where that fails the run. To run it: `apt-get install -y
chromium` (Playwright, from the dev dependencies, drives the system chromium; it downloads no browser of its
own). The allowed user's test saves
the screenshot used by the README to docs/console.png.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.demo import ALLOWED_USER, GROUP, OUTSIDER, WORK_CHANNEL, Demo
from bot.sim.slack_state import Message
from bot.sim.zuora_seed import ENV_STAGING, JOB_CANCELLABLE
from tests.programs import require

try:
    from playwright.async_api import Page, async_playwright
except ImportError:  # pragma: no cover - depends on the machine
    async_playwright = None  # type: ignore[assignment]

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "console.png"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
WAIT_MS = 10_000

pytestmark = require(
    async_playwright is not None and CHROMIUM.exists(),
    "Debian's chromium and Playwright",
    "`apt-get install -y chromium` (Playwright comes with the dev dependencies)",
)


@pytest.fixture
async def demo() -> AsyncIterator[Demo]:
    async with Demo(poll_seconds=1.0) as running:
        yield running


@pytest.fixture
async def browser_page(tmp_path: Path) -> AsyncIterator[tuple[Page, list[str]]]:
    """A page in a fresh chromium profile, and the page's script errors (there should be none)."""
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=FLAGS,
            viewport={"width": 1280, "height": 1000},
            locale="en-US",
            timezone_id="America/New_York",
        )
        try:
            page = context.pages[0] if context.pages else await context.new_page()
            page.set_default_timeout(WAIT_MS)
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            yield page, errors
        finally:
            await context.close()


async def open_console(page: Page, url: str) -> None:
    await page.goto(url)
    await page.locator("#connection.live").wait_for()


async def send(page: Page, text: str) -> None:
    box = page.get_by_role("textbox", name="Command")
    await box.fill(text)
    await box.press("Enter")


async def test_allowed_user_lists_jobs_cancels_one_and_watches_the_card(
    demo: Demo, browser_page: tuple[Page, list[str]]
) -> None:
    page, errors = browser_page
    await open_console(page, demo.url)
    messages = page.get_by_role("log", name="Messages")
    cancel = messages.get_by_role("button", name="Cancel job")

    await send(page, "/sandbox jobs staging")
    await cancel.first.wait_for()
    assert await cancel.count() == 1
    await cancel.click()

    dialog = page.get_by_role("dialog")
    await dialog.wait_for()
    assert await dialog.get_by_role("heading").inner_text() == "Cancel this refresh?"
    assert JOB_CANCELLABLE in await dialog.inner_text()
    await dialog.get_by_role("button", name="Keep it running").click()
    await dialog.wait_for(state="hidden")
    assert demo.zuora.job(ENV_STAGING, JOB_CANCELLABLE)["status"] == "EXPORTING"

    await cancel.click()
    await dialog.get_by_role("button", name="Cancel job").click()
    await messages.get_by_text(re.compile(r"job · CANCELLING")).first.wait_for()
    assert demo.zuora.job(ENV_STAGING, JOB_CANCELLABLE)["status"] in ("CANCELLING", "CANCELLED")

    # The job card follows the job to its end.
    await messages.get_by_text(re.compile(r"job · CANCELLED")).first.wait_for(timeout=20_000)
    await page.screenshot(path=str(_screenshot_path()))
    assert not errors


async def test_not_allowed_user_is_refused(
    demo: Demo, browser_page: tuple[Page, list[str]]
) -> None:
    page, errors = browser_page
    await open_console(page, demo.url)
    await page.get_by_role("radio", name=re.compile("carol")).check()
    await page.wait_for_url(re.compile(f"user={OUTSIDER}"))

    await send(page, f"/sandbox cancel staging {JOB_CANCELLABLE}")
    refusal = page.get_by_role("article", name=re.compile(r"only visible to you"))
    await refusal.get_by_text("you do not have the").wait_for()
    text = await refusal.inner_text()
    assert "@carol" in text and "Refresh Central Sandbox" in text
    assert "@platform-team" in text  # the user group that grants it, shown by its handle
    assert "Only visible to you" in text
    assert demo.zuora.job(ENV_STAGING, JOB_CANCELLABLE)["status"] == "EXPORTING"

    await page.get_by_role("radio", name=re.compile("alice")).check()
    await page.get_by_text("No messages here yet").wait_for()  # carol's refusal is hers alone
    assert not errors


# 2026-03-02 02:30 UTC is still March 1st, 9:30 PM in New York (the browser's zone here).
DATE_EPOCH = int(datetime(2026, 3, 2, 2, 30, tzinfo=UTC).timestamp())
MRKDWN = (
    f"*bold* _italic_ ~gone~ `a < b` <@{ALLOWED_USER}> <!subteam^{GROUP}> "
    f"<!date^{DATE_EPOCH}^{{date_num}} {{time}}|2026-03-02 02:30 UTC> :white_check_mark: "
    "&lt;img src=x onerror=alert(1)&gt; <https://example.com/x|a link> <javascript:alert(1)|bad>\n"
    "&gt; quoted\n```pre *not bold*```"
)
BLOCKS: list[dict[str, Any]] = [
    {"type": "header", "text": {"type": "plain_text", "text": "Header :rocket:", "emoji": True}},
    {"type": "section", "text": {"type": "mrkdwn", "text": MRKDWN}},
    {"type": "divider"},
    {"type": "context", "elements": [{"type": "plain_text", "text": "<b>plain</b>"}]},
    {
        "type": "actions",
        "elements": [
            {"type": "button", "action_id": "a", "style": "primary", "text": {"type": "plain_text", "text": "Go"}},
            {"type": "button", "action_id": "b", "style": "danger", "text": {"type": "plain_text", "text": "Stop"}},
        ],
    },
]  # fmt: skip


async def test_block_kit_and_mrkdwn_render_as_text_never_as_html(
    demo: Demo, browser_page: tuple[Page, list[str]]
) -> None:
    page, errors = browser_page
    ws = demo.slack.workspace
    ws.add_message(Message(WORK_CHANNEL, ws.next_ts(), demo.slack.bot.user_id, "fallback", BLOCKS))
    await open_console(page, demo.url)
    card = page.get_by_role("article").first
    await card.wait_for()

    assert await card.locator("b").first.inner_text() == "bold"
    assert await card.locator("i").first.inner_text() == "italic"
    assert await card.locator("s").first.inner_text() == "gone"
    assert await card.locator("code").first.inner_text() == "a < b"
    assert await card.locator("pre").inner_text() == "pre *not bold*"
    assert await card.locator("blockquote").inner_text() == "quoted"
    mentions = await card.locator(".mention").all_inner_texts()
    assert mentions == ["@alice", "@platform-team"]
    date = (await card.locator(".slack-date").inner_text()).replace("\u202f", " ")
    assert date == "2026-03-01 9:30 PM"
    text = await card.inner_text()
    assert "✅" in text and "🚀" in text
    assert "<img src=x onerror=alert(1)>" in text and "<b>plain</b>" in text
    assert await card.locator("img").count() == 0
    links = card.locator("a")
    assert await links.count() == 1
    assert await links.get_attribute("href") == "https://example.com/x"
    assert await card.locator("hr").count() == 1
    assert await card.get_by_role("heading").inner_text() == "Header 🚀"
    go_style = await card.get_by_role("button", name="Go").get_attribute("class")
    stop_style = await card.get_by_role("button", name="Stop").get_attribute("class")
    assert go_style is not None and "btn-primary" in go_style
    assert stop_style is not None and "btn-danger" in stop_style
    assert not errors


def _screenshot_path() -> Path:
    """docs/console.png when UPDATE_SCREENSHOT=1 (to refresh the README's picture), else a temp file, so
    that running the tests leaves the work tree clean."""
    if os.environ.get("UPDATE_SCREENSHOT") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        return SCREENSHOT
    return Path(tempfile.gettempdir()) / f"sandbox-bot-console-{os.getpid()}.png"
