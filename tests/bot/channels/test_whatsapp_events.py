"""What WhatsApp sends that is not a person talking to us: reactions, deleted messages,
group messages and system messages get no answer; a number change moves the person's
contact, with all it holds, and is told once on the new number."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest
from sqlalchemy import select

from gotong.bot.config import Config
from gotong.bot.services import Services
from gotong.models.base import utcnow
from gotong.models.contact import Contact, ContactRole
from gotong.models.help_request import HelpRequest
from gotong.models.inbound import InboundUpdate
from gotong.models.outbox import OutboxMessage, enqueue
from tests.bot.channels.test_whatsapp import register_on_whatsapp
from tests.bot.channels.whatsapp_harness import running_whatsapp
from tests.bot.dispatch_harness import numbered_notice, wait_settled
from tests.fakes.whatsapp_api import FakeWhatsAppAPI
from tests.fakes.whatsapp_webhooks import (
    combine,
    identity_changed,
    in_group,
    number_changed,
    reaction_message,
    revoke_message,
    text_message,
    unsupported_message,
    user_id_changed,
)
from tests.lookups import count

SITI = "6281234567890"
NEW = "6281298765432"
NEW_ID = "ID.50000000000000000001"

pytestmark = pytest.mark.fake_api("whatsapp_api")


async def test_events_that_are_not_someone_talking_get_no_answer(
        config: Config, services: Services, fake: FakeWhatsAppAPI,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with running_whatsapp(config, services, fake) as bot:
        siti = bot.person(SITI)
        [menu] = await siti.say("halo")
        events = combine(
            reaction_message(SITI, menu.id),
            # A reaction taken back: Meta leaves the emoji out.
            reaction_message(SITI, menu.id, emoji=None),
            revoke_message(SITI, "wamid.earlier"),
            unsupported_message(SITI, "unsupported", unsupported_type="revoke"),
            in_group(text_message(SITI, "halo semua")),
        )
        assert (await bot.post(events))[0] == 200
        # A security code change is recorded, and not answered either.
        await bot.deliver(identity_changed(SITI))
        # What she writes next is answered, and is the only thing answered.
        answer = await siti.say("/bantuan")
        assert siti.messages == [menu, *answer] and "Gotong menghubungkan" in answer[0].text
        assert fake.invalid_requests() == []
    # Only what someone said, and the system message, were stored.
    assert await count(services, InboundUpdate) == 3
    async with services.sessions() as session:
        contact = await session.scalar(select(Contact))
    assert contact is not None and contact.identity_changed_at is not None
    assert "a reaction" in caplog.text and "a message in a group" in caplog.text
    assert SITI not in caplog.text and "halo semua" not in caplog.text


async def test_a_number_change_moves_the_contact_and_is_told_once_on_the_new_number(
        config: Config, services: Services, fake: FakeWhatsAppAPI) -> None:
    config = replace(config, notifications=replace(config.notifications, poll_seconds=0.05))
    # News may follow an answer at once (WhatsApp's pace per person is not the point here).
    async with running_whatsapp(config, services, fake, dispatch=True,
                                chat_messages_per_second=50.0) as bot:
        siti = bot.person(SITI)
        await register_on_whatsapp(siti)
        before = len(fake.messages)
        change = number_changed(SITI, NEW, new_user_id=NEW_ID)
        await bot.deliver(change)
        [told] = await fake.wait_for_messages(1, to=NEW)
        assert "nomor baru" in told.text and told.type == "text"
        # Meta sending it again, or once more with another id, tells her nothing new.
        assert (await bot.post(change))[0] == 200
        await bot.deliver(number_changed(SITI, NEW, new_user_id=NEW_ID))
        assert bot.dispatcher is not None
        bot.dispatcher.wake()
        await wait_settled(services, within=10)
        assert fake.messages[before:] == [told]
        # From the new number she is the same person: her request is there.
        moved = bot.person(NEW)
        [status] = await moved.say("/status")
        assert "GT-" in status.text and "menunggu verifikasi" in status.text
        assert fake.invalid_requests() == []
    async with services.sessions() as session:
        [contact] = (await session.scalars(select(Contact))).all()
        request = await session.scalar(select(HelpRequest))
        roles = (await session.scalars(select(ContactRole.role))).all()
    assert (contact.chat_id, contact.verified_phone, contact.platform_user_id) == (
        NEW, "+" + NEW, NEW_ID)
    assert request is not None and request.contact_id == contact.id
    assert list(roles) == ["household"]


async def test_a_new_number_someone_wrote_from_before_links_the_two_as_one_person(
        config: Config, services: Services, fake: FakeWhatsAppAPI) -> None:
    """The old contact is not written to again (its number may be someone else's now):
    what waited for it goes to the contact at the new number."""
    async with running_whatsapp(config, services, fake) as bot:
        await bot.person(SITI).say("halo")
        await bot.person(NEW).say("halo")
        async with services.sessions() as session, session.begin():
            old = await session.scalar(select(Contact).where(Contact.chat_id == SITI))
            assert old is not None
            enqueue(session, numbered_notice(old.id, 1), utcnow())
        await bot.deliver(number_changed(SITI, NEW, new_user_id=NEW_ID))
        # A person known by a user id alone whose id changes is found by the old one.
        username = bot.person(None, user_id="ID.1")
        await username.say("halo")
        await bot.deliver(user_id_changed("ID.1", "ID.2"))
        [answer] = await bot.person(None, user_id="ID.2").say("/menu")
        assert answer.by_user_id and answer.to == "ID.2"
    async with services.sessions() as session:
        old, new, renamed = (await session.scalars(select(Contact).order_by(Contact.id))).all()
        rows = (await session.scalars(select(OutboxMessage))).all()
    assert (old.chat_id, old.platform_user_id, old.unreachable_at is not None) == (
        SITI, None, True)
    assert (new.chat_id, new.platform_user_id) == (NEW, NEW_ID)
    assert old.person_id == new.person_id == old.id
    assert sorted((row.contact_id, row.message_key) for row in rows) == [
        (new.id, "notice.number_changed"), (new.id, "notice.request_cancelled")]
    assert (renamed.chat_id, renamed.platform_user_id) == ("ID.2", "ID.2")
