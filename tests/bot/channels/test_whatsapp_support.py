"""Talking to a person over WhatsApp: signed webhooks in, the fake Graph API out, the
dispatcher between. Staff's replies to a household go as text within the 24-hour window
and, outside it, as the template that invites a reply, the reply itself held until the
household writes."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import update

from gotong.bot.config import Config
from gotong.bot.services import Services
from gotong.models.aggregator import InviteRole, create_invite
from gotong.models.base import utcnow
from gotong.models.contact import Contact
from tests.bot.channels.whatsapp_harness import WhatsAppBotUnderTest, running_whatsapp
from tests.bot.dispatch_harness import wait_settled
from tests.fakes.whatsapp_api import FakeWhatsAppAPI
from tests.handlers.test_support import request_of
from tests.lookups import outbox
from tests.models.aid_world import AidWorld

pytestmark = pytest.mark.fake_api("whatsapp_api")

HOUSEHOLD, STAFF = "6281311110000", "6281322220000"


@pytest.fixture
def quick(config: Config) -> Config:
    return replace(config, notifications=replace(config.notifications, poll_seconds=0.05))


async def settled(services: Services, bot: WhatsAppBotUnderTest) -> dict[str, int]:
    assert bot.dispatcher is not None
    bot.dispatcher.wake()
    return await wait_settled(services, within=20)


async def test_a_household_and_staff_talk_over_whatsapp_within_and_outside_the_window(
        quick: Config, services: Services, fake: FakeWhatsAppAPI) -> None:
    fake.approved_templates = {("gotong_update", "id")}
    world = AidWorld(services)
    timur = await world.aggregator("Jakarta Timur")
    async with services.sessions() as session, session.begin():
        code = await create_invite(session, timur, InviteRole.STAFF, 1,
                                   world.now + timedelta(days=1), world.now)
    household_id = await request_of(world, "whatsapp", HOUSEHOLD,
                                    world.village("Jakarta Timur"), "id")
    async with running_whatsapp(quick, services, fake, dispatch=True) as bot:
        staff = bot.person(STAFF, name="Rina")
        await staff.say(f"/gabung {code}")
        household = bot.person(HOUSEHOLD, name="Dewi")

        await household.say("Bicara dengan petugas")
        assert "Petugas Posko Jakarta Timur akan membaca pesan Anda" in household.last.text
        await household.say("Anak saya sakit, kami butuh obat")
        assert "Terkirim ke petugas" in household.last.text
        await settled(services, bot)
        assert "Pesan baru untuk petugas" in fake.texts(STAFF)[-1]

        await staff.say("/pesan")
        assert "Anak saya sakit, kami butuh obat" in staff.last.text
        await staff.tap("Ambil")
        await staff.say("Kami antar obat sore ini.")
        assert "Balasan terkirim" in staff.last.text
        await settled(services, bot)
        texts = fake.texts(HOUSEHOLD)
        assert "Petugas Posko Jakarta Timur sudah membaca permintaan Anda" in texts[-2]
        assert texts[-1] == "Petugas Posko Jakarta Timur:\nKami antar obat sore ini."

        # Two days later the household's window has closed: the next reply goes as the
        # template that invites a reply, and waits for it.
        async with services.sessions() as session, session.begin():
            await session.execute(update(Contact).where(Contact.id == household_id)
                                  .values(last_inbound_at=utcnow() - timedelta(days=2)))
        services.conversations.forget("whatsapp", HOUSEHOLD)
        await staff.say("Apakah obatnya sudah sampai?")
        await settled(services, bot)
        first, later = await outbox(services, "support.reply", household_id)
        assert (first.status, later.status) == ("sent", "held")
        assert fake.texts(HOUSEHOLD)[-1] == "template:gotong_update"
        assert fake.invalid_requests() == []

        await household.say("Sudah, terima kasih")
        await settled(services, bot)
        texts = fake.texts(HOUSEHOLD)
        assert "Terkirim ke petugas" in texts[-2]
        assert texts[-1] == "Petugas Posko Jakarta Timur:\nApakah obatnya sudah sampai?"
        assert "Sudah, terima kasih" in fake.texts(STAFF)[-1]
