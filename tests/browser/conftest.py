"""Browser tests: Debian's Chromium, headless, driven by Playwright, against the whole
program served on a loopback port (web chat, dispatcher, dashboard, public page).

Without Chromium the tests are skipped, unless GOTONG_REQUIRE_BROWSER is set (CI), where
a missing browser fails them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright

from gotong.bot.config import Config
from gotong.handlers.catalog import Catalog
from tests.browser.screens import WAIT_MS
from tests.browser.site import Site, playground_config, running_site

REQUIRE_ENV = "GOTONG_REQUIRE_BROWSER"
# The latest screenshots are kept with the documentation, which shows them.
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def chromium_path() -> str:
    path = os.environ.get("GOTONG_CHROMIUM") or shutil.which("chromium")
    if path is None:
        if os.environ.get(REQUIRE_ENV):
            pytest.fail("Chromium is required for the browser tests (apt-get install chromium)")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    return path


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    executable = chromium_path()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=executable, headless=True,
                                                    args=CHROMIUM_FLAGS)
        try:
            yield launched
        finally:
            await launched.close()


def screenshot_path(name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / f"{name}.png"


@pytest.fixture
async def site(config: Config, catalog: Catalog) -> AsyncIterator[Site]:
    async with running_site(playground_config(config), catalog) as running:
        yield running


@pytest.fixture
async def page(browser: Browser, site: Site) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1600, "height": 1000},
                                        locale="id-ID")
    opened = await context.new_page()
    opened.set_default_timeout(WAIT_MS)
    await opened.goto(f"{site.url}/playground?lang=id")
    try:
        yield opened
    finally:
        await context.close()
