"""Talking to a person over Telegram: through the real python-telegram-bot, the fake Bot
API and the dispatcher, a household asks for staff, staff take and answer in their own
chat, and each side hears the other."""

from __future__ import annotations

from gotong.bot.config import Config
from gotong.bot.services import Services
from tests.bot.channels.telegram_harness import Running
from tests.bot.dispatch_harness import wait_settled
from tests.bot.test_queue import staff_of
from tests.handlers.test_support import request_of
from tests.models.aid_world import AidWorld


async def test_a_household_and_staff_talk_over_telegram(
        config: Config, services: Services, running: Running) -> None:
    bot = running.bot
    staff = bot.person(8100, first_name="Rina")
    await staff_of(config, staff, "Jakarta Selatan")
    world = AidWorld(services)
    household = bot.person(8101, language="en", first_name="Dewi")
    await request_of(world, "telegram", "8101", world.village("Jakarta Selatan"), "en")

    [opened] = await household.say("/human")
    assert "Staff of Posko Jakarta Selatan will read your message" in opened.text
    # No dialog was under way: the way back is the main menu.
    assert [t for t, _ in opened.buttons()] == ["To the main menu"]
    [sent] = await household.say("The package had no rice, who can I ask?")
    assert "Sent to staff" in sent.text
    await wait_settled(services)
    assert "Pesan baru untuk petugas" in staff.last.text

    replies = await staff.say("/pesan")
    assert "The package had no rice" in replies[-1].text
    await staff.tap("Ambil")
    assert "Ketik balasan" in staff.last.text
    await wait_settled(services)
    assert "Staff of Posko Jakarta Selatan have read your request" in household.last.text

    [confirmed] = await staff.say("Maaf, kami antar beras besok pagi.")
    assert "Balasan terkirim" in confirmed.text
    await wait_settled(services)
    assert household.last.text == \
        "Staff of Posko Jakarta Selatan:\nMaaf, kami antar beras besok pagi."

    # The household answers; the staff member who took it gets it in their chat.
    await household.say("Thank you!")
    await wait_settled(services)
    assert "Thank you!" in staff.last.text
    await staff.tap("Balas")
    assert "Ketik balasan" in staff.last.text
