"""The admin page in a real browser: Debian's headless chromium, driven by Playwright.

A person signs in with the token, reads the pipeline's numbers, traces an order, replays a
dead letter (a real one, in a real SQLite database) and sees it gone; the screenshot is
checked to have rendered. Without chromium (`make chromium`) or Playwright the test skips,
saying so, except in CI (`CI=true`), where a missing browser is a failure.
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from payrelay.entrypoints.http_server import EmbeddedServer
from tests.integration.admin_fixtures import (
    TOKEN,
    FixedOperations,
    add_dead_letter,
    internal_app_with_page,
)
from tests.support import StackFactory

CHROMIUM = "/usr/bin/chromium"
VIEWPORT = {"width": 1200, "height": 900}


def require_browser() -> Any:
    """Playwright's async API, once chromium and Playwright are both here."""
    missing = None
    if shutil.which(CHROMIUM) is None:
        missing = f"{CHROMIUM} is not installed (`make chromium`)"
    try:
        from playwright import async_api
    except ImportError:
        missing = missing or "playwright is not installed (`make install`)"
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the admin page's browser test needs it in CI: {missing}",
                        pytrace=False)
        pytest.skip(f"no browser test here: {missing}")
    return async_api


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async_api = require_browser()
    async with async_api.async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield launched
        finally:
            await launched.close()


async def test_a_person_signs_in_reads_the_status_traces_and_replays(
    make_stack: StackFactory, browser: Any, tmp_path: Path
):
    async with make_stack(start_workers=False, admin_token=TOKEN) as stack:
        letter_id = await add_dead_letter(stack)
        operations = FixedOperations()
        app = internal_app_with_page(stack, operations, TOKEN)
        async with EmbeddedServer(app) as server:
            page = await (await browser.new_context(viewport=VIEWPORT)).new_page()
            await page.goto(f"{server.base_url}/admin")
            assert page.url == f"{server.base_url}/admin/sign-in"
            await page.fill("input[name=token]", TOKEN)
            await page.click("button[type=submit]")
            await page.wait_for_url(f"{server.base_url}/admin")
            assert await page.evaluate("typeof htmx") == "object"  # served from the package

            field = "#status [data-field={}] b"
            assert await page.inner_text(field.format("notifications_waiting")) == "7"
            assert await page.inner_text(field.format("refunds_held")) == "6"
            assert await page.get_attribute("#stuck", "data-count") == "4"

            await page.fill("input[name=q]", "shop-77")
            await page.click("#search button")
            await page.wait_for_selector("#trace[data-query=shop-77] tr.step")
            assert await page.locator("#trace tr.step").count() == 2
            assert "order.paid" in await page.inner_text("#trace")
            assert operations.traced == ["shop-77"]

            row = page.locator(f"tr.dead-letter[data-id='{letter_id}']")
            await row.locator("button").click()
            await page.wait_for_selector("#replayed")
            assert await row.count() == 0
            assert await stack.system.dead_letters.recent() == []
            screenshot = await page.screenshot(path=str(tmp_path / "admin.png"), full_page=False)
    assert_rendered(screenshot)


async def test_without_the_token_a_browser_gets_the_sign_in_form_and_no_data(
    make_stack: StackFactory, browser: Any
):
    async with make_stack(start_workers=False, admin_token=TOKEN) as stack:
        await add_dead_letter(stack)
        app = internal_app_with_page(stack, FixedOperations(), TOKEN)
        async with EmbeddedServer(app) as server:
            context = await browser.new_context()
            page = await context.new_page()
            await page.goto(f"{server.base_url}/admin/page/dead-letters")
            assert page.url == f"{server.base_url}/admin/sign-in"
            await page.fill("input[name=token]", "not-the-token")
            await page.click("button[type=submit]")
            assert "not the admin token" in await page.inner_text("#sign-in-error")
            api = await context.request.get(f"{server.base_url}/admin/dead-letters")
            assert api.status == 401
            assert not [c for c in await context.cookies() if c["name"] == "payrelay_admin"]


def assert_rendered(png: bytes) -> None:
    """A real PNG of the viewport's size, with more than a blank page's few colours."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        assert image.format == "PNG"
        assert image.size == (VIEWPORT["width"], VIEWPORT["height"])
        colours = image.convert("RGB").getcolors(maxcolors=1_000_000)
    assert colours is not None and len(colours) > 50, len(colours or [])
