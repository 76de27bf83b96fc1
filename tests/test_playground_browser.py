"""The playground in a real browser: headless Chromium (Debian's, driven by Playwright) uses the
page as a person would. A manager invites, an influencer opens the link, answers the checks, logs
in through the sandbox dialog granting everything and is told it worked while the manager is
told too; a second influencer declines a permission and sees exactly why, with Try again.

Without Playwright or /usr/bin/chromium the test is skipped with a red banner, unless
REQUIRE_BROWSER=1 (as in .ci/run): then it fails. Screenshots go to artifacts/playground/ (not in
git); UPDATE_SCREENSHOTS=1 also refreshes the README's docs/img/playground.png.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from playground.composition import Playground
from tests.test_playground import start_playground

if TYPE_CHECKING:
    from playwright.async_api import Browser, Locator, Page

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
# The browser cannot be downloaded here: Debian's chromium, with everything that would phone home
# switched off.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = ROOT / "artifacts" / "playground"
README_SHOT = ROOT / "docs" / "img" / "playground.png"
REQUIRE_BROWSER = os.environ.get("REQUIRE_BROWSER") == "1"
WAIT_MS = 20_000


def _missing() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "the Python package playwright is not installed (pip install -e '.[test]')"
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (apt-get install -y chromium)"
    return None


class _NotTestedBanner:
    """A red section at the end of the run, like the PostgreSQL one: a skip is easy to miss."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        terminalreporter.section("BROWSER NOT TESTED", sep="!", red=True, bold=True)
        terminalreporter.write_line(
            f"The playground's browser test was skipped: {self.reason}. "
            "Set REQUIRE_BROWSER=1 to make this a failure.",
            red=True,
        )


@pytest.fixture
async def browser(request: pytest.FixtureRequest) -> AsyncIterator[Browser]:
    reason = _missing()
    if reason is not None:
        if REQUIRE_BROWSER:
            pytest.fail(f"{reason}, but REQUIRE_BROWSER=1")
        plugins = request.config.pluginmanager
        if not plugins.has_plugin("playground-browser-banner"):
            plugins.register(_NotTestedBanner(reason), "playground-browser-banner")
        pytest.skip(f"BROWSER NOT TESTED: {reason}")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def playground() -> AsyncIterator[Playground]:
    started = await start_playground()
    try:
        yield started
    finally:
        await started.stop()


def _bot_message(chat: Locator, text: str) -> Locator:
    return chat.locator(".msg.bot").filter(has_text=text).last


async def _answer_checks(chat: Locator) -> Locator:
    """Yes to both checks; returns the login button."""
    from playwright.async_api import expect

    # Both ways in are open in the playground: "Yes, it is" (linked to a Page) is Facebook's.
    await (
        _bot_message(chat, "Facebook Page you manage?")
        .locator(".kb", has_text="Yes, it is")
        .click()
    )
    for step in ("Step 1 of 3", "Step 2 of 3"):
        question = _bot_message(chat, step)
        await question.locator(".kb", has_text="Yes").click()
    login = _bot_message(chat, "Step 3 of 3").locator(".kb.url", has_text="Facebook")
    await expect(login).to_be_visible()
    return login


async def _open_invitation(page: Page, manager: Locator, influencer: Locator, handle: str) -> None:
    """The manager invites; clicking the link opens the influencer's chat with /start."""
    from playwright.async_api import expect

    composer = manager.locator(".composer input")
    await composer.fill(f"/invite @{handle}")
    await composer.press("Enter")
    link = _bot_message(manager, f"Invitation for @{handle}").locator("a", has_text="t.me/")
    await expect(link).to_be_visible()
    href = await link.get_attribute("href")
    assert href is not None and href.startswith("https://t.me/connect_playground_bot?start=")
    await link.click()
    token = href.split("?start=", 1)[1]
    await expect(influencer.locator(".msg.person").last).to_have_text(
        re.compile(rf"/start {re.escape(token)}")
    )


async def _shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / name))


async def test_invite_connect_and_decline_in_a_real_browser(
    browser: Browser, playground: Playground
) -> None:
    from playwright.async_api import expect

    expect.set_options(timeout=WAIT_MS)
    context = await browser.new_context(viewport={"width": 1400, "height": 900}, locale="en-GB")
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(playground.url)
    await expect(page.locator("#status")).to_have_text("live")
    manager = page.locator('.phone[data-chat="manager"]')
    influencer = page.locator('.phone[data-chat="influencer"]')

    # Anna: invited, checks answered, everything granted.
    await _open_invitation(page, manager, influencer, "anna.bakes")
    await expect(_bot_message(influencer, "Maria")).to_contain_text("@anna.bakes")
    # Her first /invite made Maria the brand's manager: her "/" menu now offers the manager's
    # commands; Anna's still only the influencer's.
    for chat, present, absent in (
        (manager, ("/invite", "/list", "/manager_link"), "/forget"),
        (influencer, ("/start", "/forget"), "/invite"),
    ):
        await chat.locator(".menu-button").click()
        menu = chat.locator(".menu-list")
        await expect(menu).to_be_visible()
        for command in present:
            await expect(menu.locator(".command-name", has_text=command)).to_have_count(1)
        await expect(menu.locator(".command-name", has_text=absent)).to_have_count(0)
        await chat.locator(".menu-button").click()
        await expect(menu).to_be_hidden()
    login = await _answer_checks(influencer)
    async with page.expect_popup() as opened:
        await login.click()
    dialog = await opened.value
    await expect(dialog.locator(".ribbon")).to_contain_text("SANDBOX")
    await expect(dialog.locator("h1")).to_have_text("Connect Bot is requesting access")
    await dialog.screenshot(path=str(SHOTS / "sandbox-dialog.png"), full_page=True)
    await dialog.get_by_role("button", name="Continue as Anna").click()
    await dialog.wait_for_url(f"{playground.bot.settings.public_url}/oauth/callback*")
    await expect(dialog.locator("h1")).to_be_visible()
    assert "Connected" in await dialog.locator("main").inner_text()
    await dialog.close()

    told = _bot_message(influencer, "Connected!")
    await expect(told).to_contain_text("12,480 followers")
    await expect(told.locator("b").first).to_have_text("Connected!")  # Telegram HTML, rendered
    await expect(_bot_message(manager, "is connected")).to_contain_text("@anna.bakes")
    await _shot(page, "connected.png")
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        README_SHOT.parent.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(README_SHOT))

    # Ben: a second influencer, who unticks the insights permission.
    await page.get_by_role("button", name="+ New influencer").click()
    # The click's request reaches the playground a moment later: Ben exists there once the page
    # lists him (it lists what the playground answered).
    await expect(page.locator("#influencer option")).to_have_count(2)
    await expect(page.locator("#influencer")).to_have_value(str(playground.cast.influencers[1].id))
    await expect(influencer.locator(".empty")).to_be_visible()
    await _open_invitation(page, manager, influencer, "ben.cooks")
    login = await _answer_checks(influencer)
    async with page.expect_popup() as opened:
        await login.click()
    dialog = await opened.value
    await dialog.locator('input[name="scope"][value="instagram_manage_insights"]').uncheck()
    await dialog.get_by_role("button", name="Continue as Ben").click()
    await dialog.wait_for_url(f"{playground.bot.settings.public_url}/oauth/callback*")
    await dialog.close()

    failed = _bot_message(influencer, "Not connected yet")
    await expect(failed).to_contain_text("read your Instagram insights")
    await expect(failed.locator(".kb", has_text="Try again")).to_be_visible()
    await expect(_bot_message(manager, "did not work")).to_contain_text("@ben.cooks")
    await _shot(page, "declined.png")

    # Anna's chat is still there, as she left it.
    await page.locator("#influencer").select_option(str(playground.cast.influencers[0].id))
    await expect(_bot_message(influencer, "Connected!")).to_be_visible()
    assert errors == []
    await context.close()


async def test_facebooks_side_panel_in_a_real_browser(
    browser: Browser, playground: Playground
) -> None:
    """Anna is connected (through the page's API, as the other test shows in the browser); the
    panel under her name plays Facebook's side: each button says what it did, a second tap is
    harmless, and Check now shows the breakage in her chat, its reason in words. The open panel
    is two short rows, so her chat keeps its room; choosing Ben shows his (no) connection at
    once."""
    import httpx
    from playwright.async_api import expect

    from tests.test_playground import PageApi, connect

    expect.set_options(timeout=WAIT_MS)
    anna = playground.cast.influencers[0]
    ben = playground.cast.add_influencer()
    async with httpx.AsyncClient(base_url=playground.url, timeout=30) as http:
        await connect(PageApi(playground, http), anna, "anna.bakes")

    context = await browser.new_context(viewport={"width": 1400, "height": 900}, locale="en-GB")
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(playground.url)
    await expect(page.locator("#status")).to_have_text("live")
    panel = page.locator("#facebook")
    summary = panel.locator("#facebook-connection")
    await expect(summary).to_contain_text("Page Anna Bakes")  # shown with the panel closed too
    await panel.locator("summary").click()
    await expect(summary).to_contain_text("@anna.bakes · ✅ healthy")
    said = panel.locator("#facebook-said")
    influencer = page.locator('.phone[data-chat="influencer"]')

    # Open, the panel leaves the chat most of the pane (the QA walk measured ~230 px before).
    chat = await influencer.locator(".messages").bounding_box()
    box = await panel.bounding_box()
    assert chat is not None and box is not None
    assert box["height"] < 150, box
    assert chat["height"] > 450, chat

    await panel.get_by_role("button", name="Fast-forward 80 days").click()
    await expect(said).to_contain_text("Anna's data access now ends in 10 days")
    outage = panel.locator("#facebook-outage")
    await outage.click()
    await expect(said).to_contain_text("The Graph API is down")
    await expect(outage).to_have_text("Facebook back up")
    assert playground.graph.outage
    await outage.click()
    await expect(outage).to_have_text("Facebook down")
    assert not playground.graph.outage

    # The buttons come a group at a time, one tab each.
    password = panel.get_by_role("button", name="Change password")
    await expect(password).to_be_hidden()
    await panel.get_by_role("tab", name="The influencer").click()
    await expect(panel.get_by_role("tab", name="The influencer")).to_have_attribute(
        "aria-selected", "true"
    )
    # Only for Instagram Login connections: a Facebook one has no account type to switch.
    await expect(panel.get_by_role("button", name="Switch account type")).to_be_hidden()
    await password.dblclick()  # a double tap: one change, one answer
    await expect(said).to_contain_text("Anna changed their Facebook password")
    await _shot(page, "facebook-side.png")

    check_now = panel.get_by_role("button", name="Check now")
    if getattr(playground.bot, "upkeep", None) is None:
        await expect(check_now).to_be_disabled()
    else:
        await check_now.click()
        await expect(said).to_contain_text("Checked 1 connection: 1 changed")
        await expect(summary).to_contain_text("⚠️ broken: Facebook password changed")
        await expect(influencer.locator(".msg.bot").last).to_contain_text("password")
        await _shot(page, "facebook-side-checked.png")
    # The widest group and a two-line answer: still short.
    box = await panel.bounding_box()
    assert box is not None and box["height"] < 150, box

    # Ben, chosen in the list: his panel at once (no live event comes), nothing of Anna's, and
    # no Page to act on; back to Anna, hers again.
    await panel.get_by_role("tab", name="The Page").click()
    unpublish = panel.get_by_role("button", name="Unpublish the Page")
    await expect(unpublish).to_be_enabled()
    await page.locator("#influencer").select_option(str(ben.id))
    await expect(summary).to_have_text("Ben has no connection yet")
    await expect(unpublish).to_be_disabled()
    await expect(said).to_be_empty()
    await page.locator("#influencer").select_option(str(anna.id))
    await expect(summary).to_contain_text("Page Anna Bakes")
    await expect(unpublish).to_be_enabled()
    assert errors == []
    await context.close()


async def test_the_platform_pane_in_a_real_browser(
    browser: Browser, playground: Playground
) -> None:
    """Anna connects (through the page's API); the platform heard it, signed, and reads her
    connection through the read API, her Page token shown by its tail only. On a wide window the
    pane is a third column; on a laptop's it slides in from the header, the chats untouched."""
    import httpx
    from playwright.async_api import expect

    from tests.test_playground import PageApi, connect

    expect.set_options(timeout=WAIT_MS)
    anna = playground.cast.influencers[0]
    async with httpx.AsyncClient(base_url=playground.url, timeout=30) as http:
        await connect(PageApi(playground, http), anna, "anna.bakes")

    context = await browser.new_context(viewport={"width": 1400, "height": 900}, locale="en-GB")
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(playground.url)
    await expect(page.locator("#status")).to_have_text("live")
    pane = page.locator("#platform-pane")
    await expect(pane).to_be_hidden()
    await page.get_by_role("button", name=re.compile("^The platform")).click()
    await expect(pane).to_be_visible()
    connected = pane.locator(".platform-event").filter(has_text="connection.connected")
    await expect(connected).to_contain_text("@anna.bakes")
    await expect(connected).to_contain_text("signature ✓")
    await expect(connected).to_contain_text("answered 200")
    await expect(pane.locator(".platform-event").last).to_contain_text("invitation.opened")
    await _shot(page, "platform-webhooks.png")

    await pane.get_by_role("tab", name="Read API").click()
    await pane.get_by_role("button", name="List connections").click()
    await expect(pane.locator("#platform-status")).to_have_text("HTTP 200")
    await pane.get_by_role("button", name="Read @anna.bakes").click()
    await expect(pane.locator("#platform-request")).to_contain_text("/api/v1/connections/")
    shown = pane.locator("#platform-json")
    await expect(shown).to_contain_text('"page_access_token": "…')
    attachment = playground.platform.attachment
    assert attachment is not None
    async with httpx.AsyncClient(base_url=attachment.api_url, timeout=10) as http:
        listed = await http.get(
            "/api/v1/connections", headers={"Authorization": f"Bearer {attachment.api_key}"}
        )
        invitation_id = listed.json()["data"][0]["invitation_id"]
        read = await http.get(
            f"/api/v1/connections/{invitation_id}",
            headers={"Authorization": f"Bearer {attachment.api_key}"},
        )
    token = read.json()["page_access_token"]
    content = await page.content()
    assert token not in content and attachment.api_key not in content
    assert attachment.secret not in content
    await _shot(page, "platform.png")
    await page.get_by_role("button", name="Close the platform").click()
    await expect(pane).to_be_hidden()

    # A phone's width: the pane covers the page, all of it usable.
    await page.set_viewport_size({"width": 400, "height": 800})
    await page.get_by_role("button", name=re.compile("^The platform")).click()
    box = await pane.bounding_box()
    assert box is not None and box["width"] <= 400, box
    await expect(pane.get_by_role("button", name="List connections")).to_be_visible()
    # A wide screen: a third column beside the chats, always there.
    await page.set_viewport_size({"width": 1800, "height": 1000})
    await expect(page.locator("#platform-toggle")).to_be_hidden()
    await expect(pane).to_be_visible()
    manager = await page.locator("#manager-pane").bounding_box()
    box = await pane.bounding_box()
    assert manager is not None and box is not None
    assert box["x"] > manager["x"] + manager["width"] and box["width"] >= 360, (manager, box)
    await _shot(page, "platform-wide.png")
    assert errors == []
    await context.close()


async def test_an_influencer_without_a_page_connects_with_instagram_in_a_real_browser(
    browser: Browser, playground: Playground
) -> None:
    """Lena has no Facebook Page: "I don't know" at the first question leads to Instagram Login;
    the sandbox's Instagram window has the invited account chosen already, Allow connects it,
    and both chats hear it. A personal account is refused with the way to switch."""
    from playwright.async_api import expect

    expect.set_options(timeout=WAIT_MS)
    context = await browser.new_context(viewport={"width": 1400, "height": 900}, locale="en-GB")
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(playground.url)
    await expect(page.locator("#status")).to_have_text("live")
    manager = page.locator('.phone[data-chat="manager"]')
    influencer = page.locator('.phone[data-chat="influencer"]')

    await _open_invitation(page, manager, influencer, "lena.paints")
    question = _bot_message(influencer, "Facebook Page you manage?")
    await question.locator(".kb", has_text="I don't know").click()
    check = _bot_message(influencer, "Step 1 of 2")
    await expect(check).to_contain_text("professional account")
    await check.locator(".kb", has_text="Yes").click()
    login = _bot_message(influencer, "Step 2 of 2").locator(".kb.url", has_text="Instagram")
    await expect(login).to_be_visible()
    await _shot(page, "instagram-steps.png")

    # First as a personal account: Instagram's answer says so, and the fix is in the chat.
    async with page.expect_popup() as opened:
        await login.click()
    window = await opened.value
    await expect(window.locator(".ribbon")).to_contain_text("SANDBOX")
    await expect(window.locator('input[name="account"][value="lena.paints"]')).to_be_checked()
    await window.locator('select[name="account_type"]').select_option("PERSONAL")
    await window.screenshot(path=str(SHOTS / "sandbox-instagram.png"), full_page=True)
    await window.get_by_role("button", name="Allow").click()
    await window.wait_for_url(f"{playground.bot.settings.public_url}/oauth/instagram*")
    await window.close()
    failed = _bot_message(influencer, "Not connected yet")
    await expect(failed).to_contain_text("professional")
    await expect(_bot_message(manager, "did not work")).to_contain_text("@lena.paints")

    # The used login button came off; switched in the app, she tries again: connected.
    logins = influencer.locator(".kb.url", has_text="Instagram")
    await expect(logins).to_have_count(0)
    await failed.locator(".kb", has_text="Try again").click()
    await expect(logins).to_have_count(1)
    async with page.expect_popup() as opened:
        await logins.first.click()
    window = await opened.value
    await window.locator('select[name="account_type"]').select_option("MEDIA_CREATOR")
    await window.get_by_role("button", name="Allow").click()
    await window.wait_for_url(f"{playground.bot.settings.public_url}/oauth/instagram*")
    assert "Connected" in await window.locator("main").inner_text()
    await window.close()

    told = _bot_message(influencer, "Connected!")
    await expect(told).to_contain_text("Instagram Login")
    await expect(_bot_message(manager, "is connected")).to_contain_text("Instagram Login")
    await _shot(page, "instagram-connected.png")

    # Facebook's side knows the connection has no Facebook account and no Page.
    panel = page.locator("#facebook")
    await expect(panel.locator("#facebook-connection")).to_contain_text(
        "Instagram Login → @lena.paints"
    )
    await panel.locator("summary").click()
    await expect(panel.get_by_role("button", name="Fast-forward 80 days")).to_be_disabled()

    # Switched back to a personal account in the app: the check names exactly that.
    await panel.get_by_role("tab", name="The influencer").click()
    switch = panel.get_by_role("button", name="Switch account type")
    await expect(switch).to_be_enabled()
    await switch.click()
    said = panel.locator("#facebook-said")
    await expect(said).to_contain_text("switched @lena.paints to a personal account")
    await panel.get_by_role("button", name="Check now").click()
    broken = _bot_message(influencer, "stopped working")
    await expect(broken).to_contain_text("is a personal account now")
    await expect(broken).to_contain_text("Switch to professional account")
    await expect(panel.locator("#facebook-connection")).to_contain_text(
        "switched to a personal Instagram account"
    )
    assert errors == []
    await context.close()
