"""What the people of the playground say and tap in the browser tests, and what they are
told back."""

from __future__ import annotations

import re

from tests.browser.screens import Screen

REFERENCE = re.compile(r"GT-[2-9A-Z]{5}")
PLEDGE_CODE = re.compile(r"GP-[2-9A-Z]{5}")
DELIVERY_CODE = re.compile(r"Kode pengantaran Anda: (\d{6})")


def found(pattern: re.Pattern[str], text: str, group: int = 0) -> str:
    match = pattern.search(text)
    assert match is not None, text
    return match.group(group)


async def ask_for_help(household: Screen) -> str:
    """The household dialog in Indonesian, by buttons and typing; the reference."""
    await household.say("/minta")
    await household.tap("Ya, saya setuju")
    await household.say("Sari Contoh")
    await household.press("button.share-contact")
    await household.expect_text("NIK")
    await household.tap("Lewati")
    await household.say("Karet Semanggi")
    await household.expect_text("alamat")
    await household.say("Jl. Contoh No. 7 RT 01 RW 02")
    await household.say("4")
    await household.tap("Lansia")
    await household.tap("Selesai")
    await household.tap("Paket sembako")
    await household.tap("Selesai")
    await household.expect_text("Mohon periksa pendaftaran Anda")
    await household.tap("Kirim")
    await household.expect_text("Permintaan Anda sudah terdaftar")
    return found(REFERENCE, await household.last_text())


async def pledge(donor: Screen) -> str:
    """The donor dialog in English: one staple food package; the pledge code."""
    await donor.say("/language en")
    await donor.say("/donate")
    await donor.tap("As a person")
    await donor.say("Budi Contoh")
    await donor.press("button.share-contact")
    await donor.tap("Staple food packages")
    await donor.say("1")
    await donor.tap("Jakarta Selatan")
    await donor.tap("The whole kota")
    # The one aggregator there is named rather than asked for.
    await donor.expect_text("Your gift goes to Posko Contoh (demo)")
    await donor.tap("I bring it to the posko")
    await donor.expect_text("Please check your pledge")
    await donor.tap("Submit")
    return found(PLEDGE_CODE, await donor.last_text())
