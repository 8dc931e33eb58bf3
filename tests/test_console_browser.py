"""The demo console in a real browser: Debian's chromium, headless, driven by Playwright.

Skipped when either is missing, except in CI, where that fails the run. To run it: `apt-get install -y
chromium` (Playwright, from the dev dependencies, drives the system chromium; it downloads no browser of its
own). With UPDATE_SCREENSHOT=1, the allowed user's tests save the screenshots the README shows:
docs/console.png (a job card and its thread) and docs/home.png (the operator's Home tab).

The demo runs on the real clock: the tests wait for what the page shows (Playwright's waits, fed by the
console's long poll), never for a fixed time.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.demo import ALIASES, ALLOWED_USER, GROUP, GROUP_HANDLE, OUTSIDER, WORK_CHANNEL, Demo
from bot.sim.slack_state import Message
from bot.sim.zuora_seed import ENV_QA, ENV_STAGING, ENV_TRAINING, JOB_CANCELLABLE
from bot.sim.zuora_state import Job, snapshot
from tests.programs import require

try:
    from playwright.async_api import Locator, Page, async_playwright, expect
except ImportError:  # pragma: no cover - depends on the machine
    async_playwright = None  # type: ignore[assignment]

CHROMIUM = Path("/usr/bin/chromium")
DOCS = Path(__file__).resolve().parent.parent / "docs"
SCREENSHOT = DOCS / "console.png"
HOME_SCREENSHOT = DOCS / "home.png"
BROWSER_ZONE = "America/New_York"
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
            timezone_id=BROWSER_ZONE,
        )
        try:
            page = context.pages[0] if context.pages else await context.new_page()
            page.set_default_timeout(WAIT_MS)
            expect.set_options(timeout=WAIT_MS)
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
    await page.screenshot(path=str(_screenshot_path(SCREENSHOT)))
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


# ---- the app: its Home tab, the refresh form, reminders


async def open_home(page: Page) -> Locator:
    """The app's Home tab, once the bot has published it."""
    await page.get_by_role("navigation", name="Apps").get_by_role("button").click()
    home = page.get_by_role("region", name="Home")
    await home.get_by_role("heading").first.wait_for()
    return home


async def open_channel(page: Page, name: str) -> Locator:
    channels = page.get_by_role("navigation", name="Channels")
    await channels.get_by_role("button", name=re.compile(f"# {name}")).click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(f"# {name}")
    return page.get_by_role("log", name="Messages")


def modal_footer(dialog: Locator, name: str) -> Locator:
    """A button of the modal's footer (its close button is named like the X in the header)."""
    return dialog.get_by_role("button", name=name, exact=True).last


def jobs_of(demo: Demo, env_id: str) -> list[Job]:
    return demo.zuora.state.jobs(env_id)


def shown_time(text: str) -> str:
    return text.replace("\u202f", " ")


async def test_operator_sees_the_home_tab_and_cancels_a_job_from_it(
    demo: Demo, browser_page: tuple[Page, list[str]]
) -> None:
    page, errors = browser_page
    await open_console(page, demo.url)
    home = await open_home(page)
    await expect(home.get_by_role("heading")).to_have_text("Zuora Central Sandboxes")
    staging_job = home.locator(".b-section").filter(has_text=JOB_CANCELLABLE)
    await staging_job.wait_for()

    # Every environment, with Zuora's name for it, and its active and scheduled jobs.
    text = await home.inner_text()
    for alias, env_id in ALIASES.items():
        assert alias in text and env_id in text
        assert demo.zuora.state.environments[env_id].tenant_name in text
    assert "EXPORTING" in await staging_job.inner_text()
    [training] = [j for j in jobs_of(demo, ENV_TRAINING) if j.is_scheduled]
    scheduled = home.locator(".b-section").filter(has_text=training.id)
    await expect(scheduled).to_contain_text("SCHEDULED")
    await expect(scheduled).to_contain_text("scheduled for")
    for name in ("Refresh…", "Reload"):
        await expect(home.get_by_role("button", name=name)).to_be_visible()
    await expect(staging_job.get_by_role("button", name="Cancel job")).to_be_visible()
    await expect(scheduled.get_by_role("button", name="Cancel job")).to_be_visible()
    await page.screenshot(path=str(_screenshot_path(HOME_SCREENSHOT)))

    await staging_job.get_by_role("button", name="Cancel job").click()
    dialog = page.get_by_role("dialog", name="Cancel this refresh?")
    await dialog.wait_for()
    assert JOB_CANCELLABLE in await dialog.inner_text()
    await dialog.get_by_role("button", name="Cancel job").click()
    await dialog.wait_for(state="hidden")

    # The Home tab is published again with the job's new state, and no Cancel job for it.
    await expect(staging_job).to_contain_text("CANCELLING")
    await expect(staging_job.get_by_role("button", name="Cancel job")).to_have_count(0)
    assert demo.zuora.job(ENV_STAGING, JOB_CANCELLABLE)["status"] in ("CANCELLING", "CANCELLED")
    await expect(scheduled.get_by_role("button", name="Cancel job")).to_be_visible()
    await expect(page.locator("#composer-status")).to_have_text("")
    assert not errors


async def test_operator_schedules_a_refresh_through_the_form(
    demo: Demo, browser_page: tuple[Page, list[str]]
) -> None:
    page, errors = browser_page
    state = demo.zuora.state
    qa = state.environments[ENV_QA]
    allowed_from = state.next_refresh_time(qa)
    # The seed's qa may be refreshed: nothing runs there and its last refresh is over 28 days old.
    assert state.active_job(qa) is None and allowed_from is not None
    assert allowed_from <= state.clock.now()
    before = {job.id for job in jobs_of(demo, ENV_QA)}

    await open_console(page, demo.url)
    home = await open_home(page)
    await home.get_by_role("button", name="Refresh…").click()
    form = page.get_by_role("dialog", name="Refresh a sandbox")
    # Brought up to date once Zuora and users.info answered: times are in the page's own zone.
    await form.get_by_text(f"in your time zone ({BROWSER_ZONE})").wait_for()

    # Three days ahead of the demo's clock, at 10:00 in the browser's zone.
    zone = ZoneInfo(BROWSER_ZONE)
    day = (state.clock.now() + timedelta(days=3)).astimezone(zone)
    at = datetime(day.year, day.month, day.day, 10, 0, tzinfo=zone)
    await form.get_by_label("Sandbox", exact=True).select_option(label="qa · Acme QA")
    await form.get_by_role("radio", name="At the time below").check()
    await form.get_by_label("Time", exact=True).fill(at.strftime("%Y-%m-%dT%H:%M"))
    await modal_footer(form, "Next").click()

    confirm = page.get_by_role("dialog", name="Confirm the refresh")
    await confirm.wait_for()
    text = await confirm.inner_text()
    assert f"Refresh qa ({ENV_QA}) at" in text
    assert "replaces everything in this sandbox" in text  # what will be overwritten
    assert "Central Sandbox" in text and "one refresh every 28 days" in text
    when = shown_time(await confirm.locator(".slack-date").first.inner_text())
    assert when == f"{at:%b} {at.day}, {at.year} 10:00 AM"
    assert {job.id for job in jobs_of(demo, ENV_QA)} == before  # nothing started yet

    await modal_footer(confirm, "Schedule refresh").click()
    done = page.get_by_role("dialog", name="Refresh a sandbox")
    await done.get_by_text("scheduled for").wait_for()
    [job] = [j for j in jobs_of(demo, ENV_QA) if j.id not in before]
    assert job.scheduled_time == at
    assert snapshot(job, state.clock.now()).status == "SCHEDULED"
    text = await done.inner_text()
    assert job.id in text and "SCHEDULED" in text and "#sandbox-audit" in text
    await modal_footer(done, "Close").click()
    await done.wait_for(state="hidden")

    # Its card in the notification channel, with who scheduled it in its thread.
    audit = await open_channel(page, "sandbox-audit")
    card = (
        audit.get_by_role("article")
        .filter(has_text="Refresh job · SCHEDULED")
        .filter(has_text=job.id)
    )
    await card.wait_for()
    assert "Scheduled for" in await card.inner_text()
    await (
        audit.get_by_role("article")
        .filter(has_text=re.compile(f"@alice scheduled job {job.id}"))
        .wait_for()
    )
    # And in the requester's direct messages with the bot, where the form was opened from the Home tab.
    await page.get_by_role("navigation", name="Apps").get_by_role("button").click()
    await page.get_by_role("tab", name="Messages").click()
    dm = page.get_by_role("log", name="Messages")
    await dm.get_by_role("article").filter(has_text=job.id).first.wait_for()
    assert [j.id for j in jobs_of(demo, ENV_QA) if j.id not in before] == [job.id]
    assert not errors


async def test_the_demos_scheduled_refresh_is_reminded_in_the_audit_channel(
    demo: Demo, browser_page: tuple[Page, list[str]]
) -> None:
    page, errors = browser_page
    await open_console(page, demo.url)
    audit = await open_channel(page, "sandbox-audit")
    reminder = audit.get_by_role("article").filter(has_text="Scheduled refresh: training").first
    # The catch-up reminder (its 24h and 1h lead times passed when it was scheduled): at the first
    # watch round.
    await reminder.wait_for(timeout=30_000)
    [job] = [j for j in jobs_of(demo, ENV_TRAINING) if j.is_scheduled]

    text = await reminder.inner_text()
    assert "Acme Training" in text and "will be overwritten" in text and job.id in text
    assert "reminder 1d and 1h before it starts" in text
    assert f"@{GROUP_HANDLE}" in await reminder.locator(".mention").all_inner_texts()
    assert "Also sent to the channel" in text
    await expect(reminder.get_by_role("button", name="Cancel job")).to_be_visible()

    # A reply in the thread of the job's card: the card it is shown under.
    assert "reply" in (await reminder.get_attribute("class") or "")
    card = reminder.locator("xpath=preceding-sibling::article[not(contains(@class, 'reply'))][1]")
    card_text = await card.inner_text()
    assert "Refresh job · SCHEDULED" in card_text and job.id in card_text
    assert f"@{GROUP_HANDLE}" in card_text  # a job started outside the bot: the team is told
    assert not errors


async def test_a_non_operator_gets_a_form_that_names_the_permission(
    demo: Demo, browser_page: tuple[Page, list[str]]
) -> None:
    page, errors = browser_page
    await open_console(page, demo.url)
    await page.get_by_role("radio", name=re.compile("carol")).check()
    await page.wait_for_url(re.compile(f"user={OUTSIDER}"))
    jobs = {env_id: len(jobs_of(demo, env_id)) for env_id in ALIASES.values()}

    await page.get_by_role("button", name="Shortcuts").click()
    await page.get_by_role("menuitem", name="Refresh a sandbox").click()
    refused = page.get_by_role("dialog", name="Refresh a sandbox")
    await refused.get_by_text("Refresh Central Sandbox").wait_for()
    assert f"@{GROUP_HANDLE}" in await refused.inner_text()  # whom to ask
    await expect(refused.get_by_role("combobox")).to_have_count(0)
    await expect(refused.get_by_role("button", name="Next")).to_have_count(0)
    await modal_footer(refused, "Close").click()
    await refused.wait_for(state="hidden")
    assert demo.slack.modal_stack(OUTSIDER) == []
    assert {env_id: len(jobs_of(demo, env_id)) for env_id in ALIASES.values()} == jobs
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


def _screenshot_path(picture: Path) -> Path:
    """`picture` (under docs/) when UPDATE_SCREENSHOT=1 (to refresh the README's pictures), else a temp
    file, so that running the tests leaves the work tree clean."""
    if os.environ.get("UPDATE_SCREENSHOT") == "1":
        picture.parent.mkdir(parents=True, exist_ok=True)
        return picture
    return Path(tempfile.gettempdir()) / f"sandbox-bot-{picture.stem}-{os.getpid()}.png"
