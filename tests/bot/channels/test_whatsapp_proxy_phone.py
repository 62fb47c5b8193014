"""A phone a proxy typed, asked over WhatsApp: a number that never wrote gets the generic
template only (nothing of the request), the question with its buttons once the person
writes, and their tap of "Ya, itu kami" hands the request over; a button with a made-up
secret changes nothing. Signed webhooks in, the fake Graph API out, the dispatcher
between."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import select

from gotong.bot.config import Config
from gotong.bot.services import Services
from gotong.models.outbox import OutboxStatus
from gotong.models.phone_confirmation import PhoneConfirmation
from tests.bot.channels.whatsapp_harness import WhatsAppBotUnderTest, running_whatsapp
from tests.bot.dispatch_harness import wait_settled_for
from tests.fakes.whatsapp_api import FakeWhatsAppAPI
from tests.handlers.test_proxies import new_proxy, proxy_world, register, request_by
from tests.lookups import audit_log

pytestmark = pytest.mark.fake_api("whatsapp_api")

NUMBER = "6281311112222"


@pytest.fixture
def quick(config: Config) -> Config:
    return replace(config, notifications=replace(config.notifications, poll_seconds=0.05))


async def settled_for(services: Services, bot: WhatsAppBotUnderTest, contact_id: int
                      ) -> list[str]:
    """Wait until the contact's rows are sent or held (the console chats' rows are no
    WhatsApp dispatcher's); their statuses."""
    assert bot.dispatcher is not None
    bot.dispatcher.wake()
    return await wait_settled_for(services, contact_id)


async def test_a_number_that_never_wrote_is_asked_on_whatsapp_and_takes_over(
        quick: Config, services: Services, fake: FakeWhatsAppAPI) -> None:
    fake.approved_templates = {("gotong_update", "id")}
    _, _, staff = await proxy_world(services)
    chat = await new_proxy(services, staff)
    reference = await register(chat, phone="0813 1111 2222")
    async with services.sessions() as session:
        asked = (await session.scalars(select(PhoneConfirmation))).one()
    async with running_whatsapp(quick, services, fake, dispatch=True) as bot:
        # Outside the 24 hours (it never wrote): the generic template, nothing more.
        assert await settled_for(services, bot, asked.contact_id) == [OutboxStatus.HELD]
        assert fake.texts(NUMBER) == ["template:gotong_update"]
        assert fake.invalid_requests() == []

        # The person writes: the question comes, with its two buttons, and nothing of the
        # household.
        person = bot.person(NUMBER, name="Karto")
        await person.say("halo")
        await settled_for(services, bot, asked.contact_id)
        [question] = [m for m in person.messages
                      if "mendaftarkan permintaan bantuan" in m.text]
        assert "Posko Jakarta Selatan" in question.text and reference in question.text
        assert "Ibu Sumi" not in question.text and "Melati" not in question.text
        assert [title for _, title in question.options()] == ["Ya, itu kami",
                                                             "Bukan, bukan kami"]
        assert fake.invalid_requests() == []

        # A made-up secret changes nothing.
        [(yes_id, _)] = [o for o in question.options() if o[1] == "Ya, itu kami"]
        context, _, option = yes_id.partition("|")
        action, number, token = option.split(":")
        await person.tap_id(f"{context}|{action}:{number}:{'x' * len(token)}")
        assert "bukan untuk Anda, atau sudah dijawab" in person.last.text
        assert (await request_by(services, reference)).contact_id != asked.contact_id

        # Yes: the request is theirs, and they are told so here.
        await person.tap("Ya, itu kami")
        assert f"Permintaan {reference} sekarang diikuti di sini" in person.last.text
    request = await request_by(services, reference)
    assert (request.contact_id, request.phone) == (asked.contact_id, "+6281311112222")
    log = await audit_log(services)
    assert ("proxy_phone", "refused") in log and ("proxy_phone", "confirmed") in log
