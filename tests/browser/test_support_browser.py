"""Talking to a person in the playground, in headless Chromium, on the screens a person
and staff use: the household asks for a person from its phone screen, staff answer from
the staff phone screen (/pesan), then from the dashboard's inbox in a browser tab, and
close it there; the household's screen shows each answer and the closing notice."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Page, expect

from tests.browser.dialogs import ask_for_help, found
from tests.browser.screens import Screen
from tests.browser.site import Site
from tests.browser.test_dashboard_browser import LINK, new_tab, sign_in

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

NUMBER = re.compile(r"pembicaraan #(\d+)")


async def test_the_household_asks_for_a_person_and_staff_answer_in_chat_and_dashboard(
        page: Page, site: Site) -> None:
    household, staff = Screen(page, "household"), Screen(page, "staff")
    reference = await ask_for_help(household)

    # The household asks for a person by command, then writes what it needs.
    await household.say("/petugas")
    await household.expect_text("Petugas Posko Contoh (demo) akan membaca pesan Anda")
    await household.say("Ibu saya perlu insulin, bisakah ada yang menelepon?")
    await household.expect_text("Terkirim ke petugas")

    # The staff screen hears of it, and sees it in /pesan with the request it is about.
    await staff.expect_text("Pesan baru untuk petugas")
    number = found(NUMBER, await staff.all_text(), 1)
    await staff.say("/pesan")
    await staff.expect_text(f"Pembicaraan #{number}")
    card = await staff.last_text()
    assert reference in card and "Ibu saya perlu insulin" in card, card

    # Staff take it and reply from the staff screen; the household sees both.
    await staff.tap("Ambil")
    await staff.expect_text(f"Ketik balasan untuk #{number}")
    await staff.say("Besok pagi kami antar insulin.")
    await staff.expect_text(f"Balasan terkirim untuk #{number}")
    await household.expect_text("Petugas Posko Contoh (demo) sudah membaca permintaan Anda")
    await household.expect_text("Besok pagi kami antar insulin.")
    await household.say("Terima kasih, saya di rumah.")
    await household.expect_text("Terkirim ke petugas")

    # The same staff member opens the dashboard from chat and finds the conversation in
    # the inbox, with what both sides wrote.
    await staff.say("/dasbor")
    link = found(LINK, await staff.last_text())
    dashboard = await new_tab(page)
    await sign_in(dashboard, link)
    await dashboard.goto(f"{site.url}/dashboard/inbox")
    row = dashboard.locator(f"tr#support-{number}")
    await expect(row).to_contain_text(reference)
    await row.get_by_role("link").click()
    await expect(dashboard.locator("#support-status")).to_contain_text("Sedang ditangani")
    messages = dashboard.locator("#messages")
    await expect(messages).to_contain_text("Ibu saya perlu insulin")
    await expect(messages).to_contain_text("Besok pagi kami antar insulin.")
    await expect(messages).to_contain_text("Terima kasih, saya di rumah.")

    # A second answer from the dashboard reaches the household's screen.
    await dashboard.locator("#reply-text").fill("Kurir kami datang jam 9.")
    await dashboard.locator("#reply").click()
    await expect(dashboard.locator("#flash")).to_contain_text("Balasan Anda sedang dikirim")
    await household.expect_text("Kurir kami datang jam 9.")

    # Closed from the dashboard with its outcome: the household is told, and what it
    # types next is the bot's again, not staff's.
    await dashboard.locator("#outcome").select_option("answered")
    await dashboard.locator("#close").click()
    await expect(dashboard.locator("#flash")).to_contain_text("Pembicaraan ditutup")
    await expect(dashboard.locator(f"tr#support-{number}")).to_have_count(0)
    await household.expect_text("Pembicaraan Anda dengan petugas ditutup (Terjawab)")
    before = await household.count()
    await household.say("halo")
    assert "Terkirim ke petugas" not in await household.last_text()
    assert await household.count() > before
    # The household's own details never reached the staff chat's news of the message.
    news = [t for t in (await staff.all_text()).split("\n") if "Pesan baru" in t]
    assert news and all("Sari Contoh" not in line for line in news)
