"""A person on Telegram and WhatsApp (one verified number) sees their data from WhatsApp
(/my_data) and erases it from Telegram (/hapus_data, its button tapped), through the real
channels and the fake platform APIs: both apps' contacts are erased, no table holds their
name, number or address, and either app starts afresh."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from gotong.bot.channels.telegram import TelegramChannel
from gotong.bot.config import Config
from gotong.bot.services import Services
from gotong.models.base import utcnow
from gotong.models.contact import Contact
from gotong.models.help_request import HelpRequest
from tests.bot.channels.telegram_harness import TelegramBotUnderTest
from tests.bot.channels.test_one_person_two_apps import NUMBER, TELEGRAM_USER
from tests.bot.channels.test_telegram_household import register_in_indonesian, telegram_config
from tests.bot.channels.whatsapp_harness import running_whatsapp
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.fakes.whatsapp_api import FakeWhatsAppAPI
from tests.handlers.test_my_data import tables_holding

# What register_in_indonesian tells the bot.
NEEDLES = ("Siti Aminah", "81234567890", "Melati No. 5")


@pytest.fixture
def fakes(telegram_api: FakeTelegramAPI, whatsapp_api: FakeWhatsAppAPI
          ) -> tuple[FakeTelegramAPI, FakeWhatsAppAPI]:
    return telegram_api, whatsapp_api


async def test_seen_on_whatsapp_and_erased_from_telegram_on_both(
        config: Config, services: Services, fakes: tuple[FakeTelegramAPI, FakeWhatsAppAPI]
        ) -> None:
    tg_fake, wa_fake = fakes
    config = telegram_config(config, tg_fake)
    telegram = TelegramChannel(config.telegram, services.conversations, services.sessions)
    await telegram.start()
    try:
        async with running_whatsapp(config, services, wa_fake) as bot:
            on_telegram = TelegramBotUnderTest(tg_fake, telegram).person(TELEGRAM_USER)
            await register_in_indonesian(on_telegram)
            on_whatsapp = bot.person(NUMBER)
            await on_whatsapp.say("halo")

            # Joined to the person by its number a moment ago: it may not read their data
            # yet (a number handed on must not hand over its former owner's).
            [refused] = await on_whatsapp.say("/my_data")
            assert "kurang dari 3 hari" in refused.text and "Siti" not in refused.text
            async with services.sessions() as session, session.begin():
                await session.execute(update(Contact).where(Contact.channel == "whatsapp")
                                      .values(phone_linked_at=utcnow() - timedelta(days=4)))
            shown = "\n".join(m.text for m in await on_whatsapp.say("/my_data"))
            for part in ("Siti Aminah", "+6281234567890", "Jl. Melati No. 5", "Telegram",
                         "WhatsApp", "NIK: tidak diberikan", "rumah tangga"):
                assert part in shown, part
            assert set(await tables_holding(services, NEEDLES)) == set(NEEDLES)

            [data, *_] = await on_telegram.say("/data_saya")
            assert "Inilah semua data" in data.text
            [confirm] = await on_telegram.say("/hapus_data")
            assert "Hapus semua data pribadi Anda" in confirm.text
            [done] = await on_telegram.tap("Ya, hapus")
            assert "Data pribadi Anda sudah dihapus" in done.text

            assert await tables_holding(services, NEEDLES) == {}
            async with services.sessions() as session:
                # Its request was still waiting: taken back first (the public figures
                # count one household fewer waiting, as for any request taken back).
                request = await session.scalar(select(HelpRequest))
                assert request is not None and request.status == "cancelled"
                contacts = (await session.scalars(select(Contact).order_by(Contact.id))).all()
            assert [c.chat_id.startswith("erased:") for c in contacts] == [True, True, False]

            # Both apps start afresh, as two people no one knows yet.
            [welcome, *_] = await on_whatsapp.say("halo")
            assert "Halo! Saya Gotong" in welcome.text
            status = await on_telegram.say("/status")
            assert not any("GT-" in m.text for m in status)
            async with services.sessions() as session:
                fresh = (await session.scalars(
                    select(Contact).where(Contact.erased_at.is_(None)))).all()
            assert sorted(c.channel for c in fresh) == ["telegram", "whatsapp"]
            assert all(c.person_id is None for c in fresh)
            assert wa_fake.invalid_requests() == []
    finally:
        await telegram.stop()
