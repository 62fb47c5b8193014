"""The whole life of aid played in the playground in headless Chromium, by clicking the
four phone screens as a person would, and each screen's news arriving on its own: the
household asks, the donor pledges, staff receive, verify, allocate and assign, the
volunteer delivers with the household's code, the household rates, the donor hears that
all was delivered."""

from __future__ import annotations

import pytest
from playwright.async_api import Page

from tests.browser.conftest import screenshot_path
from tests.browser.dialogs import DELIVERY_CODE, ask_for_help, found, pledge
from tests.browser.screens import Screen
from tests.browser.site import Site

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

async def test_the_life_of_aid_in_the_playground(page: Page, site: Site) -> None:
    household, donor = Screen(page, "household"), Screen(page, "donor")
    volunteer, staff = Screen(page, "volunteer"), Screen(page, "staff")

    reference = await ask_for_help(household)
    code = await pledge(donor)

    # Staff count the pledge in; the donor hears it on their screen.
    await staff.say("/donasi_masuk")
    await staff.tap(f"Terima {code}")
    await staff.say("1")
    await staff.expect_text(f"{code} diterima: 1 paket masuk stok.")
    await donor.expect_text(f"Your pledge {code} has been received: 1 counted")

    # Staff verify the request; the household hears it.
    await staff.say("/antrian")
    await staff.expect_text(f"{reference} menunggu verifikasi")
    await staff.tap("Verifikasi")
    await household.expect_text(f"permintaan Anda {reference} sudah diverifikasi")

    # Staff allocate the package; the household hears it is set aside.
    await staff.say("/alokasi")
    await staff.tap("Paket sembako")
    await staff.tap("1", exact=True)
    await staff.tap("Konfirmasi")
    await household.expect_text(f"Bantuan sudah disiapkan untuk keluarga Anda ({reference})")

    # Staff give the delivery to the demo volunteer; the household gets its code.
    await staff.say("/tugaskan")
    await staff.tap("Tugaskan 1")
    await staff.tap("Rizky Contoh")
    await household.expect_text("Kode pengantaran Anda")
    delivery_code = found(DELIVERY_CODE, await household.all_text(), 1)
    await volunteer.expect_text(reference)

    # The volunteer carries the task through, in English.
    await volunteer.say("/language en")
    await volunteer.say("/tasks")
    await volunteer.tap("Open 1")
    await volunteer.tap("Picked up")
    await volunteer.tap("On the way")
    await household.expect_text(f"sedang dalam perjalanan membawa bantuan Anda ({reference})")
    await volunteer.tap("Delivered")
    await volunteer.say(delivery_code)
    await volunteer.expect_text("Delivered. Thank you!")

    # The household hears of the delivery and rates it; the donor hears it all arrived.
    await household.expect_text(f"Bantuan Anda ({reference}) sudah diantar.")
    await household.tap("5", exact=True)
    await household.expect_text("Terima kasih atas penilaiannya!")
    await donor.expect_text(f"All of your pledge {code}")
    await page.screenshot(path=screenshot_path("playground"), full_page=True)

    # What each screen was told, in its person's language, never another's details.
    donor_text = await donor.all_text()
    assert "Sari Contoh" not in donor_text and "Jl. Contoh No. 7" not in donor_text
    assert "Sari Contoh" in await volunteer.all_text()
