"""The playground's phone screens as a person uses them: type, tap, read."""

from __future__ import annotations

import re

from playwright.async_api import Locator, Page, expect

# Long enough for a notice to travel outbox → dispatcher → socket on a loaded machine.
WAIT_MS = 15_000


class Screen:
    """One phone screen of the playground page (household, donor, volunteer, staff)."""

    def __init__(self, page: Page, name: str) -> None:
        self.page = page
        self.name = name
        self.root = page.locator(f'section[data-screen="{name}"]')

    @property
    def bot_messages(self) -> Locator:
        return self.root.locator(".message.bot")

    async def count(self) -> int:
        return await self.bot_messages.count()

    async def say(self, text: str) -> None:
        await self.root.locator('input[name="text"]').fill(text)
        await self.root.locator('button[type="submit"]').click()
        await self.wait_for_answer()

    async def tap(self, label: str, *, exact: bool = False) -> None:
        """Tap the last button whose label contains this (or is it, with `exact`), and wait
        for the answer."""
        await self.option(label, exact=exact).click()
        await self.wait_for_answer()

    def option(self, label: str, *, exact: bool = False) -> Locator:
        name: str | re.Pattern[str] = label if exact else re.compile(re.escape(label))
        return self.root.locator("button.option").filter(has_text=name).last \
            if not exact else self.root.get_by_role("button", name=name, exact=True).last

    async def press(self, css: str) -> None:
        """Press one of the screen's own buttons (share number, location, photo)."""
        await self.root.locator(css).click()
        await self.wait_for_answer()

    async def wait_for_answer(self) -> None:
        """Until the server says the message is handled: a tap may redraw a message
        rather than add one. (Sending marks the screen unanswered at once.)"""
        await expect(self.root).to_have_attribute("data-answered", "yes", timeout=WAIT_MS)

    async def last_text(self) -> str:
        return await self.bot_messages.last.inner_text()

    async def expect_text(self, text: str | re.Pattern[str]) -> None:
        """Some bot message of this screen says this (now or within the wait)."""
        await expect(self.bot_messages.filter(has_text=text).first).to_be_visible(
            timeout=WAIT_MS)

    async def all_text(self) -> str:
        return "\n".join(await self.bot_messages.all_inner_texts())
