"""People with a WhatsApp username: Meta names them by a business-scoped user id (BSUID),
with or without their number. Whichever it gives, they are one contact, answered at their
number when it is known and at their user id (`recipient`) when it is not."""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import insert, select

from gotong.bot.config import Config
from gotong.bot.services import Services
from gotong.models.base import utcnow
from gotong.models.contact import Contact
from gotong.models.help_request import HelpRequest
from tests.bot.channels.whatsapp_harness import WaPerson, running_whatsapp
from tests.bot.dispatch_harness import numbered_notice, queue, wait_settled
from tests.fakes.whatsapp_api import FakeWhatsAppAPI
from tests.fakes.whatsapp_webhooks import status_update
from tests.lookups import count, outbox

SITI = "6281234567890"
SITI_ID = "ID.13491208655302741918"

pytestmark = pytest.mark.fake_api("whatsapp_api")


async def register_typing_the_number(person: WaPerson) -> str:
    """The household form for someone whose number WhatsApp does not give: no "use this
    number" button, the number typed. Returns the reference."""
    await person.say("halo")
    await person.tap("Minta bantuan")
    await person.tap("Ya, saya setuju")
    [ask_phone] = await person.say("Siti Aminah")
    assert ask_phone.options() == [] and ask_phone.type == "text"
    assert "WhatsApp tidak menunjukkan nomor Anda" in ask_phone.text
    *_, nik = await person.say("0812 3456 7890")
    assert "NIK" in nik.text
    await person.tap("Lewati")
    await person.tap("Jakarta Selatan")
    await person.tap("Berikutnya")
    await person.tap("Setia Budi")
    await person.tap("Karet Semanggi")
    await person.say("Jl. Melati No. 5 RT 03 RW 05")
    await person.say("5")
    await person.tap("Lansia")
    await person.tap("Selesai")
    await person.say("1, 3")
    [done] = await person.tap("Kirim")
    found = re.search(r"GT-[2-9A-Z]{5}", done.text)
    assert found is not None, done.text
    return found.group()


async def contacts(services: Services) -> list[Contact]:
    async with services.sessions() as session:
        return list((await session.scalars(select(Contact).order_by(Contact.id))).all())


async def test_a_username_alone_registers_and_is_one_contact_when_the_number_comes_later(
        config: Config, services: Services, fake: FakeWhatsAppAPI,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with running_whatsapp(config, services, fake) as bot:
        siti = bot.person(None, user_id=SITI_ID)
        reference = await register_typing_the_number(siti)
        # Every answer went to the user id, in `recipient`; the messages were read.
        assert siti.messages and all(m.by_user_id and "to" not in m.payload
                                     and m.payload["recipient"] == SITI_ID
                                     for m in siti.messages)
        await fake.wait_for_reads(bot.last_message_id)
        [contact] = await contacts(services)
        assert (contact.chat_id, contact.platform_user_id, contact.verified_phone) == (
            SITI_ID, SITI_ID, None)

        # Meta gives her number now: the same contact, at her number, her request kept.
        siti.number = SITI
        [status] = await siti.say("/status")
        assert reference in status.text
        assert (status.to, status.by_user_id) == (SITI, False)
        # And withholds it again: still her, still answered at her number.
        siti.number = None
        [again] = await siti.say("/status")
        assert reference in again.text and (again.to, again.by_user_id) == (SITI, False)
        assert fake.invalid_requests() == []
    [contact] = await contacts(services)
    assert (contact.chat_id, contact.platform_user_id, contact.verified_phone) == (
        SITI, SITI_ID, "+" + SITI)
    async with services.sessions() as session:
        request = await session.scalar(select(HelpRequest))
    assert request is not None and request.contact_id == contact.id
    # The number she typed is the request's; WhatsApp's number was not one to use then.
    assert request.phone == "+6281234567890"
    # Neither her user id nor her number reaches the logs.
    assert SITI_ID not in caplog.text and "81234567890" not in caplog.text


async def test_number_and_user_id_together_are_one_contact_found_by_either(
        config: Config, services: Services, fake: FakeWhatsAppAPI) -> None:
    async with running_whatsapp(config, services, fake) as bot:
        # Known by number before Meta sent user ids: the id is recorded when it comes.
        await bot.person(SITI).say("halo")
        siti = bot.person(SITI, user_id=SITI_ID)
        [menu] = await siti.tap("Minta bantuan")
        assert menu.to == SITI and not menu.by_user_id
        # With the number withheld, the user id finds her.
        siti.number = None
        [consented] = await siti.tap("Ya, saya setuju")
        assert "nama lengkap" in consented.text and consented.to == SITI
        # The number Meta gave before is still hers to use in one tap.
        await siti.say("Siti Aminah")
        *_, nik = await siti.tap("Pakai nomor ini")
        assert "NIK" in nik.text
    [contact] = await contacts(services)
    assert (contact.chat_id, contact.platform_user_id, contact.verified_phone) == (
        SITI, SITI_ID, "+" + SITI)


async def test_news_for_a_username_goes_to_the_user_id_and_a_refusal_for_it_is_given_up(
        config: Config, services: Services, fake: FakeWhatsAppAPI) -> None:
    config = replace(config, notifications=replace(
        config.notifications, poll_seconds=0.05, retry_base_seconds=0.05,
        retry_max_seconds=0.2))
    within, outside, refused = "ID.1", "ID.2", "ID.3"
    now = utcnow()
    async with services.sessions() as session, session.begin():
        result = await session.execute(insert(Contact).returning(Contact.id), [
            {"channel": "whatsapp", "chat_id": user_id, "platform_user_id": user_id,
             "language": "id", "created_at": now, "last_inbound_at": now - wrote}
            for user_id, wrote in ((within, timedelta(minutes=5)),
                                   (outside, timedelta(days=2)),
                                   (refused, timedelta(days=2)))])
        ids = list(result.scalars().all())
    # WhatsApp will not send the generic template to a user id.
    fake.templates_not_for_user_ids = {"gotong_update"}
    await queue(services, [numbered_notice(ids[0], 1), numbered_notice(ids[1], 2),
                           replace(numbered_notice(ids[2], 3),
                                   key="notice.request_verified")])
    async with running_whatsapp(config, services, fake, dispatch=True,
                                templates=("notice.request_cancelled=gotong_cancelled",)
                                ) as bot:
        assert bot.dispatcher is not None
        bot.dispatcher.wake()
        assert await wait_settled(services, within=20) == {"sent": 2, "failed": 1}
        [text] = fake.sent_to(within)
        [template] = fake.sent_to(outside)
        assert text.by_user_id and "GT-000001" in text.text
        assert template.by_user_id and template.text == "template:gotong_cancelled"
        assert fake.sent_to(refused) == []
        # Statuses name the user id alone (`recipient_user_id`, no `recipient_id`).
        assert (await bot.post(status_update(outside, template.id, "delivered")))[0] == 200
        # A text accepted, then refused for the user id: given up on too.
        assert (await bot.post(status_update(within, text.id, "failed", errors=[131062]))
                )[0] == 200
    first, second, third = await outbox(services)
    assert first.status == "failed" and "131062" in (first.last_error or "")
    assert second.status == "delivered"
    # Given up on at once, with the reason `gotong outbox` shows.
    assert (third.status, third.attempts) == ("failed", 1)
    assert third.last_error is not None and "131062" in third.last_error
    assert "user id" in third.last_error
    assert await count(services, Contact) == 3
